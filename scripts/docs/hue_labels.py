"""Label images by their dominant colour, for the docs' conditional example run.

usage: python scripts/docs/hue_labels.py SOURCE.zip LABELS.json

Classes over the opaque pixels of each image (alpha > 128): 3 "gray" when fewer than 15% of them
have HSV saturation above 0.3, else the most common hue of those saturated pixels: 0 "red-brown"
(hue in [330, 45) degrees), 1 "yellow-green" ([45, 170)), 2 "blue-violet" ([170, 330)). Writes the
reference's dataset.json format ({"labels": [[name, class], ...]}) for `fpgan dataset --labels`.
"""
import io
import json
import sys
import zipfile

import numpy as np
from PIL import Image

NAMES = ["red-brown", "yellow-green", "blue-violet", "gray"]


def label(img):
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float64) / 255
    opaque = rgba[..., 3] > 0.5
    rgb = rgba[..., :3][opaque]
    mx, mn = rgb.max(1), rgb.min(1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-9), 0)
    colourful = sat > 0.3
    if colourful.mean() < 0.15:
        return 3
    hsv = np.asarray(Image.fromarray((rgb[colourful][None] * 255).astype(np.uint8)).convert("HSV"))
    hue = hsv[0, :, 0].astype(np.float64) * 360 / 256
    bins = [((hue >= 330) | (hue < 45)).sum(), ((hue >= 45) & (hue < 170)).sum(),
            ((hue >= 170) & (hue < 330)).sum()]
    return int(np.argmax(bins))


def main():
    src, out = sys.argv[1], sys.argv[2]
    labels = []
    with zipfile.ZipFile(src) as z:
        for name in sorted(n for n in z.namelist() if n.lower().endswith(".png")):
            labels.append([name, label(Image.open(io.BytesIO(z.read(name))))])
    with open(out, "w") as f:
        json.dump({"labels": labels}, f)
    counts = np.bincount([c for _, c in labels], minlength=len(NAMES))
    print(", ".join(f"{k} {n}: {c}" for k, (n, c) in enumerate(zip(NAMES, counts))))


if __name__ == "__main__":
    main()
