"""Normalisations.

layer_norm and l2_norm use coremltools' value_inference. Own kernels (coremltools has no numpy
implementation): batch_norm, instance_norm, local_response_norm. They compute in float64 with
population variance, as the MIL definitions say.
"""
from __future__ import annotations

import numpy as np

from . import OpCall, register
from ._bound import use_value_inference

use_value_inference("layer_norm", "l2_norm")


def _per_channel(value, rank: int) -> np.ndarray:
    """A (C,) parameter shaped to broadcast over axis 1 of a rank-`rank` tensor."""
    return np.asarray(value, dtype=np.float64).reshape(1, -1, *([1] * (rank - 2)))


def _scale_shift(y: np.ndarray, call: OpCall) -> np.ndarray:
    """The optional per-channel gamma and beta of batch_norm and instance_norm."""
    if call.get("gamma") is not None:
        y = y * _per_channel(call["gamma"], y.ndim)
    if call.get("beta") is not None:
        y = y + _per_channel(call["beta"], y.ndim)
    return y


@register("batch_norm")
def _batch_norm(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"], dtype=np.float64)
    r = x.ndim
    eps = float(call.get("epsilon", 1e-5))
    y = (x - _per_channel(call["mean"], r)) / np.sqrt(_per_channel(call["variance"], r) + eps)
    return _scale_shift(y, call)


@register("instance_norm")
def _instance_norm(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"], dtype=np.float64)
    r = x.ndim
    axes = tuple(range(2, r))
    eps = float(call.get("epsilon", 1e-5))
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    return _scale_shift((x - mean) / np.sqrt(var + eps), call)


@register("local_response_norm")
def _local_response_norm(call: OpCall) -> np.ndarray:
    """x / (k + alpha / size * sum of x^2 over `size` neighbouring channels) ** beta, the window
    for channel c being [c - size // 2, c + (size - 1) // 2] (PyTorch's)."""
    x = np.asarray(call["x"], dtype=np.float64)
    size = int(call["size"])
    alpha, beta, k = float(call.get("alpha", 1e-4)), float(call.get("beta", 0.75)), float(call.get("k", 1.0))
    sq = np.square(x)
    widths = [(0, 0)] * x.ndim
    widths[1] = (size // 2, (size - 1) // 2)
    padded = np.pad(sq, widths)
    c = x.shape[1]
    window_sum = sum(padded[:, i : i + c] for i in range(size))
    return x / (k + alpha / size * window_sum) ** beta
