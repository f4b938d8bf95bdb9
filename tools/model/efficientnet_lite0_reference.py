#!/usr/bin/env python3
"""Independent NumPy forward pass of EfficientNet-Lite0, mirroring the
upstream PyTorch module (PyPI `efficientnet-lite-pytorch` 0.1.0,
`efficientnet_lite_pytorch/model.py` + `utils.py`) and working directly on
the `.pth` state dict (NCHW activations, OIHW kernels) -- it shares no code or
weight layout with the Keras conversion in convert_efficientnet_lite0.py.

Upstream facts mirrored here (read from that package's source):
* blocks: efficientnet_lite() block strings
    r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24, r2_k5_s22_e6_i24_o40,
    r3_k3_s22_e6_i40_o80, r3_k5_s11_e6_i80_o112, r4_k5_s22_e6_i112_o192,
    r1_k3_s11_e6_i192_o320
  lite0: width 1.0, depth 1.0, resolution 224, dropout 0.2; relu_fn relu6,
  fix_head_stem (stem 32, head 1280), no squeeze-excite.
* every conv is Conv2dStaticSamePadding: pad = max((ceil(i/s)-1)*s + k - i, 0),
  split (pad//2 before, pad - pad//2 after) -- TensorFlow "SAME", i.e.
  asymmetric (more at bottom/right) for stride 2.
* BatchNorm2d eps = batch_norm_epsilon = 1e-3 (eval mode: running stats).
* MBConv: [expand 1x1 -> bn0 -> relu6] -> depthwise -> bn1 -> relu6 ->
  project 1x1 -> bn2 -> (+ input if repeated block: stride 1 and
  in == out filters); drop-connect is identity in eval.
* head: conv_head 1x1 -> bn1 -> relu6 -> adaptive avg pool -> dropout
  (identity in eval) -> Linear(1280, 1000) = logits.
"""
from __future__ import annotations

import math

import numpy as np

BN_EPS = 1e-3

# (num_repeat, kernel, stride, expand_ratio, in_filters, out_filters)
LITE0_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def same_pad(i: int, k: int, s: int) -> tuple[int, int]:
    """Upstream Conv2dStaticSamePadding: (before, after) along one axis."""
    o = math.ceil(i / s)
    p = max((o - 1) * s + k - i, 0)
    return p // 2, p - p // 2


def symmetric_pad(i: int, k: int, s: int) -> tuple[int, int]:
    """PyTorch-style nn.Conv2d(padding=k//2) -- NOT upstream; only used to
    show how much the asymmetric padding matters."""
    return k // 2, k // 2


_PAD = {"tf_same": same_pad, "symmetric": symmetric_pad}
_pad_fn = same_pad


def _pad_nchw(x, kh, kw, s):
    n, c, h, w = x.shape
    pt, pb = _pad_fn(h, kh, s)
    pl, pr = _pad_fn(w, kw, s)
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))), math.ceil(h / s), math.ceil(w / s)


def conv2d(x, w, s):
    """Dense conv, NCHW x, OIHW w, TF-same padding, no bias."""
    o, i, kh, kw = w.shape
    xp, ho, wo = _pad_nchw(x, kh, kw, s)
    if kh == 1 and kw == 1 and s == 1:
        return np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x, optimize=True)
    out = np.zeros((x.shape[0], o, ho, wo), dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            patch = xp[:, :, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s]
            out += np.einsum("oc,nchw->nohw", w[:, :, a, b], patch, optimize=True)
    return out


def depthwise(x, w, s):
    """groups == channels conv, w is (C, 1, kh, kw)."""
    c, one, kh, kw = w.shape
    assert one == 1 and c == x.shape[1]
    xp, ho, wo = _pad_nchw(x, kh, kw, s)
    out = np.zeros((x.shape[0], c, ho, wo), dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            patch = xp[:, :, a:a + s * (ho - 1) + 1:s, b:b + s * (wo - 1) + 1:s]
            out += w[None, :, 0, a, b, None, None] * patch
    return out


def bn(x, sd, prefix):
    g = sd[prefix + ".weight"]
    b = sd[prefix + ".bias"]
    m = sd[prefix + ".running_mean"]
    v = sd[prefix + ".running_var"]
    scale = g / np.sqrt(v + BN_EPS)
    return (x - m[None, :, None, None]) * scale[None, :, None, None] + b[None, :, None, None]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def block_list():
    """Expanded per-block args exactly as EfficientNet.__init__ builds them."""
    out = []
    for r, k, s, e, i, o in LITE0_BLOCKS:
        out.append((k, s, e, i, o, False))  # first block of a stage: no skip
        for _ in range(r - 1):
            out.append((k, 1, e, o, o, True))  # repeats: stride 1, in == out
    return out


def forward(sd, x_nchw, dtype=np.float64, return_features=False, padding="tf_same"):
    """Logits (N, 1000) for preprocessed input (N, 3, H, W)."""
    global _pad_fn
    _pad_fn = _PAD[padding]
    try:
        return _forward(sd, x_nchw, dtype, return_features)
    finally:
        _pad_fn = same_pad


def _forward(sd, x_nchw, dtype, return_features):
    sd = {k: np.asarray(v, dtype=dtype) for k, v in sd.items() if v.dtype.kind == "f"}
    x = np.asarray(x_nchw, dtype=dtype)
    feats = {}
    x = relu6(bn(conv2d(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    feats["stem"] = x
    for idx, (k, s, e, i, o, skip) in enumerate(block_list()):
        p = f"_blocks.{idx}."
        inp = x
        if e != 1:
            x = relu6(bn(conv2d(x, sd[p + "_expand_conv.weight"], 1), sd, p + "_bn0"))
        x = relu6(bn(depthwise(x, sd[p + "_depthwise_conv.weight"], s), sd, p + "_bn1"))
        x = bn(conv2d(x, sd[p + "_project_conv.weight"], 1), sd, p + "_bn2")
        if skip:
            x = x + inp
        feats[f"block{idx}"] = x
    x = relu6(bn(conv2d(x, sd["_conv_head.weight"], 1), sd, "_bn1"))
    feats["head"] = x
    pooled = x.mean(axis=(2, 3))
    logits = pooled @ sd["_fc.weight"].T + sd["_fc.bias"]
    if return_features:
        return logits, feats
    return logits
