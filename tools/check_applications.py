#!/usr/bin/env python3
"""Reference numbers for the full-size keras.applications CNNs (outside CI).

    /work/venv/bin/python tools/check_applications.py OUT_DIR [--only VGG16 ...]
        [--formats keras3-zip keras2-h5 [keras3-h5]] [--seed 1234]
        [--max-params MILLIONS] [--max-input PIXELS] [--tf-runs 10] [--no-tf-time]
    /work/venv/bin/python tools/check_applications.py OUT_DIR --retime [--only ...] [--tf-runs 10]
    /work/venv/bin/python tools/check_applications.py --list
    /work/venv/bin/python tools/check_applications.py --tf-time FILE [--tf-runs 10] [--threads 2]

Every CNN of keras.applications (APPS below: VGG16/19, ResNet50/101/152 and
V2, MobileNet, MobileNetV2, MobileNetV3Small/Large, DenseNet121/169/201,
Xception, InceptionV3, InceptionResNetV2, NASNetMobile, EfficientNetB0..B7,
EfficientNetV2B0..B3 and S, ConvNeXtTiny), weights=None, include_top=True, at
its default input size (MobileNetV3 keeps its variable input size and gets a
224x224 input). `--list` prints them with parameters, input size and file size.
Skip the big ones with --max-params (e.g. 50 skips VGG16/19, ResNet152(V2),
InceptionResNetV2, EfficientNetB7) and --max-input (e.g. 456 skips
EfficientNetB6/B7).

Cost on the 2-core machine, all 33 models, both default formats: 7.7 GB in
OUT_DIR, ~22 min (EfficientNetB7 ~3 min, VGG16/19 ~1 min each, most < 40 s;
TensorFlow timing included), `--retime` alone ~5.5 min; peak resident memory ~11 GB (VGG19 then
EfficientNetB7 in one process).
With --max-params 50 --max-input 456: ~3.4 GB.

For each model it writes into OUT_DIR (paths in the manifest relative to it):

  APP.keras                Keras 3 model.save (zip; made deterministic)
  APP.k2.h5                the same architecture built with tf_keras.applications
                           (Keras 2) carrying the SAME weights (copied layer by
                           layer in model.layers order with shape checks; names
                           differ between the versions, e.g. MobileNetV3), saved
                           by tf_keras as legacy HDF5; its output is checked
                           against Keras 3's (keras2_vs_keras3_max_abs_diff)
  APP.h5                   only with --formats keras3-h5 (Keras 3 legacy HDF5; it
                           cannot read back operation layers such as `x + 3.0`,
                           so MobileNetV3 and ConvNeXt are skipped there)
  APP.input.npy            one fixed input (1, H, W, 3): uniform(0, 255) for the
                           models with preprocessing inside (Rescaling /
                           Normalization first: MobileNetV3, EfficientNet(V2),
                           ConvNeXt), else uniform(-1, 1)
  APP.output.npy           Keras 3 output (softmax probabilities, (1, 1000))
  APP.act.LAYER.npy        the default CAM layer's output (and, for VGG16, VGG19,
                           ResNet50 and MobileNetV2, a few more layers); a nested
                           layer's path a/b is written a__b in file names
  APP.grad.input.npy       d logit[k] / d input, k = arg-max class, logit = the
                           pre-softmax value (the final layer's softmax swapped
                           for linear during the computation, same weights)
  APP.grad.LAYER.npy       d logit[k] / d (default CAM layer's output)
  manifest.json            same format as Tests/Fixtures/keras/manifest.json (see
                           tools/make_fixtures.py), read by compare_with_keras.py,
                           one entry per model and format, plus:
                             "app", "keras_format" ("keras3-zip" / "keras2-h5" /
                             "keras3-h5"), "default_cam_layer_expected" (the layer
                             name or nested path IN THAT FILE: Keras 2 names
                             operator layers differently, e.g. ConvNeXt's residual
                             "add_17" is "tf.__operators__.add_17" there),
                             "keras2_vs_keras3_max_abs_diff", "input_range",
                             "tf_forward_ms" (median), "tf_timing" (runs, warm-up,
                             threads, file timed, load average)
                           The gradient and activation keys of a keras2-h5 entry
                           are Keras 2's names; their reference values are Keras
                           3's, after checking that Keras 2's layer computes the
                           same tensor (cam_keras2_vs_keras3_max_abs_diff).

Default CAM layer (`expected_cam_layer`), computed here independently of the
Swift code on each Keras graph (nested models flattened): the last
convolution-like layer (Conv2D, DepthwiseConv2D, SeparableConv2D, Dense on a 4-D
tensor) whose output is spatial (H > 1 and W > 1), carried forward to its
immediate post-dominator (the nearest layer every path to the output passes
through) as long as that layer and every layer on the paths in between are
"follow-ups" (FOLLOW_UPS: normalisation, non-softmax activation, rescaling,
identity-like, Add / Multiply / Concatenate, element-wise operator layers) at the
same H and W. Every convolution that could come last in SOME topological order
is tried; if they disagree the manifest says so ("cam_ambiguous").

Weights are re-randomised so that the comparison means something, per layer
class (`randomize`):
  * Conv2D (also grouped), DepthwiseConv2D, SeparableConv2D (depthwise and
    pointwise kernels), Dense: He-normal with the real fan-in (a depthwise
    kernel's is kh*kw, a grouped conv's kh*kw*C_in/groups), biases U(-0.2, 0.2);
  * BatchNormalization and LayerNormalization: gamma U(0.6, 1.4), beta N(0, 0.2);
  * LayerScale (ConvNeXt): gamma U(0.1, 1.5); PReLU alpha U(-0.25, 0.75);
  * BatchNormalization moving mean / variance, and the mean / variance of a
    Normalization layer that stores them as weights (EfficientNet's, not adapted
    with weights=None: zeros / ones), set in graph order (nested models
    included) from the statistics of the layer's input on a separate
    calibration batch (2 random images) and perturbed (mean + N(0, 0.1) * std,
    variance * U(0.5, 1.5)): random but non-trivial statistics that keep the
    activations from exploding or vanishing through 100s of layers.
    Normalization layers with constant mean/variance in the config (ConvNeXt,
    EfficientNetV2) keep them;
  * the final weighted layer is rescaled so that the logits' standard deviation
    on the calibration batch is ~2, and less if the input's largest |logit -
    mean logit| would exceed 10 (EfficientNetB3's reaches 77 otherwise): the
    softmax is not saturated.
All from numpy.random.default_rng(seed + index of the app in APPS) after
keras.utils.set_random_seed(seed) and clear_session() (so auto-generated layer
names do not depend on --only); TF deterministic, 1 thread (fixture_common).

TensorFlow timing: a separate process (`--tf-time FILE`, not importing
fixture_common: TF's default kernels, oneDNN on) loads the .keras file (the
.k2.h5 with tf_keras if there is none), runs tf.function(model(x,
training=False)) at batch 1 with intra-op threads 2, inter-op 1, --tf-warmup
calls, then the median of --tf-runs calls (result fetched to NumPy inside the
timing). Run it on a quiet machine (the manifest records the load average);
`OUT_DIR --retime` redoes only the timings of the models already written.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

TOOLS = os.path.dirname(os.path.abspath(__file__))

# name: (default input side or None for a variable size, parameters in millions,
#        internal preprocessing (input 0..255), extra activations, extra gradients)
APPS = {
    "VGG16": (224, 138.4, False, ["block1_conv1", "block3_conv3", "block4_pool", "fc2"], []),
    "VGG19": (224, 143.7, False, ["block1_conv2", "block3_conv4", "block5_pool", "fc2"], ["block5_conv3"]),
    "ResNet50": (224, 25.6, False, ["conv1_relu", "pool1_pool", "conv2_block1_out", "conv3_block4_out",
                                    "conv4_block6_out", "avg_pool"], []),
    "ResNet101": (224, 44.7, False, [], []),
    "ResNet152": (224, 60.4, False, [], []),
    "ResNet50V2": (224, 25.6, False, [], []),
    "ResNet101V2": (224, 44.7, False, [], []),
    "ResNet152V2": (224, 60.4, False, [], []),
    "MobileNet": (224, 4.3, False, [], []),
    "MobileNetV2": (224, 3.5, False, ["Conv1_relu", "block_1_pad", "block_3_depthwise_relu", "block_6_project_BN",
                                      "block_13_pad", "block_16_project_BN", "global_average_pooling2d"], []),
    "MobileNetV3Small": (None, 2.6, True, [], []),
    "MobileNetV3Large": (None, 5.5, True, [], []),
    "DenseNet121": (224, 8.1, False, [], []),
    "DenseNet169": (224, 14.3, False, [], []),
    "DenseNet201": (224, 20.2, False, [], []),
    "Xception": (299, 22.9, False, [], []),
    "InceptionV3": (299, 23.9, False, [], []),
    "InceptionResNetV2": (299, 55.9, False, [], []),
    "NASNetMobile": (224, 5.3, False, [], []),
    "EfficientNetB0": (224, 5.3, True, [], []),
    "EfficientNetB1": (240, 7.9, True, [], []),
    "EfficientNetB2": (260, 9.2, True, [], []),
    "EfficientNetB3": (300, 12.3, True, [], []),
    "EfficientNetB4": (380, 19.5, True, [], []),
    "EfficientNetB5": (456, 30.6, True, [], []),
    "EfficientNetB6": (528, 43.3, True, [], []),
    "EfficientNetB7": (600, 66.7, True, [], []),
    "EfficientNetV2B0": (224, 7.2, True, [], []),
    "EfficientNetV2B1": (240, 8.2, True, [], []),
    "EfficientNetV2B2": (260, 10.2, True, [], []),
    "EfficientNetV2B3": (300, 14.5, True, [], []),
    "EfficientNetV2S": (384, 21.6, True, [], []),
    "ConvNeXtTiny": (224, 28.6, True, [], []),
}
SUFFIX = {"keras3-zip": ".keras", "keras2-h5": ".k2.h5", "keras3-h5": ".h5"}
VARIABLE_SIZE = 224  # input side for the models with a variable input size

CONV_LIKE = {"Conv2D", "Convolution2D", "DepthwiseConv2D", "SeparableConv2D", "SeparableConvolution2D"}
# Layer / operation classes that only normalise, activate, rescale, pass through
# or merge a feature map ("follow-ups"). Activation layers must not be softmax.
FOLLOW_UPS = {
    "BatchNormalization", "LayerNormalization", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU",
    "ThresholdedReLU", "Rescaling", "Normalization", "LayerScale", "CustomScaleLayer",
    "Dropout", "SpatialDropout2D", "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization",
    "Identity", "StochasticDepth",
    "Add", "Multiply", "Concatenate", "Subtract", "Average", "Maximum", "Minimum",
    # Keras 3 operation layers (keras.src.ops.numpy): `x + y`, `x * 0.5`, ...
    "TrueDivide", "Divide",
}
# tf_keras operator layers (TFOpLambda) by their TF symbol.
TF_OP_FOLLOW_UPS = {
    "__operators__.add", "math.add", "math.multiply", "math.subtract", "math.truediv", "math.divide",
    "nn.relu", "nn.relu6", "math.sigmoid", "nn.silu", "nn.swish", "math.tanh",
}


# --------------------------------------------------------------------------
# TensorFlow timing (own process: TF's normal configuration, 2 threads)
# --------------------------------------------------------------------------
def tf_time_main(argv):
    ap = argparse.ArgumentParser(prog="check_applications.py --tf-time")
    ap.add_argument("--tf-time", required=True, metavar="FILE")
    ap.add_argument("--tf-runs", type=int, default=10)
    ap.add_argument("--tf-warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input", help=".npy input (default: uniform(0, 255), 224 for a variable size)")
    a = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if a.tf_time.endswith(".k2.h5"):
            import tf_keras
            model = tf_keras.models.load_model(a.tf_time, compile=False,
                                               custom_objects=_custom_objects(tf_keras))
        else:
            import keras
            model = keras.models.load_model(a.tf_time, compile=False, custom_objects=_custom_objects(keras))
    if a.input:
        x = np.load(a.input).astype(np.float32)
    else:
        shape = [VARIABLE_SIZE if d is None else d for d in model.input_shape[1:]]
        x = np.random.default_rng(0).uniform(0, 255, [1] + shape).astype(np.float32)
    f = tf.function(lambda t: model(t, training=False))
    xt = tf.constant(x)
    for _ in range(a.tf_warmup):
        np.asarray(f(xt))
    times = []
    for _ in range(a.tf_runs):
        t0 = time.perf_counter()
        np.asarray(f(xt))
        times.append((time.perf_counter() - t0) * 1000.0)
    print(json.dumps({"line": "forward", "ms_median": round(statistics.median(times), 3),
                      "ms_min": round(min(times), 3), "runs": a.tf_runs, "warmup": a.tf_warmup,
                      "batch": 1, "input": list(x.shape), "threads": a.threads, "inter_op_threads": 1,
                      "file": os.path.basename(a.tf_time), "loadavg_1min": round(os.getloadavg()[0], 2)}))


def _custom_objects(K):
    """LayerScale / StochasticDepth (convnext) and CustomScaleLayer
    (inception_resnet_v2) of Keras 3 or tf_keras: not exported as public layers."""
    if K.__name__ == "keras":
        from keras.src.applications import convnext, inception_resnet_v2
    else:
        from tf_keras.src.applications import convnext, inception_resnet_v2
    return {"LayerScale": convnext.LayerScale, "StochasticDepth": convnext.StochasticDepth,
            "CustomScaleLayer": inception_resnet_v2.CustomScaleLayer}


if __name__ == "__main__" and "--tf-time" in sys.argv:
    tf_time_main(sys.argv[1:])
    sys.exit(0)

sys.path.insert(0, TOOLS)
import fixture_common as fc  # noqa: E402  (deterministic TF set-up)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import tf_keras  # noqa: E402

CUSTOM_OBJECTS = {"keras3": _custom_objects(keras), "keras2": _custom_objects(tf_keras)}


def _is_model(layer):
    return isinstance(layer, (keras.Model, tf_keras.Model))


def _cls(op):
    return op.__class__.__name__


# --------------------------------------------------------------------------
# flattened layer graph (both Keras versions) and the default CAM layer
# --------------------------------------------------------------------------
class FlatGraph:
    """The model's graph with nested models replaced by their layers: nodes in
    topological order, each {"path", "op", "cls", "shape", "inputs": [ids],
    "in_ranks"}. A nested layer's path is "outer/inner"."""

    def __init__(self, model):
        self.nodes = []
        self.version = "keras3" if isinstance(model, keras.Model) else "keras2"
        src = {}
        outs = self._add(model, "", None, src)
        assert len(outs) == 1, f"{model.name}: {len(outs)} outputs"
        self.output = outs[0]

    # Keras 3: Functional (a Sequential's graph is its _functional) with
    # operations in topological order; tensors identified by id().
    # tf_keras: _nodes_by_depth; node.keras_inputs / node.outputs.
    def _add(self, model, prefix, feed, src):
        if self.version == "keras3":
            g = getattr(model, "_functional", None) or model
            inputs, outputs = list(g.inputs), list(g.outputs)
            own = g._nodes  # keys f"{id(op)}_ib-{node_index}" of the nodes of this graph
            calls = []
            for op in g.operations:
                for i, node in enumerate(op._inbound_nodes):
                    if f"{id(op)}_ib-{i}" in own and not node.is_input:
                        calls.append((op, list(node.input_tensors), list(node.output_tensors)))
        else:
            inputs, outputs = list(model.inputs), list(model.outputs)
            order = {id(l): i for i, l in enumerate(model.layers)}
            calls = []
            for depth in sorted(model._nodes_by_depth, reverse=True):
                nodes = sorted(model._nodes_by_depth[depth], key=lambda n: order.get(id(n.layer), -1))
                for node in nodes:
                    if node.is_input:
                        continue
                    calls.append((node.layer, list(node.keras_inputs), tf.nest.flatten(node.outputs)))
        if feed is not None:
            assert len(feed) == len(inputs), f"{prefix}: {len(feed)} inputs fed, {len(inputs)} expected"
            for t, i in zip(inputs, feed):
                src[id(t)] = i
        else:
            for t in inputs:
                src[id(t)] = None  # the model input
        for op, ins, outs in calls:
            in_ids = [src[id(t)] for t in ins]
            if _is_model(op):
                res = self._add(op, prefix + op.name + "/", in_ids, src)
            else:
                nid = len(self.nodes)
                self.nodes.append({"path": prefix + op.name, "op": op, "cls": _cls(op),
                                   "shape": tuple(outs[0].shape), "inputs": [i for i in in_ids if i is not None],
                                   "in_ranks": [len(t.shape) for t in ins]})
                res = [nid] * len(outs)
            for t, r in zip(outs, res):
                src[id(t)] = r
        return [src[id(t)] for t in outputs]

    def set_shapes(self, shapes):
        """Concrete output shapes {path: shape} (from a run on the real input)."""
        for n in self.nodes:
            if n["path"] in shapes:
                n["shape"] = tuple(shapes[n["path"]])


