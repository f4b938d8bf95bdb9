#!/usr/bin/env python3
"""Float64 ground truth for the input gradients of keras.applications models.

TensorFlow's own float32 gradient w.r.t. the input of a deep random network
differs from the exact value by ~1e-3 relative (ReLU and max-pool decisions
flip on pre-activations within float32 rounding of zero), so a float32 Keras
reference cannot judge a float32 engine at 1e-4 there. This rebuilds each model
of a check_applications.py manifest in float64 with the same weights, computes
the gradient of the output unit (pre-softmax) w.r.t. the input, and reports how
far TensorFlow float32 and ConvLens each are from it.

Usage: python tools/float64_reference.py /tmp/apps/manifest.json --convlens .build/release/convlens
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

BUILDERS = {
    "VGG16": keras.applications.VGG16, "VGG19": keras.applications.VGG19,
    "ResNet50": keras.applications.ResNet50, "MobileNetV2": keras.applications.MobileNetV2,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest")
    ap.add_argument("--convlens", default=".build/release/convlens")
    args = ap.parse_args()
    base = os.path.dirname(os.path.abspath(args.manifest))
    print(f"{'model':12} {'manifest ref':>13} {'TF float32':>11} {'ConvLens':>9}   max|Δ| / (1 + max|exact|) against float64")
    for e in json.load(open(args.manifest)):
        if e.get("kind", "ok") != "ok" or e["case"] not in BUILDERS:
            continue
        p = lambda k: os.path.join(base, k)
        g = e["gradients"]
        x = np.load(p(e["input"]))
        # Keras 3 caches the global dtype policy: set both it and floatx before each build.
        keras.config.set_floatx("float32"); keras.config.set_dtype_policy("float32")
        saved = keras.models.load_model(p(e["model"]), compile=False)
        weights = saved.get_weights()

        def input_gradient(dtype):
            keras.config.set_floatx(dtype); keras.config.set_dtype_policy(dtype)
            m = BUILDERS[e["case"]](weights=None, classifier_activation=None)
            assert m.layers[-1].compute_dtype == dtype
            m.set_weights([w.astype(dtype) for w in weights])
            xt = tf.constant(x.astype(dtype))
            with tf.GradientTape() as tape:
                tape.watch(xt)
                score = tf.reduce_sum(m(xt, training=False)[:, g["output_index"]])
            return tape.gradient(score, xt).numpy().astype(np.float64)

        exact = input_gradient("float64")
        tf32 = input_gradient("float32")
        manifest_ref = np.load(p(g["wrt"]["input"]))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "g.npy")
            subprocess.run([args.convlens, "gradient", "--model", p(e["model"]), "--input", p(e["input"]),
                            "--output-index", str(g["output_index"]), "--wrt", "input", "-o", out], check=True)
            ours = np.load(out)
        d = 1 + np.abs(exact).max()
        err = lambda a: np.abs(a - exact).max() / d
        print(f"{e['case']:12} {err(manifest_ref):13.2e} {err(tf32):11.2e} {err(ours):9.2e}")


if __name__ == "__main__":
    main()
