#!/usr/bin/env python3
"""How much structure the book's filter ascent and the lucid method leave in each layer's
pictures, per layer depth: the measurement behind `method=auto` (docs/cli.md, "Filter methods").

    /work/venv/bin/python tools/filters/measure_structure.py \\
        [--convlens .build/release/convlens] [--model models/efficientnet_lite0.json] \\
        [--layers L1,L2,...] [--lucid-layers L1,...] [--count 4] [--out docs/filter-structure]

For each layer it runs `convlens filters --layer L --count N --method book|lucid` (the
CLI's defaults: 40 book steps, 256 lucid steps, the model's input size, seed 0) and reads
the PNG grid it writes: exactly the pictures a user sees. Each cell (grid: 5 px margins),
minus its mean over all pixels and channels (so a colour counts as structure), is measured:

  lf_share  share of the spectral power (Hann window, summed over R, G, B) below 1/16
            cycle/pixel: shapes of 16 px and more, and colour. The rule's statistic.
  hf_share  the same above 1/4 cycle/pixel (half the Nyquist frequency). White noise ~0.80.
  ac2       autocorrelation at a shift of 2 pixels (mean of horizontal and vertical).
            White noise ~0; structure near 1.
A cell varying by less than FLAT grey levels (std) is flat (nothing to see): counted in
flat_cells, left out of the statistics.

Writes OUT.csv (one row per layer and method: median and range over the cells) and prints
a markdown table. The pictures are kept in --keep; --reuse measures them again without
drawing. The layer's depth is its index among the gallery's convolutions
(`convlens summary --json`: spatial Conv2D/DepthwiseConv2D layers, each shown by its
activated output) divided by their number.
"""
import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image

MARGIN = 5
REUSE = False
# A cell whose pixels vary by less than this many grey levels (std) is flat: nothing to see
# (a dead filter, or a lucid picture that stayed at its grey start).
FLAT = 2.0


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r


def gallery_layers(convlens, model):
    """(convolution, shown layer) in network order, as ModelSession.galleryLayers picks them:
    a spatial Conv2D/DepthwiseConv2D shown by its BatchNorm + activation when they follow."""
    layers = json.loads(run([convlens, "summary", "--json", "--model", model]).stdout)["layers"]
    out = []
    for i, l in enumerate(layers):
        if not l["isSpatial"] or l["className"] not in ("Conv2D", "DepthwiseConv2D"):
            continue
        shown = l["name"]
        for nxt in layers[i + 1:i + 3]:
            if nxt["className"] in ("BatchNormalization", "Activation", "ReLU") and nxt["isSpatial"]:
                shown = nxt["name"]
            else:
                break
        out.append((l["name"], shown))
    assert len(set(s for _, s in out)) == len(out), "two convolutions shown by one layer"
    return out


def cells(png, size):
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    h, w, _ = img.shape
    out = []
    for top in range(0, h - size + 1, size + MARGIN):
        for left in range(0, w - size + 1, size + MARGIN):
            out.append(img[top:top + size, left:left + size])
    return out


def centred(cell):
    """The cell minus its mean over every pixel and channel: a colour (one channel above
    the others) stays as each channel's own zero-frequency power, which is structure (the
    first layers' filters are colours); grey noise has none."""
    return cell - cell.mean()


def spectrum(cell):
    """Power per spatial frequency, summed over the channels (Hann window), and each
    frequency's radius in cycles per pixel."""
    y = centred(cell)
    n, m, _ = y.shape
    win = np.outer(np.hanning(n), np.hanning(m))[..., None]
    p = (np.abs(np.fft.fft2(y * win, axes=(0, 1))) ** 2).sum(axis=2)
    r = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(m)[None, :] ** 2)
    return p, r


def hf_share(cell, cutoff=0.25):
    """Share of the power above `cutoff` cycles/pixel; nan for a flat cell (a dead filter)."""
    if cell.std() < FLAT:
        return float("nan")
    p, r = spectrum(cell)
    return float(p[r > cutoff].sum() / p.sum())


def lf_share(cell, cutoff=1 / 16):
    """Share of the power below `cutoff` cycles/pixel (shapes of 16 px and more, colour)."""
    if cell.std() < FLAT:
        return float("nan")
    p, r = spectrum(cell)
    return float(p[r < cutoff].sum() / p.sum())