def _spatial(shape):
    return len(shape) == 4 and all(d is None or d > 1 for d in shape[1:3])


def _conv_like(n):
    if not _spatial(n["shape"]):
        return False
    if n["cls"] in CONV_LIKE:
        return True
    return n["cls"] == "Dense" and n["in_ranks"] and n["in_ranks"][0] == 4


def _follow_up(n):
    c, op = n["cls"], n["op"]
    if c == "TFOpLambda":
        return getattr(op, "symbol", None) in TF_OP_FOLLOW_UPS
    if c not in FOLLOW_UPS:
        return False
    if c == "Activation":
        act = getattr(op, "activation", None)
        return getattr(act, "__name__", str(act)) != "softmax"
    if c == "Concatenate":
        return op.axis in (-1, 3)
    return True


def expected_cam_layer(graph):
    """(path, info) of the default CAM layer by the rule (module docstring).
    Post-dominators by the data-flow equations pdom(v) = {v} ∪ ⋂ pdom(consumers)
    over the nodes that reach the output."""
    nodes = graph.nodes
    consumers = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        for j in set(n["inputs"]):
            consumers[j].append(i)
    pdom = {graph.output: frozenset([graph.output])}
    for v in range(len(nodes) - 1, -1, -1):
        cs = [c for c in consumers[v] if c in pdom]
        if v == graph.output or not cs:
            continue
        common = frozenset.intersection(*[pdom[c] for c in cs])
        pdom[v] = common | {v}

    def ipdom(v):
        others = pdom[v] - {v}
        return max(others, key=lambda u: len(pdom[u])) if others else None

    def between(a, b):  # nodes on the paths a -> b (b included, a not)
        seen, stack = {b}, [c for c in consumers[a] if c in pdom]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            stack += [c for c in consumers[n] if c in pdom]
        return seen

    def hw(i):
        return nodes[i]["shape"][1:3]

    def carry(conv):
        cur, chain = conv, [nodes[conv]["path"]]
        while True:
            nxt = ipdom(cur)
            if nxt is None:
                return cur, chain, "output"
            bad = [i for i in sorted(between(cur, nxt))
                   if len(nodes[i]["shape"]) != 4 or hw(i) != hw(conv) or not _follow_up(nodes[i])]
            if bad:
                b = nodes[bad[0]]
                return cur, chain, f"{b['path']} ({b['cls']}, {b['shape'][1:]})"
            cur = nxt
            chain.append(nodes[cur]["path"])

    convs = [i for i, n in enumerate(nodes) if _conv_like(n) and i in pdom]
    if not convs:
        return None, {"last_conv": None}
    # convolutions that no other (spatial) convolution follows: each can be the
    # last one in some topological order
    reach = {}
    for i in range(len(nodes) - 1, -1, -1):
        r = set()
        for c in consumers[i]:
            r |= reach[c] | ({c} if c in convs else set())
        reach[i] = r
    lasts = [c for c in convs if not (reach[c] & set(convs))]
    results = {c: carry(c) for c in lasts}
    last = max(convs)
    end, chain, stop = results[last]
    info = {"last_conv": nodes[last]["path"], "chain": chain, "stopped_at": stop}
    others = {nodes[c]["path"]: nodes[r[0]]["path"] for c, r in results.items() if r[0] != end}
    if others:
        info["ambiguous"] = others
    return nodes[end]["path"], info


