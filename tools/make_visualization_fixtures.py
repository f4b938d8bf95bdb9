#!/usr/bin/env python3
"""Generate ConvLens' visualisation reference fixtures into
Tests/Fixtures/visualization/ (Grad-CAM, Grad-CAM++, Score-CAM, the book's
filter ascent, the book's activation-grid normalisation).

    /work/venv/bin/python tools/make_visualization_fixtures.py [--out Tests/Fixtures/visualization]

Versions: tools/requirements.txt (tensorflow-cpu 2.21, Keras 3.15). Uses
tools/fixture_common.py for the deterministic TF set-up (TF_DETERMINISTIC_OPS,
oneDNN rewrites off, one thread), random weights, op-by-op reference gradients
and Keras 3 saving. Fixed seeds (a numpy Generator per part, seeded from the
part's name); re-running reproduces every file byte for byte.

Manifest format (Tests/Fixtures/visualization/manifest.json)
=============================================================
A JSON object; all paths are relative to the manifest's directory. Every .npy
is little-endian, C order, NHWC with the batch first for images, float32
unless the manifest says "uint8" (each uint8 array also has a float32 copy,
since the Swift reader reads float32/float64 only).

{
 "format_version": 1,
 "generator": "tools/make_visualization_fixtures.py",
 "gradcam": {
   "model": "cam_classifier.k3.h5",   Keras 3 model.save(".h5"), input (None,32,32,3),
                                      Dense(10, softmax) head
   "format": "keras3-h5",
   "layer": "last_conv",              the conv layer whose output is weighted
   "layer_shape": [8, 8, 16],         its per-sample output shape (h, w, c)
   "logits_layer": "predictions",     the Dense whose pre-activation is the logit
   "num_classes": 10, "non_top_class": 7,
   "images": [ {                      one per input image
      "name": "img0",
      "input": "cam.img0.input.npy",              (1,32,32,3) float32 in [0,1]
      "probabilities": "cam.img0.probs.npy",      (1,10) model output (softmax)
      "logits": "cam.img0.logits.npy",            (1,10) pre-softmax logits
      "activation": "cam.img0.act.last_conv.npy", (1,8,8,16) last_conv output
      "top1": k,
      "cases": [ {                    one per (class, score kind)
         "name": "img0.top1.logit",
         "class_index": k, "is_top1": bool,
         "score": "logit" | "probability",
                  logit: the pre-softmax output of 'predictions' for class k
                  (the Grad-CAM paper); probability: the softmax output (the book)
         "score_value": float,
         "gradient": "cam.img0.top1.logit.grad.last_conv.npy",  (1,8,8,16)
                  d score / d (last_conv output), tf.GradientTape, batch 1
         "channel_weights": "...gradcam.weights.npy",  (16,) mean of gradient over H, W
         "gradcam": "...gradcam.npy",         (8,8) Grad-CAM heatmap
         "gradcam_all_zero": bool,            true if the ReLU killed everything
         "gradcampp_weights": "...gradcampp.weights.npy",  (16,)
         "gradcampp": "...gradcampp.npy",     (8,8) Grad-CAM++ heatmap
         "gradcampp_all_zero": bool,
         "scorecam_*": only in "logit" cases (Score-CAM does not use gradients;
                       it depends only on (image, class)):
         "scorecam_probs": "...scorecam.probs.npy",    (16,) weights w_k
         "scorecam_logits": "...scorecam.logits.npy",  (16,) logit of class k for each masked input
         "scorecam": "...scorecam.npy",       (8,8) Score-CAM heatmap
         "scorecam_all_zero": bool,
         "scorecam_baseline_prob": p(class | all-zero image),  for the "minus baseline" variant
         "scorecam_baseline_logit": logit(class | all-zero image)
      } ... ],
      "scorecam_masks": "cam.img0.scorecam.masks.npy"  (img0 only) (16,32,32)
                  the upsampled, min-max normalised masks H_k (0 for constant ones)
      "scorecam_constant_channels": [...]  channels whose upsampled map is
                  constant (weight 0)
   } ... ],
   "formulas": {...}                  the exact variants in words (see below)
 },
 "filter_ascent": {
   "model": "ascent_stack.k3.h5",     Keras 3 .h5, input (None, None, None, 3)
   "layer": "conv3", "steps": 40, "step_size": 1.0, "size": 24,
   "start": "ascent.start.npy",       (1,24,24,3) float32, uniform[0,1)*20+128
   "runs": [ {                        one single-image run per filter
      "filter": f,
      "losses": "ascent.f{f}.losses.npy",      (40,) loss BEFORE the update of each step
      "first_gradient": "ascent.f{f}.grad0.npy", (1,24,24,3) normalised gradient of step 1
      "final": "ascent.f{f}.final.npy"         (1,24,24,3) image after 40 updates
   } ... ],
   "batched": {
      "filters": [f0, f1, f2],        image n ascends filter n
      "start": "ascent.start.npy" repeated 3 times along the batch axis,
      "losses": "ascent.batched.losses.npy",   (40, 3)
      "final": "ascent.batched.final.npy",     (3,24,24,3)
      "max_abs_diff_losses_vs_single": float,  |batched - single runs| measured here
      "max_abs_diff_final_vs_single": float
   },
   "deprocessed": {
      "filter": f0, "source": "ascent.f{f0}.final.npy",
      "uint8": "ascent.f{f0}.deprocessed.u8.npy",    (24,24,3) uint8
      "float32": "ascent.f{f0}.deprocessed.f32.npy", same values as float32
      "prequant": "ascent.f{f0}.deprocessed.prequant.npy" float32, the value
                  just before the uint8 cast (already clipped to [0,255])
   }
 },
 "activation_grid": {
   "model": "ascent_stack.k3.h5", "layer": "conv3",
   "input": "grid.input.npy",          (1,20,28,3) float32 in [0,1]
   "activation": "grid.act.conv3.npy", (1,10,14,16) raw layer output
   "uint8": "grid.conv3.u8.npy",       (10,14,16) uint8, per-channel book normalisation
   "float32": "grid.conv3.f32.npy",    same values as float32
   "prequant": "grid.conv3.prequant.npy", float32 before the uint8 cast
   "constant_channels": [...],         channels where max == min (written as 128)
   "near_boundary_pixels": n           pre-quantised values within 1e-3 of an
                                       integer but not on it (a float32
                                       implementation may be off by 1 there)
 }
}

Formula variants (also in the manifest's "formulas" and the README)
-------------------------------------------------------------------
Grad-CAM (book §5.4 / Selvaraju et al.): w_k = mean_{i,j} g_ijk;
  map = ReLU(mean_k(w_k A_ijk)); map /= max(map) if max(map) > 0 (an all-zero
  map stays zero). Computed in float64 from the saved float32 A and g.
Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential score
  Y = exp(S), S = the score whose gradient g is saved):
  alpha_ijk = g² / (2 g² + (Σ_ab A_abk) g³)  (alpha := 0 where the denominator
  is 0); w_k = Σ_ij alpha_ijk relu(g_ijk); map = ReLU(Σ_k w_k A_ijk); map /= max.
  We SUM over channels (the paper). A mean over channels (Swift's code) divides
  by C > 0 before the ReLU and max-normalisation: identical maps up to rounding.
  Since A >= 0 (post-ReLU) the 0-denominator guard never changes w_k: a zero
  denominator needs g = 0 or S·g = -2 < 0, and relu(g) = 0 in both.
Score-CAM (Wang et al. 2020, as in the authors' code, haofanwang/Score-CAM):
  M_k = bilinear upsampling of A_k (h,w) -> (32,32), tf.image.resize
  method="bilinear", antialias=False (TF2: half_pixel_centers=True,
  align_corners=False): source coordinate s = (d + 0.5) * (in/out) - 0.5,
  clamped to [0, in-1]; lower = floor(s), upper = min(lower+1, in-1),
  frac = s - floor(s); separable (rows then columns: the same as either order).
  H_k = (M_k - min M_k) / (max M_k - min M_k), min/max over the UPSAMPLED map;
  a constant M_k (max == min) gets weight 0 (skipped, as the authors' code).
  w_k = softmax probability of the class for input X * H_k (H_k broadcast over
  the 3 colour channels; X is the model input as saved). NO baseline subtracted,
  NO softmax over channels (the paper's Algorithm 1 variant
  softmax_k(logit(X*H_k) - logit(X_b)) can be rebuilt from the saved
  scorecam_logits and scorecam_baseline_logit).
  map = ReLU(Σ_k w_k A_k) at the layer's resolution (8x8); map /= max.
Filter ascent (book): loss = mean_{i,j} conv3[n, i, j, f]; g = d loss / d x;
  g /= (sqrt(mean(g²)) + 1e-5) per image (mean over H, W, C of that image);
  x += 1.0 * g; loss recorded before each update; all in TF float32.
  Batched: total = Σ_n loss_n, each image's gradient normalised on its own.
Deprocess (book): x -= mean(x); x /= (std(x) + 1e-5) (population std over
  H, W, C); x *= 0.1; x += 0.5; clip [0,1]; x *= 255; clip [0,255]; astype uint8
  (truncation). Computed in float64 from the float32 image.
Activation grid (book): per channel c of one image: v = (a - mean) / std
  (population std over H, W) * 64 + 128, clip [0,255], astype uint8
  (truncation). Constant channel (max == min, so std == 0; the book would
  divide 0 by 0): v = 128 everywhere. Computed in float64.
"""
import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402  (sets TF env first)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

