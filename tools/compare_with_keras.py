#!/usr/bin/env python3
"""Compare ConvLens' numbers with Keras' on a fixture-format manifest.

Runs the `convlens` executable (predict, activations, gradient) on every "ok"
entry of a manifest written by make_fixtures.py or check_applications.py and
prints, per model: max relative error of the output, of each activation and of
each gradient, with the error measure of the parity tests:

    rel = max|ours - keras| / (1 + max|keras|)      (pass: rel <= 1e-4)

A model the executable cannot load is reported with the first line of its error
message and the run goes on.

Usage:
    python tools/compare_with_keras.py /tmp/apps/manifest.json --convlens .build/release/convlens
    python tools/compare_with_keras.py /tmp/apps/manifest.json --convlens BIN --table --time [--runs 5]
        [--only VGG16 ...] [--formats keras3-zip keras2-h5]

--table (for check_applications.py's manifest) prints one Markdown row per model
and format instead: loads? (or why not), max relative error of the output, of
the gradient of the top logit at the default CAM layer (the manifest's
"default_cam_layer_expected", Keras' gradient from check_applications.py) and at
the input, the default layer (`convlens summary --json`'s "default_cam_layer" /
the Python rule's; "n/a" when the executable does not report one), and forward
milliseconds ConvLens / TensorFlow / ratio. --time takes ConvLens' time from
`convlens bench --model FILE --forward-only --runs N --threads T --json`
(median, batch 1; "n/a" if the executable has no such option); TensorFlow's is
the manifest's "tf_forward_ms" (check_applications.py, same threads).
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
    if ours.shape != ref.shape and ours.size == ref.size:
        ours = ours.reshape(ref.shape)
    if ours.shape != ref.shape:
        return float("nan")
    return float(np.abs(ours - ref).max() / (1.0 + np.abs(ref).max()))


class Failed(Exception):
    """The executable failed; str() is the first line of its error message."""


def call(cmd, timeout=3600):
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        lines = [l.strip() for l in (res.stderr + "\n" + res.stdout).splitlines() if l.strip()]
        first = lines[0] if lines else f"exit status {res.returncode}"
        raise Failed(first[len("Error: "):] if first.startswith("Error: ") else first)
    return res.stdout, time.perf_counter() - t0


def predict(binary, model, x):
    out, _ = call([binary, "predict", "--model", model, "--input", x, "--json", "--top", "1"])
    return np.array(json.loads(out)["output"], dtype=np.float32)


def gradient(binary, model, x, g, wrt, out):
    cmd = [binary, "gradient", "--model", model, "--input", x, "--output-index", str(g["output_index"]),
           "--wrt", wrt, "-o", out]
    if not g.get("pre_softmax", False):
        # Keras differentiated the model's own output (a sigmoid head, or post-softmax).
        cmd.append("--post-softmax")
    call(cmd)
    return np.load(out)


def bench(binary, model, runs, threads):
    """ConvLens' forward median in ms, or (None, why)."""
    try:
        out, _ = call([binary, "bench", "--model", model, "--forward-only", "--runs", str(runs),
                       "--threads", str(threads), "--json"])
    except Failed as e:
        return None, str(e)
    for line in reversed(out.strip().splitlines()):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d.get("line") == "forward" and "ms_median" in d:
            return float(d["ms_median"]), ""
    return None, "no forward line in the output"


def details(args, entries, base):
    """The per-case listing (every activation and gradient of the manifest)."""
    worst, failures = 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.npy")
        print(f"{'model':34} {'what':34} {'max rel err':>12}")
        for e in entries:
            p = lambda k: os.path.join(base, k)
            model, x = p(e["model"]), p(e["input"])
            rows = []
            try:
                ref_out = np.load(p(e["output"]))
                if ref_out.shape[0] == 1:  # predict takes one sample; batches are checked through activations/gradients
                    rows.append(("output", rel(predict(args.convlens, model, x), ref_out.reshape(-1))))
                for layer, f in e.get("activations", {}).items():
                    call([args.convlens, "activations", "--model", model, "--input", x, "--layer", layer,
                          "--format", "npy", "-o", out])
                    rows.append((f"activation {layer}", rel(np.load(out), np.load(p(f)))))
                g = e.get("gradients")
                if g:
                    for wrt, f in g["wrt"].items():
                        rows.append((f"gradient wrt {wrt}", rel(gradient(args.convlens, model, x, g, wrt, out),
                                                                np.load(p(f)))))
            except Failed as err:
                failures += 1
                rows.append((f"FAILED: {err}", float("nan")))
            if args.time:
                ms, why = bench(args.convlens, model, args.runs, args.threads)
                tf_ms = e.get("tf_forward_ms")
                rows.append((f"forward ms ConvLens {ms if ms is not None else 'n/a'}"
                             f" / TF {tf_ms if tf_ms is not None else 'n/a'}", float("nan")))
            for what, r in rows:
                worst = max(worst, r) if r == r else worst
                flag = "" if not (r == r) or r <= args.tolerance else "  FAIL"
                print(f"{e['name']:34} {what:34} {r:12.2e}{flag}" if r == r else f"{e['name']:34} {what}")
    print(f"worst relative error: {worst:.2e} (tolerance {args.tolerance:g})"
          + (f"; {failures} model(s) failed" if failures else ""))
    return 0 if worst <= args.tolerance and not failures else 1