# --------------------------------------------------------------------------
# graph runs (Keras 3), weights
# --------------------------------------------------------------------------
def _check_nested_call(path, args, kwargs):
    # Keras 3 records a nested Sequential's call with mask=None
    assert len(args) == 1 and all(v is None for v in kwargs.values()), \
        f"{path}: nested model called with {len(args)} args, {kwargs}"


def run_graph(model, x, hook=None, prefix="", before=None):
    """Run the Keras 3 graph op by op (training=False), nested models
    recursively; before(path, op, args) ahead of each op and hook(path, op,
    args, out) after it (layers and operation layers)."""
    g = fc._graph(model)

    def op_fn(op):
        def call(*args, **kwargs):
            path = prefix + op.name
            if _is_model(op):
                _check_nested_call(path, args, kwargs)
                out = run_graph(op, args[0], hook, path + "/", before)
            else:
                if before is not None:
                    before(path, op, args)
                if isinstance(op, keras.layers.Layer):
                    kwargs["training"] = False
                out = op(*args, **kwargs)
                if hook is not None:
                    hook(path, op, args, out)
            return out
        return call

    y = g._run_through_graph([x], operation_fn=op_fn)
    return y[0] if isinstance(y, (list, tuple)) else y


def leaf_layers(model, prefix=""):
    out = []
    for layer in model.layers:
        if _is_model(layer):
            out += leaf_layers(layer, prefix + layer.name + "/")
        else:
            out.append((prefix + layer.name, layer))
    return out


