"""The one place that knows how a picture becomes a tensor (size, channels, scale, mean, std, layout)."""
from __future__ import annotations

import math
import re
import tomllib
import warnings
from pathlib import Path

import numpy as np

from .calibration_files import first_line, os_problem, read_text_file
from .errors import ConfigError, InputError
from .types import Preprocess

PREPROCESS_FILE = "preprocess.toml"
_KEYS = ("size", "layout", "channels", "scale", "mean", "std")
# Pillow's own decompression-bomb bound (about 89 megapixels); larger images are refused from
# their header, before any pixel is decoded.
MAX_IMAGE_PIXELS = 89_478_485


def load_preprocess(path: Path) -> Preprocess:
    text = read_text_file(path, PREPROCESS_FILE, bad_text=ConfigError)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
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
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ConfigError(f"{path}: 'size' {size!r} is {size[0] * size[1]:,} pixels, more than the limit of {MAX_IMAGE_PIXELS:,}; use the model's input size")
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
    if not all(math.isfinite(m) for m in mean):
        raise ConfigError(f"{path}: 'mean' must be finite numbers, got {mean!r}")
    if not all(math.isfinite(s) and s > 0 for s in std):
        raise ConfigError(f"{path}: 'std' must be positive finite numbers (it divides), got {std!r}")
    scale = data.get("scale", 1.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool):
        raise ConfigError(f"{path}: 'scale' must be a number, got {scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"{path}: 'scale' must be a positive finite number (e.g. 0.00392156862745098 = 1/255), got {scale!r}")
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


def _too_big(path: Path, pixels: int, size: str = "") -> InputError:
    return InputError(
        f"{path}: the image is {size}{pixels:,} pixels, more than the limit of {MAX_IMAGE_PIXELS:,} pixels; "
        "resize it (it becomes the model's input size anyway)"
    )


def _open_image(path: Path):
    """Open lazily (header only) and check the pixel count before anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:  # Pillow refuses above twice its own bound
        m = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_big(path, int(m.group(1)) if m else MAX_IMAGE_PIXELS * 2) from None
    except OSError as exc:
        if exc.errno is not None and not isinstance(exc, UnidentifiedImageError):
            raise os_problem(path, exc) from None
        raise InputError(f"{path}: cannot decode the image ({first_line(exc)}); remove or replace the file") from None
    except Exception as exc:  # Pillow's parsers raise many types on corrupt headers
        raise InputError(f"{path}: cannot decode the image ({type(exc).__name__}: {first_line(exc)}); remove or replace the file") from None
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        im.close()
        raise _too_big(path, w * h, f"{w}x{h} = ")
    return im


def check_image_header(path: Path) -> None:
    """Readable, an image Pillow knows, and within the pixel bound; no pixel is decoded."""
    _open_image(path).close()


def load_image_pixels(path: Path, pp: Preprocess) -> np.ndarray:
    """Decode an image file, convert to pp.channels and resize to pp.size (bilinear) -> uint8 (H, W, C)."""
    from PIL import Image

    with _open_image(path) as im:
        try:
            im = im.convert("L" if pp.channels == "gray" else "RGB")
            h, w = pp.size
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
        except OSError as exc:
            if exc.errno is not None:
                raise os_problem(path, exc) from None
            raise InputError(f"{path}: cannot decode the image ({first_line(exc)}); remove or replace the file") from None
        except Exception as exc:  # a corrupt body: Pillow's decoders raise ValueError, SyntaxError, zlib.error ...
            raise InputError(f"{path}: cannot decode the image ({type(exc).__name__}: {first_line(exc)}); remove or replace the file") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if pp.channels == "bgr":
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)
