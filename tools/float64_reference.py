#!/usr/bin/env python3
"""Float64 ground truth for the input gradients of keras.applications models.

TensorFlow's own float32 gradient w.r.t. the input of a deep random network
differs from the exact value by ~1e-3 relative (ReLU and max-pool decisions
flip on pre-activations within float32 rounding of zero), so a float32 Keras
reference cannot judge a float32 engine at 1e-4 there. This rebuilds each model
of a check_applications.py manifest in float64 with the same weights, computes
the gradient of the output unit (pre-softmax) w.r.t. the input, and reports how
far TensorFlow float32 and ConvLens each are from it.

Usage: python tools/float64_reference.py /tmp/apps/manifest.json --convlens .build/release/convlens [--only VGG16 ...]

Any keras.applications model of the manifest; the weights are read from its Keras 3
file (keras3-zip or keras3-h5); ConvLens is run on every format of the case.
"""
import argparse
import json
import os
import subprocess
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402


def custom_objects():
    """keras.applications' unexported layers (ConvNeXt's LayerScale, ...)."""
    from keras.src.applications import convnext, inception_resnet_v2
    return {"LayerScale": convnext.LayerScale, "StochasticDepth": convnext.StochasticDepth,
            "CustomScaleLayer": inception_resnet_v2.CustomScaleLayer}


def finalize_normalization(model):
    """Keras 3's Normalization keeps a copy of its mean/variance: refresh it after set_weights."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            finalize_normalization(layer)
        elif isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest")
    ap.add_argument("--convlens", default=".build/release/convlens")
    ap.add_argument("--only", nargs="*", help="cases (e.g. VGG16) to check")
    args = ap.parse_args()
    base = os.path.dirname(os.path.abspath(args.manifest))
    cases = {}
    for e in json.load(open(args.manifest)):
        if e.get("kind", "ok") == "ok" and hasattr(keras.applications, e["case"]) \
                and (not args.only or e["case"] in args.only):
            cases.setdefault(e["case"], []).append(e)
    print(f"{'model':30} {'manifest ref':>13} {'TF float32':>11} {'ConvLens':>9}   max|Δ| / (1 + max|exact|) against float64")
    for case, entries in cases.items():
        # the weights come from a Keras 3 file (Keras 3 cannot read tf_keras' .h5 of every model)
        k3 = [e for e in entries if e.get("format") in ("keras3-zip", "keras3-h5")]
        if not k3:
            print(f"{case:30} no Keras 3 file in the manifest: skipped")
            continue
        e = k3[0]
        p = lambda k: os.path.join(base, k)
        g = e["gradients"]
        x = np.load(p(e["input"]))
        # Keras 3 caches the global dtype policy: set both it and floatx before each build.
        keras.config.set_floatx("float32"); keras.config.set_dtype_policy("float32")
        saved = keras.models.load_model(p(e["model"]), compile=False, custom_objects=custom_objects())
        weights = saved.get_weights()
        build = getattr(keras.applications, case)

        def input_gradient(dtype):
            keras.config.set_floatx(dtype); keras.config.set_dtype_policy(dtype)
            m = build(weights=None, classifier_activation=None)
            assert m.layers[-1].compute_dtype == dtype
            m.set_weights([w.astype(dtype) if w.dtype.kind == "f" else w for w in weights])
            finalize_normalization(m)
            xt = tf.constant(x.astype(dtype))
            with tf.GradientTape() as tape:
                tape.watch(xt)
                score = tf.reduce_sum(tf.reshape(m(xt, training=False), (x.shape[0], -1))[:, g["output_index"]])
            return tape.gradient(score, xt).numpy().astype(np.float64)

        exact = input_gradient("float64")
        tf32 = input_gradient("float32")
        keras.config.set_floatx("float32"); keras.config.set_dtype_policy("float32")
        manifest_ref = np.load(p(g["wrt"]["input"]))
        d = 1 + np.abs(exact).max()
        err = lambda a: np.abs(a - exact).max() / d
        for e in entries:
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "g.npy")
                res = subprocess.run([args.convlens, "gradient", "--model", p(e["model"]), "--input", p(e["input"]),
                                      "--output-index", str(g["output_index"]), "--wrt", "input", "-o", out],
                                     capture_output=True, text=True)
                ours = f"{err(np.load(out)):9.2e}" if res.returncode == 0 else \
                    "fails: " + (res.stderr.strip().splitlines() or ["?"])[0]
            print(f"{e['name']:30} {err(manifest_ref):13.2e} {err(tf32):11.2e} {ours:>9}")


if __name__ == "__main__":
    main()
