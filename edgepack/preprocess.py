"""The one place that knows how a picture becomes a tensor (size, channels, scale, mean, std, layout)."""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from .errors import ConfigError, InputError
from .types import Preprocess

PREPROCESS_FILE = "preprocess.toml"
_KEYS = ("size", "layout", "channels", "scale", "mean", "std")


def load_preprocess(path: Path) -> Preprocess:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    unknown = [k for k in data if k not in _KEYS]
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}'; allowed keys are: {', '.join(_KEYS)}")
    missing = [k for k in ("size", "layout", "channels") if k not in data]
    if missing:
        raise ConfigError(f"{path}: missing required key '{missing[0]}'")
    size = data["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ConfigError(f"{path}: 'size' must be [height, width] in pixels, got {size!r}")
    layout = data["layout"]
    if layout not in ("nchw", "nhwc"):
        raise ConfigError(f"{path}: 'layout' is {layout!r}; choose one of: nchw, nhwc")
    channels = data["channels"]
    if channels not in ("gray", "rgb", "bgr"):
        raise ConfigError(f"{path}: 'channels' is {channels!r}; choose one of: gray, rgb, bgr")
    n = 1 if channels == "gray" else 3
    mean = data.get("mean", [0.0] * n)
    std = data.get("std", [1.0] * n)
    for key, vals in (("mean", mean), ("std", std)):
        if not (isinstance(vals, list) and len(vals) == n and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)):
            raise ConfigError(f"{path}: '{key}' must be a list of {n} numbers for channels = {channels!r}, got {vals!r}")
    if any(s == 0 for s in std):
        raise ConfigError(f"{path}: 'std' must not contain 0")
    scale = data.get("scale", 1.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool):
        raise ConfigError(f"{path}: 'scale' must be a number, got {scale!r}")
    return Preprocess(
        size=(size[0], size[1]),
        layout=layout,
        channels=channels,
        scale=float(scale),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )


def pixels_to_tensor(pixels: np.ndarray, pp: Preprocess) -> np.ndarray:
    """uint8 pixels (H, W, C) already at pp.size, in pp.channels order -> float32 tensor (1, ...) in pp.layout."""
    x = pixels.astype(np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    x = x * np.float32(pp.scale)
    x = (x - np.asarray(pp.mean, np.float32)) / np.asarray(pp.std, np.float32)
    if pp.layout == "nchw":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], dtype=np.float32)


def load_image_pixels(path: Path, pp: Preprocess) -> np.ndarray:
    """Decode an image file, convert to pp.channels and resize to pp.size (bilinear) -> uint8 (H, W, C)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if pp.channels == "gray" else "RGB")
            h, w = pp.size
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: cannot decode the image ({exc}); remove or replace the file") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if pp.channels == "bgr":
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)
