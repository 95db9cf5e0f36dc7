"""max_pool, avg_pool and l2_pool, 1-D to 3-D, every pad_type, ceil_mode.

Own kernels (coremltools has no numpy implementation). Conventions, where MIL's text leaves room:
- max_pool pads with -inf, so padding never wins.
- avg_pool with exclude_padding_from_average=False divides by the part of the window inside the
  padded input; windows that ceil_mode lets run past the padding do not count the overhang.
  With exclude_padding_from_average=True it divides by the number of real input elements.
  Both are what PyTorch's avg_pool (count_include_pad) does, which is the source coremltools
  converts from.
Sums accumulate in float64.
"""
from __future__ import annotations

import numpy as np

from . import OpCall, register
from ._spatial import extension, ints, out_sizes, pad_spatial, pads, windows


def _geometry(call: OpCall, x: np.ndarray):
    nd = x.ndim - 2
    kernel = ints(call["kernel_sizes"], nd, 1)
    strides = ints(call.get("strides"), nd, 1)
    dil = [1] * nd
    pad_pairs = pads(str(call.get("pad_type", "valid")), call.get("pad"), x.shape[2:], kernel, strides)
    outs = out_sizes(x.shape[2:], pad_pairs, kernel, strides, ceil_mode=bool(call.get("ceil_mode", False)))
    ext = extension(x.shape[2:], pad_pairs, outs, kernel, strides)
    return nd, kernel, strides, dil, pad_pairs, outs, ext


def _pooled(x: np.ndarray, call: OpCall, fill: float):
    nd, kernel, strides, dil, pad_pairs, outs, ext = _geometry(call, x)
    xp = pad_spatial(x, [(pb, pa + e) for (pb, pa), e in zip(pad_pairs, ext)], fill)
    k_axes = tuple(range(2 + nd, 2 + 2 * nd))
    return windows(xp, kernel, dil, strides, outs), k_axes, (nd, kernel, strides, dil, pad_pairs, outs, ext)


@register("max_pool")
def _max_pool(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    win, k_axes, _ = _pooled(x, call, -np.inf)
    return win.max(axis=k_axes)


@register("l2_pool")
def _l2_pool(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"], dtype=np.float64)
    win, k_axes, _ = _pooled(x, call, 0.0)
    return np.sqrt(np.square(win).sum(axis=k_axes))


@register("avg_pool")
def _avg_pool(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"], dtype=np.float64)
    win, k_axes, (nd, kernel, strides, dil, pad_pairs, outs, ext) = _pooled(x, call, 0.0)
    total = win.sum(axis=k_axes)
    ones = np.ones((1, 1, *x.shape[2:]), dtype=np.float64)
    if bool(call.get("exclude_padding_from_average", False)):
        mask = pad_spatial(ones, [(pb, pa + e) for (pb, pa), e in zip(pad_pairs, ext)], 0.0)
    else:
        mask = pad_spatial(pad_spatial(ones, pad_pairs, 1.0), [(0, e) for e in ext], 0.0)
    count = windows(mask, kernel, dil, strides, outs).sum(axis=k_axes)
    return total / count