def _he(rng, shape, fan_in):
    return rng.standard_normal(shape) * np.sqrt(2.0 / max(int(fan_in), 1))


def randomize(model, rng):
    """Random weights by layer class (module docstring); BN moving statistics and
    adaptable Normalization statistics are placeholders until `calibrate`."""
    for path, layer in leaf_layers(model):
        ws = layer.get_weights()
        if not ws:
            continue
        c = _cls(layer)
        shapes = [w.shape for w in ws]
        if c in ("Conv2D", "Convolution2D", "Dense"):
            k = ws[0]  # (kh, kw, C_in/groups, C_out) or (in, out): fan-in = all but the last axis
            new = [_he(rng, k.shape, np.prod(k.shape[:-1]))] + [rng.uniform(-0.2, 0.2, s) for s in shapes[1:]]
        elif c == "DepthwiseConv2D":
            k = ws[0]  # (kh, kw, C, multiplier)
            new = [_he(rng, k.shape, np.prod(k.shape[:2]))] + [rng.uniform(-0.2, 0.2, s) for s in shapes[1:]]
        elif c in ("SeparableConv2D", "SeparableConvolution2D"):
            d, p = ws[0], ws[1]  # (kh, kw, C, m), (1, 1, C*m, C_out)
            new = [_he(rng, d.shape, np.prod(d.shape[:2])), _he(rng, p.shape, np.prod(p.shape[:-1]))]
            new += [rng.uniform(-0.2, 0.2, s) for s in shapes[2:]]
        elif c in ("BatchNormalization", "LayerNormalization"):
            names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
            new = []
            for name, s in zip(names, shapes):
                if name == "gamma":
                    new.append(rng.uniform(0.6, 1.4, s))
                elif name == "beta":
                    new.append(rng.normal(0.0, 0.2, s))
                elif name == "moving_mean":
                    new.append(np.zeros(s))
                elif name == "moving_variance":
                    new.append(np.ones(s))
                else:
                    raise ValueError(f"{path}: weight {name}")
        elif c == "LayerScale":
            new = [rng.uniform(0.1, 1.5, s) for s in shapes]
        elif c == "PReLU":
            new = [rng.uniform(-0.25, 0.75, s) for s in shapes]
        elif c == "Normalization":
            continue  # calibrate()
        else:
            raise ValueError(f"don't know how to randomise {c} {path}")
        layer.set_weights([v.astype(w.dtype) for v, w in zip(new, ws)])


