"""Reference fixtures for ConvLens' lucid feature visualisation
(Sources/Visualization/Lucid*.swift), written to Tests/Fixtures/visualization/lucid/.

- irfft2 / rfft2 conventions: NumPy's np.fft.rfft2 / irfft2 on small planes,
  even and odd sizes.
- lucid's image parameterisation, re-stated in TF 2 from tensorflow/lucid
  (lucid/optvis/param/spatial.py fft_image + rfft2d_freqs, color.py
  to_valid_rgb with decorrelate=True, sigmoid=True), for given coefficients:
  the RGB image, and via GradientTape the gradient of sum(rgb * G) w.r.t. the
  coefficients (checks our adjoint chain end to end).

Run: /work/venv/bin/python tools/make_lucid_fixtures.py   (deterministic)
"""
import json
import os

import numpy as np
import tensorflow as tf

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "visualization", "lucid")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(4)
manifest = {"fft": [], "image": []}


def save(name, a):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a, dtype=np.float32))
    return name


# NumPy FFT conventions.
for (h, w) in [(6, 8), (5, 7), (4, 1 + 4)]:
    img = rng.standard_normal((h, w)).astype(np.float32)
    spec = np.fft.rfft2(img.astype(np.float64))
    fw = w // 2 + 1
    coef = rng.standard_normal((2, h, fw)).astype(np.float32)   # arbitrary, not Hermitian
    inv = np.fft.irfft2(coef[0].astype(np.float64) + 1j * coef[1].astype(np.float64), s=(h, w))
    tag = f"{h}x{w}"
    manifest["fft"].append({
        "height": h, "width": w,
        "image": save(f"fft.{tag}.image.npy", img),
        "rfft2": save(f"fft.{tag}.rfft2.npy", np.stack([spec.real, spec.imag])),
        "coefficients": save(f"fft.{tag}.coef.npy", coef),
        "irfft2": save(f"fft.{tag}.irfft2.npy", inv),
    })

# lucid's parameterisation (even widths: lucid's odd-width layout differs, see manifest).
color_correlation_svd_sqrt = np.asarray([[0.26, 0.09, 0.02],
                                         [0.27, 0.00, -0.05],
                                         [0.27, -0.09, 0.03]]).astype("float32")
max_norm_svd_sqrt = np.max(np.linalg.norm(color_correlation_svd_sqrt, axis=0))


def rfft2d_freqs(h, w):
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 1]
    return np.sqrt(fx * fx + fy * fy)


def lucid_rgb(v, h, w, decay_power=1.0):
    freqs = rfft2d_freqs(h, w)
    spectrum = tf.complex(v[0], v[1])
    scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power
    scale *= np.sqrt(w * h)
    img = tf.signal.irfft2d(spectrum * scale.astype(np.complex64))
    img = img[:3, :h, :w]
    img = tf.transpose(img, [1, 2, 0]) / 4.0
    flat = tf.reshape(img, [-1, 3])
    flat = tf.matmul(flat, (color_correlation_svd_sqrt / max_norm_svd_sqrt).T)
    return tf.nn.sigmoid(tf.reshape(flat, tf.shape(img)))


for (h, w) in [(6, 8), (7, 10)]:
    fw = w // 2 + 1
    v0 = (rng.standard_normal((2, 3, h, fw)) * 0.5).astype(np.float32)
    G = rng.standard_normal((h, w, 3)).astype(np.float32)
    v = tf.Variable(v0)
    with tf.GradientTape() as tape:
        rgb = lucid_rgb(v, h, w)
        loss = tf.reduce_sum(rgb * G)
    grad = tape.gradient(loss, v).numpy()
    tag = f"{h}x{w}"
    manifest["image"].append({
        "height": h, "width": w, "decay_power": 1.0,
        "coefficients": save(f"image.{tag}.coef.npy", v0),
        "rgb": save(f"image.{tag}.rgb.npy", rgb.numpy()),
        "upstream": save(f"image.{tag}.G.npy", G),
        "gradient": save(f"image.{tag}.grad.npy", grad),
    })

manifest["notes"] = ("coefficients layout (2, 3, h, w//2+1) = lucid's (re/im, channel, fy, fx); "
                     "rgb (h, w, 3) in [0,1]; gradient = d sum(rgb*G) / d coefficients (TF GradientTape). "
                     "lucid itself keeps w//2+2 columns for odd w; ConvLens uses w//2+1 (NumPy) for all w.")
manifest["max_norm_svd_sqrt"] = float(max_norm_svd_sqrt)
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
print("wrote", OUT)
