#!/usr/bin/env python3
"""The peer of ConvLens' Score-CAM: tf-keras-vis's ScoreCAM on the same model and image.

Same work as `convlens heatmap --method scorecam`: one forward pass for the class and the
layer's activations, then one masked input per channel of the layer (all of them,
max_N=-1; constant channels are skipped by both) run in batches of --batch-size, the class
probability of each weighting its channel. tf-keras-vis 0.8.7 on Keras 3 / TensorFlow 2.21.

    venv/bin/python tools/bench/bench_scorecam_keras.py [--model models/efficientnet_lite0.h5]
        [--profile models/efficientnet_lite0.json] [--image public/samples/chelsea.png]
        [--layer top_activation] [--batch-size 16] [--runs 1] [--threads 2]

Prints one JSON line {"name": "scorecam", "ms_median", "runs", "channels", "peak_rss_mb"}.
The first call is the warm-up only when --runs > 1 (one call takes tens of seconds).
"""
import argparse
import json
import resource
import statistics
import time

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="models/efficientnet_lite0.h5")
ap.add_argument("--profile", default="models/efficientnet_lite0.json")
ap.add_argument("--image", default="public/samples/chelsea.png")
ap.add_argument("--layer", default="top_activation")
ap.add_argument("--batch-size", type=int, default=16)
ap.add_argument("--runs", type=int, default=1)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
import numpy as np  # noqa: E402
from tf_peer import tensorflow  # noqa: E402

tf, keras = tensorflow(args.threads, 1)
from PIL import Image  # noqa: E402
from tf_keras_vis.scorecam import Scorecam  # noqa: E402
from tf_keras_vis.utils.scores import CategoricalScore  # noqa: E402

profile = json.load(open(args.profile))
scale, offset = profile["preprocessing"]["scale"], profile["preprocessing"]["offset"]
model = keras.models.load_model(args.model, compile=False)
h, w = model.input_shape[1:3]
photo = Image.open(args.image).convert("RGB").resize((w, h), Image.BILINEAR)
x = (np.asarray(photo, dtype=np.float32) * scale + offset)[None]
k = int(np.argmax(model(x, training=False)[0]))
channels = int(model.get_layer(args.layer).output.shape[-1])
keras.utils.disable_interactive_logging()  # model.predict inside tf-keras-vis prints a progress bar per call
scorecam = Scorecam(model)


def run():
    return scorecam(CategoricalScore([k]), x, penultimate_layer=args.layer, max_N=-1, batch_size=args.batch_size)


if args.runs > 1:
    run()
times = []
for _ in range(args.runs):
    t0 = time.perf_counter()
    cam = run()
    times.append((time.perf_counter() - t0) * 1000)
assert np.isfinite(cam).all() and cam.max() > 0, "tf-keras-vis gave an empty map"
print(json.dumps({"name": "scorecam", "ms_median": round(statistics.median(times), 1), "runs": args.runs, "class": k,
                  "channels": channels, "batch_size": args.batch_size, "threads": args.threads,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}), flush=True)