def calibrate(model, x_cal, rng):
    """BatchNormalization moving statistics and weight-carrying Normalization
    mean/variance from the layer's input statistics on x_cal (graph order, so
    upstream layers are already calibrated), perturbed."""
    done = []

    def stats(inp):
        inp = np.asarray(inp, dtype=np.float64)
        axes = tuple(range(inp.ndim - 1))
        mean, var = inp.mean(axis=axes), inp.var(axis=axes)
        std = np.sqrt(var + 1e-6)
        mean = mean + rng.normal(0.0, 0.1, mean.shape) * std
        var = var * rng.uniform(0.5, 1.5, var.shape) + 1e-3
        return mean, var

    def calibrate_op(path, op, args):
        # Before the op runs: its statistics come from its own input.
        c = _cls(op)
        if c == "BatchNormalization":
            mean, var = stats(args[0])
            gamma_beta = op.get_weights()[:-2]
            op.set_weights(gamma_beta + [mean.astype(np.float32), var.astype(np.float32)])
            done.append(path)
        elif c == "Normalization" and op.get_weights():
            mean, var = stats(args[0])
            ws = op.get_weights()  # mean, variance, count
            op.set_weights([mean.reshape(ws[0].shape).astype(ws[0].dtype),
                            var.reshape(ws[1].shape).astype(ws[1].dtype)] + ws[2:])
            op.finalize_state()
            done.append(path)

    run_graph(model, tf.constant(x_cal), before=calibrate_op)
    return done


def final_weighted_layer(model):
    return [l for _, l in leaf_layers(model) if l.get_weights()][-1]


class linear_head:
    """Context: the output layer's softmax swapped for linear (same weights), so
    the model computes the pre-softmax logits."""

    def __init__(self, model):
        self.layer = fc.output_layer(model)
        self.softmax = getattr(getattr(self.layer, "activation", None), "__name__", "") == "softmax"

    def __enter__(self):
        if self.softmax:
            self.saved = self.layer.activation
            self.layer.activation = keras.activations.linear
        return self.softmax

    def __exit__(self, *exc):
        if self.softmax:
            self.layer.activation = self.saved


def scale_head(model, x_cal, x, target_std=2.0, max_gap=10.0):
    """Scale the final weighted layer so that the logits' standard deviation on
    x_cal is target_std, or less if x's largest |logit - mean logit| would exceed
    max_gap (some deep nets put one image's logits far out: softmax saturated).
    Returns the factor and whether the cap applied."""
    head = final_weighted_layer(model)
    with linear_head(model):
        z = fc.predict(model, x_cal)
        zx = fc.predict(model, x)
    s = target_std / (float(z.std()) + 1e-12)
    cap = max_gap / (float(np.abs(zx - zx.mean()).max()) + 1e-12)
    head.set_weights([w * min(s, cap) for w in head.get_weights()])
    return min(s, cap), cap < s


