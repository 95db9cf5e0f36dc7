"""ONNX Resize (opset 10-19) and Upsample, in every mode the spec defines except tf_crop_and_resize.

Shapes are static, so each resized axis gets its source coordinates computed here with the ONNX
formulas (coordinate_transformation_mode, nearest_mode, cubic_coeff_a, exclude_outside) and the
resize becomes gathers (nearest), gathers and a lerp (linear) or a small matrix product (cubic).
The cases that are exactly PyTorch's own interpolate keep F.interpolate, so converters still see
a RESIZE op there.
"""
from __future__ import annotations

import numpy as np

from .ops import Ctx, _F, _torch, op


def _source_coords(mode: str, out: int, size: int, scale: float, c: Ctx) -> np.ndarray:
    """Source coordinates of the `out` resized positions, in float32 as onnxruntime computes them."""
    f = np.float32
    x, s, n, length = np.arange(out, dtype=f), f(scale), f(out), f(size)
    half = f(0.5)
    if mode == "half_pixel":
        return (x + half) / s - half
    if mode == "half_pixel_symmetric":
        adjustment = n / (s * length)
        offset = length / f(2) * (f(1) - adjustment)
        return offset + (x + half) / s - half
    if mode == "pytorch_half_pixel":
        return (x + half) / s - half if out > 1 else np.zeros(out, f)
    if mode == "align_corners":
        return x * (length - f(1)) / (n - f(1)) if out > 1 else np.zeros(out, f)
    if mode == "asymmetric":
        return x / s
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / s
    c.fail(f"coordinate_transformation_mode={mode!r}")


def _nearest_index(coords: np.ndarray, rule: str, size: int, c: Ctx) -> np.ndarray:
    frac = coords - np.floor(coords)
    if rule == "round_prefer_floor":
        idx = np.where(frac == 0.5, np.floor(coords), np.round(coords))
    elif rule == "round_prefer_ceil":
        idx = np.where(frac == 0.5, np.ceil(coords), np.round(coords))
    elif rule == "floor":
        idx = np.floor(coords)
    elif rule == "ceil":
        idx = np.ceil(coords)
    else:
        c.fail(f"nearest_mode={rule!r}")
    return np.clip(idx, 0, size - 1).astype(np.int64)


def _cubic_matrix(coords: np.ndarray, size: int, a: float, exclude_outside: bool) -> np.ndarray:
    """(out, size) weights of ONNX's cubic convolution (Keys, coefficient a), edges clamped."""
    m = np.zeros((len(coords), size), np.float64)
    for o, x in enumerate(coords):
        base = int(np.floor(x))
        t = x - base
        taps = [base - 1, base, base + 1, base + 2]
        ds = [1 + t, t, 1 - t, 2 - t]
        w = []
        for d in ds:
            d = abs(d)
            w.append(((a + 2) * d - (a + 3)) * d * d + 1 if d <= 1 else ((a * d - 5 * a) * d + 8 * a) * d - 4 * a)
        w = np.asarray(w)
        if exclude_outside:
            w = np.where([(0 <= i < size) for i in taps], w, 0.0)
            w = w / w.sum()
        for i, wi in zip(taps, w):
            m[o, min(max(i, 0), size - 1)] += wi
    return m


def _plan(c: Ctx):
    """(input rank, per axis: (axis, in size, out size, scale)) of the resize."""
    shape = c.shape(0)
    rank = len(shape)
    if c.node.op_type == "Upsample":
        scales = c.np(1).tolist() if c.has(1) else list(c.a("scales"))
        sizes = None
    else:
        first = 1 if c.opset <= 10 else 2
        scales = c.np(first).tolist() if c.has(first) and c.np(first).size else None
        sizes = [int(s) for s in c.np(3)] if c.opset > 10 and c.has(3) and c.np(3).size else None
    axes = list(range(rank))
    if c.a("axes") is not None:  # opset 18: scales/sizes name only these axes
        axes = [int(a) % rank for a in c.a("axes")]
    if c.a("keep_aspect_ratio_policy", "stretch") != "stretch":
        c.fail(f"keep_aspect_ratio_policy={c.a('keep_aspect_ratio_policy')!r}")
    plan = []
    for j, ax in enumerate(axes):
        size = shape[ax]
        if sizes is not None:
            out = sizes[j]
            scale = out / size
        else:
            scale = float(scales[j])
            out = int(np.floor(size * scale))
        if out != size or scale != 1.0:
            plan.append((ax, size, out, scale))
    return rank, plan


@op("Resize", "Upsample")
def _resize(c: Ctx):
    F, torch = _F(), _torch()
    x = c.t(0)
    rank, plan = _plan(c)
    mode = c.a("mode", "nearest")
    is_upsample = c.node.op_type == "Upsample" or c.opset <= 10
    coord = "asymmetric" if is_upsample else c.a("coordinate_transformation_mode", "half_pixel")
    rule = "floor" if is_upsample else c.a("nearest_mode", "round_prefer_floor")
    if mode == "linear" and is_upsample:
        coord = "asymmetric"
    if c.a("antialias", 0) and mode != "nearest" and any(out < size for _, size, out, _ in plan):
        c.fail("antialias downscaling")
    if not plan:
        return [x]
    if any(ax < 2 for ax, *_ in plan) or mode not in ("nearest", "linear", "cubic"):
        return [_separable(c, x, plan, mode, coord, rule)]
    spatial = [(size, out, scale) for _, size, out, scale in plan]
    exact = all(out == size * scale for size, out, scale in spatial) and len(plan) == rank - 2
    if exact and mode == "nearest" and coord == "asymmetric" and rule == "floor":
        return [F.interpolate(x, size=[o for _, o, _ in spatial], mode="nearest")]
    if exact and mode == "linear" and rank in (3, 4, 5) and coord in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        if coord != "pytorch_half_pixel" or all(o > 1 for _, o, _ in spatial):
            lin = {3: "linear", 4: "bilinear", 5: "trilinear"}[rank]
            return [F.interpolate(x, size=[o for _, o, _ in spatial], mode=lin, align_corners=coord == "align_corners")]
    return [_separable(c, x, plan, mode, coord, rule)]


def _separable(c: Ctx, x, plan, mode: str, coord: str, rule: str):
    torch = _torch()
    for ax, size, out, scale in plan:
        coords = _source_coords(coord, out, size, scale, c)
        if mode == "nearest":
            idx = c.aux(f"n{ax}", lambda: _nearest_index(coords, rule, size, c))
            x = torch.index_select(x, ax, idx)
        elif mode == "linear":
            xc = np.clip(coords, 0, size - 1)
            i0 = np.floor(xc).astype(np.int64)
            i1 = np.minimum(i0 + 1, size - 1)
            w = (xc - i0).astype(np.float32)
            view = [1] * x.dim()
            view[ax] = out
            a = torch.index_select(x, ax, c.aux(f"l0_{ax}", lambda: i0))
            b = torch.index_select(x, ax, c.aux(f"l1_{ax}", lambda: i1))
            x = a + (b - a) * c.aux(f"lw{ax}", lambda: w.reshape(view)).to(x.dtype)
        elif mode == "cubic":
            m = c.aux(f"c{ax}", lambda: _cubic_matrix(coords, size, c.a("cubic_coeff_a", -0.75), bool(c.a("exclude_outside", 0))).astype(np.float32))
            x = torch.movedim(torch.matmul(m.to(x.dtype), torch.movedim(x, ax, -2)), -2, ax)
        else:
            c.fail(f"mode={mode!r}")
    return x
