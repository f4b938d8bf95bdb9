"""References for the rest of the class-activation family (Layer-CAM, Eigen-CAM,
vanilla saliency, Integrated Gradients, Guided Backprop, Guided Grad-CAM) on the
COMMITTED model and inputs of Tests/Fixtures/visualization (cam_classifier.k3.h5,
cam.img{0,1,2}.input.npy), written to Tests/Fixtures/visualization/cam_extra/:

    /work/venv/bin/python tools/make_cam_fixtures.py

Score-CAM's references are the committed cam.*.scorecam.npy (make_visualization_fixtures.py).

Per image (top-1 class of the logits; img0 also the non-top class 7), files
`<img>.<case>.<what>.npy`, float32:
  layercam (8,8)      NumPy float64: ReLU(sum_k relu(g_k) * A_k) / max, A and g from TF
  eigencam (8,8)      NumPy SVD (pytorch-grad-cam get_2d_projection): X = A as (HW, C),
                      columns mean-centred; p = X @ VT[0]; sign so that <p, sum_c A> >= 0;
                      ReLU; / max  (class-agnostic: written once per image, case "any")
  saliency.grad (1,32,32,3)  d logit_k / d x, tf.GradientTape
  saliency (32,32)    max_c |grad| / max
  ig (1,32,32,3)      Integrated Gradients, baseline 0, m = 32 trapezoid: alphas j/32,
                      j = 0..32, end points weight 1/2; (x - 0) * mean; TF gradients
  ig.map (32,32)      max_c |ig| / max
  guided.grad (1,32,32,3)  guided backprop: the model re-stated with tf.custom_gradient
                      ReLU (dy * (dy > 0) * (x > 0)), checked to equal the Keras logits
  guided (32,32)      max_c |guided.grad| / max
  guidedgradcam (32,32)  max_c |guided.grad * up(gradcam)| / max, up = half-pixel bilinear
manifest.json lists the cases, the class, the logit, IG's completeness numbers.
Deterministic (fixture_common sets TF to deterministic, single-threaded).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402  (first: sets the TF environment)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from make_visualization_fixtures import gradcam_np, resize_bilinear_np, normalise_by_max  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "visualization")
OUT = os.path.join(ROOT, "cam_extra")
IG_STEPS = 32
NON_TOP = 7


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def saliency_np(g):
    return normalise_by_max(np.abs(np.asarray(g, np.float64)[0]).max(axis=2))


def layercam_np(A, g):
    A = A.astype(np.float64)
    g = g.astype(np.float64)
    return normalise_by_max(np.maximum((np.maximum(g, 0) * A).sum(axis=2), 0))


def eigencam_np(A):
    A = A.astype(np.float64)
    h, w, c = A.shape
    X = A.reshape(h * w, c)
    X = X - X.mean(axis=0)
    _, _, VT = np.linalg.svd(X, full_matrices=True)
    p = X @ VT[0]
    if np.dot(p, A.reshape(h * w, c).sum(axis=1)) < 0:
        p = -p
    return normalise_by_max(np.maximum(p, 0).reshape(h, w))


@tf.custom_gradient
def guided_relu(x):
    def grad(dy):
        return dy * tf.cast(dy > 0, dy.dtype) * tf.cast(x > 0, dy.dtype)
    return tf.nn.relu(x), grad


def guided_logits(model, x):
    """The Sequential cam_classifier re-stated op by op with guided ReLUs, linear head."""
    y = x
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            k, b = layer.get_weights()
            assert layer.get_config()["activation"] == "relu" and layer.get_config()["padding"] == "same"
            y = guided_relu(tf.nn.conv2d(y, k, 1, "SAME") + b)
        elif isinstance(layer, keras.layers.MaxPooling2D):
            y = tf.nn.max_pool2d(y, 2, 2, "VALID")
        elif isinstance(layer, keras.layers.Flatten):
            y = tf.reshape(y, (tf.shape(y)[0], -1))
        elif isinstance(layer, keras.layers.Dense):
            k, b = layer.get_weights()
            y = tf.matmul(y, k) + b
        else:
            raise ValueError(layer)
    return y


def input_gradients(fn, xs, k):
    xt = tf.constant(xs)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = fn(xt)
        s = tf.reduce_sum(y[:, k])
    return np.asarray(tape.gradient(s, xt)), np.asarray(y)[:, k]


def main():
    os.makedirs(OUT, exist_ok=True)
    model = keras.models.load_model(os.path.join(ROOT, "cam_classifier.k3.h5"), compile=False)
    logits_model, pre = fc.linear_head_clone(model)
    assert pre
    files = []

    def save(name, arr):
        np.save(os.path.join(OUT, name), f32(arr))
        files.append(name)
        return name

    def logit_fn(t):
        return logits_model(t, training=False)

    images = []
    for img in ["img0", "img1", "img2"]:
        x = f32(np.load(os.path.join(ROOT, f"cam.{img}.input.npy")))
        logits = fc.predict(logits_model, x)
        assert np.allclose(np.asarray(guided_logits(model, tf.constant(x))), logits, rtol=1e-5, atol=1e-5)
        top1 = int(np.argmax(logits[0]))
        A = fc.activations(model, x, ["last_conv"])["last_conv"]
        entry = {"name": img, "input": f"cam.{img}.input.npy", "top1": top1,
                 "eigencam": save(f"{img}.any.eigencam.npy", eigencam_np(A[0])), "cases": []}
        classes = [(top1, "top1")] + ([(NON_TOP, f"class{NON_TOP}")] if img == "img0" else [])
        for k, ktag in classes:
            tag = f"{img}.{ktag}"
            gr = fc.gradients(logits_model, x, k, "last_conv")
            g_layer, g_in = gr["last_conv"], gr["input"]
            g_in2, _ = input_gradients(logit_fn, x, k)
            assert np.allclose(g_in, g_in2, rtol=1e-5, atol=1e-7)
            # Integrated Gradients, baseline 0, trapezoid rule, one batch of m+1 points.
            alphas = np.arange(IG_STEPS + 1, dtype=np.float32) / IG_STEPS
            pts = f32(alphas[:, None, None, None] * x)
            g_pts, s_pts = input_gradients(logit_fn, pts, k)
            wts = np.ones(IG_STEPS + 1)
            wts[0] = wts[-1] = 0.5
            avg = (wts[:, None, None, None] * g_pts.astype(np.float64)).sum(axis=0) / IG_STEPS
            ig = x.astype(np.float64) * avg[None]
            # Guided backprop and Guided Grad-CAM.
            g_guided, s_guided = input_gradients(lambda t: guided_logits(model, t), x, k)
            assert abs(s_guided[0] - logits[0, k]) < 1e-4
            _, gc = gradcam_np(A[0], g_layer[0])
            up = resize_bilinear_np(gc[:, :, None], 32, 32)[:, :, 0]
            ggc = g_guided.astype(np.float64) * up[None, :, :, None]
            entry["cases"].append({
                "name": tag, "class_index": k, "logit": float(logits[0, k]),
                "layercam": save(f"{tag}.layercam.npy", layercam_np(A[0], g_layer[0])),
                "saliency_gradient": save(f"{tag}.saliency.grad.npy", g_in),
                "saliency": save(f"{tag}.saliency.npy", saliency_np(g_in)),
                "ig": save(f"{tag}.ig.npy", ig),
                "ig_map": save(f"{tag}.ig.map.npy", saliency_np(ig)),
                "ig_attribution_sum": float(ig.sum()),
                "ig_score_difference": float(s_pts[-1] - s_pts[0]),
                "guided_gradient": save(f"{tag}.guided.grad.npy", g_guided),
                "guided": save(f"{tag}.guided.npy", saliency_np(g_guided)),
                "guided_gradcam": save(f"{tag}.guidedgradcam.npy", saliency_np(ggc)),
            })
        images.append(entry)
    manifest = {"format_version": 1, "generator": "tools/make_cam_fixtures.py",
                "model": "../cam_classifier.k3.h5", "layer": "last_conv", "ig_steps": IG_STEPS,
                "ig_baseline": "zeros", "images": images}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in files)
    print(f"wrote {len(files)} files + manifest.json ({total / 1024:.1f} KiB) to {OUT}")


if __name__ == "__main__":
    main()
