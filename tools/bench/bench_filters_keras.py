#!/usr/bin/env python3
"""Time a 64-filter grid of VGG16 block3_conv1 at 150x150, 40 steps, in TensorFlow.

The peer side of issue 4's filter-visualisation timing (ConvLens:
`convlens filters --model M --layer block3_conv1 --count 64 --steps 40 --size 150`):
  book_batched   the book's loop (x += g / (rms(g) + 1e-5)), 64 images in one batch, tf.function
  book_single    the same, one filter at a time (64 runs of batch 1)
  tfkv_batched   tf-keras-vis ActivationMaximization, 64 seeds in one call, its default
                 regularisers and input modifiers, 40 steps
Prints JSON lines {"name", "seconds"}. Needs tensorflow-cpu and tf-keras-vis.
Usage: python tools/bench/bench_filters_keras.py --model /tmp/vgg16_notop.h5 [--threads 2] [--make-model]
A model with a fixed input size (VGG16 with its top) works too: its layers up to --layer are
applied in order to a --size input (a chain, as VGG16's convolutional base is).
"""
import argparse
import json
import resource
import time

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="/tmp/vgg16_notop.h5")
ap.add_argument("--make-model", action="store_true", help="save VGG16(include_top=False, weights=None, seed 1234) to --model and exit")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--layer", default="block3_conv1")
ap.add_argument("--count", type=int, default=64)
ap.add_argument("--steps", type=int, default=40)
ap.add_argument("--size", type=int, default=150)
ap.add_argument("--only", nargs="*", default=["book_batched", "book_single", "tfkv_batched"])
args = ap.parse_args()
import numpy as np  # noqa: E402
from tf_peer import tensorflow  # noqa: E402

tf, keras = tensorflow(args.threads, args.threads)

if args.make_model:
    keras.utils.set_random_seed(1234)
    keras.applications.VGG16(include_top=False, weights=None).save(args.model)
    raise SystemExit(0)

model = keras.models.load_model(args.model, compile=False)
if tuple(model.input_shape[1:3]) in ((None, None), (args.size, args.size)):
    feat = keras.Model(model.inputs, model.get_layer(args.layer).output)
else:
    # A model saved with a fixed input (VGG16 with its top): its layers up to the target are
    # a chain of convolutions and poolings that take any size, applied to a --size input.
    x = inp = keras.Input((args.size, args.size, model.input_shape[-1]))
    for layer in model.layers[1:]:
        x = layer(x)
        if layer.name == args.layer:
            break
    else:
        raise SystemExit(f"no layer {args.layer} in the chain of {args.model}")
    feat = keras.Model(inp, x)
n, size = args.count, args.size
rng = np.random.default_rng(0)
start = (rng.random((n, size, size, 3)) * 20 + 128).astype(np.float32)
onehot = np.zeros((n, feat.output.shape[-1]), np.float32)
onehot[np.arange(n), np.arange(n)] = 1


@tf.function
def book_step(x, sel):
    with tf.GradientTape() as tape:
        tape.watch(x)
        a = feat(x, training=False)
        loss = tf.reduce_sum(tf.reduce_mean(a, axis=[1, 2]) * sel)  # image i: mean of its own channel
    g = tape.gradient(loss, x)
    g = g / (tf.sqrt(tf.reduce_mean(tf.square(g), axis=[1, 2, 3], keepdims=True)) + 1e-5)
    return x + g


def run_book(x, sel):
    for _ in range(args.steps):
        x = book_step(x, sel)
    return np.asarray(x)


def report(name, seconds):
    print(json.dumps({"name": name, "seconds": round(seconds, 2), "filters": n, "steps": args.steps,
                      "size": size, "threads": args.threads,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}), flush=True)


if "book_batched" in args.only:
    run_book(tf.constant(start[:2]), tf.constant(onehot[:2]))  # trace
    t0 = time.perf_counter(); run_book(tf.constant(start), tf.constant(onehot)); report("book_batched", time.perf_counter() - t0)
if "book_single" in args.only:
    run_book(tf.constant(start[:1]), tf.constant(onehot[:1]))
    t0 = time.perf_counter()
    for i in range(n):
        run_book(tf.constant(start[i:i + 1]), tf.constant(onehot[i:i + 1]))
    report("book_single", time.perf_counter() - t0)
if "tfkv_batched" in args.only:
    from tf_keras_vis.activation_maximization import ActivationMaximization
    am = ActivationMaximization(feat, clone=False)
    score = lambda out: tf.stack([tf.reduce_mean(out[i, ..., i]) for i in range(n)])  # noqa: E731
    t0 = time.perf_counter()
    am(score, seed_input=tf.constant(start), steps=args.steps)
    report("tfkv_batched", time.perf_counter() - t0)
