#!/usr/bin/env python3
"""Time VGG16 in TensorFlow/Keras 3 on this machine, as the reference for the
Swift benchmark.

    /work/venv/bin/python tools/bench/bench_keras.py [--threads 2] [--runs 10]
        [--warmup 2] [--runs-batch 5] [--model /tmp/vgg16.h5] [--only a b c d]

Every step is a tf.function (graph-compiled, no XLA) called on a fixed input;
eager execution and model.predict would add Python/overhead and flatter the
Swift side. Each benchmark: `--warmup` untimed calls (tracing + first run),
then `--runs` timed calls; the result is fetched to NumPy inside the timing so
the work is really done. Threads: tf.config.threading intra-op = --threads,
inter-op = --threads (default 2 = this machine's cores).

Network: keras.applications.VGG16(weights=None) at 224x224x3 for all four
benchmarks (with the classifier top for a and b), or the file given with
--model (from tools/bench/make_vgg16.py: the same weights the Swift side loads).
Input: fixed random uniform(0, 255) image(s), seed 0 (already "preprocessed":
no mean subtraction is timed).

  forward            (a) forward pass, batch 1, full network with top
  gradcam            (b) forward + gradient of the top class score before the
                         softmax (logit of the arg-max class) w.r.t.
                         --cam-layer (block5_conv3), batch 1 (Grad-CAM's work;
                         the pooled-gradient weighting itself is not timed)
  ascent_step        (c) forward up to --layer (block3_conv1) + gradient of the mean of
                         channel 0 of block3_conv1 w.r.t. the input + the
                         normalised update x += lr * g / (rms(g) + 1e-5);
                         batch 1, 224x224 (one step of filter visualisation)
  ascent_step_b64    (d) the same step at batch 64: one channel (0) for all
                         images, loss = mean over the whole batch, so each
                         image gets its own gradient (scaled by 1/64; the
                         normalisation is per image)

Output: one JSON line per benchmark
  {"name": ..., "ms_median": ..., "ms_min": ..., "runs": N, "batch": B,
   "threads": T, "input": [B, 224, 224, 3]}
then {"name": "peak_rss", "peak_rss_mb": ...} (resource.getrusage ru_maxrss,
whole process, includes TensorFlow itself and the loaded model).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def parse():
    ap = argparse.ArgumentParser(description="time VGG16 steps in TensorFlow (CPU)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10, help="timed runs for batch-1 benchmarks")
    ap.add_argument("--runs-batch", type=int, default=5, help="timed runs for the batch-64 benchmark")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64, help="batch size of benchmark d")
    ap.add_argument("--model", help="VGG16 file from tools/bench/make_vgg16.py (default: build VGG16(weights=None))")
    ap.add_argument("--only", nargs="*", choices=["forward", "gradcam", "ascent_step", "ascent_step_b64"])
    ap.add_argument("--layer", default="block3_conv1", help="layer of the ascent step")
    ap.add_argument("--cam-layer", default="block5_conv3", help="layer whose gradient the gradcam line takes")
    ap.add_argument("--channel", type=int, default=0)
    return ap.parse_args()


args = parse()
import numpy as np  # noqa: E402
from tf_peer import tensorflow  # noqa: E402

tf, keras = tensorflow(args.threads, args.threads)


def load_model():
    if args.model:
        return keras.models.load_model(args.model, compile=False)
    keras.utils.set_random_seed(1234)
    return keras.applications.VGG16(weights=None)


def linear_head(model):
    last = model.layers[-1]
    if last.get_config().get("activation") != "softmax":
        return model

    def clone_fn(layer):
        c = layer.get_config()
        if layer is last:
            c["activation"] = "linear"
        return layer.__class__.from_config(c)

    clone = keras.models.clone_model(model, clone_function=clone_fn)
    clone.set_weights(model.get_weights())
    return clone


def peak_rss_mb():
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries a
    parent's ru_maxrss across fork+exec, so a child launched by a large process
    would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timeit(name, fn, x, runs, batch):
    for _ in range(args.warmup):
        r = fn(x)
        _ = [np.asarray(t) for t in tf.nest.flatten(r)]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = fn(x)
        _ = [np.asarray(t) for t in tf.nest.flatten(r)]
        times.append((time.perf_counter() - t0) * 1000.0)
    print(json.dumps({"name": name, "ms_median": round(statistics.median(times), 3),
                      "ms_min": round(min(times), 3), "runs": runs, "batch": batch,
                      "threads": args.threads, "input": list(x.shape)}), flush=True)


def main():
    model = load_model()
    size = model.input_shape[1] or 224  # a variable input size (MobileNetV3) is timed at 224, as ConvLens does
    rng = np.random.default_rng(0)
    x1 = tf.constant(rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32))
    want = set(args.only or ["forward", "gradcam", "ascent_step", "ascent_step_b64"])

    if "forward" in want:
        @tf.function
        def forward(x):
            return model(x, training=False)
        timeit("forward", forward, x1, args.runs, 1)

    if "gradcam" in want:
        logits_model = linear_head(model)
        grad_model = keras.Model(logits_model.inputs,
                                 [logits_model.get_layer(args.cam_layer).output, logits_model.outputs[0]])

        @tf.function
        def gradcam(x):
            with tf.GradientTape() as tape:
                conv, logits = grad_model(x, training=False)
                top = tf.argmax(logits[0])
                score = logits[:, top]
            return tape.gradient(score, conv), logits
        timeit("gradcam", gradcam, x1, args.runs, 1)

    if want & {"ascent_step", "ascent_step_b64"}:
        feat = keras.Model(model.inputs, model.get_layer(args.layer).output)
        ch = args.channel

        @tf.function
        def ascent(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_mean(feat(x, training=False)[..., ch])
            g = tape.gradient(loss, x)
            rms = tf.sqrt(tf.reduce_mean(tf.square(g), axis=[1, 2, 3], keepdims=True))
            return x + 10.0 * g / (rms + 1e-5)

        if "ascent_step" in want:
            timeit("ascent_step", ascent, x1, args.runs, 1)
        print(json.dumps({"name": "peak_rss_b1", "peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)
        if "ascent_step_b64" in want:
            xb = tf.constant(rng.uniform(0, 255, (args.batch, size, size, 3)).astype(np.float32))
            timeit(f"ascent_step_b{args.batch}", ascent, xb, args.runs_batch, args.batch)

    print(json.dumps({"name": "peak_rss", "peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)


if __name__ == "__main__":
    main()
