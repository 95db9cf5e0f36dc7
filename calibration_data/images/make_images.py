#!/usr/bin/env python
"""Regenerate the shipped RGB image calibration set in this folder.

Usage (from anywhere):  python calibration_data/images/make_images.py

Takes 48 square crops (fixed seed) of the colour photographs bundled inside
scikit-image (no download needed), resizes each to 64x64 RGB and writes
img_000.png ... img_047.png plus preprocess.toml next to this script.
Deterministic: the same scikit-image and Pillow versions give identical files.
"""

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent

N_IMAGES = 48
OUT_SIZE = 64
SEED = 0

# Colour photographs shipped inside the scikit-image wheel, all of which the
# skimage.data docstrings mark as public domain / CC0 / no known copyright
# restrictions.  Order matters for reproducibility.
SOURCES = [
    "astronaut",             # NASA, public domain
    "chelsea",               # CC0, Stefan van der Walt
    "coffee",                # CC0, Rachel Michetti
    "hubble_deep_field",     # NASA, public domain
    "immunohistochemistry",  # CMMI, no known copyright restrictions
    "retina",                # Wikimedia Commons, CC0 1.0
    "rocket",                # SpaceX, released into the public domain
]

PREPROCESS_TOML = """\
# How a picture becomes the input tensor:
#   tensor = ((pixel * scale) - mean) / std   per channel, then laid out as `layout`.
size = [64, 64]        # height, width
layout = "nchw"
channels = "rgb"       # gray | rgb | bgr
scale = 0.00392156862745098   # 1/255: pixel bytes 0..255 -> 0..1
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
"""


def load_source(name):
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise RuntimeError(f"skimage.data.{name}: expected uint8 RGB, got {img.dtype} {img.shape}")
    return img


def random_square_crop(img, rng):
    """A square crop whose side is 25%..100% of the shorter image side."""
    h, w, _ = img.shape
    short = min(h, w)
    side = int(rng.integers(short // 4, short + 1))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return img[top:top + side, left:left + side], (top, left, side)


def main():
    images = {name: load_source(name) for name in SOURCES}
    rng = np.random.default_rng(SEED)

    for old in HERE.glob("img_*.png"):
        old.unlink()

    total = 0
    for i in range(N_IMAGES):
        name = SOURCES[i % len(SOURCES)]  # round-robin over the sources
        crop, (top, left, side) = random_square_crop(images[name], rng)
        pil = Image.fromarray(np.ascontiguousarray(crop), mode="RGB")
        pil = pil.resize((OUT_SIZE, OUT_SIZE), Image.Resampling.LANCZOS)
        path = HERE / f"img_{i:03d}.png"
        pil.save(path, format="PNG", optimize=True)  # no metadata / timestamps
        data = path.read_bytes()
        total += len(data)
        print(f"{path.name}  {name:21s} crop y={top:4d} x={left:4d} side={side:4d}  "
              f"{len(data):6d} B  sha256={hashlib.sha256(data).hexdigest()[:16]}")

    (HERE / "preprocess.toml").write_text(PREPROCESS_TOML)
    print(f"{N_IMAGES} images, {total} bytes of PNG")


if __name__ == "__main__":
    main()
