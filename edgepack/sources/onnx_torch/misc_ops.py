"""Less common ONNX ops for the bridge: LRN, Mod, Einsum, DepthToSpace/SpaceToDepth, Trilu, CumSum."""
from __future__ import annotations

import numpy as np

from .ops import Ctx, _F, _torch, op


@op("LRN")
def _lrn(c: Ctx):
    x = c.t(0)
    size = int(c.a("size"))
    alpha, beta, bias = c.a("alpha", 1e-4), c.a("beta", 0.75), c.a("bias", 1.0)
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    sq = x * x
    spec = [0, 0] * (x.dim() - 2) + [lo, hi]
    padded = _F().pad(sq, spec)
    channels = x.shape[1]
    total = padded.narrow(1, 0, channels)
    for k in range(1, size):
        total = total + padded.narrow(1, k, channels)
    return [x / (bias + alpha / size * total) ** beta]


@op("Mod")
def _mod(c: Ctx):
    torch = _torch()
    a, b = c.t(0), c.t(1)
    return [torch.fmod(a, b) if c.a("fmod", 0) else torch.remainder(a, b)]


@op("Einsum")
def _einsum(c: Ctx):
    return [_torch().einsum(c.a("equation").replace(" ", ""), *[c.t(i) for i in range(len(c.args))])]


@op("DepthToSpace")
def _depth_to_space(c: Ctx):
    x = c.t(0)
    b = int(c.a("blocksize"))
    n, ch, h, w = c.shape(0)
    if c.a("mode", "DCR") == "DCR":
        y = x.reshape(n, b, b, ch // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    else:  # CRD
        y = x.reshape(n, ch // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    return [y.reshape(n, ch // (b * b), h * b, w * b)]


@op("SpaceToDepth")
def _space_to_depth(c: Ctx):
    x = c.t(0)
    b = int(c.a("blocksize"))
    n, ch, h, w = c.shape(0)
    y = x.reshape(n, ch, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return [y.reshape(n, ch * b * b, h // b, w // b)]


@op("Trilu")
def _trilu(c: Ctx):
    torch = _torch()
    k = int(c.np(1)) if c.has(1) else 0
    *_, rows, cols = c.shape(0)
    keep = np.triu(np.ones((rows, cols), bool), k) if c.a("upper", 1) else np.tril(np.ones((rows, cols), bool), k)
    x = c.t(0)
    return [torch.where(c.aux("mask", lambda: keep), x, torch.zeros((), dtype=x.dtype))]


@op("CumSum")
def _cumsum(c: Ctx):
    x = c.t(0)
    axis = int(c.np(1)) % x.dim()
    if c.a("exclusive", 0) or c.a("reverse", 0):
        c.fail("exclusive or reverse CumSum")
    return [_torch().cumsum(x, axis)]