NUM_CLASSES = 10
NON_TOP_CLASS = 7          # the fixed non-top class (asserted not top-1 of any image)
ASCENT_FILTERS = [1, 6, 13]
ASCENT_STEPS = 40
ASCENT_STEP_SIZE = 1.0
ASCENT_SIZE = 24
GRID_SHAPE = (20, 28)


def seed_of(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


class Writer:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.files = []

    def npy(self, name, arr, dtype=np.float32):
        arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
        np.save(os.path.join(self.out_dir, name), arr)
        self.files.append(name)
        return name


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def cam_classifier():
    L = keras.layers
    return keras.Sequential([
        keras.Input(shape=(32, 32, 3), name="input"),
        L.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),      # 32x32x8
        L.MaxPooling2D(2, name="pool1"),                                      # 16x16
        L.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),     # 16x16x16
        L.MaxPooling2D(2, name="pool2"),                                      # 8x8
        L.Conv2D(16, 3, padding="same", activation="relu", name="last_conv"),  # 8x8x16
        L.MaxPooling2D(2, name="pool3"),                                      # 4x4 (like VGG's block5_pool)
        L.Flatten(name="flatten"),
        L.Dense(NUM_CLASSES, activation="softmax", name="predictions"),
    ], name="cam_classifier")


def ascent_stack():
    L = keras.layers
    return keras.Sequential([
        keras.Input(shape=(None, None, 3), name="input"),
        L.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        L.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
        L.MaxPooling2D(2, name="pool"),
        L.Conv2D(16, 3, padding="same", activation="relu", name="conv3"),
    ], name="ascent_stack")


