"""Writes public/dataset/: the CC0/public-domain photos bundled in the scikit-image
wheel that public/samples does not already hold, for the dataset examples index.

Only files inside the installed wheel are read (no downloads). Each photo is cropped
as listed (the two large ones in four non-overlapping quadrants, so each quadrant is
its own picture), greyscale ones are repeated into RGB (the model takes RGB), the long
side is scaled to at most 512 px (Lanczos) and the result saved as JPEG quality 90.

    /work/venv/bin/python tools/dataset/make_dataset_photos.py public/dataset
"""

import hashlib
import os
import sys

import numpy as np
import skimage
from PIL import Image

DATA = os.path.join(os.path.dirname(skimage.__file__), "data")

# (output name, wheel file, crop (left, top, right, bottom) or None)
PHOTOS = [
    ("camera.jpg", "camera.png", None),
    ("clock.jpg", "clock_motion.png", None),
    ("brick.jpg", "brick.png", None),
    ("grass.jpg", "grass.png", None),
    ("gravel.jpg", "gravel.png", None),
    ("text.jpg", "text.png", None),
    ("cell.jpg", "cell.png", None),
    ("microaneurysms.jpg", "microaneurysms.png", None),
    ("hubble_top_left.jpg", "hubble_deep_field.jpg", (0, 0, 500, 436)),
    ("hubble_top_right.jpg", "hubble_deep_field.jpg", (500, 0, 1000, 436)),
    ("hubble_bottom_left.jpg", "hubble_deep_field.jpg", (0, 436, 500, 872)),
    ("hubble_bottom_right.jpg", "hubble_deep_field.jpg", (500, 436, 1000, 872)),
    ("retina_top_left.jpg", "retina.jpg", (0, 0, 705, 705)),
    ("retina_top_right.jpg", "retina.jpg", (706, 0, 1411, 705)),
    ("retina_bottom_left.jpg", "retina.jpg", (0, 706, 705, 1411)),
    ("retina_bottom_right.jpg", "retina.jpg", (706, 706, 1411, 1411)),
]


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    total = 0
    for name, source, crop in PHOTOS:
        img = Image.open(os.path.join(DATA, source))
        img.load()
        if crop:
            img = img.crop(crop)
        if img.mode != "RGB":
            a = np.asarray(img.convert("L"))
            img = Image.fromarray(np.stack([a, a, a], axis=-1))
        scale = 512 / max(img.size)
        if scale < 1:
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
        path = os.path.join(out, name)
        img.save(path, "JPEG", quality=90, optimize=True)
        data = open(path, "rb").read()
        total += len(data)
        print(f"| `{name}` | {img.width}×{img.height} | `{source}` {crop or ''} | {len(data)} | `{hashlib.sha256(data).hexdigest()}` |")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "public/dataset")
