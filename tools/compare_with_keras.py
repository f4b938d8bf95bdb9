#!/usr/bin/env python3
"""Compare ConvLens' numbers with Keras' on a fixture-format manifest.

Runs the `convlens` executable (activations, predict, gradient) on every "ok"
entry of a manifest written by make_fixtures.py or check_applications.py and
prints, per model: max relative error of the output, of each activation and of
each gradient, with the error measure of the parity tests:

    rel = max|ours - keras| / (1 + max|keras|)      (pass: rel <= 1e-4)

Usage:
    python tools/compare_with_keras.py /tmp/apps/manifest.json --convlens .build/release/convlens
Needs only numpy. Not used by CI (the Swift tests do the same on the committed fixtures).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def rel(ours, ref):
    return float(np.abs(ours - ref).max() / (1.0 + np.abs(ref).max()))


def run(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--convlens", default=".build/release/convlens")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    base = os.path.dirname(os.path.abspath(args.manifest))
    entries = [e for e in json.load(open(args.manifest)) if e.get("kind", "ok") == "ok"]
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.npy")
        print(f"{'model':34} {'what':34} {'max rel err':>12}")
        for e in entries:
            p = lambda k: os.path.join(base, k)
            model, x = p(e["model"]), p(e["input"])
            rows = []
            ref_out = np.load(p(e["output"]))
            if ref_out.shape[0] == 1:  # predict takes one sample; batches are checked through activations/gradients
                res = subprocess.run([args.convlens, "predict", "--model", model, "--input", x, "--json", "--top", "1"],
                                     check=True, capture_output=True, text=True)
                ours = np.array(json.loads(res.stdout)["output"], dtype=np.float32)
                rows.append(("output", rel(ours, ref_out.reshape(-1))))
            for layer, f in e.get("activations", {}).items():
                run([args.convlens, "activations", "--model", model, "--input", x, "--layer", layer, "--format", "npy", "-o", out])
                rows.append((f"activation {layer}", rel(np.load(out), np.load(p(f)))))
            g = e.get("gradients")
            if g:
                for wrt, f in g["wrt"].items():
                    cmd = [args.convlens, "gradient", "--model", model, "--input", x,
                           "--output-index", str(g["output_index"]), "--wrt", wrt, "-o", out]
                    if not g.get("pre_softmax", False):
                        # Keras differentiated the model's own output (a sigmoid head, or post-softmax).
                        cmd.append("--post-softmax")
                    run(cmd)
                    rows.append((f"gradient wrt {wrt}", rel(np.load(out), np.load(p(f)))))
            for what, r in rows:
                worst = max(worst, r) if r == r else worst
                flag = "" if not (r == r) or r <= args.tolerance else "  FAIL"
                print(f"{e['name']:34} {what:34} {r:12.2e}{flag}")
    print(f"worst relative error: {worst:.2e} (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
