"""Activations.

coremltools' value_inference serves most of them. Own kernels, and why:
- silu: coremltools has no numpy implementation.
- gelu, erf: coremltools' versions call `math.erf` once per element through `np.vectorize`
  (correct but about a microsecond per element); ours are vectorised, same formulas.
- thresholded_relu: coremltools' version writes into its input array.
"""
from __future__ import annotations

import math

import numpy as np

from . import OpCall, register
from ._bound import use_value_inference

use_value_inference(
    "relu",
    "relu6",
    "sigmoid",
    "sigmoid_hard",
    "softplus",
    "softplus_parametric",
    "softsign",
    "leaky_relu",
    "elu",
    "clamped_relu",
    "linear_activation",
    "prelu",
    "scaled_tanh",
    "softmax",
)


def erf(x: np.ndarray) -> np.ndarray:
    """The Gauss error function in float64 (scipy's when it is installed, else math.erf)."""
    x = np.asarray(x, dtype=np.float64)
    try:
        from scipy.special import erf as _erf
    except ImportError:  # scipy is optional; math.erf per element is exact but slow
        return np.vectorize(math.erf, otypes=[np.float64])(x)
    return _erf(x)


@register("erf")
def _erf(call: OpCall) -> np.ndarray:
    return erf(call["x"])


@register("silu")
def _silu(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"], dtype=np.float64)
    return x / (1.0 + np.exp(-x))


@register("gelu")
def _gelu(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"], dtype=np.float64)
    mode = str(call.get("mode", "EXACT"))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x / (1.0 + np.exp(-1.702 * x))
    if mode == "EXACT":
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    raise ValueError(f"gelu mode '{mode}' is not one of EXACT, TANH_APPROXIMATION, SIGMOID_APPROXIMATION")


@register("thresholded_relu")
def _thresholded_relu(call: OpCall) -> np.ndarray:
    x = call["x"]
    return np.where(x >= call["alpha"], x, np.zeros((), dtype=np.asarray(x).dtype))
