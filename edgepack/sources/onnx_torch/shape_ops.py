"""ONNX shape, indexing and reduction ops for the ONNX -> PyTorch bridge."""
from __future__ import annotations

import numpy as np

from .ops import Const, Ctx, _F, _torch, op


def _axes(c: Ctx, attr_opset: int, index: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or from input `index` (newer ones)."""
    if c.opset < attr_opset:
        ax = c.a("axes")
        return None if ax is None else [int(a) for a in ax]
    return [int(a) for a in c.np(index).ravel()] if c.has(index) else None


@op("Constant")
def _constant(c: Ctx):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in c.attrs:
            v = c.attrs[key]
            dtype = np.float32 if "float" in key else (np.int64 if "int" in key else None)
            return [Const(np.asarray(v, dtype=dtype) if dtype else v)]
    c.fail("this kind of Constant")


@op("Shape")
def _shape(c: Ctx):
    s = np.asarray(c.shape(0), dtype=np.int64)
    start, end = c.a("start", 0), c.a("end")
    return [Const(s[start:end])]


@op("Size")
def _size(c: Ctx):
    return [Const(np.asarray(int(np.prod(c.shape(0))), dtype=np.int64))]


@op("ConstantOfShape")
def _constant_of_shape(c: Ctx):
    v = c.a("value")
    v = np.zeros(1, np.float32) if v is None else np.asarray(v).ravel()
    return [Const(np.full([int(d) for d in c.np(0)], v[0], dtype=v.dtype))]


@op("Range")
def _range(c: Ctx):
    return [Const(np.arange(c.np(0), c.np(1), c.np(2)))]


@op("Flatten")
def _flatten(c: Ctx):
    x = c.t(0)
    axis = c.a("axis", 1) % max(x.dim(), 1)
    lead = int(np.prod(x.shape[:axis])) if axis else 1
    return [x.reshape(lead, -1)]


@op("Reshape")
def _reshape(c: Ctx):
    x = c.t(0)
    shape = [int(d) for d in c.np(1)]
    if not c.a("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return [x.reshape(shape)]


@op("Transpose")
def _transpose(c: Ctx):
    x = c.t(0)
    perm = c.a("perm") or list(reversed(range(x.dim())))
    return [x.permute(*perm)]


@op("Squeeze")
def _squeeze(c: Ctx):
    x = c.t(0)
    axes = _axes(c, 13, 1)
    if axes is None:
        return [x.squeeze()]
    for a in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(a)
    return [x]


@op("Unsqueeze")
def _unsqueeze(c: Ctx):
    x = c.t(0)
    axes = _axes(c, 13, 1)
    rank = x.dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return [x]


@op("Concat")
def _concat(c: Ctx):
    return [_torch().cat([c.t(i) for i in range(len(c.args)) if c.has(i)], dim=c.a("axis"))]


@op("Split")
def _split(c: Ctx):
    x = c.t(0)
    axis = c.a("axis", 0)
    n = len(c.node.output)
    if c.opset >= 13 and c.has(1):
        sizes = [int(s) for s in c.np(1)]
    elif c.a("split") is not None:
        sizes = list(c.a("split"))
    else:
        size = x.shape[axis]
        step = -(-size // n)
        sizes = [min(step, size - i * step) for i in range(n)]
    return list(_torch().split(x, sizes, dim=axis))


@op("Slice")
def _slice(c: Ctx):
    x = c.t(0)
    if c.opset < 10:
        starts, ends, axes, steps = c.a("starts"), c.a("ends"), c.a("axes"), None
    else:
        starts, ends = c.np(1).tolist(), c.np(2).tolist()
        axes = c.np(3).tolist() if c.has(3) else None
        steps = c.np(4).tolist() if c.has(4) else None
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    index = [slice(None)] * x.dim()
    reverse = []
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a % x.dim()
        size = x.shape[a]
        if st > 0:
            index[a] = slice(max(min(s, size), -size), max(min(e, size), -size - 1), st)
            continue
        # a negative step: ONNX clamps start to [0, size-1] and end to [-1, size-1] after wrapping
        s = s + size if s < 0 else s
        e = e + size if e < 0 else e
        s, e = min(max(s, 0), size - 1), min(max(e, -1), size - 1)
        picked = list(range(s, e, st))
        if not picked:
            index[a] = slice(0, 0)
        elif st == -1:
            index[a] = slice(picked[-1], picked[0] + 1)
            reverse.append(a)
        else:
            index[a] = slice(picked[-1], picked[0] + 1, -st)  # the same elements, ascending
            reverse.append(a)
    y = x[tuple(index)]
    return [y.flip(reverse) if reverse else y]


@op("Gather")
def _gather(c: Ctx):
    axis = c.a("axis", 0)
    x = c.t(0)
    if c.is_const(1):
        idx = c.np(1)
        size = x.shape[axis]
        idx = np.where(idx < 0, idx + size, idx)
        if idx.ndim == 0:
            return [x.select(axis, int(idx))]
        flat = idx.ravel()
        if flat.size and np.array_equal(flat, np.arange(flat[0], flat[0] + flat.size)):
            return [x.narrow(axis, int(flat[0]), int(flat.size)).reshape(*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :])]
        if (c.np(1) < 0).any():
            c.fail("negative Gather indices")
    idx = c.t(1)
    return [_torch().index_select(x, axis, idx.reshape(-1)).reshape(*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :])]


@op("Expand")
def _expand(c: Ctx):
    x = c.t(0)
    shape = [int(d) for d in c.np(1)]
    rank = max(x.dim(), len(shape))
    shape = [1] * (rank - len(shape)) + shape
    xs = [1] * (rank - x.dim()) + list(x.shape)
    return [x.reshape(xs).expand([max(a, b) for a, b in zip(xs, shape)])]


@op("Tile")
def _tile(c: Ctx):
    return [c.t(0).repeat(*[int(r) for r in c.np(1)])]


@op("Pad")
def _pad(c: Ctx):
    mode = c.a("mode", "constant")
    if c.opset < 11:
        pads, value = list(c.a("pads")), c.a("value", 0.0)
    else:
        pads = [int(p) for p in c.np(1)]
        value = float(c.np(2)) if c.has(2) else 0.0
    x = c.t(0)
    if c.has(3) if c.opset >= 18 else False:
        axes = [int(a) % x.dim() for a in c.np(3)]
        full = [0] * (2 * x.dim())
        for i, a in enumerate(axes):
            full[a], full[a + x.dim()] = pads[i], pads[i + len(axes)]
        pads = full
    n = len(pads) // 2
    spec = []
    for i in reversed(range(n)):
        spec += [pads[i], pads[i + n]]
    while len(spec) > 2 and spec[-2:] == [0, 0]:  # F.pad needs no zero pads on leading dims
        spec = spec[:-2]
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode) or c.fail(f"Pad mode {mode!r}")
    return [_F().pad(x, spec, mode=torch_mode, value=value if torch_mode == "constant" else None)]


_REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "amax", "ReduceMin": "amin", "ReduceProd": "prod"}


@op(*_REDUCE, "ReduceL2", "ReduceSumSquare")
def _reduce(c: Ctx):
    x = c.t(0)
    keep = bool(c.a("keepdims", 1))
    axes = _axes(c, 13 if c.node.op_type == "ReduceSum" else 18, 1)
    if axes is None or not axes:
        if c.a("noop_with_empty_axes", 0) and axes is not None:
            return [x]
        axes = list(range(x.dim()))
    axes = [a % x.dim() for a in axes]
    t = c.node.op_type
    if t == "ReduceL2":
        return [(x * x).sum(axes, keepdim=keep).sqrt()]
    if t == "ReduceSumSquare":
        return [(x * x).sum(axes, keepdim=keep)]
    if t == "ReduceProd":
        for a in sorted(axes, reverse=True):
            x = x.prod(a, keepdim=keep)
        return [x]
    return [getattr(x, _REDUCE[t])(axes, keepdim=keep)]


@op("ArgMax", "ArgMin")
def _argmax(c: Ctx):
    x = c.t(0)
    if c.a("select_last_index", 0):
        c.fail("select_last_index")
    fn = x.argmax if c.node.op_type == "ArgMax" else x.argmin
    return [fn(c.a("axis", 0), keepdim=bool(c.a("keepdims", 1)))]
