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
def _is_model(layer):
    import tf_keras
    return isinstance(layer, (keras.Model, tf_keras.Model))


def randomize_weights(model, rng, gain=1.0):
    """Give every layer random, non-trivial weights (in place).

    kernels: normal * gain*sqrt(2/fan_in) (He), biases: uniform(-0.2, 0.2),
    BatchNormalization: gamma U(0.6, 1.4), beta N(0, 0.2), moving_mean N(0, 0.3),
    moving_variance U(0.4, 2.0). LayerNormalization gamma/beta as BN's.
    PReLU alpha: U(-0.25, 0.75). LayerScale (keras.applications.convnext; its
    Keras 3 weight is unnamed, "variable"): U(0.1, 1.5).
    Normalization layers are left as they are: their mean/variance come from
    adapt() on data (weights) or from the constructor (config, no weights).
    Nested models (a Sequential/Functional used as a layer) are visited
    recursively, in their own layers order.
    Works for Keras 3 and tf_keras layers.
    Layers are visited in model.layers order, weights in layer.weights order,
    so the result only depends on the architecture and the rng seed.
    """
    for layer in model.layers:
        if _is_model(layer):
            randomize_weights(layer, rng, gain)
            continue
        if layer.__class__.__name__ == "Normalization":
            continue
        ws = layer.get_weights()
        if not ws:
            continue
        names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
        if layer.__class__.__name__ == "LayerScale":
            names = ["layer_scale"] * len(names)
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
            elif name == "alpha":
                v = rng.uniform(-0.25, 0.75, shape)
            elif name == "layer_scale":
                v = rng.uniform(0.1, 1.5, shape)
            else:
                raise ValueError(f"don't know how to randomise weight {name} of {layer.name}")
            new.append(v.astype(w.dtype))
        layer.set_weights(new)


def copy_weights_by_name(src, dst):
    """Copy weights layer by layer (matched by name) from src to dst model.
    Nested models are matched recursively (Keras 3 orders a nested model's
    weights layer by layer, tf_keras trainable-first); layers without weights
    (e.g. tf_keras' TFOpLambda, absent from the Keras 3 model) are skipped.
    An adapted Normalization keeps its own `count` (tf_keras counts the adapt
    samples, Keras 3 leaves it 0); mean and variance are copied."""
    for layer in dst.layers:
        if not layer.weights:
            continue
        if _is_model(layer):
            copy_weights_by_name(src.get_layer(layer.name), layer)
            continue
        ws = src.get_layer(layer.name).get_weights()
        if layer.__class__.__name__ == "Normalization":
            own = layer.get_weights()
            ws = ws[:2] + own[2:]
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
    """Output of each named layer for input x. A plain name is a layer of
    `model` itself: keras.Model(model.inputs, layer.output). A path
    "outer/inner/layer" addresses a layer inside nested models (a Sequential
    or Functional used as a layer; the top model's own name is not part of
    the path): computed by the op-by-op replay of `gradients` and checked
    against a composition of Keras sub-models (`_activation_by_submodels`)."""
    out = {}
    paths = [n for n in layer_names if "/" in n]
    replayed = replay(model, x, paths) if paths else {}
    for name in layer_names:
        if "/" in name:
            a = np.asarray(replayed[name]).astype(np.float32)
            b = _activation_by_submodels(model, x, name.split("/"))
            assert np.allclose(a, b, rtol=1e-5, atol=1e-6), f"{name}: replay differs from sub-models"
            out[name] = a
            continue
        layer = model.get_layer(name)
        if _is_model(layer):
            # a nested model's `.output` is its own graph's; take its call in `model`
            out[name] = _activation_by_submodels(model, x, [name])
            continue
        sub = keras.Model(model.inputs, layer.output)
        out[name] = predict(sub, x)
    return out


def _node_in(model, layer):
    """The (single) node of `layer` in `model`'s own graph."""
    g = _graph(model)
    nodes = [n for ns in g._nodes_by_depth.values() for n in ns if n.operation is layer]
    assert len(nodes) == 1, f"{layer.name}: {len(nodes)} calls in {model.name}"
    return nodes[0]


