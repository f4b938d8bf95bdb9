#!/usr/bin/env python3
"""Generate ConvLens' Keras reference fixtures into Tests/Fixtures/keras/.

    /work/venv/bin/python tools/make_fixtures.py [--out Tests/Fixtures/keras]

Versions used: see tools/requirements.txt (tensorflow-cpu, keras 3, tf_keras).
Deterministic: fixed seeds (numpy Generator per case), TF_DETERMINISTIC_OPS=1,
oneDNN rewrites off, 1 TF thread, .keras zips rewritten with fixed timestamps.
Re-running reproduces the same bytes (checked with sha256sum).

Manifest format (Tests/Fixtures/keras/manifest.json)
====================================================
A JSON array. All paths are relative to the manifest's directory.
Every .npy file is float32, little-endian, C order, NHWC for images, with the
batch dimension first.

Good entries ("kind": "ok") -- one entry per (model case, file format):
  {
    "kind": "ok",
    "name": "seq_conv_basic.keras3-h5",     unique entry name
    "case": "seq_conv_basic",               model case (shared by formats)
    "model": "seq_conv_basic.k3.h5",        model file
    "format": "keras2-h5" | "keras3-h5" | "keras3-zip",
              keras2-h5 : written by tf_keras (Keras 2 API) model.save(".h5")
              keras3-h5 : written by Keras 3 model.save(".h5") (legacy HDF5)
              keras3-zip: written by Keras 3 model.save(".keras")
    "input": "seq_conv_basic.input.npy",    shape (B, H, W, C); B is 1 or 2
    "output": "seq_conv_basic.output.npy",  Keras' final output (inference mode;
                                            softmax included if the model has it)
    "activations": {"layer_name": "file.npy", ...}
              output of that layer, keras.Model(model.inputs, layer.output).
              A layer inside a nested model (a Sequential/Functional used as
              a layer) is keyed by its PATH joined with '/', without the top
              model's name: "conv_base/block2_conv2"; a nested model's own
              name keys its output; a key without '/' is a top-level layer.
              In file names '/' becomes '__'.
    "gradients": {
        "output_index": k,   index into the per-sample output flattened in C
                             order (for a (B, N) output simply unit k)
        "pre_softmax": bool, true: the differentiated output is the final
                             layer's pre-activation (its softmax replaced by
                             linear, same weights); false: the final output
        "target": "sum over batch of y[b].flat[k]",
        "wrt": {"input": "file.npy", "layer_name": "file.npy"}
              d target / d input, and d target / d (that layer's output tensor),
              the total derivative through all downstream paths. Each has the
              shape of the tensor it is w.r.t. (batch included). Layer keys as
              in "activations" (paths for nested layers).
    },
    "layers": ["Conv2D", ...]   class_name of every layer entry in the file's
                                config, nested models' layers included, as
                                that file records them (tf_keras: TFOpLambda,
                                "Custom>CustomScaleLayer"; Keras 3: operation
                                layers such as Add/TrueDivide of
                                keras.src.ops.numpy), plus InputLayer
    "notes": "..."              optional
  }

Bad entries ("kind": "bad"): loading must fail with an error.
  {
    "kind": "bad",
    "name": "...", "model": "file", "format": format the file pretends to be,
    "expect_error_contains": "substring",      the error's description must
                                               contain this (case-sensitive)
    "expect_error_contains_all": ["a", "b"],   ...and all of these
    "notes": "..."
  }
  For an unsupported layer the error must name the layer (its Keras name) and
  its class. The strings for corrupt files are this project's contract for
  the loader's messages (see README.md).

Numbers: references come from Keras 3 (TensorFlow backend, CPU). The tf_keras
copy of each model has the same weights and is checked to produce the same
output and top-level activations (within 1e-5); every saved file is re-loaded
by the library that wrote it and checked against the reference output. Where
the Keras versions define a layer differently (hard_sigmoid), the Keras 2 file
is a case of its own whose Keras 3 reference twin uses Keras 2's definition
(hard_activations_k2).
"""
import argparse
import hashlib
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402  (sets TF env first)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import tf_keras  # noqa: E402

ALL_FORMATS = ("keras2-h5", "keras3-h5", "keras3-zip")
K3_FORMATS = ("keras3-h5", "keras3-zip")
# Keras 3 writes operation layers (`x + y` on symbolic tensors) into legacy .h5
# files but cannot load them back: such cases list "keras3-h5" in
# keras_cannot_reload, and that file is written without Keras' reload check.
SUFFIX = {"keras2-h5": ".k2.h5", "keras3-h5": ".k3.h5", "keras3-zip": ".keras"}


# --------------------------------------------------------------------------
# model builders: build(K) with K = keras (Keras 3) or tf_keras (Keras 2).
# Every layer is named so names agree between the two libraries.
# --------------------------------------------------------------------------
def seq_conv_basic(K):
    L = K.layers
    return K.Sequential([
        K.Input(shape=(17, 17, 3), name="input"),
        L.Conv2D(8, 3, padding="valid", activation="relu", name="conv1"),           # 15x15
        L.Conv2D(8, 3, strides=2, padding="same", activation="tanh", name="conv2"),  # odd 15 -> 8
        L.Conv2D(12, 3, padding="valid", activation="sigmoid", name="conv3"),        # 6x6
        L.MaxPooling2D(2, name="pool"),                                              # 3x3
        L.Flatten(name="flatten"),
        L.Dropout(0.3, name="dropout"),
        L.Dense(16, activation="relu", name="fc1"),
        L.Dense(5, activation="softmax", name="predictions"),
    ], name="seq_conv_basic")


def conv_options(K):
    L = K.layers
    x_in = K.Input(shape=(30, 26, 4), name="input")
    x = L.Conv2D(6, 3, strides=2, padding="same", use_bias=False, name="conv_same_s2_even")(x_in)  # 15x13
    x = L.Conv2D(6, 3, padding="same", dilation_rate=2, activation="relu", name="conv_dil2_same")(x)  # 15x13
    x = L.Conv2D(6, 3, padding="valid", dilation_rate=2, activation="tanh", name="conv_dil2_valid")(x)  # 11x9
    x = L.Conv2D(8, 3, strides=2, padding="valid", activation="sigmoid", name="conv_valid_s2_odd")(x)  # 5x4
    x = L.Conv2D(8, (3, 2), strides=(1, 2), padding="same", name="conv_rect_same")(x)  # 5x2
    x = L.Conv2D(5, 1, activation="softmax", name="conv_softmax")(x)  # 5x2x5
    x = L.Conv2D(6, 2, strides=2, padding="valid", use_bias=False, activation="relu", name="conv_valid_s2_no_bias")(x)  # 2x1
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(3, name="logits")(x)
    return K.Model(x_in, out, name="conv_options")


def conv_even_strides(K):
    L = K.layers
    x_in = K.Input(shape=(16, 20, 3), name="input")
    x = L.Conv2D(6, 3, strides=2, padding="valid", activation="relu", name="conv_valid_s2_even")(x_in)  # 7x9
    x = L.Conv2D(6, 3, strides=2, padding="same", activation="linear", name="conv_same_s2_odd")(x)  # 4x5
    x = L.Conv2D(6, 2, strides=1, padding="same", name="conv_k2_same")(x)  # 4x5 (even kernel: pad after)
    x = L.Conv2D(4, 3, strides=2, padding="same", activation="tanh", name="conv_same_s2_even")(x)  # 2x3
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(4, activation="sigmoid", name="out")(x)
    return K.Model(x_in, out, name="conv_even_strides")