def copy_to_keras2(m3, m2):
    """Copy m3's weights into m2 (same architecture, other Keras): weighted leaf
    layers paired in model.layers order (nested models flattened) with shape
    checks; by name only if the counts differ. Returns the number of pairs whose
    names differ."""
    l3 = [(p, l) for p, l in leaf_layers(m3) if l.weights]
    l2 = [(p, l) for p, l in leaf_layers(m2) if l.weights]
    if len(l3) != len(l2):
        by_name = dict(l3)
        l3 = [(p, by_name[p]) for p, _ in l2]
    renamed = 0
    for (p3, a), (p2, b) in zip(l3, l2):
        wa = a.get_weights()
        sa, sb = [w.shape for w in wa], [tuple(w.shape) for w in b.weights]
        if sa != sb or _cls(a) != _cls(b):
            raise ValueError(f"weights of {p3} ({_cls(a)} {sa}) do not fit {p2} ({_cls(b)} {sb})")
        b.set_weights(wa)
        if _cls(b) == "Normalization":
            b.finalize_state()
        renamed += p3 != p2
    return renamed


def keras2_activation(m2, path, x):
    """Output of tf_keras layer `path` (nested: "outer/inner", by feeding the
    nested model with its call input) for input x."""
    names = {l.name for l in m2.layers}
    parts = [path] if path in names else path.split("/")  # tf_keras' MobileNetV3 names layers "Conv/BatchNorm"
    model, xin = m2, x
    for p in parts[:-1]:
        inner = model.get_layer(p)
        feed = inner._inbound_nodes[-1].keras_inputs[0] if len(inner._inbound_nodes) == 1 else None
        assert feed is not None, f"{p}: nested model called {len(inner._inbound_nodes)} times"
        xin = np.asarray(tf_keras.Model(model.inputs, feed)(tf.constant(xin), training=False))
        model = inner
    sub = tf_keras.Model(model.inputs, model.get_layer(parts[-1]).output)
    return np.asarray(sub(tf.constant(xin), training=False)).astype(np.float32)


def fname(path):
    return path.replace("/", "__")


