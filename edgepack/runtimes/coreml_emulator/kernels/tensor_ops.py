"""Gathers, padding, fills, sorting, and the channel/space rearrangements.

Own kernels, and why:
- cumsum: coremltools' version crashes with exclusive=True.
- band_part: coremltools' version loops in Python over every matrix element.
- range_1d: coremltools' version refuses results above its constant-folding size limit.
- one_hot, gather_nd, depth_to_space, space_to_depth, pixel_shuffle, pixel_unshuffle:
  coremltools has no numpy implementation.
"""
from __future__ import annotations

import numpy as np

from . import OpCall, register
from ._bound import use_value_inference

use_value_inference(
    "gather",
    "gather_along_axis",
    "pad",
    "fill",
    "fill_like",
    "select",
    "topk",
    "argsort",
    "non_zero",
)


@register("cumsum")
def _cumsum(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    axis = int(call.get("axis", 0))
    reverse = bool(call.get("reverse", False))
    if reverse:
        x = np.flip(x, axis=axis)
    out = np.cumsum(x, axis=axis)
    if bool(call.get("exclusive", False)):
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=axis)), np.delete(out, -1, axis=axis)], axis=axis)
    if reverse:
        out = np.flip(out, axis=axis)
    return out


@register("band_part")
def _band_part(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    lower, upper = int(call.get("lower", -1)), int(call.get("upper", -1))
    m, n = x.shape[-2:]
    rows, cols = np.arange(m)[:, None], np.arange(n)[None, :]
    keep = ((lower < 0) | (rows - cols <= lower)) & ((upper < 0) | (cols - rows <= upper))
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


@register("range_1d")
def _range_1d(call: OpCall) -> np.ndarray:
    return np.arange(call["start"], call["end"], call["step"])


@register("one_hot")
def _one_hot(call: OpCall) -> np.ndarray:
    indices = np.asarray(call["indices"]).astype(np.int64)
    size = int(call["one_hot_vector_size"])
    axis = int(call.get("axis", -1))
    on, off = call.get("on_value", 1), call.get("off_value", 0)
    hot = indices[..., None] == np.arange(size)
    out = np.where(hot, on, off)
    rank = indices.ndim + 1
    return np.moveaxis(out, -1, axis + rank if axis < 0 else axis)


@register("gather_nd")
def _gather_nd(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    indices = np.asarray(call["indices"]).astype(np.int64)
    batch_dims = int(call.get("batch_dims", 0))
    batch_shape = x.shape[:batch_dims]
    nb = int(np.prod(batch_shape)) if batch_dims else 1
    xs = x.reshape((nb, *x.shape[batch_dims:]))
    ids = indices.reshape((nb, *indices.shape[batch_dims:]))
    depth = ids.shape[-1]
    out = np.stack([xb[tuple(np.moveaxis(ib, -1, 0))] if depth else xb for xb, ib in zip(xs, ids)])
    return out.reshape((*batch_shape, *out.shape[1:]))


def _to_space(x: np.ndarray, b: int, channel_major: bool) -> np.ndarray:
    n, c, h, w = x.shape
    co = c // (b * b)
    if channel_major:  # pixel_shuffle (torch): channel index = c * b * b + i * b + j
        y = x.reshape(n, co, b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:  # depth_to_space (TensorFlow "DCR"): channel index = (i * b + j) * co + c
        y = x.reshape(n, b, b, co, h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, co, h * b, w * b)


def _to_depth(x: np.ndarray, b: int, channel_major: bool) -> np.ndarray:
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b)
    if channel_major:  # pixel_unshuffle (torch)
        y = y.transpose(0, 1, 3, 5, 2, 4)
    else:  # space_to_depth (TensorFlow)
        y = y.transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


@register("depth_to_space")
def _depth_to_space(call: OpCall) -> np.ndarray:
    return _to_space(np.asarray(call["x"]), int(call["block_size"]), channel_major=False)


@register("pixel_shuffle")
def _pixel_shuffle(call: OpCall) -> np.ndarray:
    return _to_space(np.asarray(call["x"]), int(call["upscale_factor"]), channel_major=True)


@register("space_to_depth")
def _space_to_depth(call: OpCall) -> np.ndarray:
    return _to_depth(np.asarray(call["x"]), int(call["block_size"]), channel_major=False)


@register("pixel_unshuffle")
def _pixel_unshuffle(call: OpCall) -> np.ndarray:
    return _to_depth(np.asarray(call["x"]), int(call["downscale_factor"]), channel_major=True)
