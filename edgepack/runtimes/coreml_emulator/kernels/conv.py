"""conv and conv_transpose, 1-D to 3-D, with groups, strides, dilations and every pad_type.

Own kernels (coremltools has no numpy implementation of either). They accumulate in float64;
the interpreter then rounds to the op's declared dtype, so an fp32 result is the correctly
rounded exact value rather than one particular fp32 summation order.
"""
from __future__ import annotations

import numpy as np

from . import OpCall, register
from ._spatial import effective, ints, out_sizes, pad_input, pads, windows


def _bias(call: OpCall, nd: int):
    b = call.get("bias")
    return None if b is None else np.asarray(b, dtype=np.float64).reshape(1, -1, *([1] * nd))


@register("conv")
def _conv(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"], dtype=np.float64)
    w = np.asarray(call["weight"], dtype=np.float64)
    nd = x.ndim - 2
    strides = ints(call.get("strides"), nd, 1)
    dilations = ints(call.get("dilations"), nd, 1)
    groups = int(call.get("groups", 1))
    kernel = list(w.shape[2:])
    eff = effective(kernel, dilations)
    pad_pairs = pads(str(call.get("pad_type", "valid")), call.get("pad"), x.shape[2:], eff, strides)
    outs = out_sizes(x.shape[2:], pad_pairs, eff, strides)
    xp = pad_input(x, pad_pairs, outs, eff, strides)

    n, c_out, c_group = x.shape[0], w.shape[0], w.shape[1]
    o_group = c_out // groups
    if c_group == 1 and o_group == 1:  # depthwise: one filter per channel, summed position by position
        out = np.zeros((n, c_out, *outs), dtype=np.float64)
        for kpos in np.ndindex(*kernel):
            index = (slice(None), slice(None)) + tuple(
                slice(k * d, k * d + (o - 1) * s + 1, s) for k, d, o, s in zip(kpos, dilations, outs, strides)
            )
            out += xp[index] * w[(slice(None), 0, *kpos)].reshape(1, c_out, *([1] * nd))
    else:
        win = windows(xp, kernel, dilations, strides, outs)
        k_axes = tuple(range(2 + nd, 2 + 2 * nd))
        out = np.empty((n, c_out, *outs), dtype=np.float64)
        for g in range(groups):
            xg = win[:, g * c_group : (g + 1) * c_group]
            wg = w[g * o_group : (g + 1) * o_group]
            r = np.tensordot(xg, wg, axes=([1, *k_axes], [1, *range(2, 2 + nd)]))  # N, *outs, o_group
            out[:, g * o_group : (g + 1) * o_group] = np.moveaxis(r, -1, 1)
    b = _bias(call, nd)
    return out if b is None else out + b


@register("conv_transpose")
def _conv_transpose(call: OpCall) -> np.ndarray:
    x = np.asarray(call["x"], dtype=np.float64)
    w = np.asarray(call["weight"], dtype=np.float64)  # C_in, C_out / groups, *K
    nd = x.ndim - 2
    sizes = list(x.shape[2:])
    strides = ints(call.get("strides"), nd, 1)
    dilations = ints(call.get("dilations"), nd, 1)
    groups = int(call.get("groups", 1))
    kernel = list(w.shape[2:])
    eff = effective(kernel, dilations)
    full_sizes = [(i - 1) * s + k for i, s, k in zip(sizes, strides, eff)]

    n, c_in, o_group = x.shape[0], x.shape[1], w.shape[1]
    i_group = c_in // groups
    full = np.zeros((n, o_group * groups, *full_sizes), dtype=np.float64)
    for g in range(groups):
        xg = x[:, g * i_group : (g + 1) * i_group]
        wg = w[g * i_group : (g + 1) * i_group]
        contrib = np.tensordot(xg, wg, axes=([1], [0]))  # N, *S, o_group, *K
        contrib = np.moveaxis(contrib, 1 + nd, 1)  # N, o_group, *S, *K
        target = full[:, g * o_group : (g + 1) * o_group]
        for kpos in np.ndindex(*kernel):
            index = (slice(None), slice(None)) + tuple(
                slice(k * d, k * d + (i - 1) * s + 1, s) for k, d, i, s in zip(kpos, dilations, sizes, strides)
            )
            target[index] += contrib[(Ellipsis, *kpos)]

    pad_type = str(call.get("pad_type", "valid"))
    output_shape = call.get("output_shape")
    if pad_type == "custom":
        p = ints(call.get("pad"), 2 * nd, 0)
        before = [p[2 * i] for i in range(nd)]
        outs = [f - p[2 * i] - p[2 * i + 1] for i, f in enumerate(full_sizes)]
    elif pad_type in ("same", "same_lower"):
        outs = [i * s for i, s in zip(sizes, strides)]
        before = [max(f - o, 0) // 2 for f, o in zip(full_sizes, outs)]
        if pad_type == "same_lower":
            before = [max(f - o, 0) - max(f - o, 0) // 2 for f, o in zip(full_sizes, outs)]
    elif pad_type == "valid":
        before, outs = [0] * nd, list(full_sizes)
    else:
        raise ValueError(f"conv_transpose: unknown pad_type '{pad_type}'")
    if output_shape is not None:
        outs = [int(v) for v in np.asarray(output_shape).reshape(-1)[2:]]

    out = np.zeros((n, full.shape[1], *outs), dtype=np.float64)
    src = (slice(None), slice(None)) + tuple(slice(b, min(b + o, f)) for b, o, f in zip(before, outs, full_sizes))
    dst = (slice(None), slice(None)) + tuple(slice(0, max(0, min(b + o, f) - b)) for b, o, f in zip(before, outs, full_sizes))
    out[dst] = full[src]
    b = _bias(call, nd)
    return out if b is None else out + b
