#!/usr/bin/env python3
"""Time ConvLens's "lucid" filter visualisation redone in TensorFlow/Keras 3: the
peer of `convlens filters --method lucid` (Sources/Visualization/Lucid.swift,
LucidFFT.swift, LucidImage.swift, LucidTransforms.swift) for the bench suite's
"lucid 256 steps x4 at 224".

    /work/venv/bin/python tools/bench/bench_lucid_keras.py --model FILE.h5|.keras --layer NAME
        [--count 4] [--steps 256] [--size 224] [--threads 2] [--first 0]
        [--preprocessing auto] [--seed 0] [--verbose]

Per step, the same computation as ConvLens, for --count images in ONE batch
(image n maximises channel --first+n of --layer):
  - Fourier image: coefficients [n, 2 (re, im), 3, h, w/2+1], start N(0, 0.01^2),
    times sqrt(h*w) / max(|f|, 1/max(h, w))^1 (lucid's 1/f spectrum scaling, |f| from
    fftfreq), irfft2d per colour channel, / 4;
  - decorrelated colour: t . C~^T per pixel, C~ = lucid's ImageNet
    color_correlation_svd_sqrt / its largest column norm; then a sigmoid -> RGB in [0, 1];
  - random transforms, drawn per image and step as LucidTransforms.standard does:
    pad 12 (constant 0.5), jitter 8, scale in {1, 0.975, 1.025, 0.95, 1.05},
    rotation in {-5..5} degrees, jitter 4, centre crop to the network input; composed
    into one affine map and sampled bilinearly once (ImageProjectiveTransformV3,
    constant fill 0.5), as ConvLens does;
  - the model's preprocessing as ConvLens's LucidInputMap applies it: x255, then
    caffe (RGB->BGR, minus the ImageNet means) / tf / torch / scale / none; `auto`
    picks the mode from the model's name with ConvLens's keras.applications table
    (vgg16 -> caffe), else none (give --preprocessing when ConvLens reads a profile);
  - forward to --layer, objective = mean over H, W of the image's own channel (lucid
    "channel"; a flat layer: the unit), gradient of -sum(objectives) to the coefficients;
  - Adam, TensorFlow's update form written out: lr 0.05, beta1 0.9, beta2 0.999,
    eps 1e-8, bias-corrected step size, as LucidState.adamStep.
The step is a tf.function (graph, no XLA); the transform draws are made in NumPy
between steps, and each step's objectives are fetched (ConvLens records them for
its progress report). Threads: tf.config.threading intra-op = inter-op = --threads.

Network: keras.models.load_model(--model, compile=False) cut at --layer. A model saved
with a fixed input size other than --size is rebuilt at --size (the cut model cloned on
an open-size Input, weights copied), as ConvLens draws such models with the input size
left open; this works up to the first size-dependent layer (Flatten/Dense), as there.

Timing: one untimed run of 2 steps (tracing), the state reset, then one timed run of
--steps steps from the random start to the final RGB images fetched to NumPy.
Output: one JSON line
  {"name": "lucid", "seconds": S, "filters": N, "steps": K, "size": Z, "threads": T,
   "peak_rss_mb": R}
(peak RSS: this process's VmHWM, else resource.getrusage ru_maxrss, as bench_keras.py).
--verbose prints each step's objectives (mean of the N, and each) to stderr.

Differences from ConvLens (equal work, not equal pixels):
  - the random draws (start coefficients, transforms) come from NumPy, not SplitMix64,
    so the pictures differ; the kinds and ranges of everything are the same;
  - the Fourier transforms are TensorFlow's irfft2d (an FFT) and its gradient, where
    ConvLens multiplies by exact DFT matrices (LucidDFT2D) - same result up to rounding,
    less arithmetic here;
  - the warp's gradient is TensorFlow's registered one for ImageProjectiveTransformV3 (the
    gradient resampled through the inverse warp: a gather), ConvLens uses the exact
    transpose of its bilinear sampling (a scatter) - the same order of work, slightly
    different values near rotated/scaled pixel boundaries; with constant fill the
    gradient outside the image is dropped in both;
  - everything else (batching, one channel per image, sizes, steps, Adam) is the same.
"""
import argparse
import json
import math
import resource
import sys
import time


def parse():
    ap = argparse.ArgumentParser(description="time ConvLens's lucid filter visualisation in TensorFlow (CPU)")
    ap.add_argument("--model", required=True, help=".h5 or .keras model file")
    ap.add_argument("--layer", required=True, help="layer whose channels are visualised")
    ap.add_argument("--count", type=int, default=4, help="filters = images in the batch")
    ap.add_argument("--first", type=int, default=0, help="first channel (filters first..first+count-1)")
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--size", type=int, default=224, help="image height = width")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preprocessing", default="auto", choices=["auto", "caffe", "tf", "torch", "scale", "none"],
                    help="the model's input mapping (auto: from the model's name, as ConvLens)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="each step's objectives to stderr")
    return ap.parse_args()


