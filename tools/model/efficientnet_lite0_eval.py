#!/usr/bin/env python3
"""Preprocessing evidence and reference top-5s for models/efficientnet_lite0.h5.

1. Candidate input preprocessings -- (x - 127) / 128 (EfficientNet-Lite's TF
   reference), ImageNet mean/std, x / 255 -- are compared
   a) on the sample photos (top-1 class and confidence), and
   b) against the stem BatchNorm running statistics: the stem conv (before
      BN) is applied to the photos under each candidate and the per-channel
      mean/variance of its output is compared with the BN's running_mean /
      running_var, which record the input statistics the network was trained
      with.
2. Keras top-5 (class index, name, probability, logit) on each photo in
   public/samples/ for three ways of resizing to 224x224:
     tf_bilinear   half-pixel-centre bilinear, no antialiasing, float result
                   (== tf.image.resize(method="bilinear", antialias=False);
                   checked below), then preprocessing
     pil_nearest   PIL Image.resize(NEAREST) on uint8, as
                   keras.utils.load_img(target_size=...) does by default;
                   == pil_nearest_indices() below (checked)
     pil_bilinear  PIL Image.resize(BILINEAR) on uint8 (antialiased when
                   downscaling), as load_img(..., interpolation="bilinear")
   The whole image is resized to 224x224 (aspect ratio not kept, no crop).

Writes models/reference_top5.json and prints the evidence tables (JSON with
--evidence PATH).  Usage:
    /work/venv/bin/python tools/model/efficientnet_lite0_eval.py [--evidence /tmp/ev.json]
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
SIZE = 224

PREPROCESSINGS = {
    # name: (scale, offset) applied per channel as x * scale + offset, x in [0, 255]
    "tf_lite (x-127)/128": (np.full(3, 1 / 128), np.full(3, -127 / 128)),
    "imagenet mean/std": (1 / (255 * np.array([0.229, 0.224, 0.225])),
                          -np.array([0.485, 0.456, 0.406]) / np.array([0.229, 0.224, 0.225])),
    "x/255": (np.full(3, 1 / 255), np.zeros(3)),
}
CHOSEN = "tf_lite (x-127)/128"
EVIDENCE_RESIZE = "pil_bilinear"  # the config's resize; the evidence (a)-(c) uses it


def resize_bilinear(img_u8, out_h, out_w):
    """Half-pixel-centre bilinear without antialiasing (float64 out)."""
    img = img_u8.astype(np.float64)
    in_h, in_w = img.shape[:2]

    def axis(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        src = np.clip(src, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, fy = axis(in_h, out_h)
    x0, x1, fx = axis(in_w, out_w)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


def pil_nearest_indices(n_in, n_out):
    """Source indices of PIL's NEAREST resize (Geometry.c, scaling fast path):
    a double `pos = scale / 2` incremented by `scale = n_in / n_out` per
    output pixel and truncated.  The accumulated rounding matters: e.g.
    512 -> 224 gives 7 (not 8) at dst 3, where the exact (3 + 0.5) * 512 / 224
    is 8.0."""
    scale = n_in / n_out
    pos = scale * 0.5
    out = []
    for _ in range(n_out):
        out.append(int(pos))
        pos += scale
    return np.array(out)


def resize_nearest_formula(img_u8, out_h, out_w):
    in_h, in_w = img_u8.shape[:2]
    return img_u8[pil_nearest_indices(in_h, out_h)][:, pil_nearest_indices(in_w, out_w)]


def load_resized(path, method):
    from PIL import Image
    im = Image.open(path).convert("RGB")
    if method == "tf_bilinear":
        return resize_bilinear(np.asarray(im), SIZE, SIZE)
    if method == "pil_nearest":
        return np.asarray(im.resize((SIZE, SIZE), Image.NEAREST), dtype=np.float64)
    if method == "pil_bilinear":
        return np.asarray(im.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float64)
    raise ValueError(method)


def preprocess(x, name):
    scale, offset = PREPROCESSINGS[name]
    return x * scale + offset


def stem_conv_nchw(x_nhwc, w_oihw):
    import efficientnet_lite0_reference as ref
    return ref.conv2d(x_nhwc.transpose(0, 3, 1, 2), w_oihw, 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(REPO, "models", "efficientnet_lite0.h5"))
    ap.add_argument("--pth", default=None, help="the .pth, for the stem BN statistics "
                    "(default: read them from the .h5's stem layers)")
    ap.add_argument("--out", default=os.path.join(REPO, "models", "reference_top5.json"))
    ap.add_argument("--evidence", default=None)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from PIL import Image

    labels = open(os.path.join(REPO, "models", "imagenet_classes.txt")).read().splitlines()
    assert len(labels) == 1000
    model = keras.saving.load_model(args.model, compile=False)
    pooled_model = keras.Model(model.input, model.get_layer("avg_pool").output)
    kernel, bias = model.get_layer("predictions").get_weights()
    photos = [p for p in sorted(glob.glob(os.path.join(REPO, "public", "samples", "*")))
              if not p.endswith(".md")]
    evidence = {"resize": EVIDENCE_RESIZE}

    # resize implementations vs their references
    checks = {}
    for p in photos:
        u8 = np.asarray(Image.open(p).convert("RGB"))
        tfr = tf.image.resize(u8[None].astype(np.float32), (SIZE, SIZE), method="bilinear",
                              antialias=False).numpy()[0]
        checks.setdefault("bilinear_vs_tf_image_resize_max_abs", 0.0)
        checks["bilinear_vs_tf_image_resize_max_abs"] = max(
            checks["bilinear_vs_tf_image_resize_max_abs"],
            float(np.abs(resize_bilinear(u8, SIZE, SIZE) - tfr).max()))
        pil = np.asarray(Image.fromarray(u8).resize((SIZE, SIZE), Image.NEAREST))
        checks.setdefault("pil_nearest_equals_formula", True)
        checks["pil_nearest_equals_formula"] &= bool(
            np.array_equal(pil, resize_nearest_formula(u8, SIZE, SIZE)))
    print("resize checks:", checks)
    evidence["resize_checks"] = checks

    def run(x_nhwc):
        pooled = np.asarray(pooled_model(x_nhwc.astype(np.float32), training=False), np.float64)
        logits = pooled @ kernel.astype(np.float64) + bias
        z = logits - logits.max(1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        return logits, probs

    # (a) predictions per preprocessing
    raw = {m: np.stack([load_resized(p, m) for p in photos])
           for m in ("pil_bilinear", "tf_bilinear", "pil_nearest")}
    table = []
    print(f"\n(a) top-1 per preprocessing, {EVIDENCE_RESIZE} resize")
    for name in PREPROCESSINGS:
        logits, probs = run(preprocess(raw[EVIDENCE_RESIZE], name))
        for i, p in enumerate(photos):
            top = int(probs[i].argmax())
            row = {"preprocessing": name, "photo": os.path.basename(p), "top1": top,
                   "top1_name": labels[top], "top1_prob": float(probs[i, top]),
                   "entropy_nats": float(-(probs[i] * np.log(probs[i] + 1e-30)).sum())}
            table.append(row)
            print(f"  {name:22s} {row['photo']:14s} {top:4d} {labels[top][:40]:40s} "
                  f"p={row['top1_prob']:.3f} H={row['entropy_nats']:.2f}")
    evidence["top1_by_preprocessing"] = table

    # (b) stem BN running statistics
    if args.pth:
        import pth_reader
        sd = pth_reader.load_pth(args.pth)
        w = sd["_conv_stem.weight"].astype(np.float64)
        rm, rv = sd["_bn0.running_mean"].astype(np.float64), sd["_bn0.running_var"].astype(np.float64)
        stats_source = "the .pth (_conv_stem.weight, _bn0.running_mean/var)"
    else:
        w = model.get_layer("stem_conv").get_weights()[0].astype(np.float64).transpose(3, 2, 0, 1)
        _, _, rm, rv = [a.astype(np.float64) for a in model.get_layer("stem_bn").get_weights()]
        stats_source = "the .h5 (stem_conv kernel, stem_bn moving_mean/variance)"
    # 4 of the 32 stem filters are dead (all-zero kernel, running_var 0): skip them
    live = rv > 1e-6
    bn_rows = []
    print(f"\n(b) stem conv output statistics vs stem BN running statistics ({stats_source}), "
          f"{int(live.sum())} live channels")
    for name in PREPROCESSINGS:
        y = stem_conv_nchw(preprocess(raw[EVIDENCE_RESIZE], name), w)  # N, 32, 112, 112
        m = y.mean(axis=(0, 2, 3))[live]
        v = y.var(axis=(0, 2, 3))[live]
        log_var_ratio = np.log(v / rv[live])
        mean_err_sd = (m - rm[live]) / np.sqrt(rv[live])
        row = {"preprocessing": name,
               "median_var_ratio": float(np.exp(np.median(log_var_ratio))),
               "mean_abs_log_var_ratio": float(np.abs(log_var_ratio).mean()),
               "mean_abs_mean_error_in_sd": float(np.abs(mean_err_sd).mean()),
               "corr_mean_vs_running_mean": float(np.corrcoef(m, rm[live])[0, 1])}
        bn_rows.append(row)
        print(f"  {name:22s} median var/running_var = {row['median_var_ratio']:.3f}  "
              f"mean|log ratio| = {row['mean_abs_log_var_ratio']:.3f}  "
              f"mean|mean-rm|/sd = {row['mean_abs_mean_error_in_sd']:.3f}  "
              f"corr(mean, rm) = {row['corr_mean_vs_running_mean']:.3f}")
    # (c) every BatchNormalization layer: the statistics of its input (conv
    # output) on the photos vs its moving mean/variance.  A wrong input
    # scale/offset propagates (through ReLU6 clipping) to all of them.
    bn_layers = [l for l in model.layers if type(l).__name__ == "BatchNormalization"]
    bn_in = keras.Model(model.input, [l.input for l in bn_layers])
    all_rows = []
    print(f"\n(c) all {len(bn_layers)} BatchNormalization layers: input statistics vs moving statistics")
    for name in PREPROCESSINGS:
        outs = bn_in(preprocess(raw[EVIDENCE_RESIZE], name).astype(np.float32), training=False)
        per_layer_lvr, per_layer_me = [], []
        for l, y in zip(bn_layers, outs):
            y = np.asarray(y, np.float64)
            _, _, mm, mv = [a.astype(np.float64) for a in l.get_weights()]
            ok = mv > 1e-6
            v = y.var(axis=(0, 1, 2))[ok]
            m = y.mean(axis=(0, 1, 2))[ok]
            per_layer_lvr.append(np.median(np.abs(np.log(np.maximum(v, 1e-12) / mv[ok]))))
            per_layer_me.append(np.median(np.abs(m - mm[ok]) / np.sqrt(mv[ok])))
        row = {"preprocessing": name,
               "mean_over_layers_median_abs_log_var_ratio": float(np.mean(per_layer_lvr)),
               "mean_over_layers_median_abs_mean_error_in_sd": float(np.mean(per_layer_me)),
               "layers_where_this_is_best": 0}
        row["_lvr"] = per_layer_lvr
        all_rows.append(row)
    best = np.argmin(np.array([r["_lvr"] for r in all_rows]), axis=0)
    for i, r in enumerate(all_rows):
        r["layers_where_this_is_best"] = int((best == i).sum())
        del r["_lvr"]
        print(f"  {r['preprocessing']:22s} mean over layers of median|log(var/moving_var)| = "
              f"{r['mean_over_layers_median_abs_log_var_ratio']:.3f}  "
              f"median|mean-moving_mean|/sd = {r['mean_over_layers_median_abs_mean_error_in_sd']:.3f}  "
              f"closest in {r['layers_where_this_is_best']}/{len(bn_layers)} layers")
    evidence["all_bn_statistics"] = all_rows

    evidence["stem_bn_statistics"] = {"source": stats_source, "photos": len(photos),
                                      "live_channels": int(live.sum()),
                                      "rows": bn_rows}

    # reference top-5s with the chosen preprocessing
    ref_out = {
        "model": "efficientnet_lite0.h5",
        "labels": "imagenet_classes.txt",
        "preprocessing": {"name": CHOSEN, "formula": "(x - 127) / 128 per channel, x in [0, 255] RGB"},
        "input_size": [SIZE, SIZE],
        "resize_methods": {
            "tf_bilinear": "half-pixel-centre bilinear, no antialiasing, computed in float from "
                        "the uint8 RGB image (== tf.image.resize bilinear, antialias=False); "
                        "src = clamp((dst + 0.5) * in / out - 0.5, 0, in - 1)",
            "pil_nearest": "PIL Image.resize(NEAREST) on uint8 (keras.utils.load_img default); "
                           "src index: double pos = s/2 (s = in/out), per output pixel take "
                           "Int(pos) then pos += s (accumulated, as PIL does; differs "
                           "from floor((dst+0.5)*s) at exact .0 boundaries, e.g. 512->224)",
            "pil_bilinear": "PIL Image.resize(BILINEAR) on uint8 (antialiased triangle filter "
                            "when downscaling), load_img(interpolation='bilinear')",
        },
        "whole_image_resized": True,
        "config_resize": EVIDENCE_RESIZE,
        "keras_version": keras.__version__,
        "tolerance_hint": "probabilities from another engine should agree within ~1e-4 "
                          "for the same resized input; resize implementations differ more",
        "photos": [],
    }
    print(f"\nTop-5 with {CHOSEN}")
    for i, p in enumerate(photos):
        entry = {"file": "public/samples/" + os.path.basename(p),
                 "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest(), "top5": {}}
        for method, arr in raw.items():
            logits, probs = run(preprocess(arr[i:i + 1], CHOSEN))
            order = np.argsort(-probs[0])[:5]
            entry["top5"][method] = [{"index": int(k), "name": labels[k],
                                      "prob": round(float(probs[0, k]), 6),
                                      "logit": round(float(logits[0, k]), 5)} for k in order]
            print(f"  {os.path.basename(p):14s} {method:12s} " + "; ".join(
                f"{k} {labels[k].split(',')[0]} {probs[0, k]:.3f}" for k in order))
        ref_out["photos"].append(entry)
    with open(args.out, "w") as f:
        json.dump(ref_out, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")
    if args.evidence:
        with open(args.evidence, "w") as f:
            json.dump(evidence, f, indent=1)


if __name__ == "__main__":
    main()