def fmt_err(r, tol):
    if r is None:
        return "–"
    if r != r:
        return "shape?"
    return f"{r:.1e}" + (" ✗" if r > tol else "")


def table(args, entries, base):
    """One Markdown row per model and format (module docstring)."""
    rows, notes, worst = [], [], 0.0

    def small(name, what, ours, ref):
        """With max|keras| << 1 the measure is about absolute: add the scale-free error."""
        m = float(np.abs(ref).max())
        if m < 0.1 and ours.size == ref.size:
            notes.append(f"{name}: {what} is small (max|keras| {m:.2g}); scale-free max|Δ|/max|keras| = "
                         f"{float(np.abs(ours.reshape(ref.shape) - ref).max()) / max(m, 1e-30):.1e}")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "g.npy")
        for e in entries:
            p = lambda k: os.path.join(base, k)
            model, x, g = p(e["model"]), p(e["input"]), e["gradients"]
            expected = e.get("default_cam_layer_expected")
            fmt = e.get("keras_format", e.get("format", ""))
            t0 = time.perf_counter()
            loads, ours_layer, r_out, r_cam, r_in, loaded = "yes", "n/a", None, None, None, False
            try:
                s, _ = call([args.convlens, "summary", "--model", model, "--json"])
                loaded = True
                ours_layer = json.loads(s).get("default_cam_layer", "n/a") or "none"
                ref = np.load(p(e["output"])).reshape(-1)
                r_out = rel(predict(args.convlens, model, x), ref)
                if expected in g["wrt"]:
                    ref = np.load(p(g["wrt"][expected]))
                    ours = gradient(args.convlens, model, x, g, expected, out)
                    r_cam = rel(ours, ref)
                    small(e["name"], f"gradient at {expected}", ours, ref)
                ref = np.load(p(g["wrt"]["input"]))
                ours = gradient(args.convlens, model, x, g, "input", out)
                r_in = rel(ours, ref)
                small(e["name"], "input gradient", ours, ref)
            except Failed as err:
                err = str(err).replace("|", "\\|")
                loads = f"yes, but: {err}" if loaded else f"no: {err}"
            for r in (r_out, r_cam, r_in):
                if r is not None and r == r:
                    worst = max(worst, r)
            ms, why = (None, "not timed (--time)")
            if args.time and loaded:
                ms, why = bench(args.convlens, model, args.runs, args.threads)
            tf_ms = e.get("tf_forward_ms")
            ratio = f"{ms / tf_ms:.2f}" if ms is not None and tf_ms else "n/a"
            timing = f"{ms:.1f}" if ms is not None else "n/a"
            timing += f" / {tf_ms:.1f}" if tf_ms is not None else " / n/a"
            if ours_layer == "n/a":
                layer = f"n/a / `{expected}`"
            else:
                match = ours_layer == expected
                layer = f"`{ours_layer}` / `{expected}` " + ("match" if match else "MISMATCH")
                if not match:
                    notes.append(f"{e['name']}: ConvLens' default layer {ours_layer!r}, expected {expected!r}")
            rows.append(f"| {e.get('app', e['case'])} | {fmt} | {loads} | {fmt_err(r_out, args.tolerance)} | "
                        f"{fmt_err(r_cam, args.tolerance)} | {fmt_err(r_in, args.tolerance)} | {layer} | "
                        f"{timing} / {ratio} |")
            print(f"  {e['name']}: {loads[:60]}  ({time.perf_counter() - t0:.0f}s"
                  + (f"; timing n/a: {why}" if args.time and ms is None and loaded else "") + ")",
                  file=sys.stderr, flush=True)
    print("| model | format | loads? | max rel err output | max rel err gradient at default CAM layer | "
          "max rel err input gradient | default layer (ConvLens / expected) | forward ms ConvLens / TF / ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print()
    print(f"Error: max|ours − keras| / (1 + max|keras|), ✗ above {args.tolerance:g}; worst {worst:.1e}. "
          f"Forward: batch 1, median, {args.threads} threads (TensorFlow: tf.function, intra-op "
          f"{args.threads}, inter-op 1).")
    for n in notes:
        print(f"- {n}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--convlens", default=".build/release/convlens")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--table", action="store_true", help="Markdown table (check_applications.py manifests)")
    ap.add_argument("--time", action="store_true", help="also time ConvLens' forward pass (convlens bench --forward-only)")
    ap.add_argument("--runs", type=int, default=10, help="timed runs for --time")
    ap.add_argument("--threads", type=int, default=2, help="threads for --time")
    ap.add_argument("--only", nargs="*", help="cases (e.g. VGG16) to compare")
    ap.add_argument("--formats", nargs="*", help="formats (e.g. keras3-zip keras2-h5) to compare")
    args = ap.parse_args()
    base = os.path.dirname(os.path.abspath(args.manifest))
    entries = [e for e in json.load(open(args.manifest)) if e.get("kind", "ok") == "ok"
               and (not args.only or e.get("case") in args.only)
               and (not args.formats or e.get("format") in args.formats)]
    return table(args, entries, base) if args.table else details(args, entries, base)


if __name__ == "__main__":
    sys.exit(main())