def _activation_by_submodels(model, x, parts):
    """Independent check of a nested layer's activation: feed the nested
    model with a sub-model of its parent (parent input → the nested model's
    call input), then descend; the last part is a layer of the innermost
    model: keras.Model(inner.inputs, layer.output)."""
    layer = model.get_layer(parts[0])
    if len(parts) == 1:
        out = _node_in(model, layer).output_tensors
        return predict(keras.Model(model.inputs, out[0]), x)
    feed = _node_in(model, layer).input_tensors
    x_inner = predict(keras.Model(model.inputs, feed[0]), x)
    return _activation_by_submodels(layer, x_inner, parts[1:])


def _replay(model, xt, wanted, captured, watch=None, prefix=""):
    """Run `model`'s functional graph op by op (Keras 3
    Function._run_through_graph, a private API of the pinned Keras) with
    training=False for layers; record the output of the first call of every
    op whose path (prefix + name) is in `wanted` (and `watch` it). Nested
    models on the way to a wanted path are replayed recursively."""
    g = _graph(model)

    def op_fn(op):
        def call(*args, **kwargs):
            path = prefix + op.name
            if _is_model(op) and any(w.startswith(path + "/") for w in wanted):
                extra = {k: v for k, v in kwargs.items() if not (k == "mask" and v is None)}
                assert len(args) == 1 and not extra, f"{path}: nested model called with {len(args)} args, {list(extra)}"
                out = _replay(op, args[0], wanted, captured, watch, path + "/")
            else:
                if isinstance(op, keras.layers.Layer):
                    # operation layers (keras.src.ops.*, e.g. `x + 3.0`) take no training flag
                    kwargs["training"] = False
                out = op(*args, **kwargs)
            if path in wanted and path not in captured:
                if watch is not None:
                    watch(out)
                captured[path] = out
            return out
        return call

    y = g._run_through_graph([xt], operation_fn=op_fn)
    if isinstance(y, (list, tuple)):
        y = y[0]
    return y


def replay(model, x, wanted):
    """{path: value} of the wanted layers' outputs, by op-by-op replay."""
    captured = {}
    _replay(model, tf.constant(x), list(wanted), captured)
    missing = [n for n in wanted if n not in captured]
    if missing:
        raise ValueError(f"layers {missing} not reached")
    return captured


def gradients(model, x, output_index, wrt_layer):
    """Gradient of sum_b y[b].flat[output_index] w.r.t. the input and w.r.t.
    the output of layer `wrt_layer` (a name or a list of names; the layer's
    first call; a path "outer/inner/layer" for a layer of a nested model),
    where y is the output of `model` (already the pre-softmax clone when
    needed).

    Runs the functional graph op by op (`_replay`) and watches the chosen
    layers' outputs, so each gradient is the total derivative through every
    downstream path (skip connections included).
    """
    wanted = [] if wrt_layer is None else ([wrt_layer] if isinstance(wrt_layer, str) else list(wrt_layer))
    xt = tf.constant(x)
    captured = {}

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xt)
        y = _replay(model, xt, wanted, captured, watch=tape.watch)
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


def check_reload(path, fmt, x, expected, tol=1e-5, custom_objects=None):
    """Load the saved file back with the library that wrote it and compare.
    custom_objects: {class name: class} for unregistered layer classes (e.g.
    keras.applications' LayerScale), separately for Keras 2 and 3:
    {"keras2": {...}, "keras3": {...}}."""
    co = (custom_objects or {}).get("keras2" if fmt == "keras2-h5" else "keras3")
    if fmt == "keras2-h5":
        import tf_keras
        m = tf_keras.models.load_model(path, compile=False, custom_objects=co)
        y = np.asarray(m(tf.constant(x), training=False))
    else:
        m = keras.models.load_model(path, compile=False, custom_objects=co)
        y = predict(m, x)
    err = float(np.max(np.abs(y - expected)))
    scale = float(np.max(np.abs(expected))) + 1e-6
    if err > tol * max(1.0, scale):
        raise AssertionError(f"{path}: reloaded output differs by {err}")
    return err
