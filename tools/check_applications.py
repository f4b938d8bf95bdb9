#!/usr/bin/env python3
"""Reference numbers for full-size keras.applications networks (outside CI).

    /work/venv/bin/python tools/check_applications.py OUT_DIR [--only VGG16 ...]
        [--formats keras3-h5 keras3-zip] [--seed 1234]

For VGG16, VGG19, ResNet50 and MobileNetV2 (weights=None, include_top=True,
224x224x3, keras.utils.set_random_seed(seed)) it writes into OUT_DIR:

  APP.h5                   the model, Keras 3 model.save(".h5") (legacy HDF5)
                           (VGG16 ~553 MB, VGG19 ~575 MB, ResNet50 ~103 MB,
                           MobileNetV2 ~14 MB); --formats keras3-zip adds APP.keras
  APP.input.npy            fixed random input, uniform(-1, 1), (1, 224, 224, 3)
  APP.output.npy           Keras' output (softmax probabilities, (1, 1000))
  APP.act.LAYER.npy        a few layers' outputs along the network
  APP.grad.input.npy       d logit[k] / d input, k = arg-max class, logit =
                           the pre-softmax value (final Dense with linear
                           activation, same weights)
  APP.grad.LAYER.npy       d logit[k] / d last conv activation (VGG16:
                           block5_conv3; VGG19: block5_conv4, its last conv,
                           and block5_conv3 too; ResNet50: conv5_block3_out;
                           MobileNetV2: out_relu)
  manifest.json            same format as Tests/Fixtures/keras/manifest.json
                           (see tools/make_fixtures.py), paths relative to OUT_DIR

Weights are re-randomised so the comparison means something:
  * every kernel He-normal (std sqrt(2 / fan_in)), biases U(-0.2, 0.2);
  * BatchNormalization: gamma U(0.6, 1.4), beta N(0, 0.2), and the moving
    mean / variance set, layer by layer in graph order, from the statistics of
    that layer's input on a separate calibration batch (2 random images),
    perturbed (mean + N(0, 0.1) * std, variance * U(0.5, 1.5)) -- random but
    non-trivial statistics that keep activations from exploding or vanishing
    through 50 layers;
  * the final Dense is rescaled so the logits' standard deviation is ~2
    (softmax not saturated).
All from numpy.random.default_rng(seed + index of the app), TF deterministic
(fixture_common sets TF_DETERMINISTIC_OPS=1, oneDNN rewrites off, 1 thread).
"""
import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402  (deterministic TF set-up)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

APPS = {
    "VGG16": (keras.applications.VGG16, "block5_conv3",
              ["block1_conv1", "block3_conv3", "block4_pool", "block5_conv3", "fc2"]),
    "VGG19": (keras.applications.VGG19, ["block5_conv4", "block5_conv3"],
              ["block1_conv2", "block3_conv4", "block5_conv4", "block5_pool", "fc2"]),
    "ResNet50": (keras.applications.ResNet50, "conv5_block3_out",
                 ["conv1_relu", "pool1_pool", "conv2_block1_out", "conv3_block4_out",
                  "conv4_block6_out", "conv5_block3_out", "avg_pool"]),
    "MobileNetV2": (keras.applications.MobileNetV2, "out_relu",
                    ["Conv1_relu", "block_1_pad", "block_3_depthwise_relu", "block_6_project_BN",
                     "block_13_pad", "block_16_project_BN", "out_relu", "global_average_pooling2d"]),
}
SUFFIX = {"keras3-h5": ".h5", "keras3-zip": ".keras"}


def calibrate_bn(model, x_cal, rng):
    """Set every BN's moving stats from its input statistics on x_cal (in
    graph order, so upstream BNs are already calibrated), perturbed."""
    graph = getattr(model, "_functional", None) or model

    def op_fn(op):
        def call(*args, **kwargs):
            if isinstance(op, keras.layers.BatchNormalization):
                inp = np.asarray(args[0], dtype=np.float64)
                axes = tuple(range(inp.ndim - 1))
                mean = inp.mean(axis=axes)
                var = inp.var(axis=axes)
                std = np.sqrt(var + 1e-6)
                gamma, beta, _, _ = op.get_weights()
                mean = mean + rng.normal(0.0, 0.1, mean.shape) * std
                var = var * rng.uniform(0.5, 1.5, var.shape) + 1e-3
                op.set_weights([gamma, beta, mean.astype(np.float32), var.astype(np.float32)])
            kwargs["training"] = False
            return op(*args, **kwargs)
        return call

    graph._run_through_graph([tf.constant(x_cal)], operation_fn=op_fn)


