#!/usr/bin/env python3
"""Save keras.applications.VGG16(weights=None) with fixed-seed random weights
as a Keras 3 legacy HDF5 file, for the Swift benchmark (the same file can be
given to tools/bench/bench_keras.py --model so both sides time the same network).

    /work/venv/bin/python tools/bench/make_vgg16.py /tmp/vgg16.h5 [--seed 1234] [--no-top]

With the top (default) the file is ~530 MB (138 M float32 parameters); it is
not meant to be committed. Weights: Keras' own initialisers (glorot uniform
kernels, zero biases) under keras.utils.set_random_seed(seed), so the file is
the same on every run with the same versions (tools/requirements.txt).
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import fixture_common as fc  # noqa: E402

fc.setup_deterministic_tf()  # before tensorflow/keras are imported

import keras  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="save a seed-fixed VGG16(weights=None) as .h5")
    ap.add_argument("path", help="output file, should end in .h5 (.keras also works)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--no-top", action="store_true", help="include_top=False (convolutional base only)")
    ap.add_argument("--size", type=int, default=224, help="input height/width (default 224)")
    args = ap.parse_args()
    keras.utils.set_random_seed(args.seed)
    model = keras.applications.VGG16(weights=None, include_top=not args.no_top,
                                     input_shape=(args.size, args.size, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc.save_keras3(model, args.path)
    print(f"saved {model.name} ({model.count_params()} parameters, input {model.input_shape}) "
          f"to {args.path} ({os.path.getsize(args.path) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