def build(builder, name, gain=1.0):
    keras.utils.set_random_seed(seed_of(name))
    m = builder()
    rng = np.random.default_rng(seed_of(name + ".weights"))
    fc.randomize_weights(m, rng, gain=gain)
    return m


# --------------------------------------------------------------------------
# NumPy reference maps
# --------------------------------------------------------------------------
def normalise_by_max(m):
    top = m.max()
    return m / top if top > 0 else m


def gradcam_np(A, g):
    """A, g: (h, w, c). Returns (weights (c,), heatmap (h, w))."""
    A = A.astype(np.float64)
    g = g.astype(np.float64)
    w = g.mean(axis=(0, 1))
    m = np.maximum((A * w).mean(axis=2), 0.0)
    return w, normalise_by_max(m)


def gradcampp_np(A, g):
    A = A.astype(np.float64)
    g = g.astype(np.float64)
    g2 = g * g
    g3 = g2 * g
    sumA = A.sum(axis=(0, 1))                       # (c,)
    denom = 2.0 * g2 + sumA[None, None, :] * g3
    alpha = np.where(denom != 0.0, g2 / np.where(denom != 0.0, denom, 1.0), 0.0)
    w = (alpha * np.maximum(g, 0.0)).sum(axis=(0, 1))
    m = np.maximum((A * w).sum(axis=2), 0.0)        # SUM over channels (the paper)
    return w, normalise_by_max(m)