# --------------------------------------------------------------------------
# one application
# --------------------------------------------------------------------------
def tf_time(path, x_path, runs, warmup, threads=2):
    cmd = [sys.executable, os.path.abspath(__file__), "--tf-time", path, "--tf-runs", str(runs),
           "--tf-warmup", str(warmup), "--threads", str(threads), "--input", x_path]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_DETERMINISTIC_OPS", "TF_ENABLE_ONEDNN_OPTS")}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        print(f"   TF timing failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(app_name, idx, out_dir, args):
    size, _, raw_input, extra_acts, extra_wrt = APPS[app_name]
    seed = args.seed
    t0 = time.time()
    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(keras.applications, app_name)(weights=None, include_top=True)
    side = size or VARIABLE_SIZE
    rng = np.random.default_rng(seed + idx)
    randomize(model, rng)
    lo, hi = (0.0, 255.0) if raw_input else (-1.0, 1.0)
    x_cal = rng.uniform(lo, hi, (2, side, side, 3)).astype(np.float32)
    calibrated = calibrate(model, x_cal, rng)
    x = rng.uniform(lo, hi, (1, side, side, 3)).astype(np.float32)
    _, capped = scale_head(model, x_cal, x)
    t_build = time.time() - t0

    # default CAM layer on the Keras 3 graph, with the shapes of a real run
    graph3 = FlatGraph(model)
    shapes = {}
    run_graph(model, tf.constant(x), hook=lambda p, op, a, out: shapes.setdefault(p, tuple(out.shape)))
    graph3.set_shapes(shapes)
    cam3, info3 = expected_cam_layer(graph3)

    y = fc.predict(model, x)
    with linear_head(model) as pre_softmax:
        logits = fc.predict(model, x)
        k = int(np.argmax(logits[0]))
        grads = fc.gradients(model, x, k, [cam3] + extra_wrt)
    acts = fc.activations(model, x, extra_acts) if extra_acts else {}
    acts[cam3] = np.asarray(fc.replay(model, x, [cam3])[cam3]).astype(np.float32)
    for nm, a in list(acts.items()) + [("grad." + g, v) for g, v in grads.items()]:
        assert np.all(np.isfinite(a)), f"{app_name}: non-finite {nm}"
    t_ref = time.time() - t0 - t_build

    x_file, y_file = f"{app_name}.input.npy", f"{app_name}.output.npy"
    fc.save_npy(os.path.join(out_dir, x_file), x)
    fc.save_npy(os.path.join(out_dir, y_file), y)
    act_files = {}
    for lname, a in acts.items():
        f = f"{app_name}.act.{fname(lname)}.npy"
        fc.save_npy(os.path.join(out_dir, f), a)
        act_files[lname] = f
    grad_files = {}
    for key, g in grads.items():
        f = f"{app_name}.grad.{fname(key)}.npy"
        fc.save_npy(os.path.join(out_dir, f), g)
        grad_files[key] = f

    # Keras 2: same architecture from tf_keras.applications, same weights
    k2 = None
    if "keras2-h5" in args.formats:
        tf_keras.backend.clear_session()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m2 = getattr(tf_keras.applications, app_name)(weights=None, include_top=True)
        renamed = copy_to_keras2(model, m2)
        y2 = np.asarray(m2(tf.constant(x), training=False))
        diff = float(np.abs(y2 - y).max())
        graph2 = FlatGraph(m2)
        cam2, info2 = expected_cam_layer(graph2)
        a2 = keras2_activation(m2, cam2, x)
        # Keras 2 and 3 differ by float32 rounding (e.g. BatchNormalization's
        # arithmetic), ~1e-4 relative after 100 layers: a twin is within 1e-3.
        tol = 1e-3 * (1 + float(np.abs(a2).max()))
        cam_match, cam_diff = cam3, (float(np.abs(a2 - acts[cam3]).max()) if a2.shape == acts[cam3].shape
                                     else float("inf"))
        if not cam_diff <= tol:
            # Keras 2's rule chose another tensor: find Keras 3's layer that computes it
            cands = [n["path"] for n in graph3.nodes if n["shape"][1:] == a2.shape[1:]]
            vals = fc.replay(model, x, cands)
            d = {p: float(np.abs(np.asarray(v) - a2).max()) for p, v in vals.items()}
            cam_match = min(d, key=d.get)
            cam_diff = d[cam_match]
            assert cam_diff <= tol, f"{app_name}: no Keras 3 twin of {cam2} (closest {cam_match}: {cam_diff:.3g})"
        k2 = {"model": m2, "y": y2, "diff": diff, "cam": cam2, "info": info2, "cam_k3": cam_match,
              "cam_diff": cam_diff, "cam_rel": cam_diff / (1 + float(np.abs(a2).max())), "renamed": renamed}
        if cam_match != cam3:
            with linear_head(model):
                g = fc.gradients(model, x, k, [cam_match])[cam_match]
            f = f"{app_name}.grad.{fname(cam_match)}.npy"
            fc.save_npy(os.path.join(out_dir, f), g)
            grad_files[cam_match] = f
            f = f"{app_name}.act.{fname(cam_match)}.npy"
            fc.save_npy(os.path.join(out_dir, f), a2)
            act_files[cam_match] = f

    entries, tf_timing = [], None
    for fmt in args.formats:
        fn = app_name + SUFFIX[fmt]
        path = os.path.join(out_dir, fn)
        note = ""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if fmt == "keras2-h5":
                    if os.path.exists(path):
                        os.remove(path)
                    k2["model"].save(path)
                else:
                    fc.save_keras3(model, path)
            # each file against the model that wrote it (Keras 2 vs 3: keras2_vs_keras3_max_abs_diff)
            err = fc.check_reload(path, fmt, x, k2["y"] if fmt == "keras2-h5" else y, tol=1e-5,
                                  custom_objects=CUSTOM_OBJECTS)
        except Exception as e:  # e.g. Keras 3's .h5 loader and operation layers
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            print(f"   {fmt}: not written / not readable by Keras: {msg}", flush=True)
            if os.path.exists(path):
                os.remove(path)
            continue
        if fmt == "keras2-h5":
            cam, info = k2["cam"], k2["info"]
            acts_here = {k2["cam"]: act_files[k2["cam_k3"]]}
            for n in extra_acts:  # only where tf_keras has the same name computing the same values
                try:
                    same = np.allclose(keras2_activation(k2["model"], n, x), acts[n], rtol=1e-4, atol=1e-5)
                except ValueError:
                    same = False
                if same:
                    acts_here[n] = act_files[n]
            wrt = {"input": grad_files["input"], k2["cam"]: grad_files[k2["cam_k3"]]}
            wrt.update({n: grad_files[n] for n in extra_wrt if any(p == n for p, _ in leaf_layers(k2["model"]))})
            note = (f"tf_keras.applications.{app_name}(weights=None) with the Keras 3 model's weights "
                    f"({k2['renamed']} weighted layers named differently); output vs Keras 3 max abs diff "
                    f"{k2['diff']:.3g}; ")
        else:
            cam, info = cam3, info3
            acts_here = {n: act_files[n] for n in list(extra_acts) + [cam3]}
            wrt = {n: grad_files[n] for n in ["input", cam3] + extra_wrt}
        e = {
            "kind": "ok", "name": f"{app_name}.{fmt}", "case": app_name, "app": app_name,
            "model": fn, "format": fmt, "keras_format": fmt,
            "input": x_file, "output": y_file, "input_range": [lo, hi],
            "input_size_variable": size is None,
            "activations": acts_here,
            "gradients": {"output_index": k, "pre_softmax": pre_softmax,
                          "target": "sum over batch of y[b].flat[output_index]", "wrt": wrt},
            "default_cam_layer_expected": cam,
            "default_cam_rule": info,
            "layers": sorted({_cls(n["op"]) for n in (graph3 if fmt != "keras2-h5" else FlatGraph(k2["model"])).nodes}),
            "notes": note + f"keras.applications.{app_name}(weights=None), re-randomised weights, BN / Normalization "
                            f"statistics calibrated (seed {seed}); reload max abs diff {err:.3g}",
        }
        if k2 is not None:
            e["keras2_vs_keras3_max_abs_diff"] = k2["diff"]
            if fmt == "keras2-h5":
                e["cam_keras2_vs_keras3_max_abs_diff"] = k2["cam_diff"]
                e["cam_keras2_vs_keras3_rel"] = k2["cam_rel"]
                e["cam_keras3_twin"] = k2["cam_k3"]
        entries.append(e)
    written = {e["format"]: e for e in entries}
    t_save = time.time() - t0 - t_build - t_ref
    if not args.no_tf_time and written:
        timed = "keras3-zip" if "keras3-zip" in written else next(iter(written))
        tf_timing = tf_time(os.path.join(out_dir, written[timed]["model"]), os.path.join(out_dir, x_file),
                            args.tf_runs, args.tf_warmup)
        for e in entries:
            e["tf_forward_ms"] = None if tf_timing is None else tf_timing["ms_median"]
            e["tf_timing"] = tf_timing
    sizes = {f: os.path.getsize(os.path.join(out_dir, e["model"])) / 1e6 for f, e in written.items()}
    print(f"{app_name}: build+calibrate {t_build:.0f}s, references {t_ref:.0f}s, save+check {t_save:.0f}s, "
          f"total {time.time() - t0:.0f}s; files " + ", ".join(f"{f} {s:.0f} MB" for f, s in sizes.items()), flush=True)
    print(f"   input {list(x.shape)} U({lo:g}, {hi:g}); top={k} p={y[0, k]:.3f} logit={logits[0, k]:.3f}; "
          f"|dx|max={np.abs(grads['input']).max():.3g}; mean |CAM act|={np.abs(acts[cam3]).mean():.3g}; "
          f"{len(calibrated)} BN/Normalization calibrated" + ("; head scaled down to |logit - mean| <= 10" if capped else ""),
          flush=True)
    print(f"   default CAM layer (Keras 3): {cam3}   [last conv {info3['last_conv']}, "
          f"stopped at {info3['stopped_at']}]" + (f"  AMBIGUOUS {info3['ambiguous']}" if "ambiguous" in info3 else ""),
          flush=True)
    if k2 is not None:
        print(f"   default CAM layer (Keras 2): {k2['cam']}  (= Keras 3 {k2['cam_k3']}, max abs diff "
              f"{k2['cam_diff']:.2g}, rel {k2['cam_rel']:.1e}); Keras 2 vs 3 output max abs diff {k2['diff']:.3g}; "
              f"{k2['renamed']} weighted layers renamed", flush=True)
    if tf_timing:
        print(f"   TF forward {tf_timing['ms_median']:.1f} ms (median of {tf_timing['runs']}, 2 threads, "
              f"load {tf_timing['loadavg_1min']})", flush=True)
    return entries


