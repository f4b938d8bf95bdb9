"""The peer of POST /heatmap: the same work in TensorFlow/Keras on this machine.

Per request: decode the PNG (Pillow), resize to the model input (Pillow bilinear),
scale as the model's profile says, one forward pass under a GradientTape giving the
top-5 and the class logit's gradient at the default CAM layer, Grad-CAM, the jet
overlay at the photo's size (book: heatmap × 0.4 + image), PNG encode (Pillow).
Prints the median and p90 over --runs requests after a warm-up, and peak RSS.

    venv/bin/python tools/bench/bench_heatmap_keras.py --threads 2
"""
import argparse, io, json, resource, statistics, time

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="models/efficientnet_lite0.h5")
parser.add_argument("--profile", default="models/efficientnet_lite0.json")
parser.add_argument("--image", default="public/samples/chelsea.png")
parser.add_argument("--layer", default="top_activation")
parser.add_argument("--runs", type=int, default=30)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--png-level", type=int, default=6,
                    help="zlib level of the PNG (Pillow's default 6; ConvLens answers with fast encoding, comparable to 1)")
args = parser.parse_args()

import numpy as np
from tf_peer import tensorflow

tf, keras = tensorflow(args.threads, 1)
from PIL import Image
from matplotlib import colormaps

profile = json.load(open(args.profile))
scale, offset = profile["preprocessing"]["scale"], profile["preprocessing"]["offset"]
model = keras.models.load_model(args.model, compile=False)
size = model.input_shape[1:3]
logits_model = keras.Model(model.inputs, [model.get_layer(args.layer).output, model.layers[-1].input
                                          if model.layers[-1].__class__.__name__ == "Activation" else model.output])
jet = (colormaps["jet"](np.arange(256))[:, :3] * 255).astype(np.float32)
data = open(args.image, "rb").read()


@tf.function
def cam_and_logits(x):
    with tf.GradientTape() as tape:
        feature, logits = logits_model(x, training=False)
        k = tf.argmax(logits[0])
        score = logits[0, k]
    grads = tape.gradient(score, feature)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.reduce_sum(feature[0] * weights[0], axis=-1))
    return cam / (tf.reduce_max(cam) + 1e-12), tf.nn.softmax(logits[0])


def handle(data):
    photo = Image.open(io.BytesIO(data)).convert("RGB")
    x = np.asarray(photo.resize((size[1], size[0]), Image.BILINEAR), dtype=np.float32) * scale + offset
    cam, probs = cam_and_logits(x[None])
    top5 = np.argsort(probs.numpy())[::-1][:5]
    heat = Image.fromarray(np.uint8(255 * cam.numpy())).resize(photo.size, Image.BILINEAR)
    coloured = jet[np.asarray(heat)]
    overlay = np.clip(coloured * 0.4 + np.asarray(photo, dtype=np.float32), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(overlay).save(out, format="PNG", compress_level=args.png_level)
    return out.getvalue(), top5


for _ in range(3):
    handle(data)
times = []
for _ in range(args.runs):
    t0 = time.perf_counter()
    png, top5 = handle(data)
    times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(json.dumps({"peer": "tensorflow", "tf": tf.__version__, "keras": keras.__version__, "threads": args.threads,
                  "png_level": args.png_level, "png_bytes": len(png),
                  "top1": int(top5[0]), "median_ms": round(statistics.median(times), 1),
                  "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