def depthwise(K):
    L = K.layers
    x_in = K.Input(shape=(18, 18, 6), name="input")
    x = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw_same_m1")(x_in)  # 18
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, use_bias=False,
                          name="dw_s2_same_m2")(x)  # 9x9x12
    x = L.DepthwiseConv2D(3, strides=2, padding="same", name="dw_s2_same_odd")(x)  # 5x5x12
    x = L.DepthwiseConv2D(2, padding="valid", depth_multiplier=2, name="dw_valid_m2")(x)  # 4x4x24
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(max_value=6.0, name="relu6")(x)
    x = L.GlobalAveragePooling2D(keepdims=True, name="gap_keep")(x)  # 1x1x24
    x = L.Conv2D(4, 1, activation="relu", name="squeeze")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(2, name="out")(x)
    return K.Model(x_in, out, name="depthwise")


def activations_bn(K):
    L = K.layers
    x_in = K.Input(shape=(12, 14, 5), name="input")
    x = L.Conv2D(8, 3, padding="same", name="conv_a")(x_in)
    x = L.BatchNormalization(name="bn_full")(x)
    x = L.Activation("relu", name="act_relu")(x)
    x = L.Dense(6, activation="tanh", name="dense_4d")(x)  # Dense on a 4-D tensor
    x = L.BatchNormalization(scale=False, name="bn_noscale")(x)
    x = L.ReLU(negative_slope=0.1, name="relu_leaky")(x)
    x = L.Conv2D(6, 3, padding="same", name="conv_b")(x)
    x = L.BatchNormalization(center=False, epsilon=0.01, name="bn_nocenter")(x)
    x = L.ReLU(threshold=0.3, name="relu_threshold")(x)
    x = L.Conv2D(6, 3, padding="same", name="conv_c")(x)
    x = L.BatchNormalization(center=False, scale=False, name="bn_bare")(x)
    x = L.ReLU(max_value=2.0, negative_slope=0.2, threshold=0.25, name="relu_all_options")(x)
    x = L.Activation("sigmoid", name="act_sigmoid")(x)
    x = L.Dense(6, name="dense_4d_b")(x)
    x = L.Activation("tanh", name="act_tanh")(x)
    x = L.Activation("linear", name="act_linear")(x)
    x = L.ReLU(6.0, name="relu_6")(x)
    x = L.Activation("softmax", name="act_softmax_4d")(x)  # softmax over channels of a 4-D tensor
    x = L.GlobalAveragePooling2D(keepdims=False, name="gap")(x)
    out = L.Dense(4, name="logits")(x)
    return K.Model(x_in, out, name="activations_bn")


def keras3_relu6(K):
    """Keras-3-only: the 'relu6' activation string (tf_keras has none)."""
    L = K.layers
    x_in = K.Input(shape=(16, 16, 3), name="input")
    x = L.Conv2D(6, 3, activation="relu6", name="conv_relu6")(x_in)  # 14
    x = L.Activation("relu6", name="act_relu6")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6", name="dw_relu6")(x)  # 7
    x = L.GlobalAveragePooling2D(keepdims=True, name="gap_keep")(x)
    out = L.Conv2D(4, 1, activation="softmax", name="conv_head_softmax")(x)  # output (1,1,1,4)
    return K.Model(x_in, out, name="keras3_relu6")


def pooling(K):
    L = K.layers
    x_in = K.Input(shape=(37, 33, 4), name="input")
    c = L.Conv2D(6, 3, padding="same", activation="relu", name="conv0")(x_in)
    a = L.MaxPooling2D(2, name="mp_2_valid")(c)                                      # 18x16
    a = L.MaxPooling2D(3, strides=2, padding="same", name="mp_3_s2_same")(a)         # 9x8
    a = L.AveragePooling2D(3, strides=1, padding="valid", name="ap_3_s1_valid")(a)   # 7x6
    a = L.AveragePooling2D(2, strides=2, padding="same", name="ap_2_s2_same")(a)     # 4x3 (odd -> padded)
    a = L.MaxPooling2D(3, strides=1, padding="same", name="mp_3_s1_same")(a)         # 4x3
    a = L.GlobalAveragePooling2D(name="gap_a")(a)
    b = L.AveragePooling2D(2, name="ap_2_valid")(c)                                  # 18x16
    b = L.MaxPooling2D(3, strides=2, padding="valid", name="mp_3_s2_valid")(b)       # 8x7
    b = L.AveragePooling2D(3, strides=2, padding="same", name="ap_3_s2_same")(b)     # 4x4
    b = L.MaxPooling2D((2, 3), strides=(1, 2), padding="valid", name="mp_2x3_valid")(b)  # 3x1
    b = L.GlobalAveragePooling2D(name="gap_b")(b)
    x = L.Add(name="add")([a, b])
    out = L.Dense(3, name="logits")(x)
    return K.Model(x_in, out, name="pooling")


def zeropad(K):
    L = K.layers
    return K.Sequential([
        K.Input(shape=(16, 15, 3), name="input"),
        L.ZeroPadding2D(1, name="zp_int"),                      # 18x17
        L.Conv2D(4, 3, name="conv1"),                           # 16x15
        L.ZeroPadding2D((1, 2), name="zp_pair"),                # 18x19
        L.Conv2D(4, 3, strides=2, name="conv2"),                # 8x9
        L.ZeroPadding2D(((0, 1), (2, 0)), name="zp_pairs"),     # 9x11
        L.Conv2D(4, 3, activation="relu", name="conv3"),        # 7x9
        L.Flatten(name="flatten"),
        L.Dense(3, name="logits"),
    ], name="zeropad")


def residual(K):
    L = K.layers
    x_in = K.Input(shape=(16, 16, 3), name="input")
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem_conv")(x_in)
    x = L.BatchNormalization(name="stem_bn")(x)
    s = L.Activation("relu", name="stem_relu")(x)
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="b1_conv1")(s)
    x = L.BatchNormalization(name="b1_bn1")(x)
    x = L.Activation("relu", name="b1_relu1")(x)
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="b1_conv2")(x)
    x = L.BatchNormalization(name="b1_bn2")(x)
    x = L.Add(name="b1_add")([s, x])
    s = L.Activation("relu", name="b1_out")(x)
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="b2_conv1")(s)
    x = L.BatchNormalization(name="b2_bn1")(x)
    x = L.Activation("relu", name="b2_relu1")(x)
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="b2_conv2")(x)
    x = L.BatchNormalization(name="b2_bn2")(x)
    p = L.Conv2D(16, 1, strides=2, use_bias=False, name="b2_proj")(s)
    p = L.BatchNormalization(name="b2_proj_bn")(p)
    x = L.Add(name="b2_add")([p, x])
    x = L.Activation("relu", name="b2_out")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(6, activation="softmax", name="predictions")(x)
    return K.Model(x_in, out, name="residual")


