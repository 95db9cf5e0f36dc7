"""Spatial resizing: upsample_* (by scale), resize_* (to a size), iOS17 `resize`, and crop.

Own kernels (coremltools has no numpy implementation). Linear interpolation is separable (one
axis at a time, in float64) and samples the grid points that the MIL op documentation gives for
each sampling mode (copied into `grid` below). Nearest neighbour takes floor(i / scale) for
upsample_nearest_neighbor (PyTorch's rule when a scale factor is given) and
floor(i * in / out) for a target size.
"""
from __future__ import annotations

import math

import numpy as np

from . import OpCall, UnsupportedVariant, register


def grid(mode: str, n_in: int, n_out: int) -> np.ndarray:
    """Input coordinates sampled for each output index, clipped to [0, n_in - 1]."""
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            g = np.array([0.0 if mode == "STRICT_ALIGN_CORNERS" else (n_in - 1) / 2.0])
        else:
            g = i * (n_in - 1) / (n_out - 1)
    elif mode == "DEFAULT":
        g = i * ((n_in - n_in / n_out) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = n_in / n_out
        g = i * spacing + 0.5 * spacing - 0.5
    else:
        raise UnsupportedVariant(f"sampling_mode '{mode}'")
    return np.clip(g, 0.0, n_in - 1)


def _linear_axis(x: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    n = x.shape[axis]
    i0 = np.clip(np.floor(coords).astype(np.int64), 0, n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    w = coords - i0
    shape = [1] * x.ndim
    shape[axis] = len(coords)
    w = w.reshape(shape)
    return np.take(x, i0, axis=axis) * (1.0 - w) + np.take(x, i1, axis=axis) * w


def _bilinear(x, sizes: dict[int, int], mode: str) -> np.ndarray:
    y = np.asarray(x, dtype=np.float64)
    for axis, n_out in sizes.items():
        y = _linear_axis(y, axis, grid(mode, y.shape[axis], n_out))
    return y


def _nearest(x, index: dict[int, np.ndarray]) -> np.ndarray:
    y = np.asarray(x)
    for axis, idx in index.items():
        y = np.take(y, np.clip(idx, 0, y.shape[axis] - 1), axis=axis)
    return y


def _by_size(n_in: int, n_out: int) -> np.ndarray:
    return (np.arange(n_out) * n_in) // n_out


@register("upsample_nearest_neighbor")
def _upsample_nearest(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    index = {}
    for axis, name in ((-2, "scale_factor_height"), (-1, "scale_factor_width")):
        scale = float(call.get(name, 1))
        n_out = int(math.floor(x.shape[axis] * scale))
        index[x.ndim + axis] = np.floor(np.arange(n_out) / scale).astype(np.int64)
    return _nearest(x, index)


@register("resize_nearest_neighbor")
def _resize_nearest(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    h, w = int(call["target_size_height"]), int(call["target_size_width"])
    return _nearest(x, {x.ndim - 2: _by_size(x.shape[-2], h), x.ndim - 1: _by_size(x.shape[-1], w)})


@register("upsample_bilinear")
def _upsample_bilinear(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    align = bool(call.get("align_corners", True))
    half_pixel = bool(call.get("half_pixel_centers", not align))
    if align:
        mode = "STRICT_ALIGN_CORNERS"
    elif half_pixel:
        mode = "UNALIGN_CORNERS"
    else:
        mode = "DEFAULT"  # i * in / out: TensorFlow's legacy sampling
    sizes = {
        x.ndim - 2: int(math.floor(x.shape[-2] * float(call.get("scale_factor_height", 1)))),
        x.ndim - 1: int(math.floor(x.shape[-1] * float(call.get("scale_factor_width", 1)))),
    }
    return _bilinear(x, sizes, mode)


@register("resize_bilinear")
def _resize_bilinear(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    sizes = {x.ndim - 2: int(call.get("target_size_height", 1)), x.ndim - 1: int(call.get("target_size_width", 1))}
    return _bilinear(x, sizes, str(call.get("sampling_mode", "DEFAULT")))


@register("resize")
def _resize(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    shape = [int(s) for s in np.asarray(call["shape"]).reshape(-1)]
    r = int(call["resized_dims"])
    interpolation = str(call.get("interpolation_mode", "LINEAR"))
    sampling = str(call.get("sampling_mode", "DEFAULT"))
    sizes = {}
    for j in range(1, r + 1):
        axis = x.ndim - j
        sizes[axis] = shape[-j] if shape[-j] != 0 else x.shape[axis]
    if interpolation == "LINEAR":
        return _bilinear(x, sizes, sampling)
    if interpolation == "NEAREST_NEIGHBOR" and sampling == "DEFAULT":
        return _nearest(x, {axis: _by_size(x.shape[axis], n) for axis, n in sizes.items()})
    raise UnsupportedVariant(f"interpolation_mode '{interpolation}' with sampling_mode '{sampling}'")


@register("crop")
def _crop(call: OpCall) -> np.ndarray:
    """Cut crop_height = [top, bottom] and crop_width = [left, right] off the last two dims
    (coremltools emits it after conv_transpose for PyTorch's output_padding)."""
    x = np.asarray(call["x"])
    top, bottom = (int(v) for v in np.asarray(call["crop_height"]).reshape(-1))
    left, right = (int(v) for v in np.asarray(call["crop_width"]).reshape(-1))
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]
