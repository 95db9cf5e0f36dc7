"""Ops that move data without arithmetic: reshape, transpose, slicing, concat, split, ...

Own kernels, and why:
- slice_by_index: coremltools' version fails for fp16 and bool tensors when every axis is
  squeezed (it only converts int32/fp32 scalars).
- slice_update: coremltools' version writes into its `stride` input when an axis is squeezed.
- concat: coremltools' version folds only tensors of up to 10 elements (it is a compile-time
  folder, not a runtime one).
- split: written here so that num_splits and split_sizes are handled without symbolic sizes.
"""
from __future__ import annotations

import numpy as np

from . import OpCall, register
from ._bound import use_value_inference

use_value_inference(
    "reshape",
    "transpose",
    "squeeze",
    "expand_dims",
    "slice_by_size",
    "shape",
    "flatten2d",
    "reverse",
    "tile",
    "stack",
)


def _flags(value, rank: int, default) -> list:
    return [default] * rank if value is None else list(np.asarray(value).reshape(-1).tolist())


def _slice_index(call: OpCall, rank: int, shape: tuple[int, ...]) -> tuple:
    """The numpy index that slice_by_index's begin/end/stride/masks describe."""
    begin = [int(b) for b in np.asarray(call["begin"]).reshape(-1)]
    end = [int(e) for e in np.asarray(call["end"]).reshape(-1)]
    stride = [int(s) for s in _flags(call.get("stride"), rank, 1)]
    begin_mask = _flags(call.get("begin_mask"), rank, False)
    end_mask = _flags(call.get("end_mask"), rank, False)
    squeeze_mask = _flags(call.get("squeeze_mask"), rank, False)
    index: list = []
    for i in range(rank):
        if squeeze_mask[i]:
            index.append(begin[i] + shape[i] if begin[i] < 0 else begin[i])  # pure index: the axis goes away
            continue
        b = None if begin_mask[i] else begin[i]
        e = None if end_mask[i] else end[i]
        index.append(slice(b, e, stride[i]))
    return tuple(index)


@register("slice_by_index")
def _slice_by_index(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"])
    return np.asarray(x[_slice_index(call, x.ndim, x.shape)])


@register("slice_update")
def _slice_update(call: OpCall) -> np.ndarray:
    """x with the slice_by_index region replaced by `update` (iOS18)."""
    out = np.array(call["x"])
    index = _slice_index(call, out.ndim, out.shape)
    out[index] = np.reshape(call["update"], np.shape(out[index]))
    return out


@register("concat")
def _concat(call: OpCall) -> np.ndarray:
    values = [np.asarray(v) for v in call["values"]]
    axis = int(call["axis"])
    if bool(call.get("interleave", False)):
        # [a0, b0, a1, b1, ...] along `axis`: stack right after the axis, then merge the two
        rank = values[0].ndim
        axis = axis + rank if axis < 0 else axis
        stacked = np.stack(values, axis=axis + 1)
        shape = list(values[0].shape)
        shape[axis] *= len(values)
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


@register("split")
def _split(call: OpCall) -> tuple[np.ndarray, ...]:
    x = np.asarray(call["x"])
    axis = int(call["axis"])
    sizes = call.get("split_sizes")
    if sizes is None:
        n = int(call["num_splits"])
        if x.shape[axis] % n:
            raise ValueError(f"split: num_splits {n} does not divide dimension {x.shape[axis]}")
        sizes = [x.shape[axis] // n] * n
    bounds = np.cumsum([int(s) for s in np.asarray(sizes).reshape(-1)])[:-1]
    return tuple(np.split(x, bounds, axis=axis))
