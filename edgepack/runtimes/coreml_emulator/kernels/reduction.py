"""Reductions over axes (coremltools' value_inference: the numpy reduction of the same name)."""
from __future__ import annotations

from ._bound import use_value_inference

REDUCTIONS = (
    "reduce_argmax",
    "reduce_argmin",
    "reduce_l1_norm",
    "reduce_l2_norm",
    "reduce_log_sum",
    "reduce_log_sum_exp",
    "reduce_max",
    "reduce_mean",
    "reduce_min",
    "reduce_prod",
    "reduce_sum",
    "reduce_sum_square",
)

use_value_inference(*REDUCTIONS)
