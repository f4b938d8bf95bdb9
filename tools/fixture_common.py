"""Shared helpers for ConvLens' Keras reference tools (make_fixtures.py,
check_applications.py): deterministic set-up, random weights, reference
outputs/activations/gradients, deterministic saving, manifest entries.

Import this module BEFORE tensorflow/keras anywhere else: it sets the
environment variables that make TensorFlow deterministic.
"""
import json
import re
import os
import shutil
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
# oneDNN graph rewrites change summation order between machines; turn them
# off so the reference numbers are plain TF kernels.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# tf_keras must not be imported as "keras" by accident.
os.environ.pop("TF_USE_LEGACY_KERAS", None)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.experimental.enable_op_determinism()

import keras  # noqa: E402  (Keras 3)

FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_DATE_SAVED = "2000-01-01@00:00:00"


# --------------------------------------------------------------------------
# random weights
# --------------------------------------------------------------------------
def randomize_weights(model, rng, gain=1.0):
    """Give every layer random, non-trivial weights (in place).

    kernels: normal * gain*sqrt(2/fan_in) (He), biases: uniform(-0.2, 0.2),
    BatchNormalization: gamma U(0.6, 1.4), beta N(0, 0.2), moving_mean N(0, 0.3),
    moving_variance U(0.4, 2.0). Works for Keras 3 and tf_keras layers.
    Layers are visited in model.layers order, weights in layer.weights order,
    so the result only depends on the architecture and the rng seed.
    """
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
        new = []
        for name, w in zip(names, ws):
            shape = w.shape
            if name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                if name == "depthwise_kernel":
                    fan_in = int(np.prod(shape[:-2]))
                else:
                    fan_in = int(np.prod(shape[:-1]))
                v = rng.standard_normal(shape) * gain * np.sqrt(2.0 / max(fan_in, 1))
            elif name == "bias":
                v = rng.uniform(-0.2, 0.2, shape)
            elif name == "gamma":
                v = rng.uniform(0.6, 1.4, shape)
            elif name == "beta":
                v = rng.normal(0.0, 0.2, shape)
            elif name == "moving_mean":
                v = rng.normal(0.0, 0.3, shape)
            elif name == "moving_variance":
                v = rng.uniform(0.4, 2.0, shape)
            else:
                raise ValueError(f"don't know how to randomise weight {name} of {layer.name}")
            new.append(v.astype(w.dtype))
        layer.set_weights(new)


def copy_weights_by_name(src, dst):
    """Copy weights layer by layer (matched by name) from src to dst model."""
    for layer in dst.layers:
        ws = src.get_layer(layer.name).get_weights()
        if ws:
            layer.set_weights(ws)


# --------------------------------------------------------------------------
# reference numbers (Keras 3)
# --------------------------------------------------------------------------
def _graph(model):
    return getattr(model, "_functional", None) or model


def output_layer(model):
    return model.layers[-1] if isinstance(model, keras.Sequential) else model.get_layer(
        model.outputs[0]._keras_history[0].name)


def linear_head_clone(model):
    """Clone `model` with the final layer's softmax replaced by linear; return
    (clone, True) if the final layer is a softmax, else (model, False)."""
    last = output_layer(model)
    cfg = last.get_config()
    if cfg.get("activation") != "softmax":
        return model, False

    def clone_fn(layer):
        c = layer.get_config()
        if layer.name == last.name:
            c["activation"] = "linear"
        return layer.__class__.from_config(c)

    clone = keras.models.clone_model(model, clone_function=clone_fn)
    clone.set_weights(model.get_weights())
    return clone, True


def predict(model, x):
    return np.asarray(model(tf.constant(x), training=False)).astype(np.float32)


def activations(model, x, layer_names):
    out = {}
    for name in layer_names:
        sub = keras.Model(model.inputs, model.get_layer(name).output)
        out[name] = predict(sub, x)
    return out


def gradients(model, x, output_index, wrt_layer):
    """Gradient of sum_b y[b].flat[output_index] w.r.t. the input and w.r.t.
    the output of layer `wrt_layer` (a name or a list of names; the layer's
    first call), where y is the output of `model` (already the pre-softmax
    clone when needed).

    Runs the functional graph op by op (Keras 3 Function._run_through_graph,
    a private API of the pinned Keras) and watches the chosen layers' outputs,
    so each gradient is the total derivative through every downstream path
    (skip connections included).
    """
    wanted = [] if wrt_layer is None else ([wrt_layer] if isinstance(wrt_layer, str) else list(wrt_layer))
    g = _graph(model)
    xt = tf.constant(x)
    captured = {}

    def op_fn(op):
        def call(*args, **kwargs):
            kwargs["training"] = False
            out = op(*args, **kwargs)
            if op.name in wanted and op.name not in captured:
                tape.watch(out)
                captured[op.name] = out
            return out
        return call

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xt)
        y = g._run_through_graph([xt], operation_fn=op_fn)
        if isinstance(y, (list, tuple)):
            y = y[0]
        b = int(y.shape[0])
        target = tf.reduce_sum(tf.reshape(y, (b, -1))[:, output_index])
    missing = [n for n in wanted if n not in captured]
    if missing:
        raise ValueError(f"layers {missing} not reached")
    res = {"input": np.asarray(tape.gradient(target, xt)).astype(np.float32)}
    for name in wanted:
        res[name] = np.asarray(tape.gradient(target, captured[name])).astype(np.float32)
    # sanity: the op-by-op run equals the normal call
    ref = predict(model, x)
    assert np.allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-6), "graph replay differs from model()"
    return res


# --------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------
def make_keras_zip_deterministic(path):
    """Rewrite a Keras 3 .keras zip with fixed timestamps and date_saved."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "metadata.json":
                meta = json.loads(data)
                meta["date_saved"] = FIXED_DATE_SAVED
                data = json.dumps(meta).encode()
            elif info.filename == "config.json":
                # shared_object_id is Python's id() of e.g. the dtype policy:
                # renumber 1, 2, ... in order of appearance (same sharing).
                ids = {}

                def renum(m):
                    return '"shared_object_id": %d' % ids.setdefault(m.group(1), len(ids) + 1)

                data = re.sub(r'"shared_object_id": (\d+)', renum, data.decode()).encode()
            zi = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            zi.compress_type = info.compress_type
            zi.external_attr = 0o644 << 16
            zout.writestr(zi, data)
    shutil.move(tmp, path)


def save_keras3(model, path):
    """Save with Keras 3: .h5 → legacy HDF5, .keras → zip (made deterministic)."""
    if os.path.exists(path):
        os.remove(path)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    if path.endswith(".keras"):
        make_keras_zip_deterministic(path)


def save_npy(path, arr):
    np.save(path, np.ascontiguousarray(np.asarray(arr, dtype=np.float32)))


def check_reload(path, fmt, x, expected, tol=1e-5):
    """Load the saved file back with the library that wrote it and compare."""
    if fmt == "keras2-h5":
        import tf_keras
        m = tf_keras.models.load_model(path, compile=False)
        y = np.asarray(m(tf.constant(x), training=False))
    else:
        m = keras.models.load_model(path, compile=False)
        y = predict(m, x)
    err = float(np.max(np.abs(y - expected)))
    scale = float(np.max(np.abs(expected))) + 1e-6
    if err > tol * max(1.0, scale):
        raise AssertionError(f"{path}: reloaded output differs by {err}")
    return err