args = parse()
import numpy as np  # noqa: E402
from tf_peer import tensorflow  # noqa: E402

tf, keras = tensorflow(args.threads, args.threads)

# lucid's color_correlation_svd_sqrt (rows: RGB output), divided by its largest column norm.
COLOR_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float64)
COLOR = (COLOR_SVD_SQRT / np.max(np.linalg.norm(COLOR_SVD_SQRT, axis=0))).astype(np.float32)

# LucidTransforms.standard
PAD, PAD_VALUE, JITTER1, JITTER2 = 12, 0.5, 8, 4
SCALES = [1, 0.975, 1.025, 0.95, 1.05]
ANGLES = list(range(-5, 6))

LR, BETA1, BETA2, EPS, INIT_STD, DECAY = 0.05, 0.9, 0.999, 1e-8, 0.01, 1.0

# ConvLens's ModelInput.detect table (keras.applications names -> preprocess_input mode).
NAME_MODES = [("vgg16", "caffe"), ("vgg19", "caffe"), ("resnet50v2", "tf"), ("resnet101v2", "tf"),
              ("resnet152v2", "tf"), ("resnet", "caffe"), ("mobilenetv3", "none"), ("mobilenet", "tf"),
              ("xception", "tf"), ("inception", "tf"), ("nasnet", "tf"), ("densenet", "torch"),
              ("efficientnet", "none"), ("convnext", "none")]