def scale_head(model, x_cal, target_std=2.0):
    head = model.layers[-1]
    logits_model, _ = fc.linear_head_clone(model)
    z = fc.predict(logits_model, x_cal)
    s = target_std / (float(z.std()) + 1e-12)
    k, b = head.get_weights()
    head.set_weights([k * s, b * s])


def run(app_name, idx, out_dir, seed, formats):
    build, wrt, act_layers = APPS[app_name]
    wrt = [wrt] if isinstance(wrt, str) else wrt
    last_conv = wrt[0]
    t0 = time.time()
    keras.utils.set_random_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build(weights=None, include_top=True, input_shape=(224, 224, 3))
    rng = np.random.default_rng(seed + idx)
    fc.randomize_weights(model, rng)
    x_cal = rng.uniform(-1.0, 1.0, (2, 224, 224, 3)).astype(np.float32)
    calibrate_bn(model, x_cal, rng)
    scale_head(model, x_cal)
    x = rng.uniform(-1.0, 1.0, (1, 224, 224, 3)).astype(np.float32)

    y = fc.predict(model, x)
    logits_model, pre_softmax = fc.linear_head_clone(model)
    logits = fc.predict(logits_model, x)
    k = int(np.argmax(logits[0]))
    grads = fc.gradients(logits_model, x, k, wrt)
    acts = fc.activations(model, x, act_layers)
    for nm, a in list(acts.items()) + [("grad." + g, v) for g, v in grads.items()]:
        assert np.all(np.isfinite(a)), f"{app_name}: non-finite {nm}"

    fc.save_npy(os.path.join(out_dir, f"{app_name}.input.npy"), x)
    fc.save_npy(os.path.join(out_dir, f"{app_name}.output.npy"), y)
    act_files, wrt_files = {}, {}
    for lname, a in acts.items():
        f = f"{app_name}.act.{lname}.npy"
        fc.save_npy(os.path.join(out_dir, f), a)
        act_files[lname] = f
    for key, g in grads.items():
        f = f"{app_name}.grad.{key}.npy"
        fc.save_npy(os.path.join(out_dir, f), g)
        wrt_files[key] = f
    entries = []
    for fmt in formats:
        fname = app_name + SUFFIX[fmt]
        path = os.path.join(out_dir, fname)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc.save_keras3(model, path)
        err = fc.check_reload(path, fmt, x, y)
        entries.append({
            "kind": "ok", "name": f"{app_name}.{fmt}", "case": app_name, "model": fname, "format": fmt,
            "input": f"{app_name}.input.npy", "output": f"{app_name}.output.npy",
            "activations": act_files,
            "gradients": {"output_index": k, "pre_softmax": pre_softmax,
                          "target": "sum over batch of y[b].flat[output_index]", "wrt": wrt_files},
            "layers": sorted({l.__class__.__name__ for l in model.layers}),
            "notes": f"keras.applications.{app_name}(weights=None), re-randomised weights and BN statistics "
                     f"(seed {seed}); reload max abs diff {err:.3g}",
        })
    stats = {n: float(np.abs(a).mean()) for n, a in acts.items()}
    print(f"{app_name}: {time.time() - t0:.0f}s  top={k} p={y[0, k]:.3f} logit={logits[0, k]:.3f} "
          f"|dx|max={np.abs(grads['input']).max():.3g} |d{last_conv}|max={np.abs(grads[last_conv]).max():.3g}",
          flush=True)
    print("   mean |activation|: " + ", ".join(f"{n}={v:.3g}" for n, v in stats.items()), flush=True)
    return entries


def main():
    ap = argparse.ArgumentParser(description="reference numbers for keras.applications models")
    ap.add_argument("out_dir")
    ap.add_argument("--only", nargs="*", choices=list(APPS))
    ap.add_argument("--formats", nargs="*", default=["keras3-h5"], choices=list(SUFFIX))
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    manifest_path = os.path.join(args.out_dir, "manifest.json")
    manifest = []
    if args.only and os.path.exists(manifest_path):  # keep the other apps' entries
        manifest = [e for e in json.load(open(manifest_path)) if e.get("case") not in args.only]
    for idx, name in enumerate(APPS):
        if args.only and name not in args.only:
            continue
        manifest.extend(run(name, idx, args.out_dir, args.seed, args.formats))
        manifest.sort(key=lambda e: list(APPS).index(e["case"]))
        with open(manifest_path, "w") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
    print(f"wrote {manifest_path} ({len(manifest)} entries)")


if __name__ == "__main__":
    main()
