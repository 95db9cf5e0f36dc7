"""Elementwise ops: binary arithmetic and comparisons, unary math, clip, cast.

All of these use coremltools' own numpy `value_inference` (numpy broadcasting semantics, which
is what MIL specifies). `erf` and the activations live in activation.py.
"""
from __future__ import annotations

from ._bound import use_value_inference

BINARY = (
    "add",
    "sub",
    "mul",
    "real_div",
    "pow",
    "maximum",
    "minimum",
    "floor_div",
    "mod",
    "equal",
    "not_equal",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
)

UNARY = (
    "abs",
    "acos",
    "asin",
    "atan",
    "atanh",
    "ceil",
    "cos",
    "cosh",
    "exp",
    "exp2",
    "floor",
    "inverse",
    "log",
    "logical_not",
    "round",
    "rsqrt",
    "sign",
    "sin",
    "sinh",
    "sqrt",
    "square",
    "tan",
    "tanh",
    "clip",
    "cast",
    "identity",
)

use_value_inference(*BINARY, *UNARY)