def mobilenetv2_block(K):
    L = K.layers
    x_in = K.Input(shape=(32, 32, 3), name="input")
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="Conv1")(x_in)  # 16
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.999, name="bn_Conv1")(x)
    x = L.ReLU(6.0, name="Conv1_relu")(x)
    # block 0: no expansion, no residual
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="expanded_conv_depthwise")(x)
    x = L.BatchNormalization(name="expanded_conv_depthwise_BN")(x)
    x = L.ReLU(6.0, name="expanded_conv_depthwise_relu")(x)
    x = L.Conv2D(8, 1, use_bias=False, name="expanded_conv_project")(x)
    x = L.BatchNormalization(name="expanded_conv_project_BN")(x)
    # block 1: stride 2 with ZeroPadding2D + valid depthwise (as in keras.applications)
    x = L.Conv2D(24, 1, use_bias=False, name="block_1_expand")(x)
    x = L.BatchNormalization(name="block_1_expand_BN")(x)
    x = L.ReLU(6.0, name="block_1_expand_relu")(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="block_1_pad")(x)  # 17
    x = L.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False, name="block_1_depthwise")(x)  # 8
    x = L.BatchNormalization(name="block_1_depthwise_BN")(x)
    x = L.ReLU(6.0, name="block_1_depthwise_relu")(x)
    x = L.Conv2D(12, 1, use_bias=False, name="block_1_project")(x)
    s = L.BatchNormalization(name="block_1_project_BN")(x)
    # block 2: stride 1 with residual Add
    x = L.Conv2D(36, 1, use_bias=False, name="block_2_expand")(s)
    x = L.BatchNormalization(name="block_2_expand_BN")(x)
    x = L.ReLU(6.0, name="block_2_expand_relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="block_2_depthwise")(x)
    x = L.BatchNormalization(name="block_2_depthwise_BN")(x)
    x = L.ReLU(6.0, name="block_2_depthwise_relu")(x)
    x = L.Conv2D(12, 1, use_bias=False, name="block_2_project")(x)
    x = L.BatchNormalization(name="block_2_project_BN")(x)
    x = L.Add(name="block_2_add")([s, x])
    x = L.Conv2D(32, 1, use_bias=False, name="Conv_1")(x)
    x = L.BatchNormalization(name="Conv_1_bn")(x)
    x = L.ReLU(6.0, name="out_relu")(x)
    x = L.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    out = L.Dense(5, activation="softmax", name="predictions")(x)
    return K.Model(x_in, out, name="mobilenetv2_block")


def shared_layer(K):
    """One Conv2D called twice (two inbound nodes), weights shared."""
    L = K.layers
    x_in = K.Input(shape=(14, 14, 4), name="input")
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="stem")(x_in)
    shared = L.Conv2D(6, 3, padding="same", name="shared_conv")
    a = shared(x)
    b = L.ReLU(name="mid_relu")(a)
    c = shared(b)
    x = L.Add(name="add")([a, c])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, name="logits")(x)
    return K.Model(x_in, out, name="shared_layer")


def book_convnet(K):
    """Chollet, Deep Learning with Python, §5.2 cats-vs-dogs convnet at reduced
    width and 48x48 input (4 conv/pool stages need at least ~46 pixels)."""
    L = K.layers
    return K.Sequential([
        K.Input(shape=(48, 48, 3), name="input"),
        L.Conv2D(8, 3, activation="relu", name="conv2d_1"),      # 46
        L.MaxPooling2D(2, name="max_pooling2d_1"),               # 23
        L.Conv2D(16, 3, activation="relu", name="conv2d_2"),     # 21
        L.MaxPooling2D(2, name="max_pooling2d_2"),               # 10
        L.Conv2D(16, 3, activation="relu", name="conv2d_3"),     # 8
        L.MaxPooling2D(2, name="max_pooling2d_3"),               # 4
        L.Conv2D(16, 3, activation="relu", name="conv2d_4"),     # 2
        L.MaxPooling2D(2, name="max_pooling2d_4"),               # 1
        L.Flatten(name="flatten"),
        L.Dropout(0.5, name="dropout"),
        L.Dense(32, activation="relu", name="dense_1"),
        L.Dense(1, activation="sigmoid", name="dense_2"),
    ], name="book_convnet")


