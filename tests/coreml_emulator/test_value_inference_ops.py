"""Ops the emulator runs through coremltools' own numpy value_inference.

Each case is checked twice: against an independent float64 reference (torch or a numpy formula),
within 1e-6 (relative to the output's scale), and against coremltools' compile-time
value_inference on the same inputs as constants (which must agree exactly: it is the same code,
so this checks that the emulator feeds it the runtime values correctly).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emu_helpers import Case, check_case, mil, rng, t, u, x_only  # noqa: F401 (mil, rng are fixtures)


def xy(lo=-2.0, hi=2.0, yshape=(4,)):
    return lambda r: {"x": u(r, 2, 3, 4, lo=lo, hi=hi), "y": u(r, *yshape, lo=lo, hi=hi)}


def binary(op, ref, feeds=None):
    return Case(op, lambda mb, x, y: getattr(mb, op)(x=x, y=y), feeds or xy(), ref)


def unary(op, ref, lo=-2.0, hi=2.0, **kw):
    return Case(op, lambda mb, x: getattr(mb, op)(x=x, **kw), x_only(2, 3, 4, lo=lo, hi=hi), ref)


def pos_y(r):
    return {"x": u(r, 2, 3, 4), "y": u(r, 4, lo=0.5, hi=2.0) * np.where(r.random(4) < 0.5, -1, 1).astype(np.float32)}


def with_ties(r):
    x = np.round(u(r, 2, 3, 4))
    return {"x": x, "y": np.round(u(r, 4))}


def bools(r):
    return {"x": r.random((2, 3, 4)) < 0.5, "y": r.random((4,)) < 0.5}


CASES = [
    binary("add", lambda x, y: x + y),
    binary("sub", lambda x, y: x - y),
    binary("mul", lambda x, y: x * y),
    binary("real_div", lambda x, y: x / y, pos_y),
    binary("pow", lambda x, y: x**y, xy(0.1, 2.0)),
    binary("maximum", lambda x, y: torch.maximum(t(x), t(y))),
    binary("minimum", lambda x, y: torch.minimum(t(x), t(y))),
    binary("floor_div", lambda x, y: torch.floor(t(x) / t(y)), pos_y),
    binary("mod", lambda x, y: torch.remainder(t(x), t(y)), pos_y),
    binary("equal", lambda x, y: x == y, with_ties),
    binary("not_equal", lambda x, y: x != y, with_ties),
    binary("greater", lambda x, y: x > y, with_ties),
    binary("greater_equal", lambda x, y: x >= y, with_ties),
    binary("less", lambda x, y: x < y, with_ties),
    binary("less_equal", lambda x, y: x <= y, with_ties),
    binary("logical_and", lambda x, y: np.logical_and(x, y), bools),
    binary("logical_or", lambda x, y: np.logical_or(x, y), bools),
    binary("logical_xor", lambda x, y: np.logical_xor(x, y), bools),
    Case("logical_not", lambda mb, x: mb.logical_not(x=x), lambda r: {"x": r.random((3, 4)) < 0.5}, lambda x: ~x.astype(bool)),
    unary("abs", lambda x: torch.abs(t(x))),
    unary("acos", lambda x: torch.acos(t(x)), -0.99, 0.99),
    unary("asin", lambda x: torch.asin(t(x)), -0.99, 0.99),
    unary("atan", lambda x: torch.atan(t(x))),
    unary("atanh", lambda x: torch.atanh(t(x)), -0.9, 0.9),
    unary("ceil", lambda x: torch.ceil(t(x))),
    unary("cos", lambda x: torch.cos(t(x))),
    unary("cosh", lambda x: torch.cosh(t(x))),
    unary("exp", lambda x: torch.exp(t(x))),
    unary("exp2", lambda x: torch.exp2(t(x))),
    unary("floor", lambda x: torch.floor(t(x))),
    unary("inverse", lambda x: 1.0 / (t(x) + 1e-4), 0.5, 2.0),
    unary("log", lambda x: torch.log(t(x)), 0.1, 3.0),
    unary("round", lambda x: torch.round(t(x))),
    unary("rsqrt", lambda x: torch.rsqrt(t(x) + 1e-12), 0.1, 3.0),
    unary("sign", lambda x: torch.sign(t(x))),
    unary("sin", lambda x: torch.sin(t(x))),
    unary("sinh", lambda x: torch.sinh(t(x))),
    unary("sqrt", lambda x: torch.sqrt(t(x)), 0.0, 3.0),
    unary("square", lambda x: t(x) ** 2),
    unary("tan", lambda x: torch.tan(t(x)), -1.2, 1.2),
    unary("tanh", lambda x: torch.tanh(t(x))),
    unary("clip", lambda x: torch.clamp(t(x), -0.5, 1.25), alpha=-0.5, beta=1.25),
    unary("identity", lambda x: x),
    Case("cast_int32", lambda mb, x: mb.cast(x=x, dtype="int32"), x_only(3, 4, lo=-5, hi=5), lambda x: torch.trunc(t(x))),
    Case("cast_fp16", lambda mb, x: mb.cast(x=x, dtype="fp16"), x_only(3, 4), lambda x: x.astype(np.float32).astype(np.float16)),
    Case("cast_bool", lambda mb, x: mb.cast(x=x, dtype="bool"), lambda r: {"x": np.round(u(r, 3, 4))}, lambda x: x != 0),
    # activations
    unary("relu", lambda x: F.relu(t(x))),
    unary("relu6", lambda x: F.relu6(t(x)), -3.0, 8.0),
    unary("sigmoid", lambda x: torch.sigmoid(t(x)), -8.0, 8.0),
    unary("sigmoid_hard", lambda x: torch.clamp(0.3 * t(x) + 0.4, 0.0, 1.0), -5.0, 5.0, alpha=0.3, beta=0.4),
    unary("softplus", lambda x: F.softplus(t(x)), -8.0, 8.0),
    unary("softsign", lambda x: F.softsign(t(x))),
    unary("leaky_relu", lambda x: F.leaky_relu(t(x), 0.1), alpha=0.1),
    unary("elu", lambda x: F.elu(t(x), 0.7), alpha=0.7),
    unary("clamped_relu", lambda x: torch.clamp(t(x), max=1.5) * (t(x) >= 0) + torch.clamp(0.2 * t(x), max=1.5) * (t(x) < 0), alpha=0.2, beta=1.5),
    unary("linear_activation", lambda x: 0.5 * t(x) - 0.25, alpha=0.5, beta=-0.25),
    unary("scaled_tanh", lambda x: 1.5 * torch.tanh(0.7 * t(x)), alpha=1.5, beta=0.7),
    Case("prelu", lambda mb, x: mb.prelu(x=x, alpha=np.array([0.1, 0.2, 0.3], np.float32)), x_only(2, 3, 4, 5),
         lambda x: F.prelu(t(x), t(np.array([0.1, 0.2, 0.3])))),
    Case("softplus_parametric",
         lambda mb, x: mb.softplus_parametric(x=x, alpha=np.array([1.0, 0.5, 2.0], np.float32), beta=np.array([1.0, 2.0, 0.5], np.float32)),
         x_only(2, 3, 4, 5), lambda x: t([1.0, 0.5, 2.0]).reshape(1, 3, 1, 1) * torch.log1p(torch.exp(t(x) * t([1.0, 2.0, 0.5]).reshape(1, 3, 1, 1)))),
    Case("softmax", lambda mb, x: mb.softmax(x=x, axis=1), x_only(2, 5, 3, lo=-10, hi=10), lambda x: torch.softmax(t(x), 1)),
    # matrix products
    Case("linear", lambda mb, x, c_w, c_b: mb.linear(x=x, weight=c_w, bias=c_b),
         lambda r: {"x": u(r, 2, 5, 16), "c_w": u(r, 8, 16), "c_b": u(r, 8)}, lambda x, c_w, c_b: F.linear(t(x), t(c_w), t(c_b))),
    Case("matmul", lambda mb, x, y: mb.matmul(x=x, y=y, transpose_y=True),
         lambda r: {"x": u(r, 2, 3, 5, 16), "y": u(r, 3, 7, 16)}, lambda x, y: torch.matmul(t(x), t(y).transpose(-1, -2))),
    Case("matmul_tx", lambda mb, x, y: mb.matmul(x=x, y=y, transpose_x=True),
         lambda r: {"x": u(r, 4, 16, 5), "y": u(r, 4, 16, 3)}, lambda x, y: torch.matmul(t(x).transpose(-1, -2), t(y))),
    Case("einsum", lambda mb, x, y: mb.einsum(values=(x, y), equation="nchw,nwhu->nchu"),
         lambda r: {"x": u(r, 2, 3, 4, 5), "y": u(r, 2, 5, 4, 6)}, lambda x, y: torch.einsum("nchw,nwhu->nchu", t(x), t(y))),
    # normalisation
    Case("layer_norm", lambda mb, x, c_g, c_b: mb.layer_norm(x=x, axes=[-1], gamma=c_g, beta=c_b, epsilon=1e-5),
         lambda r: {"x": u(r, 2, 5, 16, lo=-3, hi=5), "c_g": u(r, 16), "c_b": u(r, 16)},
         lambda x, c_g, c_b: F.layer_norm(t(x), (16,), t(c_g), t(c_b), 1e-5)),
    Case("layer_norm_2axes", lambda mb, x: mb.layer_norm(x=x, axes=[-2, -1], epsilon=1e-3),
         x_only(2, 3, 4, 5), lambda x: F.layer_norm(t(x), (4, 5), eps=1e-3)),
    Case("l2_norm", lambda mb, x: mb.l2_norm(x=x, epsilon=1e-6), x_only(2, 3, 4, 5),
         lambda x: t(x) / torch.sqrt((t(x) ** 2).sum(dim=(1, 2, 3), keepdim=True) + 1e-6)),
    # quantisation (W8A8 activations)
    Case("quantize", lambda mb, x: mb.quantize(input=x, scale=np.float32(0.05), zero_point=np.int8(3), output_dtype="int8"),
         x_only(3, 8, lo=-8, hi=8), lambda x: np.clip(np.round(x / np.float32(0.05)) + 3, -128, 127)),
    Case("quantize_per_axis",
         lambda mb, x: mb.quantize(input=x, scale=np.array([0.02, 0.1, 0.05], np.float32), zero_point=np.array([0, 10, 250], np.uint8), axis=0, output_dtype="uint8"),
         x_only(3, 8, lo=-8, hi=8), lambda x: np.clip(np.round(x / np.array([0.02, 0.1, 0.05], np.float32)[:, None]) + np.array([0, 10, 250])[:, None], 0, 255)),
    Case("dequantize",
         lambda mb, q: mb.dequantize(input=q, scale=np.array([0.02, 0.1, 0.05], np.float32), zero_point=np.array([0, 10, -5], np.int8), axis=0),
         lambda r: {"q": r.integers(-128, 128, size=(3, 8)).astype(np.int8)},
         lambda q: (q - np.array([0, 10, -5])[:, None]) * np.array([0.02, 0.1, 0.05], np.float32)[:, None].astype(np.float64)),
]

REDUCTIONS = {
    "reduce_max": lambda x, d, k: torch.amax(x, dim=d, keepdim=k),
    "reduce_min": lambda x, d, k: torch.amin(x, dim=d, keepdim=k),
    "reduce_mean": lambda x, d, k: torch.mean(x, dim=d, keepdim=k),
    "reduce_sum": lambda x, d, k: torch.sum(x, dim=d, keepdim=k),
    "reduce_prod": lambda x, d, k: torch.prod(x, dim=d[0], keepdim=k),
    "reduce_sum_square": lambda x, d, k: torch.sum(x**2, dim=d, keepdim=k),
    "reduce_l1_norm": lambda x, d, k: torch.sum(torch.abs(x), dim=d, keepdim=k),
    "reduce_l2_norm": lambda x, d, k: torch.sqrt(torch.sum(x**2, dim=d, keepdim=k)),
    "reduce_log_sum": lambda x, d, k: torch.log(torch.sum(torch.abs(x), dim=d, keepdim=k)),
    "reduce_log_sum_exp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
}
for _name, _ref in REDUCTIONS.items():
    for _keep in (False, True):
        _abs = _name == "reduce_log_sum"
        CASES.append(
            Case(
                f"{_name}_keep{_keep}",
                (lambda n, k, a: lambda mb, x: getattr(mb, n)(x=mb.abs(x=x) if a else x, axes=[1], keep_dims=k))(_name, _keep, _abs),
                x_only(2, 5, 3),
                (lambda f, k: lambda x: f(t(x), (1,), k))(_ref, _keep),
            )
        )
CASES += [
    Case("reduce_argmax", lambda mb, x: mb.reduce_argmax(x=x, axis=-1, keep_dims=True), x_only(2, 5, 3), lambda x: torch.argmax(t(x), -1, keepdim=True)),
    Case("reduce_argmin", lambda mb, x: mb.reduce_argmin(x=x, axis=1), x_only(2, 5, 3), lambda x: torch.argmin(t(x), 1)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_value_inference_op(mil, rng, case):
    check_case(mil, rng, case, folded=True)