def resize_bilinear_np(a, out_h, out_w):
    """tf.image.resize(bilinear, half_pixel_centers) in NumPy, float64. a: (h, w, c)."""
    def axis_weights(n_in, n_out):
        scale = n_in / n_out
        s = (np.arange(n_out) + 0.5) * scale - 0.5
        s = np.clip(s, 0.0, n_in - 1)
        lo = np.floor(s).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        fr = s - lo
        return lo, hi, fr
    a = a.astype(np.float64)
    lo, hi, fr = axis_weights(a.shape[0], out_h)
    rows = a[lo] * (1 - fr)[:, None, None] + a[hi] * fr[:, None, None]
    lo, hi, fr = axis_weights(a.shape[1], out_w)
    return rows[:, lo] * (1 - fr)[None, :, None] + rows[:, hi] * fr[None, :, None]


def scorecam_masks(A, size):
    """A: (h, w, c) -> masks (c, H, W) in [0,1] and a 'constant' flag per channel."""
    up_np = resize_bilinear_np(A, size[0], size[1])
    up_tf = np.asarray(tf.image.resize(tf.constant(A[None].astype(np.float32)), size,
                                       method="bilinear", antialias=False))[0]
    d = float(np.max(np.abs(up_np - up_tf)))
    assert d <= 1e-5 * max(1.0, float(np.abs(up_tf).max())), f"NumPy bilinear differs from tf.image.resize by {d}"
    masks = np.zeros((A.shape[2],) + tuple(size))
    constant = []
    for k in range(A.shape[2]):
        mk = up_np[:, :, k]
        lo, hi = mk.min(), mk.max()
        if hi == lo:
            constant.append(k)
            continue
        masks[k] = (mk - lo) / (hi - lo)
    return masks, constant