def autocorrelation(cell, lag=2):
    """Correlation of the (centred) picture with itself shifted by `lag` pixels, the mean
    of the horizontal and vertical shifts."""
    if cell.std() < FLAT:
        return float("nan")
    y = centred(cell)
    e = (y * y).sum()
    return float(0.5 * ((y[:, :-lag] * y[:, lag:]).sum() + (y[:-lag] * y[lag:]).sum()) / e)


def measure(convlens, model, layer, method, count, size, keep):
    """Draws (or, with --reuse, reads the kept picture) and measures every cell."""
    path = os.path.join(keep, f"{layer}.{method}.png")
    seconds = 0.0
    if not (REUSE and os.path.exists(path)):
        began = time.time()
        run([convlens, "filters", "--model", model, "--layer", layer, "--count", str(count), "--method", method, "-o", path])
        seconds = time.time() - began
    with open(path, "rb") as f:
        png = f.read()
    cs = cells(png, size)
    assert len(cs) == count, (layer, method, len(cs))
    return [hf_share(c) for c in cs], [lf_share(c) for c in cs], [autocorrelation(c) for c in cs], seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--convlens", default=".build/release/convlens")
    ap.add_argument("--model", default="models/efficientnet_lite0.json")
    ap.add_argument("--layers", help="comma-separated shown layers (default: every 6th gallery layer and the last)")
    ap.add_argument("--lucid-layers", help="layers also drawn with lucid (default: all of --layers)")
    ap.add_argument("--count", type=int, default=4, help="filters per layer (the first N)")
    ap.add_argument("--size", type=int, default=224, help="the picture's side (the model's input size)")
    ap.add_argument("--out", default="docs/filter-structure")
    ap.add_argument("--keep", default="/tmp/filter-structure", help="folder for the pictures (kept)")
    ap.add_argument("--reuse", action="store_true", help="measure pictures already in --keep instead of drawing them")
    args = ap.parse_args()
    global REUSE
    REUSE = args.reuse
    os.makedirs(args.keep, exist_ok=True)

    gallery = gallery_layers(args.convlens, args.model)
    shown = [s for _, s in gallery]
    if args.layers:
        chosen = args.layers.split(",")
    else:
        chosen = shown[::6] + ([shown[-1]] if (len(shown) - 1) % 6 else [])
    lucid = set(args.lucid_layers.split(",")) if args.lucid_layers else set(chosen)
    rows = []
    for layer in chosen:
        index = shown.index(layer)
        for method in ("book", "lucid"):
            if method == "lucid" and layer not in lucid:
                continue
            hf, lf, ac, seconds = measure(args.convlens, args.model, layer, method, args.count, args.size, args.keep)
            row = {
                "model": os.path.basename(args.model), "layer": layer, "index": index, "of": len(shown),
                "depth": round(index / (len(shown) - 1), 3), "method": method, "filters": args.count,
                # A flat cell (a dead filter) has no spectrum: counted, left out of the statistics.
                "flat_cells": int(np.isnan(hf).sum()),
                "hf_share_median": round(float(np.nanmedian(hf)), 3), "hf_share_min": round(float(np.nanmin(hf)), 3),
                "hf_share_max": round(float(np.nanmax(hf)), 3), "lf_share_median": round(float(np.nanmedian(lf)), 3),
                "ac2_median": round(float(np.nanmedian(ac)), 3),
                "ac2_min": round(float(np.nanmin(ac)), 3), "ac2_max": round(float(np.nanmax(ac)), 3),
                "seconds": round(seconds, 1),
            }
            rows.append(row)
            print(f"{layer:28s} {method:5s} depth {row['depth']:.3f}  hf {row['hf_share_median']:.3f} "
                  f"[{row['hf_share_min']:.3f}, {row['hf_share_max']:.3f}]  lf {row['lf_share_median']:.3f}  ac2 {row['ac2_median']:.3f}  "
                  f"{seconds:.0f} s", flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    print(f"\nwrote {args.out}.csv")
    print("\n| layer | depth | book lf | lucid lf | book hf | lucid hf | book ac2 | lucid ac2 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    by = {(r["layer"], r["method"]): r for r in rows}

    def cell(layer, method, key):
        r = by.get((layer, method))
        return f"{r[key]:.3f}" if r else "–"
    for layer in chosen:
        print(f"| {layer} | {by[(layer, 'book')]['depth']:.3f} | "
              + " | ".join(cell(layer, m, k) for k in ("lf_share_median", "hf_share_median", "ac2_median")
                           for m in ("book", "lucid")) + " |")


if __name__ == "__main__":
    main()