def peak_rss_mb():
    """This process's peak resident set (VmHWM), as bench_keras.py."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def input_map(mode):
    """LucidInputMap(preprocessing:): (swap RGB->BGR, scale[3], offset[3]) on RGB in [0, 1]."""
    if mode == "caffe":
        mean_bgr = [103.939, 116.779, 123.68]
        return True, [255.0] * 3, [-m for m in mean_bgr]
    if mode == "tf":
        return False, [2.0] * 3, [-1.0] * 3
    if mode == "torch":
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        return False, [1 / s for s in std], [-m / s for m, s in zip(mean, std)]
    if mode == "scale":
        return False, [1.0] * 3, [0.0] * 3
    return False, [255.0] * 3, [0.0] * 3  # none


def feature_model(model, layer, size):
    """The model cut at `layer`, running at size x size (rebuilt with an open input if needed)."""
    feat = keras.Model(model.inputs, model.get_layer(layer).output)
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0]
    if shape[1] in (None, size) and shape[2] in (None, size):
        return feat
    try:
        inp = keras.Input((size, size, shape[3]))
        open_feat = keras.models.clone_model(feat, input_tensors=[inp])
        open_feat.set_weights(feat.get_weights())
        return open_feat
    except Exception as e:  # a size-dependent layer on the path
        raise SystemExit(f"layer '{layer}' cannot run at {size}x{size} (the model was saved at "
                         f"{shape[1]}x{shape[2]}): {e}")


def spectrum_scale(h, w):
    """sqrt(h*w) / max(|f|, 1/max(h, w))^decay, [h, w/2+1] (lucid's rfft2d_freqs)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.arange(w // 2 + 1)[None, :] / w
    f = np.sqrt(fx * fx + fy * fy)
    return (math.sqrt(h * w) / np.maximum(f, 1.0 / max(h, w)) ** DECAY).astype(np.float32)


def draw_transform(rng, h, w, oh, ow):
    """LucidTransforms.draw: output (y, x) -> image (a*y + b*x + c, d*y + e*x + f), returned in
    ImageProjectiveTransform's order [a0, a1, a2, b0, b1, b2, 0, 0] (x = column first)."""
    o1y, o1x = (int(rng.integers(0, JITTER1 + 1)) for _ in range(2))
    s = SCALES[int(rng.integers(0, len(SCALES)))]
    deg = ANGLES[int(rng.integers(0, len(ANGLES)))]
    o2y, o2x = (int(rng.integers(0, JITTER2 + 1)) for _ in range(2))
    c1h, c1w = float(h + 2 * PAD - JITTER1), float(w + 2 * PAD - JITTER1)
    sh, sw = max(1, int(c1h * s)), max(1, int(c1w * s))
    cy = math.floor((sh - JITTER2 - oh) / 2)
    cx = math.floor((sw - JITTER2 - ow) / 2)
    th = math.radians(deg)
    ct, st = math.cos(th), math.sin(th)
    ry0, rx0 = float(cy + o2y), float(cx + o2x)
    my, mx = (sh - 1) / 2, (sw - 1) / 2
    fy, fx = c1h / sh, c1w / sw
    a, b, d, e = fy * ct, -fy * st, fx * st, fx * ct
    qy0 = my + ct * (ry0 - my) - st * (rx0 - mx)
    qx0 = mx + st * (ry0 - my) + ct * (rx0 - mx)
    c = (qy0 + 0.5) * fy - 0.5 + (o1y - PAD)
    f = (qx0 + 0.5) * fx - 0.5 + (o1x - PAD)
    return [e, d, f, b, a, c, 0.0, 0.0]


def main():
    model = keras.models.load_model(args.model, compile=False)
    mode = args.preprocessing
    if mode == "auto":
        name = model.name.lower()
        mode = next((m for p, m in NAME_MODES if name.startswith(p)), "none")
    swap, scale, offset = input_map(mode)
    feat = feature_model(model, args.layer, args.size)
    n, h, w = args.count, args.size, args.size
    oh, ow = h, w  # ConvLens draws at the network's input size
    fw = w // 2 + 1
    out_shape = feat.output.shape
    channels = out_shape[-1]
    if args.first < 0 or args.first + n > channels:
        raise SystemExit(f"filters {args.first}..{args.first + n - 1} out of range: '{args.layer}' has {channels} channels")
    ks = tf.constant(np.arange(args.first, args.first + n), tf.int32)
    spatial = len(out_shape) == 4

    spec = tf.constant(spectrum_scale(h, w))
    color_t = tf.constant(COLOR.T)
    in_scale = tf.constant(np.array(scale, np.float32))
    in_offset = tf.constant(np.array(offset, np.float32))
    shape = (n, 2, 3, h, fw)
    coeff = tf.Variable(tf.zeros(shape))
    m = tf.Variable(tf.zeros(shape))
    v = tf.Variable(tf.zeros(shape))
    t = tf.Variable(0.0)

    def reset(seed):
        rng = np.random.default_rng(seed)
        coeff.assign(rng.normal(0.0, INIT_STD, shape).astype(np.float32))
        m.assign(tf.zeros(shape))
        v.assign(tf.zeros(shape))
        t.assign(0.0)
        return [np.random.default_rng([seed, i]) for i in range(n)]

    def render(c):
        spectrum = tf.complex(c[:, 0] * spec, c[:, 1] * spec)  # [n, 3, h, fw]
        img = tf.signal.irfft2d(spectrum, fft_length=[h, w]) / 4.0  # [n, 3, h, w]
        img = tf.transpose(img, [0, 2, 3, 1])
        return tf.sigmoid(tf.tensordot(img, color_t, axes=1))  # rgb = C~ . t

    @tf.function
    def step(transforms):
        with tf.GradientTape() as tape:
            rgb = render(coeff)
            warped = tf.raw_ops.ImageProjectiveTransformV3(
                images=rgb, transforms=transforms, output_shape=[oh, ow],
                fill_value=PAD_VALUE, interpolation="BILINEAR", fill_mode="CONSTANT")
            x = warped[..., ::-1] if swap else warped
            x = x * in_scale + in_offset
            out = feat(x, training=False)
            per_channel = tf.reduce_mean(out, axis=[1, 2]) if spatial else out
            values = tf.gather(per_channel, ks, axis=1, batch_dims=1)  # [n]: image i, channel ks[i]
            loss = -tf.reduce_sum(values)
        g = tape.gradient(loss, coeff)
        t.assign_add(1.0)
        m.assign(BETA1 * m + (1 - BETA1) * g)
        v.assign(BETA2 * v + (1 - BETA2) * g * g)
        lr_t = LR * tf.sqrt(1 - tf.pow(BETA2, t)) / (1 - tf.pow(BETA1, t))
        coeff.assign_sub(lr_t * m / (tf.sqrt(v) + EPS))
        return values

    final = tf.function(lambda: render(coeff))

    def run(steps, seed, verbose):
        rngs = reset(seed)
        history = []
        for k in range(steps):
            tr = tf.constant(np.array([draw_transform(r, h, w, oh, ow) for r in rngs], np.float32))
            vals = step(tr).numpy()
            history.append(vals)
            if verbose:
                print(f"step {k + 1}/{steps}: objective mean {vals.mean():.6g}  "
                      + " ".join(f"{x:.6g}" for x in vals), file=sys.stderr, flush=True)
        return np.asarray(final()), history

    run(2, args.seed + 1, False)  # trace (untimed)
    t0 = time.perf_counter()
    images, history = run(args.steps, args.seed, args.verbose)
    seconds = time.perf_counter() - t0
    if args.verbose:
        first, last = history[0].mean(), history[-1].mean()
        print(f"objective mean: step 1 {first:.6g} -> step {args.steps} {last:.6g}; "
              f"images {images.shape} in [{images.min():.3f}, {images.max():.3f}]", file=sys.stderr, flush=True)
    print(json.dumps({"name": "lucid", "seconds": round(seconds, 2), "filters": n, "steps": args.steps,
                      "size": args.size, "threads": args.threads,
                      "peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)


if __name__ == "__main__":
    main()