# --------------------------------------------------------------------------
# part 1: Grad-CAM family
# --------------------------------------------------------------------------
def cam_images(rng):
    H = W = 32
    yy, xx = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    img0 = rng.uniform(0.0, 1.0, (H, W, 3))
    # a bright disc on a colour ramp, a little noise
    disc = ((yy - 11) ** 2 + (xx - 21) ** 2) < 36
    img1 = np.stack([xx / W, yy / H, 0.3 * np.ones_like(xx)], axis=-1)
    img1[disc] = [0.95, 0.9, 0.2]
    img1 += rng.normal(0.0, 0.03, img1.shape)
    # diagonal stripes in the lower half, dark square top left
    img2 = np.full((H, W, 3), 0.2)
    stripes = ((xx + yy) // 4 % 2 == 0) & (yy > 16)
    img2[stripes] = [0.1, 0.6, 0.9]
    img2[3:12, 3:12] = [0.0, 0.05, 0.0]
    img2 += rng.normal(0.0, 0.03, img2.shape)
    return [("img0", img0), ("img1", img1), ("img2", img2)]


FORMULAS = {
    "gradcam": "w_k = mean_ij g_ijk; map = ReLU(mean_k(w_k A_ijk)); map /= max(map) if max(map) > 0 "
               "(all-zero stays zero); float64 from the saved float32 A, g",
    "gradcampp": "alpha_ijk = g^2 / (2 g^2 + (sum_ab A_abk) g^3), alpha = 0 where the denominator is 0; "
                 "w_k = sum_ij alpha_ijk relu(g_ijk); map = ReLU(SUM_k w_k A_ijk); map /= max. "
                 "Chattopadhay et al. 2018 eq. 19 with Y = exp(S) (g = dS/dA of the case's score). "
                 "Mean over channels instead of sum gives the same map (positive factor 1/C before ReLU "
                 "and max-normalisation). With A >= 0 the 0-denominator guard never changes w_k.",
    "scorecam": "M_k = tf.image.resize(A_k, (32,32), bilinear, antialias=False) [half-pixel centres: "
                "s = (d+0.5)*in/out - 0.5 clamped to [0,in-1], lower=floor(s), upper=min(lower+1,in-1), "
                "frac=s-floor(s), separable]; H_k = (M_k - min)/(max - min) over the upsampled map, "
                "constant M_k -> weight 0; w_k = softmax probability of the class for input X*H_k "
                "(H_k broadcast over RGB), no baseline subtracted, no softmax over channels; "
                "map = ReLU(sum_k w_k A_k) at layer resolution (8x8); map /= max. "
                "Paper Algorithm 1 variant softmax_k(logit(X*H_k) - logit(0)) can be rebuilt from "
                "scorecam_logits and scorecam_baseline_logit.",
    "score_logit": "pre-softmax output of 'predictions' (its softmax replaced by linear, same weights)",
    "score_probability": "softmax output of the model (the book)",
    "gradient": "tf.GradientTape, batch 1, d score[class] / d (last_conv output, post-ReLU)",
}


def part_gradcam(out_dir, w):
    name = "cam_classifier"
    model = build(cam_classifier, name)
    logits_model, pre = fc.linear_head_clone(model)
    assert pre
    rng = np.random.default_rng(seed_of("cam_images"))
    images = cam_images(rng)
    model_file = "cam_classifier.k3.h5"
    x_all = np.stack([f32(im) for _, im in images])
    y_all = fc.predict(model, x_all)
    fc.save_keras3(model, os.path.join(out_dir, model_file))
    fc.check_reload(os.path.join(out_dir, model_file), "keras3-h5", x_all, y_all)
    w.files.append(model_file)

    layer_shape = list(model.get_layer("last_conv").output.shape[1:])
    base = np.zeros((1, 32, 32, 3), np.float32)
    base_probs = fc.predict(model, base)[0]
    base_logits = fc.predict(logits_model, base)[0]

    entries = []
    for img_name, im in images:
        x = f32(im)[None]
        probs = fc.predict(model, x)
        logits = fc.predict(logits_model, x)
        A = fc.activations(model, x, ["last_conv"])["last_conv"]
        top1 = int(np.argmax(logits[0]))
        assert int(np.argmax(probs[0])) == top1
        assert top1 != NON_TOP_CLASS, f"{img_name}: class {NON_TOP_CLASS} is top-1"
        tag = f"cam.{img_name}"
        e = {
            "name": img_name,
            "input": w.npy(f"{tag}.input.npy", x),
            "probabilities": w.npy(f"{tag}.probs.npy", probs),
            "logits": w.npy(f"{tag}.logits.npy", logits),
            "activation": w.npy(f"{tag}.act.last_conv.npy", A),
            "top1": top1,
            "cases": [],
        }
        masks, constant = scorecam_masks(A[0], (32, 32))
        masked = f32(x[0][None] * masks[:, :, :, None])           # (C, 32, 32, 3)
        mprobs = fc.predict(model, masked)                         # (C, 10)
        mlogits = fc.predict(logits_model, masked)
        if img_name == "img0":
            e["scorecam_masks"] = w.npy(f"{tag}.scorecam.masks.npy", masks)
        e["scorecam_constant_channels"] = constant

        kinds = [(top1, "top1", "logit"), (NON_TOP_CLASS, f"class{NON_TOP_CLASS}", "logit")]
        if img_name == "img0":
            kinds.append((top1, "top1", "probability"))
        for k, ktag, score in kinds:
            ctag = f"{tag}.{ktag}.{score}"
            gm = logits_model if score == "logit" else model
            g = fc.gradients(gm, x, k, "last_conv")["last_conv"]
            # independent check: plain GradientTape on a two-output model
            two = keras.Model(gm.inputs, [gm.get_layer("last_conv").output, gm.outputs[0]])
            with tf.GradientTape() as tape:
                a_t, y_t = two(tf.constant(x), training=False)
                s_t = y_t[0, k]
            g_t = np.asarray(tape.gradient(s_t, a_t))
            assert np.allclose(g, g_t, rtol=1e-5, atol=1e-7), f"{ctag}: graph replay vs GradientTape"
            assert np.allclose(np.asarray(a_t), A, rtol=1e-6, atol=1e-7)
            assert np.all(np.isfinite(g)) and np.any(g != 0), f"{ctag}: zero/non-finite gradient"
            gw, gcam = gradcam_np(A[0], g[0])
            pw, gpp = gradcampp_np(A[0], g[0])
            c = {
                "name": f"{img_name}.{ktag}.{score}",
                "class_index": int(k),
                "is_top1": bool(k == top1),
                "score": score,
                "score_value": float((logits if score == "logit" else probs)[0, k]),
                "gradient": w.npy(f"{ctag}.grad.last_conv.npy", g),
                "channel_weights": w.npy(f"{ctag}.gradcam.weights.npy", gw),
                "gradcam": w.npy(f"{ctag}.gradcam.npy", gcam),
                "gradcam_all_zero": bool(not np.any(gcam > 0)),
                "gradcampp_weights": w.npy(f"{ctag}.gradcampp.weights.npy", pw),
                "gradcampp": w.npy(f"{ctag}.gradcampp.npy", gpp),
                "gradcampp_all_zero": bool(not np.any(gpp > 0)),
            }
            if score == "logit":
                sw = mprobs[:, k].astype(np.float64)
                sw[constant] = 0.0
                smap = normalise_by_max(np.maximum((A[0].astype(np.float64) * sw).sum(axis=2), 0.0))
                stag = f"{tag}.{ktag}"
                c.update({
                    "scorecam_probs": w.npy(f"{stag}.scorecam.probs.npy", sw),
                    "scorecam_logits": w.npy(f"{stag}.scorecam.logits.npy", mlogits[:, k]),
                    "scorecam": w.npy(f"{stag}.scorecam.npy", smap),
                    "scorecam_all_zero": bool(not np.any(smap > 0)),
                    "scorecam_baseline_prob": float(base_probs[k]),
                    "scorecam_baseline_logit": float(base_logits[k]),
                })
            if c["is_top1"]:
                assert not c["gradcam_all_zero"], f"{ctag}: top-1 Grad-CAM is all zero"
                assert not c["gradcampp_all_zero"], f"{ctag}: top-1 Grad-CAM++ is all zero"
                if score == "logit":
                    assert not c["scorecam_all_zero"], f"{ctag}: top-1 Score-CAM is all zero"
            e["cases"].append(c)
            msg = (f"{ctag}: k={k} score={c['score_value']:.4g} |g|max={np.abs(g).max():.3g} "
                   f"gradcam>0: {int((gcam > 0).sum())}/64 gradcam++>0: {int((gpp > 0).sum())}/64")
            if score == "logit":
                msg += f" scorecam>0: {int((smap > 0).sum())}/64"
            print(msg, flush=True)
        print(f"{img_name}: probs {np.round(probs[0], 3).tolist()} dead channels {constant}", flush=True)
        entries.append(e)

    return {
        "model": model_file,
        "format": "keras3-h5",
        "layer": "last_conv",
        "layer_shape": [int(s) for s in layer_shape],
        "logits_layer": "predictions",
        "num_classes": NUM_CLASSES,
        "non_top_class": NON_TOP_CLASS,
        "layers": [l.__class__.__name__ for l in model.layers],
        "notes": "Sequential Conv(8)-Pool-Conv(16)-Pool-Conv(16, 'last_conv', 8x8)-Pool(4x4)-Flatten-Dense(10, softmax). "
                 "The pool after last_conv (as VGG16's block5_pool) makes the gradients spatially sparse and "
                 "input-dependent. Random He weights (fixture_common.randomize_weights).",
        "images": entries,
        "formulas": FORMULAS,
    }


# --------------------------------------------------------------------------
# part 2: book filter ascent
# --------------------------------------------------------------------------
def ascent(model, x0, filters, steps=ASCENT_STEPS, step_size=ASCENT_STEP_SIZE):
    """The book's loop, batched: image n ascends filter n. Returns
    (losses (steps, n), first normalised gradient, final x), float32."""
    x = tf.constant(x0)
    hist = []
    grad0 = None
    for step in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = model(x, training=False)
            losses = tf.stack([tf.reduce_mean(out[n, :, :, f]) for n, f in enumerate(filters)])
            total = tf.reduce_sum(losses)
        g = tape.gradient(total, x)
        g = g / (tf.sqrt(tf.reduce_mean(tf.square(g), axis=(1, 2, 3), keepdims=True)) + 1e-5)
        if grad0 is None:
            grad0 = np.asarray(g)
        hist.append(np.asarray(losses))
        x = x + g * step_size
    return np.stack(hist).astype(np.float32), grad0.astype(np.float32), np.asarray(x).astype(np.float32)


def book_deprocess(img):
    x = img.astype(np.float64).copy()
    x -= x.mean()
    x /= (x.std() + 1e-5)
    x *= 0.1
    x += 0.5
    x = np.clip(x, 0, 1)
    x *= 255
    pre = np.clip(x, 0, 255)
    return pre, pre.astype(np.uint8)


def near_boundary(pre, eps=1e-3):
    """Values within eps of an integer but not exactly on it (exact 0, 255 from
    clipping and 128 of constant channels are exact in any precision)."""
    d = np.abs(pre - np.round(pre))
    return int(np.sum((d > 0) & (d < eps)))


def part_ascent(out_dir, w):
    name = "ascent_stack"
    model = build(ascent_stack, name)
    model_file = "ascent_stack.k3.h5"
    rng = np.random.default_rng(seed_of("ascent_start"))
    start = f32(rng.uniform(0.0, 1.0, (1, ASCENT_SIZE, ASCENT_SIZE, 3)) * 20 + 128)
    y = fc.predict(model, start)
    fc.save_keras3(model, os.path.join(out_dir, model_file))
    fc.check_reload(os.path.join(out_dir, model_file), "keras3-h5", start, y)
    w.files.append(model_file)
    nch = y.shape[-1]
    for f in ASCENT_FILTERS:
        assert y[0, :, :, f].mean() > 0, f"filter {f} is dead at the start image"

    runs = []
    singles = []
    for f in ASCENT_FILTERS:
        losses, grad0, final = ascent(model, start, [f])
        assert np.all(np.isfinite(final)) and losses[-1, 0] > losses[0, 0], f"filter {f}: no ascent"
        singles.append((losses[:, 0], final[0]))
        runs.append({
            "filter": f,
            "losses": w.npy(f"ascent.f{f}.losses.npy", losses[:, 0]),
            "first_gradient": w.npy(f"ascent.f{f}.grad0.npy", grad0),
            "final": w.npy(f"ascent.f{f}.final.npy", final),
        })
        print(f"ascent f{f}: loss {losses[0, 0]:.4g} -> {losses[-1, 0]:.4g} (before last update); "
              f"final range [{final.min():.1f}, {final.max():.1f}]", flush=True)

    xb = np.repeat(start, len(ASCENT_FILTERS), axis=0)
    bl, _, bf = ascent(model, xb, ASCENT_FILTERS)
    dl = max(float(np.max(np.abs(bl[:, n] - singles[n][0]))) for n in range(len(ASCENT_FILTERS)))
    di = max(float(np.max(np.abs(bf[n] - singles[n][1]))) for n in range(len(ASCENT_FILTERS)))
    rel = max(float(np.max(np.abs(bl[:, n] - singles[n][0]) / np.maximum(np.abs(singles[n][0]), 1e-6)))
              for n in range(len(ASCENT_FILTERS)))
    assert rel < 1e-4 and di < 1e-2, f"batched run differs: losses {dl} (rel {rel}), images {di}"
    print(f"batched vs single: max |dloss| {dl:.3g} (rel {rel:.3g}), max |dx| {di:.3g}", flush=True)

    f0 = ASCENT_FILTERS[0]
    pre, u8 = book_deprocess(singles[0][1])
    return {
        "model": model_file,
        "format": "keras3-h5",
        "layer": "conv3",
        "layer_channels": int(nch),
        "steps": ASCENT_STEPS,
        "step_size": ASCENT_STEP_SIZE,
        "size": ASCENT_SIZE,
        "start": w.npy("ascent.start.npy", start),
        "start_recipe": "numpy default_rng(seed).uniform(0,1,(1,24,24,3)) * 20 + 128, float32",
        "loss": "mean over H, W of conv3[n, :, :, filter] (TF float32), recorded BEFORE each step's update",
        "gradient_normalisation": "g /= (sqrt(mean over H,W,C of g^2) + 1e-5), per image",
        "update": "x += g * step_size",
        "layers": [l.__class__.__name__ for l in model.layers],
        "runs": runs,
        "batched": {
            "filters": ASCENT_FILTERS,
            "start": "ascent.start.npy repeated along the batch axis",
            "losses": w.npy("ascent.batched.losses.npy", bl),
            "final": w.npy("ascent.batched.final.npy", bf),
            "max_abs_diff_losses_vs_single": dl,
            "max_rel_diff_losses_vs_single": rel,
            "max_abs_diff_final_vs_single": di,
        },
        "deprocessed": {
            "filter": f0,
            "source": f"ascent.f{f0}.final.npy",
            "recipe": "float64: x -= mean; x /= (std + 1e-5) (population std over H,W,C); x *= 0.1; x += 0.5; "
                      "clip [0,1]; x *= 255; clip [0,255]; astype uint8 (truncation)",
            "uint8": w.npy(f"ascent.f{f0}.deprocessed.u8.npy", u8, np.uint8),
            "float32": w.npy(f"ascent.f{f0}.deprocessed.f32.npy", u8.astype(np.float32)),
            "prequant": w.npy(f"ascent.f{f0}.deprocessed.prequant.npy", pre),
            "near_boundary_pixels": near_boundary(pre),
        },
    }, model


# --------------------------------------------------------------------------
# part 3: book activation grid normalisation
# --------------------------------------------------------------------------
def book_channel_normalise(act):
    """act: (h, w, c) -> (prequant float64, uint8, constant channels)."""
    a = act.astype(np.float64)
    out = np.empty_like(a)
    constant = []
    for c in range(a.shape[2]):
        ch = a[:, :, c]
        if ch.max() == ch.min():
            constant.append(c)
            out[:, :, c] = 128.0
            continue
        v = (ch - ch.mean()) / ch.std()
        out[:, :, c] = np.clip(v * 64 + 128, 0, 255)
    return out, out.astype(np.uint8), constant


def part_grid(w, model):
    rng = np.random.default_rng(seed_of("grid_input"))
    h, wd = GRID_SHAPE
    yy, xx = np.meshgrid(np.arange(h), np.arange(wd), indexing="ij")
    img = np.stack([xx / wd, yy / h, 0.5 + 0.5 * np.sin(xx / 3.0) * np.cos(yy / 4.0)], axis=-1)
    img = np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)
    x = f32(img)[None]
    act = fc.activations(model, x, ["conv3"])["conv3"]
    pre, u8, constant = book_channel_normalise(act[0])
    print(f"grid: conv3 {act.shape}, constant channels {constant}, "
          f"near-boundary {near_boundary(pre)}", flush=True)
    return {
        "model": "ascent_stack.k3.h5",
        "layer": "conv3",
        "input": w.npy("grid.input.npy", x),
        "activation": w.npy("grid.act.conv3.npy", act),
        "recipe": "float64, per channel over H, W: v = (a - mean) / std (population std) * 64 + 128; "
                  "clip [0,255]; astype uint8 (truncation). Constant channel (max == min, std == 0): v = 128.",
        "uint8": w.npy("grid.conv3.u8.npy", u8, np.uint8),
        "float32": w.npy("grid.conv3.f32.npy", u8.astype(np.float32)),
        "prequant": w.npy("grid.conv3.prequant.npy", pre),
        "constant_channels": constant,
        "near_boundary_pixels": near_boundary(pre),
        "display": "book: 16 channel images per row, n_channels // 16 rows, viridis (not stored here)",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "Tests", "Fixtures", "visualization"))
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    w = Writer(out_dir)
    manifest = {"format_version": 1, "generator": "tools/make_visualization_fixtures.py"}
    manifest["gradcam"] = part_gradcam(out_dir, w)
    manifest["filter_ascent"], ascent_model = part_ascent(out_dir, w)
    manifest["activation_grid"] = part_grid(w, ascent_model)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out_dir, n)) for n in set(w.files))
    print(f"wrote {len(set(w.files))} files + manifest.json ({total / 1024:.1f} KiB) to {out_dir}")


if __name__ == "__main__":
    main()