def softmax_classifier(K):
    """Grayscale classifier whose softmax is a separate Activation layer."""
    L = K.layers
    x_in = K.Input(shape=(28, 28, 1), name="input")
    x = L.Conv2D(8, 3, activation="relu", name="conv1")(x_in)                # 26
    x = L.BatchNormalization(scale=False, name="bn1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)                                    # 13
    x = L.Conv2D(16, 3, padding="same", name="conv2")(x)
    x = L.ReLU(name="relu2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(24, activation="relu", name="fc")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    x = L.Dense(10, name="logits")(x)
    out = L.Activation("softmax", name="softmax")(x)
    return K.Model(x_in, out, name="softmax_classifier")


def dynamic_input(K):
    """Input with unknown height/width (None, None, 3); Add of three tensors;
    Dense without bias. The fixture input is 20x22."""
    L = K.layers
    x_in = K.Input(shape=(None, None, 3), name="input")
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(x_in)
    x = L.Conv2D(6, 3, strides=2, padding="same", name="conv2")(x)
    a = L.Conv2D(6, 1, name="conv3")(x)
    b = L.ReLU(name="relu")(x)
    x = L.Add(name="add3")([x, a, b])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(4, use_bias=False, name="logits")(x)
    return K.Model(x_in, out, name="dynamic_input")


def squeeze_excite_concat(K):
    """Squeeze-and-excite (GAP keepdims → 1×1 convs → sigmoid, Multiply broadcasting
    (1,1,C) over the map), Concatenate of two branches on the channel axis, Multiply of
    three same-shape tensors."""
    L = K.layers
    x_in = K.Input(shape=(9, 10, 3), name="input")
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(x_in)
    s = L.GlobalAveragePooling2D(keepdims=True, name="se_squeeze")(x)
    s = L.Conv2D(3, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(6, 1, activation="sigmoid", name="se_expand")(s)
    x = L.Multiply(name="se_excite")([x, s])
    a = L.Conv2D(4, 3, padding="same", name="branch_a")(x)
    b = L.Conv2D(5, 1, activation="tanh", name="branch_b")(x)
    x = L.Concatenate(name="concat")([a, b, x])
    c = L.Conv2D(15, 1, name="gate")(x)
    x = L.Multiply(name="product3")([x, c, x])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(4, activation="softmax", name="head")(x)
    return K.Model(x_in, out, name="squeeze_excite_concat")


def smooth_activations(K):
    """swish/silu, elu, exact gelu, selu, softplus as Activation layers and fused into
    convolutions; the ELU layer with a non-default alpha."""
    L = K.layers
    x_in = K.Input(shape=(8, 9, 3), name="input")
    x = L.Conv2D(6, 3, padding="same", activation="swish", name="conv_swish")(x_in)
    x = L.Conv2D(6, 3, padding="same", activation="gelu", name="conv_gelu")(x)
    x = L.Activation("elu", name="act_elu")(x)
    x = L.Conv2D(6, 1, name="conv_plain")(x)
    x = L.ELU(alpha=0.7, name="elu_layer")(x)
    x = L.Activation("selu", name="act_selu")(x)
    x = L.Conv2D(6, 1, activation="softplus", name="conv_softplus")(x)
    x = L.Activation("silu", name="act_silu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, activation="softmax", name="head")(x)
    return K.Model(x_in, out, name="smooth_activations")


def rescale_maxpool(K):
    """Rescaling (scale and offset) at the input, as models carrying their own scaling do;
    GlobalMaxPooling2D with and without keepdims."""
    L = K.layers
    x_in = K.Input(shape=(7, 8, 3), name="input")
    x = L.Rescaling(1 / 127.5, offset=-1, name="rescale")(x_in)
    x = L.Conv2D(5, 3, padding="same", activation="relu", name="conv1")(x)
    m = L.GlobalMaxPooling2D(keepdims=True, name="gmp_keep")(x)
    x = L.Multiply(name="scale_by_max")([x, m])
    x = L.Conv2D(4, 3, name="conv2")(x)
    x = L.GlobalMaxPooling2D(name="gmp")(x)
    out = L.Dense(3, name="logits")(x)
    return K.Model(x_in, out, name="rescale_maxpool")


# --- cases added for SeparableConv2D, Cropping2D, Normalization, PReLU,
# --- Reshape, operator layers (TFOpLambda / keras.src.ops), LayerNormalization,
# --- LayerScale, nested models --------------------------------------------
def _applications(K):
    """(convnext, inception_resnet_v2) application modules of Keras 3 or tf_keras:
    LayerScale and StochasticDepth live in convnext, CustomScaleLayer in
    inception_resnet_v2; none is exported as a public layer."""
    if K is keras:
        from keras.src.applications import convnext, inception_resnet_v2
    else:
        from tf_keras.src.applications import convnext, inception_resnet_v2
    return convnext, inception_resnet_v2


def _custom_objects(K):
    cv, ir = _applications(K)
    return {"LayerScale": cv.LayerScale, "StochasticDepth": cv.StochasticDepth,
            "CustomScaleLayer": ir.CustomScaleLayer}


# Keras 3's legacy .h5 loader needs these (the .keras zip records the module);
# tf_keras only registers CustomScaleLayer (as "Custom>CustomScaleLayer").
APPLICATION_OBJECTS = {"keras2": _custom_objects(tf_keras), "keras3": _custom_objects(keras)}


def separable_crop(K):
    """SeparableConv2D: depth_multiplier 1 and 2, stride 2 same on an odd size,
    dilation 2 stride 1, valid, no bias, fused relu; Cropping2D symmetric int and
    asymmetric ((1, 2), (0, 1)); AveragePooling2D((3, 3), strides 1, 'same') as
    InceptionV3 / NASNet use it (the average excludes the padding)."""
    L = K.layers
    x_in = K.Input(shape=(17, 15, 3), name="input")
    x = L.SeparableConv2D(6, 3, padding="same", name="sep_same_m1")(x_in)                    # 17x15x6
    x = L.Cropping2D(1, name="crop_sym")(x)                                                  # 15x13
    x = L.AveragePooling2D((3, 3), strides=(1, 1), padding="same", name="ap_3_s1_same")(x)   # 15x13
    x = L.SeparableConv2D(8, 3, strides=2, padding="same", depth_multiplier=2, use_bias=False,
                          name="sep_s2_same_m2_nobias")(x)                                   # 8x7x8 (odd -> padded)
    x = L.SeparableConv2D(8, 3, dilation_rate=2, padding="same", activation="relu",
                          name="sep_dil2_relu")(x)                                           # 8x7x8
    x = L.Cropping2D(((1, 2), (0, 1)), name="crop_asym")(x)                                  # 5x6x8
    x = L.SeparableConv2D(6, 3, padding="valid", depth_multiplier=2, name="sep_valid_m2")(x)  # 3x4x6
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(4, activation="softmax", name="predictions")(x)
    return K.Model(x_in, out, name="separable_crop")


def _normalization_adapt_data():
    """Fixed data for Normalization.adapt: per-channel means (1, -0.5, 2) and
    standard deviations (0.5, 2, 1.2)."""
    rng = np.random.default_rng(20250101)
    return rng.normal([1.0, -0.5, 2.0], [0.5, 2.0, 1.2], (16, 12, 12, 3)).astype(np.float32)


def normalization_reshape(K):
    """Normalization adapted on data (mean, variance, count stored as weights;
    axis -1) and Normalization(mean=[...], variance=[...]) as ConvNeXt's PreStem
    writes it (constants in the config, no weights); Rescaling with per-channel
    scale and offset lists (both Keras versions accept and save them); an
    EfficientNet-style squeeze-excite branch GlobalAveragePooling2D → Reshape((1, 1, C))
    → 1x1 convs → Multiply; PReLU with shared_axes [1, 2] (alpha (1, 1, C)) and
    without (alpha (H, W, C)), random alphas; LeakyReLU(0.15) (Keras 3 argument
    negative_slope, tf_keras alpha); Reshape((-1,)) to a flat vector before the
    Dense head."""
    L = K.layers
    x_in = K.Input(shape=(12, 12, 3), name="input")
    norm = L.Normalization(axis=-1, name="norm_adapted")
    norm.adapt(_normalization_adapt_data())
    x = norm(x_in)
    x = L.Normalization(mean=[0.4, -0.3, 1.2], variance=[0.5, 2.0, 1.5], name="norm_const")(x)
    x = L.Rescaling(scale=[1 / 0.8, 1 / 1.6, 1 / 0.5], offset=[0.1, -0.2, 0.05], name="rescale_channels")(x)
    x = L.Conv2D(6, 3, padding="same", name="conv1")(x)
    x = L.PReLU(shared_axes=[1, 2], name="prelu_shared")(x)
    s = L.GlobalAveragePooling2D(name="se_squeeze")(x)
    s = L.Reshape((1, 1, 6), name="se_reshape")(s)
    s = L.Conv2D(3, 1, activation="swish", name="se_reduce")(s)
    s = L.Conv2D(6, 1, activation="sigmoid", name="se_expand")(s)
    x = L.Multiply(name="se_excite")([x, s])
    x = L.Conv2D(4, 3, strides=2, padding="same", name="conv2")(x)  # 6x6x4
    if K is keras:
        x = L.LeakyReLU(negative_slope=0.15, name="leaky")(x)
    else:
        x = L.LeakyReLU(alpha=0.15, name="leaky")(x)
    x = L.Conv2D(4, 1, name="conv3")(x)
    x = L.PReLU(name="prelu_full")(x)
    x = L.Reshape((-1,), name="reshape_flat")(x)  # 144
    out = L.Dense(3, name="logits")(x)
    return K.Model(x_in, out, name="normalization_reshape")


def _keras2_hard_sigmoid(x):
    """tf_keras' hard_sigmoid, clip(0.2 x + 0.5, 0, 1), written with Keras 3 ops
    (Keras 3's is relu6(x + 3) / 6): the Keras 3 reference twin of a Keras 2 file."""
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def hard_activations(K, keras2_semantics=False):
    """MobileNetV3's arithmetic as keras.applications writes it:
    hard_sigmoid(x) = layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0) and hard swish
    layers.Multiply()([x, hard_sigmoid(x)]); a tensor-tensor `x + y` (ConvNeXt's
    residual); `x - 0.5`, `2.0 * x`, `x / 4.0` as Python operators; the Activation
    string "hard_sigmoid" on the input (fixture input uniform in [-4, 4]) and fused
    into a Conv2D; Keras 3 only: Activation("hard_silu") and Activation("hard_swish")
    (tf_keras has neither: "Unknown activation function 'hard_silu'").

    Keras 2 (tf_keras 2.21) records the operators as TFOpLambda layers
    (`tf.__operators__.add`, `tf.math.multiply`, `tf.math.subtract`,
    `tf.math.truediv`) whose inbound node carries the other operand in kwargs
    ({"y": 3.0} or {"y": [layer, node, tensor]}); `2.0 * x` becomes
    ["_CONSTANT_VALUE", -1, 2.0, {"y": [x]}]. Keras 3 (3.15) records operation
    layers (module keras.src.ops.numpy, classes Add, Multiply, Subtract,
    TrueDivide) with the constant among the call args. Keras 3's legacy .h5
    loader cannot read such a file back (it takes Add/Multiply for the merge
    layers and refuses constant positional args; TrueDivide is unknown), so the
    Keras 3 case is written as .keras only.

    hard_sigmoid differs: Keras 2 clip(0.2 x + 0.5, 0, 1), Keras 3 relu6(x + 3) / 6.
    The two versions therefore get separate cases: `hard_activations` (Keras 3,
    keras3-zip) and `hard_activations_k2` (the tf_keras file; its references come
    from a Keras 3 twin using Keras 2's definition, `keras2_semantics=True`, checked
    against tf_keras' own output and activations)."""
    L = K.layers
    keras3 = K is keras and not keras2_semantics
    hard_sigmoid = _keras2_hard_sigmoid if (K is keras and keras2_semantics) else "hard_sigmoid"
    x_in = K.Input(shape=(10, 10, 3), name="input")
    h = L.Activation(hard_sigmoid, name="act_hard_sigmoid")(x_in)        # on [-4, 4]: both kinks of both definitions
    x = L.Conv2D(6, 3, padding="same", name="conv1")(x_in)
    hs = L.ReLU(6.0, name="hsig_relu6")(x + 3.0) * (1.0 / 6.0)           # MobileNetV3 hard_sigmoid
    x = L.Multiply(name="hswish")([x, hs])                                # MobileNetV3 hard_swish (tf_keras)
    y = L.Conv2D(6, 1, name="conv2")(x)
    x = x + y                                                             # tensor + tensor
    x = x - 0.5
    x = 2.0 * x
    x = x / 4.0
    x = L.Conv2D(3, 1, activation=hard_sigmoid, name="conv3_hsig")(x)
    x = L.Concatenate(name="concat")([x, h])
    if keras3:
        a = L.Activation("hard_silu", name="act_hard_silu")(x)
        b = L.Activation("hard_swish", name="act_hard_swish")(x)       # MobileNetV3 hard_swish (Keras 3)
        x = L.Add(name="add_hard")([a, b])
    x = L.Conv2D(6, 3, padding="same", name="conv4")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(4, name="logits")(x)
    return K.Model(x_in, out, name="hard_activations")


def hard_activations_k2(K):
    """tf_keras file of `hard_activations` (no hard_silu / hard_swish); built with
    K = keras it is the Keras 3 reference twin with Keras 2's hard_sigmoid."""
    return hard_activations(K, keras2_semantics=True)


def _convnext_block(K, x_in, dim, name, drop_path_rate):
    """keras.applications.convnext.ConvNeXtBlock with DepthwiseConv2D for the 7x7
    depthwise convolution (the applications write Conv2D(groups=dim), which
    ConvLens refuses: see unsupported_groups)."""
    L = K.layers
    cv, _ = _applications(K)
    x = L.DepthwiseConv2D(7, padding="same", name=f"{name}_depthwise_conv")(x_in)
    x = L.LayerNormalization(epsilon=1e-6, name=f"{name}_layernorm")(x)
    x = L.Dense(4 * dim, name=f"{name}_pointwise_conv_1")(x)
    x = L.Activation("gelu", name=f"{name}_gelu")(x)
    x = L.Dense(dim, name=f"{name}_pointwise_conv_2")(x)
    x = cv.LayerScale(1e-6, dim, name=f"{name}_layer_scale")(x)
    if drop_path_rate:
        layer = cv.StochasticDepth(drop_path_rate, name=f"{name}_stochastic_depth")
    else:
        layer = L.Activation("linear", name=f"{name}_identity")
    return x_in + layer(x)


def convnext_block(K):
    """Miniature ConvNeXt as keras.applications.convnext builds it: a nested
    Sequential stem (Conv2D 2x2 stride 2 + LayerNormalization(epsilon=1e-6)), two
    blocks (DepthwiseConv2D 7x7 same → LayerNormalization → Dense(4C) on the 4-D
    tensor → gelu → Dense(C) → LayerScale (random gamma) → Activation('linear'),
    resp. StochasticDepth(0.3), identity at inference → residual `x + y`), a nested
    Sequential downsampling block (LayerNormalization + Conv2D 2x2 stride 2), an
    InceptionResNetV2 CustomScaleLayer(scale=0.17) on two tensors (x + b * 0.17),
    LayerNormalization with center=False and with scale=False, and the head
    GlobalAveragePooling2D → LayerNormalization → Dense(softmax).
    LayerScale, StochasticDepth and CustomScaleLayer come from the applications
    modules of each version; tf_keras registers only CustomScaleLayer (class name
    "Custom>CustomScaleLayer" in its files). The residual `x + y` is an operation
    layer in Keras 3 (keras.src.ops.numpy Add), which its legacy .h5 loader cannot
    read back, so Keras 3 writes this case as .keras only.
    Nested layers are addressed by path, e.g. "stem/stem_conv"."""
    L = K.layers
    _, ir = _applications(K)
    x_in = K.Input(shape=(16, 16, 3), name="input")
    stem = K.Sequential([
        L.Conv2D(8, 2, strides=2, name="stem_conv"),
        L.LayerNormalization(epsilon=1e-6, name="stem_layernorm"),
    ], name="stem")
    x = stem(x_in)                                                      # 8x8x8
    x = _convnext_block(K, x, 8, "block0", drop_path_rate=0.0)
    x = _convnext_block(K, x, 8, "block1", drop_path_rate=0.3)
    down = K.Sequential([
        L.LayerNormalization(epsilon=1e-6, name="downsampling_layernorm"),
        L.Conv2D(16, 2, strides=2, name="downsampling_conv"),
    ], name="downsampling_block")
    x = down(x)                                                         # 4x4x16
    b = L.Conv2D(16, 1, name="branch_conv")(x)
    x = ir.CustomScaleLayer(scale=0.17, name="custom_scale")([x, b])
    x = L.LayerNormalization(center=False, name="ln_nocenter")(x)
    x = L.LayerNormalization(scale=False, epsilon=1e-3, name="ln_noscale")(x)
    x = L.GlobalAveragePooling2D(name="head_gap")(x)
    x = L.LayerNormalization(epsilon=1e-6, name="head_layernorm")(x)
    out = L.Dense(5, activation="softmax", name="head_dense")(x)
    return K.Model(x_in, out, name="convnext_block")


def nested_base(K):
    """Deep Learning with Python §5.3: a convolutional base (a Functional model
    named `conv_base`, VGG-style layer names, one BatchNormalization) used as the
    first layer of Sequential([conv_base, Flatten(), Dense(16, relu), Dense(1,
    sigmoid)]). Activations and gradient targets of nested layers are keyed by
    their PATH in the model tree joined with '/', e.g. "conv_base/block2_conv2" —
    this is how ConvLens addresses nested layers; "conv_base" is the nested
    model's output; a key without '/' is a top-level layer."""
    L = K.layers
    c_in = K.Input(shape=(24, 24, 3), name="input")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1")(c_in)
    x = L.BatchNormalization(name="block1_bn")(x)
    x = L.MaxPooling2D(2, name="block1_pool")(x)                        # 12
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="block2_conv1")(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="block2_conv2")(x)
    x = L.MaxPooling2D(2, name="block2_pool")(x)                        # 6
    conv_base = K.Model(c_in, x, name="conv_base")
    return K.Sequential([
        conv_base,
        L.Flatten(name="flatten"),
        L.Dense(16, activation="relu", name="dense_1"),
        L.Dense(1, activation="sigmoid", name="dense_2"),
    ], name="nested_base")


def nested_deep(K):
    """Nesting depth 3: the top Functional model `nested_deep` calls a Functional
    `outer` that calls a Sequential `middle` (no InputLayer of its own, as
    ConvNeXt's stem). `middle` has a layer named "bn" and so has the top level:
    the bare name "bn" names two layers. Keys are paths joined with '/' (how
    ConvLens addresses nested layers): "outer/middle/inner_conv",
    "outer/middle/bn"; "bn" (no '/') is the top-level BatchNormalization;
    "outer/middle" and "outer" are the nested models' outputs."""
    L = K.layers
    middle = K.Sequential([
        L.Conv2D(6, 3, padding="same", name="inner_conv"),
        L.BatchNormalization(name="bn"),
        L.ReLU(name="inner_relu"),
    ], name="middle")
    o_in = K.Input(shape=(10, 10, 4), name="outer_input")
    a = L.Conv2D(6, 1, name="proj")(o_in)
    b = middle(a)
    o = L.Add(name="outer_add")([a, b])
    outer = K.Model(o_in, o, name="outer")
    x_in = K.Input(shape=(12, 12, 3), name="input")
    x = L.Conv2D(4, 3, name="conv")(x_in)                                # 10x10x4
    x = outer(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, name="logits")(x)
    return K.Model(x_in, out, name="nested_deep")


def unsupported_upsampling(K):
    L = K.layers
    x_in = K.Input(shape=(8, 8, 2), name="input")
    x = L.Conv2D(3, 3, padding="same", name="conv")(x_in)
    x = L.UpSampling2D(2, name="upsample_x2")(x)
    out = L.Conv2D(2, 1, name="head")(x)
    return K.Model(x_in, out, name="unsupported_upsampling")


def unsupported_groups(K):
    L = K.layers
    x_in = K.Input(shape=(8, 8, 4), name="input")
    x = L.Conv2D(4, 3, groups=2, padding="same", name="grouped_conv")(x_in)
    out = L.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(x_in, out, name="unsupported_groups")


# --------------------------------------------------------------------------
# case table
# --------------------------------------------------------------------------
# name, builder, formats, activation layers, gradient-wrt layer, extra batch sizes, notes
CASES = [
    dict(name="rescale_maxpool", build=rescale_maxpool, formats=ALL_FORMATS,
         acts=["rescale", "conv1", "gmp_keep", "scale_by_max", "gmp"], wrt="conv1", input="normal",
         notes="Rescaling(1/127.5, offset -1) on 0-255 input; GlobalMaxPooling2D keepdims and not"),
    dict(name="smooth_activations", build=smooth_activations, formats=ALL_FORMATS,
         acts=["conv_swish", "conv_gelu", "act_elu", "elu_layer", "act_selu", "conv_softplus", "act_silu"],
         wrt="conv_gelu", input="normal",
         notes="swish/silu, elu (string and ELU layer alpha 0.7), exact gelu, selu, softplus"),
    dict(name="squeeze_excite_concat", build=squeeze_excite_concat, formats=ALL_FORMATS,
         acts=["se_squeeze", "se_expand", "se_excite", "concat", "product3"], wrt="se_excite", input="normal",
         notes="Multiply with (1,1,C) broadcasting (squeeze-excite) and of three tensors; Concatenate on the channel axis"),
    dict(name="seq_conv_basic", build=seq_conv_basic, formats=ALL_FORMATS,
         acts=["conv1", "conv2", "pool", "fc1"], wrt="conv3", batches=(1, 2), input="normal",
         notes="Sequential; odd input, same/stride 2 on odd size; softmax Dense head"),
    dict(name="conv_options", build=conv_options, formats=ALL_FORMATS,
         acts=["conv_same_s2_even", "conv_dil2_valid", "conv_rect_same", "conv_softmax"],
         wrt="conv_valid_s2_odd", input="normal",
         notes="Conv2D paddings/strides on odd and even sizes, dilation 2, no bias, rectangular kernel and strides, softmax activation on a conv"),
    dict(name="conv_even_strides", build=conv_even_strides, formats=ALL_FORMATS,
         acts=["conv_valid_s2_even", "conv_same_s2_odd", "conv_k2_same"], wrt="conv_k2_same", input="normal",
         notes="sigmoid final output (gradient of the sigmoid output)"),
    dict(name="depthwise", build=depthwise, formats=ALL_FORMATS,
         acts=["dw_same_m1", "dw_s2_same_m2", "dw_valid_m2", "bn", "gap_keep"], wrt="dw_s2_same_odd",
         input="normal", notes="DepthwiseConv2D multiplier 1 and 2, stride 2 same on even and odd; GAP keepdims=True"),
    dict(name="activations_bn", build=activations_bn, formats=ALL_FORMATS,
         acts=["bn_full", "dense_4d", "bn_noscale", "relu_leaky", "bn_nocenter", "relu_threshold",
               "bn_bare", "relu_all_options", "act_sigmoid", "act_tanh", "relu_6", "act_softmax_4d"],
         wrt="relu_threshold", input="normal",
         notes="BatchNormalization with/without scale/center, ReLU options, Activation layers, Dense on 4-D"),
    dict(name="keras3_relu6", build=keras3_relu6, formats=K3_FORMATS,
         acts=["conv_relu6", "act_relu6", "dw_relu6"], wrt="dw_relu6", input="normal",
         notes="'relu6' activation strings (Keras 3 only); 4-D output (1,1,1,4) from a softmax Conv2D head"),
    dict(name="pooling", build=pooling, formats=ALL_FORMATS,
         acts=["mp_2_valid", "mp_3_s2_same", "ap_3_s1_valid", "ap_2_s2_same", "mp_3_s1_same",
               "ap_2_valid", "mp_3_s2_valid", "ap_3_s2_same", "mp_2x3_valid", "add"],
         wrt="conv0", input="normal",
         notes="Max/Average pooling valid/same, pool 2/3/(2,3), strides; two branches joined by Add of GAP vectors"),
    dict(name="zeropad", build=zeropad, formats=ALL_FORMATS,
         acts=["zp_int", "zp_pair", "zp_pairs", "conv3"], wrt="zp_pairs", input="normal",
         notes="ZeroPadding2D int, pair, pair of pairs (Sequential)"),
    dict(name="residual", build=residual, formats=ALL_FORMATS,
         acts=["stem_relu", "b1_add", "b1_out", "b2_proj_bn", "b2_add", "gap"], wrt="b2_out", input="normal",
         notes="ResNet-like residual blocks with identity and projection shortcuts"),
    dict(name="mobilenetv2_block", build=mobilenetv2_block, formats=ALL_FORMATS,
         acts=["Conv1_relu", "block_1_pad", "block_1_depthwise", "block_1_project_BN", "block_2_add", "out_relu"],
         wrt="out_relu", input="normal",
         notes="MobileNetV2-like: ReLU(6), ZeroPadding2D + DepthwiseConv2D stride 2 valid, inverted residual Add"),
    dict(name="shared_layer", build=shared_layer, formats=ALL_FORMATS,
         acts=["stem", "mid_relu", "add"], wrt="mid_relu", input="normal",
         notes="Conv2D 'shared_conv' called on two inbound nodes (shared weights); no activation file for it"),
    dict(name="book_convnet", build=book_convnet, formats=ALL_FORMATS, compile=True, fixed_strings=True,
         acts=["conv2d_1", "max_pooling2d_2", "conv2d_4", "dense_1"], wrt="conv2d_4", input="uniform",
         notes="DLwP §5.2 convnet, reduced width, 48x48; sigmoid output (gradient of the sigmoid output); "
               "saved compiled (RMSprop, binary_crossentropy: training_config and optimizer state in the files); "
               "variant keras2-h5-fixedstr: string attributes as fixed-length bytes like Keras 2.0-2.2/h5py 2 files"),
    dict(name="softmax_classifier", build=softmax_classifier, formats=ALL_FORMATS,
         acts=["conv1", "bn1", "pool1", "gap", "logits"], wrt="conv2", input="uniform",
         notes="1-channel input; softmax as a separate Activation layer; pre-softmax gradient = gradient of 'logits'"),
    dict(name="dynamic_input", build=dynamic_input, formats=ALL_FORMATS, shape=(20, 22, 3),
         acts=["conv2", "add3"], wrt="conv2", input="normal",
         notes="Input shape (None, None, 3) in the model file, fed 20x22; Add of 3 inputs; Dense use_bias=False"),
    dict(name="separable_crop", build=separable_crop, formats=ALL_FORMATS,
         acts=["sep_same_m1", "crop_sym", "ap_3_s1_same", "sep_s2_same_m2_nobias", "sep_dil2_relu",
               "crop_asym", "sep_valid_m2"],
         wrt="crop_asym", input="normal",
         notes="SeparableConv2D multiplier 1/2, stride 2 same on odd, dilation 2, valid, no bias, fused relu; "
               "Cropping2D int and ((1,2),(0,1)); AveragePooling2D 3x3 stride 1 same (InceptionV3/NASNet)"),
    dict(name="normalization_reshape", build=normalization_reshape, formats=ALL_FORMATS,
         acts=["norm_adapted", "norm_const", "rescale_channels", "prelu_shared", "se_reshape", "se_excite",
               "leaky", "prelu_full", "reshape_flat"],
         wrt="prelu_shared", input="normal",
         notes="Normalization adapted (weights mean/variance/count) and with constructor mean/variance (config); "
               "Rescaling per-channel scale/offset lists; SE branch GAP -> Reshape((1,1,C)) -> 1x1 convs -> Multiply; "
               "PReLU shared_axes [1,2] and unshared, random alphas; LeakyReLU 0.15; Reshape((-1,)) before Dense"),
    dict(name="hard_activations", build=hard_activations, formats=K3_FORMATS, keras_cannot_reload=("keras3-h5",),
         acts=["act_hard_sigmoid", "hsig_relu6", "hswish", "conv2", "conv3_hsig", "concat",
               "act_hard_silu", "act_hard_swish", "add_hard"],
         wrt="hswish", input="uniform4",
         notes="Keras 3.15 definitions: hard_sigmoid = relu6(x+3)/6, hard_silu/hard_swish = x*relu6(x+3)/6; "
               "MobileNetV3 arithmetic as operation layers (keras.src.ops.numpy Add/Multiply/Subtract/TrueDivide, "
               "constants among the call args); the keras3-h5 file is written by Keras 3 but Keras 3 cannot re-load "
               "op layers from legacy .h5 (no module in the config), so it is not reload-checked; "
               "input uniform in [-4, 4]; Keras 2 file: hard_activations_k2"),
    dict(name="hard_activations_k2", build=hard_activations_k2, formats=("keras2-h5",),
         acts=["act_hard_sigmoid", "hsig_relu6", "hswish", "conv2", "conv3_hsig", "concat"],
         wrt="hswish", input="uniform4",
         notes="tf_keras 2.21 file of hard_activations: Keras 2 hard_sigmoid = clip(0.2x+0.5, 0, 1) "
               "(references from a Keras 3 twin with that definition, checked against tf_keras); "
               "operators as TFOpLambda (tf.__operators__.add, tf.math.multiply/subtract/truediv) with the "
               "other operand in the inbound node's kwargs; 2.0*x as [\"_CONSTANT_VALUE\", -1, 2.0, {\"y\": x}]; "
               "no hard_silu/hard_swish (tf_keras has none); input uniform in [-4, 4]"),
    dict(name="convnext_block", build=convnext_block, formats=ALL_FORMATS, keras_cannot_reload=("keras3-h5",),
         custom_objects=APPLICATION_OBJECTS,
         acts=["stem/stem_conv", "stem", "block0_layernorm", "block0_gelu", "block0_layer_scale",
               "block1_stochastic_depth", "downsampling_block/downsampling_layernorm", "downsampling_block",
               "custom_scale", "ln_nocenter", "ln_noscale", "head_layernorm"],
         wrt=["block0_gelu", "stem/stem_conv"], input="normal",
         notes="mini ConvNeXt: nested Sequential stem/downsampling (no InputLayer), DepthwiseConv2D 7x7, "
               "LayerNormalization (eps 1e-6; center=False; scale=False), Dense on 4-D, gelu, LayerScale "
               "(random gamma), Activation linear / StochasticDepth(0.3) (identity), residual x + y "
               "(TFOpLambda / ops Add), CustomScaleLayer(scale 0.17), GAP -> LayerNormalization -> softmax Dense; "
               "keras3-h5 not reload-checked (Keras 3 cannot re-load op layers from legacy .h5); nested layers keyed by path"),
    dict(name="nested_base", build=nested_base, formats=ALL_FORMATS,
         acts=["conv_base/block1_conv1", "conv_base/block1_bn", "conv_base/block1_pool",
               "conv_base/block2_conv2", "conv_base", "dense_1"],
         wrt="conv_base/block2_conv2", input="uniform",
         notes="DLwP §5.3: Functional conv_base as first layer of a Sequential; nested layers keyed by "
               "path 'conv_base/LAYER' ('conv_base' = its output); sigmoid output"),
    dict(name="nested_deep", build=nested_deep, formats=ALL_FORMATS,
         acts=["conv", "outer/proj", "outer/middle/inner_conv", "outer/middle/bn", "outer/middle", "outer",
               "bn", "gap"],
         wrt=["outer/middle/inner_conv", "bn"], input="normal",
         notes="nesting depth 3 (Functional > Functional 'outer' > Sequential 'middle'); 'bn' is both a "
               "top-level layer and outer/middle/bn: keys are paths, 'bn' (no '/') is the top-level one"),
]

BAD_MODELS = [
    dict(name="unsupported_upsampling", build=unsupported_upsampling, formats=ALL_FORMATS,
         layer="upsample_x2", cls="UpSampling2D"),
    dict(name="unsupported_groups", build=unsupported_groups, formats=ALL_FORMATS,
         layer="grouped_conv", cls="Conv2D", extra="groups"),
]


def seed_of(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def make_input(rng, shape, kind):
    if kind == "uniform":
        return rng.uniform(0.0, 1.0, shape).astype(np.float32)
    if kind == "uniform4":
        return rng.uniform(-4.0, 4.0, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def build_pair(case, rng):
    """Keras 3 model with random weights, and (if needed) the tf_keras twin."""
    # fresh name counters: auto-generated names (operation layers, TFOpLambda)
    # must not depend on which cases ran before
    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    keras.utils.set_random_seed(seed_of(case["name"]))
    m3 = case["build"](keras)
    fc.randomize_weights(m3, rng)
    m2 = None
    if "keras2-h5" in case["formats"]:
        tf_keras.utils.set_random_seed(seed_of(case["name"]))
        m2 = case["build"](tf_keras)
        fc.copy_weights_by_name(m3, m2)
    if case.get("compile"):
        # as a trained model would be saved: training_config + optimizer state
        for m, K in ((m3, keras), (m2, tf_keras)):
            if m is None:
                continue
            m.compile(optimizer=K.optimizers.RMSprop(learning_rate=1e-4),
                      loss="binary_crossentropy", metrics=["acc"])
            m.optimizer.build(m.trainable_variables)
    return m3, m2


def save_formats(case, m3, m2, out_dir, x_check, y_check):
    files = []  # (variant, format, file name)
    for fmt in case["formats"]:
        fname = case["name"] + SUFFIX[fmt]
        path = os.path.join(out_dir, fname)
        if fmt == "keras2-h5":
            if os.path.exists(path):
                os.remove(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m2.save(path)
        else:
            fc.save_keras3(m3, path)
        # Keras 3 writes operation layers (x + 3.0) into legacy .h5 without their module
        # and then cannot read them back; such files are written but not reload-checked.
        if y_check is not None and fmt not in case.get("keras_cannot_reload", ()):
            fc.check_reload(path, fmt, x_check, y_check, custom_objects=case.get("custom_objects"))
        files.append((fmt, fmt, fname))
        if fmt == "keras2-h5" and case.get("fixed_strings"):
            fname2 = case["name"] + ".k2fixed.h5"
            path2 = os.path.join(out_dir, fname2)
            fixed_length_strings(path, path2)
            if y_check is not None:
                fc.check_reload(path2, fmt, x_check, y_check)
            files.append(("keras2-h5-fixedstr", fmt, fname2))
    return files


def fixed_length_strings(src, dst):
    """Copy an HDF5 model file, rewriting every string attribute (scalar or
    array) as fixed-length byte strings, as Keras 2.0-2.2 with h5py 2.x wrote
    them (e.g. the book's saved models); h5py 3 writes variable-length ones."""
    import shutil
    import h5py
    shutil.copyfile(src, dst)

    def fix(obj):
        for k in list(obj.attrs):
            v = obj.attrs[k]
            if isinstance(v, (str, bytes)):
                b = v.encode() if isinstance(v, str) else v
                del obj.attrs[k]
                obj.attrs[k] = np.bytes_(b)
            elif isinstance(v, np.ndarray) and v.dtype.kind in "OSU" and v.size > 0:
                arr = np.array([x.encode() if isinstance(x, str) else bytes(x) for x in v.ravel()])
                del obj.attrs[k]
                obj.attrs[k] = arr.reshape(v.shape)

    with h5py.File(dst, "r+") as f:
        fix(f)
        f.visititems(lambda name, obj: fix(obj))


def saved_config(path):
    """The model config stored in a saved file (.h5 attribute model_config or
    the .keras zip's config.json)."""
    if path.endswith(".keras"):
        import zipfile
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("config.json"))
    import h5py
    with h5py.File(path, "r") as f:
        v = f.attrs["model_config"]
        return json.loads(v.decode() if isinstance(v, bytes) else v)


def config_classes(cfg):
    """class_name of every layer entry in a model config, nested models'
    layers included (the nested models' own classes too), plus InputLayer.
    Includes tf_keras' TFOpLambda and Keras 3 operation layers (e.g. class
    Add of module keras.src.ops.numpy) as the file records them."""
    out = {"InputLayer"}
    for entry in cfg["config"]["layers"]:
        out.add(entry["class_name"])
        if entry["class_name"] in ("Functional", "Sequential", "Model"):
            out |= config_classes(entry)
    return out


def file_key(layer_key):
    """A layer key in a file name: a nested layer's path "a/b/c" becomes
    "a__b__c" (the manifest maps keys to files)."""
    return layer_key.replace("/", "__")


def run_case(case, out_dir, manifest):
    name = case["name"]
    rng = np.random.default_rng(seed_of(name))
    m3, m2 = build_pair(case, rng)
    in_shape = tuple(case.get("shape") or m3.inputs[0].shape[1:])
    logits_model, pre_softmax = fc.linear_head_clone(m3)

    first = None
    for b in case.get("batches", (1,)):
        tag = name if b == 1 else f"{name}_b{b}"
        x = make_input(rng, (b,) + in_shape, case["input"])
        y = fc.predict(m3, x)
        if m2 is not None:
            y2 = np.asarray(m2(tf.constant(x), training=False))
            d = float(np.max(np.abs(y2 - y)))
            assert d <= 1e-5 * max(1.0, float(np.max(np.abs(y)))), f"{name}: tf_keras differs by {d}"
        logits = fc.predict(logits_model, x)
        k = int(np.argmax(logits[0].reshape(-1)))
        grads = fc.gradients(logits_model, x, k, case["wrt"])
        acts = fc.activations(m3, x, case["acts"])
        if m2 is not None:
            # the tf_keras twin agrees layer by layer too (top-level layers, not nested models)
            for lname, a in acts.items():
                if "/" in lname or isinstance(m2.get_layer(lname), tf_keras.Model):
                    continue
                a2 = np.asarray(tf_keras.Model(m2.inputs, m2.get_layer(lname).output)(tf.constant(x), training=False))
                d = float(np.max(np.abs(a2 - a)))
                assert d <= 1e-5 * max(1.0, float(np.max(np.abs(a)))), f"{name}: tf_keras {lname} differs by {d}"
        for arr, what in [(y, "output")] + [(v, "grad") for v in grads.values()]:
            assert np.all(np.isfinite(arr)), f"{tag}: non-finite {what}"
        assert np.any(grads["input"] != 0), f"{tag}: zero input gradient"

        fc.save_npy(os.path.join(out_dir, f"{tag}.input.npy"), x)
        fc.save_npy(os.path.join(out_dir, f"{tag}.output.npy"), y)
        act_files = {}
        for lname, a in acts.items():
            f = f"{tag}.act.{file_key(lname)}.npy"
            fc.save_npy(os.path.join(out_dir, f), a)
            act_files[lname] = f
        wrt_files = {}
        for key, g in grads.items():
            f = f"{tag}.grad.{file_key(key)}.npy"
            fc.save_npy(os.path.join(out_dir, f), g)
            wrt_files[key] = f
        if first is None:
            files = save_formats(case, m3, m2, out_dir, x, y)
            first = files
            classes = {f: sorted(config_classes(saved_config(os.path.join(out_dir, f)))) for _, _, f in files}
        for variant, fmt, fname in first:
            manifest.append({
                "kind": "ok",
                "name": f"{tag}.{variant}",
                "case": tag,
                "model": fname,
                "format": fmt,
                "input": f"{tag}.input.npy",
                "output": f"{tag}.output.npy",
                "activations": act_files,
                "gradients": {
                    "output_index": k,
                    "pre_softmax": pre_softmax,
                    "target": "sum over batch of y[b].flat[output_index]",
                    "wrt": wrt_files,
                },
                "layers": classes[fname],
                "notes": case.get("notes", ""),
            })
        print(f"{tag}: input {x.shape} output {y.shape} k={k} pre_softmax={pre_softmax} "
              f"|y|max={np.abs(y).max():.3g} |dx|max={np.abs(grads['input']).max():.3g}", flush=True)


def run_bad(out_dir, manifest):
    for bad in BAD_MODELS:
        rng = np.random.default_rng(seed_of(bad["name"]))
        m3, m2 = build_pair(bad, rng)
        files = save_formats(bad, m3, m2, out_dir, None, None)
        for variant, fmt, fname in files:
            must = [bad["layer"], bad["cls"]] + ([bad["extra"]] if "extra" in bad else [])
            manifest.append({
                "kind": "bad",
                "name": f"{bad['name']}.{variant}",
                "model": fname,
                "format": fmt,
                "expect_error_contains": bad["layer"],
                "expect_error_contains_all": must,
                "notes": f"unsupported layer '{bad['layer']}' of class {bad['cls']}"
                         + (f" (option {bad['extra']})" if "extra" in bad else ""),
            })

    def put(fname, data):
        with open(os.path.join(out_dir, fname), "wb") as f:
            f.write(data)

    put("bad_text.h5", b"This is a plain text file, not an HDF5 file.\n")
    manifest.append({"kind": "bad", "name": "bad_text.h5", "model": "bad_text.h5", "format": "keras3-h5",
                     "expect_error_contains": "not an HDF5",
                     "expect_error_contains_all": ["not an HDF5"],
                     "notes": "text file with an .h5 name"})
    put("bad_empty.h5", b"")
    manifest.append({"kind": "bad", "name": "bad_empty.h5", "model": "bad_empty.h5", "format": "keras3-h5",
                     "expect_error_contains": "empty",
                     "expect_error_contains_all": ["empty"],
                     "notes": "zero-byte file"})
    put("bad_empty.keras", b"")
    manifest.append({"kind": "bad", "name": "bad_empty.keras", "model": "bad_empty.keras", "format": "keras3-zip",
                     "expect_error_contains": "empty",
                     "expect_error_contains_all": ["empty"],
                     "notes": "zero-byte file"})
    for src, dst, fmt in [("seq_conv_basic.k3.h5", "bad_truncated.h5", "keras3-h5"),
                          ("seq_conv_basic.k2.h5", "bad_truncated.k2.h5", "keras2-h5"),
                          ("seq_conv_basic.keras", "bad_truncated.keras", "keras3-zip")]:
        data = open(os.path.join(out_dir, src), "rb").read()
        put(dst, data[: len(data) // 2])
        manifest.append({"kind": "bad", "name": dst, "model": dst, "format": fmt,
                         "expect_error_contains": "truncated",
                         "expect_error_contains_all": ["truncated"],
                         "notes": f"first half ({len(data) // 2} of {len(data)} bytes) of {src}"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "Tests", "Fixtures", "keras"))
    ap.add_argument("--only", nargs="*", help="case names to (re)generate (manifest still lists only these)")
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    manifest = []
    for case in CASES:
        if args.only and case["name"] not in args.only:
            continue
        run_case(case, out_dir, manifest)
    if not args.only:
        run_bad(out_dir, manifest)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"wrote {len(manifest)} manifest entries to {out_dir}")


if __name__ == "__main__":
    main()
