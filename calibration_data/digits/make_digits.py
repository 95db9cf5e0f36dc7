#!/usr/bin/env python
"""Regenerate the shipped digits calibration set in this folder.

Usage (from anywhere):  python calibration_data/digits/make_digits.py

Writes digits.npz, targets.npy, labels.txt and preprocess.toml next to this
script from the 500 held-out samples of the fixed split defined in
examples/digits/digits_data.py.  The output is byte-for-byte reproducible.
"""

import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
sys.path.insert(0, str(REPO_ROOT))

from examples.digits.digits_data import load_split  # noqa: E402

PREPROCESS_TOML = """\
# How a raw picture becomes the `image` tensor of the digits model.
# Pixel 255 = full ink, 0 = blank background (light strokes on a dark
# background); the training data are 0..16 ink counts divided by 16.
size = [8, 8]          # height, width
layout = "nchw"
channels = "gray"      # gray | rgb | bgr
scale = 0.00392156862745098   # 1/255: pixel bytes 0..255 -> 0..1
mean = [0.0]
std = [1.0]
"""

# A fixed timestamp for the zip members, so the .npz file itself (not just the
# arrays in it) is identical on every run.  np.savez_compressed would stamp
# the current time into the archive.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def save_npz_reproducible(path, **arrays):
    """Write arrays as a compressed .npz (same format np.savez_compressed
    writes, readable by np.load) with fixed member timestamps."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)


def sha256_array(arr):
    h = hashlib.sha256()
    h.update(str(arr.dtype).encode() + str(arr.shape).encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def main():
    _, _, x_heldout, y_heldout = load_split()
    assert x_heldout.shape == (500, 1, 8, 8) and x_heldout.dtype == np.float32
    assert y_heldout.shape == (500,) and y_heldout.dtype == np.int64
    assert 0.0 <= x_heldout.min() and x_heldout.max() <= 1.0

    save_npz_reproducible(HERE / "digits.npz", image=x_heldout)
    np.save(HERE / "targets.npy", y_heldout, allow_pickle=False)
    (HERE / "labels.txt").write_text("".join(f"{i}\n" for i in range(10)))
    (HERE / "preprocess.toml").write_text(PREPROCESS_TOML)

    # Read back and report.
    with np.load(HERE / "digits.npz") as z:
        assert list(z.keys()) == ["image"]
        image = z["image"]
    targets = np.load(HERE / "targets.npy")
    assert np.array_equal(image, x_heldout) and np.array_equal(targets, y_heldout)
    print(f"image   {image.dtype} {image.shape} sha256={sha256_array(image)}")
    print(f"targets {targets.dtype} {targets.shape} sha256={sha256_array(targets)}")
    print("class counts:", np.bincount(targets, minlength=10).tolist())
    for name in ("digits.npz", "targets.npy", "labels.txt", "preprocess.toml"):
        p = HERE / name
        print(f"{name:16s} {p.stat().st_size:7d} bytes  "
              f"sha256={hashlib.sha256(p.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
