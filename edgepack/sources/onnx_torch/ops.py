"""ONNX element-wise, activation, linear-algebra, convolution and normalisation ops for the bridge.

One small function per op, torch ops inside.

Each handler takes a Ctx (the node's arguments and attributes) and returns its outputs. During
the fold pass a handler may run on constants; `Ctx.np` reads an argument that must be known at
conversion time (shapes, axes, pads), `Ctx.t` gives a torch tensor.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import ConversionError


class Const:
    """A value known at conversion time."""

    def __init__(self, value):
        self.value = np.asarray(value)


class Ctx:
    def __init__(self, module, node, attrs: dict[str, Any], args: list, opset: int, where: str):
        self.module, self.node, self.attrs, self.args, self.opset, self.where = module, node, attrs, args, opset, where
        self.wanted: dict[str, set] = {}

    def a(self, name: str, default=None):
        return self.attrs.get(name, default)

    def has(self, i: int) -> bool:
        return i < len(self.args) and self.args[i] is not None

    def t(self, i: int, transform: str | None = None):
        v = self.args[i]
        if not isinstance(v, Const):
            return v
        key = self.node.input[i]
        self.wanted.setdefault(key, set()).add(transform)
        return self.module.tensor(v, key, transform)

    def np(self, i: int) -> np.ndarray:
        v = self.args[i]
        if isinstance(v, Const):
            return v.value
        raise ConversionError(
            f"{self.where}: ONNX node '{self.node.name or self.node.op_type}' ({self.node.op_type}) needs input {i} "
            "to be a constant (its value depends on the model input); edgepack's ONNX->PyTorch bridge needs static shapes"
        )

    def is_const(self, i: int) -> bool:
        return isinstance(self.args[i], Const)

    def shape(self, i: int) -> tuple[int, ...]:
        v = self.args[i]
        return tuple(v.value.shape) if isinstance(v, Const) else tuple(int(d) for d in v.shape)

    def aux(self, tag: str, make):
        """A constant tensor this handler derives (indices, weights): a buffer made once per node."""
        if self.module is None:
            return _torch().from_numpy(np.array(make(), order="C", copy=True))
        return self.module.aux(f"{self.node.name or id(self.node)}/{self.node.output[0]}/{tag}", make)

    def fail(self, what: str):
        raise ConversionError(
            f"{self.where}: ONNX {self.node.op_type} node '{self.node.name}': {what} is not supported by edgepack's ONNX->PyTorch bridge"
        )


HANDLERS: dict[str, Callable[[Ctx], list]] = {}


def op(*names: str):
    def deco(fn):
        for n in names:
            HANDLERS[n] = fn
        return fn

    return deco


def _torch():
    import torch

    return torch


def _F():
    import torch.nn.functional as F

    return F


# ---- element-wise ---------------------------------------------------------------------------
_BINARY = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
    "Equal": "eq", "Less": "lt", "Greater": "gt", "LessOrEqual": "le", "GreaterOrEqual": "ge",
    "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor",
}  # fmt: skip
_UNARY = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
    "Abs": "abs", "Neg": "neg", "Floor": "floor", "Ceil": "ceil", "Erf": "erf", "Reciprocal": "reciprocal",
    "Sin": "sin", "Cos": "cos", "Not": "logical_not", "Sign": "sign", "Round": "round",
}  # fmt: skip


@op(*_BINARY)
def _binary(c: Ctx):
    torch = _torch()
    a, b = c.t(0), c.t(1)
    if c.node.op_type == "Div" and not a.dtype.is_floating_point and not b.dtype.is_floating_point:
        return [torch.div(a, b, rounding_mode="trunc")]
    if c.node.op_type == "Pow":
        return [_pow(c, a, b)]
    return [getattr(torch, _BINARY[c.node.op_type])(a, b)]


def _pow(c: Ctx, a, b):
    """x ** 2 / 3 as products and x ** 0.5 as sqrt (LiteRT's POW has no XNNPACK or int8 kernel);
    any other power of a tensor of rank > 4 on flattened operands: LiteRT's POW broadcasts up to
    4-D, and litert-torch fails to legalise a wider one (YOLOv5's `(wh * 2) ** 2` on 1x3xHxWx2)."""
    torch = _torch()
    e = c.args[1].value if isinstance(c.args[1], Const) and c.args[1].value.size == 1 else None
    if e is not None and a.dtype.is_floating_point:
        e = float(e.reshape(()))
        if e in (1.0, 2.0, 3.0):
            return a if e == 1.0 else (a * a if e == 2.0 else a * a * a)
        if e == 0.5:
            return torch.sqrt(a)
    if max(a.dim(), b.dim()) > 4:
        x, y = torch.broadcast_tensors(a, b)
        return torch.pow(x.reshape(-1), y.reshape(-1)).reshape(x.shape)
    return torch.pow(a, b)


@op(*_UNARY)
def _unary(c: Ctx):
    return [getattr(_torch(), _UNARY[c.node.op_type])(c.t(0))]


@op("Max", "Min", "Sum", "Mean")
def _variadic(c: Ctx):
    torch = _torch()
    xs = [c.t(i) for i in range(len(c.args))]
    fn = {"Max": torch.maximum, "Min": torch.minimum, "Sum": torch.add, "Mean": torch.add}[c.node.op_type]
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return [out / len(xs) if c.node.op_type == "Mean" else out]


@op("LeakyRelu", "Elu", "HardSigmoid", "HardSwish", "Softplus", "Gelu", "Selu", "Celu", "Mish")
def _activation(c: Ctx):
    F, x, t = _F(), c.t(0), c.node.op_type
    if t == "LeakyRelu":
        return [F.leaky_relu(x, c.a("alpha", 0.01))]
    if t == "Elu":
        return [F.elu(x, c.a("alpha", 1.0))]
    if t == "HardSigmoid":
        return [_torch().clamp(x * c.a("alpha", 0.2) + c.a("beta", 0.5), 0.0, 1.0)]
    if t == "HardSwish":
        return [F.hardswish(x)]
    if t == "Softplus":
        return [F.softplus(x)]
    if t == "Gelu":
        return [F.gelu(x, approximate=c.a("approximate", "none"))]
    if t == "Selu":
        return [F.selu(x)]
    if t == "Celu":
        return [F.celu(x, c.a("alpha", 1.0))]
    return [F.mish(x)]


@op("PRelu")
def _prelu(c: Ctx):
    x, s = c.t(0), c.t(1)
    return [_torch().where(x >= 0, x, x * s)]


@op("Clip")
def _clip(c: Ctx):
    lo = c.a("min") if c.opset < 11 else (float(c.np(1)) if c.has(1) else None)
    hi = c.a("max") if c.opset < 11 else (float(c.np(2)) if c.has(2) else None)
    return [_torch().clamp(c.t(0), lo, hi)]


@op("Where")
def _where(c: Ctx):
    return [_torch().where(c.t(0), c.t(1), c.t(2))]


@op("Cast")
def _cast(c: Ctx):
    from onnx import helper

    dt = np.dtype(helper.tensor_dtype_to_np_dtype(c.a("to")))
    return [c.t(0).to(getattr(_torch(), dt.name if dt.name != "bool" else "bool"))]


@op("Identity", "Dropout")
def _identity(c: Ctx):
    return [c.t(0)] if c.node.op_type == "Identity" or len(c.node.output) < 2 else [c.t(0), None]


@op("Softmax", "LogSoftmax")
def _softmax(c: Ctx):
    F = _F()
    axis = c.a("axis", -1 if c.opset >= 13 else 1)
    if c.opset < 13:  # flattens to 2-D around the axis
        x = c.t(0)
        shape = x.shape
        flat = x.reshape(int(np.prod(shape[:axis])) if axis else 1, -1)
        y = F.softmax(flat, -1) if c.node.op_type == "Softmax" else F.log_softmax(flat, -1)
        return [y.reshape(shape)]
    fn = F.softmax if c.node.op_type == "Softmax" else F.log_softmax
    return [fn(c.t(0), axis)]


# ---- linear algebra and convolution ---------------------------------------------------------
@op("MatMul")
def _matmul(c: Ctx):
    if c.is_const(1) and c.np(1).ndim == 2 and not c.is_const(0):
        return [_F().linear(c.t(0), c.t(1, "T"))]  # FULLY_CONNECTED rather than BATCH_MATMUL
    return [_torch().matmul(c.t(0), c.t(1))]


@op("Gemm")
def _gemm(c: Ctx):
    F, torch = _F(), _torch()
    alpha, beta = c.a("alpha", 1.0), c.a("beta", 1.0)
    a = c.t(0).t() if c.a("transA", 0) else c.t(0)
    if c.is_const(1):
        w = c.t(1) if c.a("transB", 0) else c.t(1, "T")
    else:
        w = c.t(1) if c.a("transB", 0) else c.t(1).t()
    bias = c.t(2) if c.has(2) else None
    if alpha == 1.0 and beta == 1.0 and (bias is None or bias.dim() == 1):
        return [F.linear(a, w, bias)]
    y = F.linear(a, w) * alpha
    return [y if bias is None else y + bias * beta]


def _pads(c: Ctx, spatial: int, kernel, strides, dilations, in_shape) -> list[int]:
    """ONNX pads as (begin..., end...) for the spatial dims, resolving auto_pad."""
    auto = c.a("auto_pad", "NOTSET")
    if auto in ("NOTSET", "VALID"):
        return list(c.a("pads", [0] * (2 * spatial))) if auto == "NOTSET" else [0] * (2 * spatial)
    begin, end = [], []
    for i in range(spatial):
        size = in_shape[2 + i]
        out = -(-size // strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return begin + end


def _explicit_pad(x, pads: list[int], value: float = 0.0):
    """Pad with F.pad (which takes the last dim first); returns the padded tensor."""
    n = len(pads) // 2
    spec = []
    for i in reversed(range(n)):
        spec += [pads[i], pads[i + n]]
    return _F().pad(x, spec, value=value)


@op("Conv")
def _conv(c: Ctx):
    F = _F()
    x, w = c.t(0), c.t(1)
    b = c.t(2) if c.has(2) else None
    spatial = len(c.shape(1)) - 2
    kernel = list(c.a("kernel_shape", c.shape(1)[2:]))
    strides = list(c.a("strides", [1] * spatial))
    dil = list(c.a("dilations", [1] * spatial))
    pads = _pads(c, spatial, kernel, strides, dil, c.shape(0))
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}.get(spatial) or c.fail(f"{spatial}-D convolution")
    if pads[:spatial] == pads[spatial:]:
        return [fn(x, w, b, strides, pads[:spatial], dil, c.a("group", 1))]
    return [fn(_explicit_pad(x, pads), w, b, strides, 0, dil, c.a("group", 1))]


@op("ConvTranspose")
def _conv_transpose(c: Ctx):
    """An unpadded transposed convolution, then a crop (pads) or zero rows (output_padding beyond the
    end pad): litert-torch cannot legalise a padded one, and this takes every pads/auto_pad/output_shape."""
    F, torch = _F(), _torch()
    x, w = c.t(0), c.t(1)
    spatial = len(c.shape(1)) - 2
    in_shape = c.shape(0)[2:]
    kernel = list(c.a("kernel_shape", c.shape(1)[2:]))
    strides = list(c.a("strides", [1] * spatial))
    dil = list(c.a("dilations", [1] * spatial))
    out_pad = list(c.a("output_padding", [0] * spatial))
    full = [strides[i] * (in_shape[i] - 1) + (kernel[i] - 1) * dil[i] + 1 for i in range(spatial)]
    auto = c.a("auto_pad", "NOTSET")
    if c.a("output_shape") is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        want = list(c.a("output_shape"))[-spatial:] if c.a("output_shape") is not None else [in_shape[i] * strides[i] for i in range(spatial)]
        total = [full[i] + out_pad[i] - want[i] for i in range(spatial)]
        lower = auto == "SAME_LOWER"
        half = [int(t / 2) for t in total]  # C++ division (toward zero), as onnxruntime: a negative total pads at the end
        begin = [t - h if lower else h for t, h in zip(total, half)]
        pads = begin + [t - b for t, b in zip(total, begin)]
    else:
        pads = list(c.a("pads", [0] * 2 * spatial)) if auto != "VALID" else [0] * 2 * spatial
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}.get(spatial) or c.fail(f"{spatial}-D transposed convolution")
    bias = c.t(2) if c.has(2) else None
    y = fn(x, w, None, strides, 0, 0, c.a("group", 1), dil)
    for i in range(spatial):
        begin, end = pads[i], pads[i + spatial] - out_pad[i]  # < 0: zero rows outside the full output
        axis = 2 + i
        y = y.narrow(axis, max(begin, 0), full[i] - max(begin, 0) - max(end, 0))
        if begin < 0 or end < 0:
            y = F.pad(y, [0, 0] * (spatial - 1 - i) + [max(-begin, 0), max(-end, 0)])
    if bias is not None:
        y = y + bias.reshape(1, -1, *([1] * spatial))
    return [y]


@op("MaxPool", "AveragePool")
def _pool(c: Ctx):
    F = _F()
    if len(c.node.output) > 1 and c.node.output[1]:
        c.fail("the Indices output")
    kernel = list(c.a("kernel_shape"))
    spatial = len(kernel)
    strides = list(c.a("strides", [1] * spatial))
    dil = list(c.a("dilations", [1] * spatial))
    pads = _pads(c, spatial, kernel, strides, dil, c.shape(0))
    ceil = bool(c.a("ceil_mode", 0))
    x = c.t(0)
    if c.node.op_type == "MaxPool":
        fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[spatial]
        if pads[:spatial] != pads[spatial:] or any(p > k // 2 for p, k in zip(pads, kernel * 2)):
            return [fn(_explicit_pad(x, pads, float("-inf")), kernel, strides, 0, dil, ceil_mode=ceil)]
        return [fn(x, kernel, strides, pads[:spatial], dil, ceil_mode=ceil)]
    if dil != [1] * spatial:
        c.fail("dilated average pooling")
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[spatial]
    include = bool(c.a("count_include_pad", 0))
    if pads[:spatial] != pads[spatial:] or any(p > k // 2 for p, k in zip(pads, kernel * 2)):
        y = fn(_explicit_pad(x, pads), kernel, strides, 0, ceil_mode=ceil)
        if not include and any(pads):  # the same pooling of a ones mask counts the real elements per window
            ones = _torch().ones((1, 1, *c.shape(0)[2:]), dtype=_torch().float32)
            share = c.aux("share", lambda: fn(_explicit_pad(ones, pads), kernel, strides, 0, ceil_mode=ceil).numpy())
            y = y / share.to(y.dtype)
        return [y]
    return [fn(x, kernel, strides, pads[:spatial], ceil_mode=ceil, count_include_pad=include)]


@op("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(c: Ctx):
    x = c.t(0)
    dims = tuple(range(2, x.dim()))
    return [x.mean(dims, keepdim=True) if c.node.op_type == "GlobalAveragePool" else x.amax(dims, keepdim=True)]


@op("BatchNormalization")
def _batchnorm(c: Ctx):
    return [_F().batch_norm(c.t(0), c.t(3), c.t(4), c.t(1), c.t(2), False, 0.0, c.a("epsilon", 1e-5))]


@op("InstanceNormalization")
def _instancenorm(c: Ctx):
    return [_F().instance_norm(c.t(0), weight=c.t(1), bias=c.t(2), eps=c.a("epsilon", 1e-5))]


@op("LayerNormalization")
def _layernorm(c: Ctx):
    x = c.t(0)
    axis = c.a("axis", -1) % x.dim()
    shape = tuple(x.shape[axis:])
    return [_F().layer_norm(x, shape, c.t(1), c.t(2) if c.has(2) else None, c.a("epsilon", 1e-5))]