def main():
    ap = argparse.ArgumentParser(description="reference numbers for the keras.applications CNNs",
                                 epilog="--tf-time FILE [--tf-runs N] [--threads T]: only time FILE in TensorFlow")
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--only", nargs="*", choices=list(APPS), metavar="NAME")
    ap.add_argument("--formats", nargs="*", default=["keras3-zip", "keras2-h5"], choices=list(SUFFIX))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--max-params", type=float, help="skip models with more parameters (millions)")
    ap.add_argument("--max-input", type=int, help="skip models whose default input side is larger")
    ap.add_argument("--tf-runs", type=int, default=10)
    ap.add_argument("--tf-warmup", type=int, default=2)
    ap.add_argument("--no-tf-time", action="store_true")
    ap.add_argument("--retime", action="store_true",
                    help="only redo the TensorFlow timing of the chosen models already in OUT_DIR's manifest")
    ap.add_argument("--list", action="store_true", help="list the models and exit")
    args = ap.parse_args()
    chosen = [n for n in APPS if (not args.only or n in args.only)
              and (args.max_params is None or APPS[n][1] <= args.max_params)
              and (args.max_input is None or (APPS[n][0] or VARIABLE_SIZE) <= args.max_input)]
    if args.list or not args.out_dir:
        for n in APPS:
            size, mp = APPS[n][:2]
            print(f"{n:18} input {str(size or 'variable (224)'):15} {mp:6.1f} M params  ~{mp * 4:5.0f} MB per file"
                  + ("" if n in chosen else "   (skipped)"))
        print(f"{len(chosen)} chosen, ~{sum(APPS[n][1] * 4 for n in chosen) * len(args.formats) / 1000:.1f} GB "
              f"for {len(args.formats)} format(s)")
        return
    os.makedirs(args.out_dir, exist_ok=True)
    manifest_path = os.path.join(args.out_dir, "manifest.json")
    manifest = []
    if os.path.exists(manifest_path):  # keep the other apps' entries
        manifest = [e for e in json.load(open(manifest_path)) if e.get("case") not in chosen and e.get("case") in APPS]
    t0 = time.time()
    if args.retime:
        manifest = json.load(open(manifest_path))
        for name in chosen:
            es = [e for e in manifest if e.get("case") == name]
            if not es:
                continue
            timed = next((e for e in es if e["format"] == "keras3-zip"), es[0])
            t = tf_time(os.path.join(args.out_dir, timed["model"]), os.path.join(args.out_dir, timed["input"]),
                        args.tf_runs, args.tf_warmup)
            for e in es:
                e["tf_forward_ms"] = None if t is None else t["ms_median"]
                e["tf_timing"] = t
            print(f"{name}: TF forward {t and t['ms_median']} ms (load {t and t['loadavg_1min']})", flush=True)
            with open(manifest_path, "w") as f:
                json.dump(manifest, f, indent=1)
                f.write("\n")
        return
    failed = {}
    for name in chosen:
        manifest = [e for e in manifest if e.get("case") != name]
        try:
            manifest.extend(run(name, list(APPS).index(name), args.out_dir, args))
        except Exception as e:  # go on with the others; the traceback is printed
            import traceback
            traceback.print_exc()
            failed[name] = f"{type(e).__name__}: {e}"
            print(f"{name}: FAILED ({failed[name]})", flush=True)
            continue
        manifest.sort(key=lambda e: (list(APPS).index(e["case"]), e["format"]))
        with open(manifest_path, "w") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
    print(f"wrote {manifest_path} ({len(manifest)} entries) in {time.time() - t0:.0f}s"
          + (f"; FAILED: {failed}" if failed else ""))
    print("default CAM layers (Python rule):")
    for e in manifest:
        print(f"  {e['case']:18} {e['format']:10} {e['default_cam_layer_expected']}")


if __name__ == "__main__":
    main()
