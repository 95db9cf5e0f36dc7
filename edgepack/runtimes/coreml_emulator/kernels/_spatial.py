"""Padding and sliding windows shared by conv and pooling (NC + 1 to 3 spatial dims)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def ints(value, n: int, default: int) -> list[int]:
    """An op's per-spatial-dim parameter as a list of n ints (default when unset)."""
    if value is None:
        return [default] * n
    return [int(v) for v in np.asarray(value).reshape(-1)]


def effective(kernel: Sequence[int], dilations: Sequence[int]) -> list[int]:
    return [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]


def pads(pad_type: str, pad, sizes: Sequence[int], kernel_eff: Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim, as MIL defines each pad_type.

    same / same_lower pad so that out = ceil(in / stride); the odd element goes after the data
    for "same" and before it for "same_lower" (coremltools `aggregated_pad`)."""
    n = len(sizes)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        p = ints(pad, 2 * n, 0)
        return [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        out = []
        for i, k, s in zip(sizes, kernel_eff, strides):
            total = max(0, s * math.ceil(i / s) - i + k - s)
            small, big = total // 2, total - total // 2
            out.append((small, big) if pad_type == "same" else (big, small))
        return out
    raise ValueError(f"unknown pad_type '{pad_type}'")


def out_sizes(sizes, pad_pairs, kernel_eff, strides, ceil_mode: bool = False) -> list[int]:
    """Spatial output sizes (coremltools `spatial_dimensions_out_shape`, ceil_mode included)."""
    out = []
    for i, (pb, pa), k, s in zip(sizes, pad_pairs, kernel_eff, strides):
        total = pb + pa
        if not ceil_mode:
            o = (i + total - k) // s + 1
        else:
            o = (i + total - k + s - 1) // s + 1
            if (o - 1) * s >= i + total / 2 and total > 0:
                o -= 1
        if o <= 0:
            raise ValueError(f"spatial size {i} with kernel {k}, stride {s} and pads {(pb, pa)} gives no output")
        out.append(o)
    return out


def extension(sizes, pad_pairs, outs, kernel_eff, strides) -> list[int]:
    """How far past the padded end the last window reaches (ceil_mode), per spatial dim."""
    return [
        max(0, (o - 1) * s + k - (i + pb + pa))
        for i, (pb, pa), o, k, s in zip(sizes, pad_pairs, outs, kernel_eff, strides)
    ]


def pad_spatial(x: np.ndarray, widths, fill: float = 0.0) -> np.ndarray:
    """Pad the spatial dims of x (N, C, *S) by `widths` [(before, after), ...]."""
    if all(w == (0, 0) for w in widths):
        return x
    return np.pad(x, [(0, 0), (0, 0), *widths], mode="constant", constant_values=fill)


def pad_input(x: np.ndarray, pad_pairs, outs, kernel_eff, strides, fill: float = 0.0) -> np.ndarray:
    """Pad x (N, C, *S) by its pads, plus the ceil_mode extension at the end."""
    ext = extension(x.shape[2:], pad_pairs, outs, kernel_eff, strides)
    return pad_spatial(x, [(pb, pa + e) for (pb, pa), e in zip(pad_pairs, ext)], fill)


def windows(xp: np.ndarray, kernel, dilations, strides, outs) -> np.ndarray:
    """All windows of the padded input: shape (N, C, *outs, *kernel) (a view when possible)."""
    nd = len(kernel)
    eff = effective(kernel, dilations)
    w = np.lib.stride_tricks.sliding_window_view(xp, eff, axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None))
    index += tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(outs, strides))
    index += tuple(slice(None, None, d) for d in dilations)
    return w[index]
