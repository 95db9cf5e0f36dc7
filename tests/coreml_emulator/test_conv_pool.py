"""conv, conv_transpose and pooling (own kernels) against torch in float64: 1e-6 in fp32.

Padding for "same"/"same_lower" is computed here from its definition (out = ceil(in / stride),
the odd pad element after / before the data) and applied to the torch reference explicitly.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emu_helpers import close, mil, rng, t, u  # noqa: F401 (mil, rng are fixtures)

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def same_pads(sizes, kernel, strides, dilations, lower=False):
    out = []
    for i, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max((math.ceil(i / s) - 1) * s + (k - 1) * d + 1 - i, 0)
        small, big = total // 2, total - total // 2
        out.append((big, small) if lower else (small, big))
    return out


def torch_pad(x, pairs, value=0.0):
    flat = [p for pair in reversed(pairs) for p in pair]  # torch: last dim first
    return F.pad(x, flat, value=value)


CONV_CASES = [
    # nd, c_in, c_out, kernel, stride, dilation, groups, pad_type, custom pads, bias
    (2, 3, 8, 3, 1, 1, 1, "custom", [1, 1, 1, 1], True),
    (2, 4, 6, 3, 2, 1, 2, "valid", None, True),
    (2, 8, 8, 3, 2, 1, 8, "custom", [1, 1, 1, 1], True),  # depthwise
    (2, 4, 8, 3, 1, 2, 1, "same", None, False),  # dilated
    (2, 4, 4, 4, 2, 1, 1, "same", None, True),  # even kernel: odd total pad
    (2, 4, 4, 4, 3, 1, 2, "same_lower", None, True),
    (2, 3, 6, (3, 1), (2, 1), (1, 2), 3, "custom", [0, 2, 1, 0], True),
    (2, 4, 8, 1, 1, 1, 1, "valid", None, False),  # pointwise
    (1, 3, 5, 5, 2, 1, 1, "same", None, True),
    (1, 4, 4, 3, 1, 3, 4, "custom", [2, 3], False),
    (3, 2, 4, 3, (1, 2, 2), 1, 2, "same", None, True),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "-".join(map(str, c[:8])).replace(" ", ""))
def test_conv(mil, rng, case):
    nd, cin, cout, k, s, d, groups, pad_type, pad, bias = case
    kernel = (k,) * nd if isinstance(k, int) else k
    strides = (s,) * nd if isinstance(s, int) else s
    dil = (d,) * nd if isinstance(d, int) else d
    x = u(rng, 2, cin, *([9, 8, 7][:nd]))
    w = u(rng, cout, cin // groups, *kernel, lo=-1, hi=1)
    b = u(rng, cout) if bias else None

    def build(x):
        kw = dict(x=x, weight=w, strides=list(strides), dilations=list(dil), groups=groups, pad_type=pad_type)
        if pad is not None:
            kw["pad"] = pad
        if b is not None:
            kw["bias"] = b
        return mil.mb.conv(**kw)

    (out,) = mil.run(build, {"x": x})
    if pad_type == "custom":
        pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(nd)]
    elif pad_type == "valid":
        pairs = [(0, 0)] * nd
    else:
        pairs = same_pads(x.shape[2:], kernel, strides, dil, lower=pad_type == "same_lower")
    ref = CONV[nd](torch_pad(t(x), pairs), t(w), None if b is None else t(b), strides, 0, dil, groups)
    close(out, ref.numpy())


CONV_T_CASES = [
    # nd, c_in, c_out, kernel, stride, dilation, groups, torch padding, output_padding
    (2, 4, 6, 3, 2, 1, 1, 1, 1),
    (2, 4, 4, 4, 2, 1, 2, 1, 0),
    (2, 6, 6, 3, 1, 2, 3, 0, 0),
    (2, 4, 2, (3, 2), (2, 3), 1, 1, (1, 0), (1, 2)),
    (1, 3, 5, 5, 3, 1, 1, 2, 2),
]


@pytest.mark.parametrize("case", CONV_T_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_conv_transpose(mil, rng, case):
    nd, cin, cout, k, s, d, groups, p, op = case
    kernel = (k,) * nd if isinstance(k, int) else k
    strides = (s,) * nd if isinstance(s, int) else s
    dil = (d,) * nd if isinstance(d, int) else d
    pads = (p,) * nd if isinstance(p, int) else p
    opad = (op,) * nd if isinstance(op, int) else op
    x = u(rng, 2, cin, *([5, 4, 3][:nd]))
    w = u(rng, cin, cout // groups, *kernel, lo=-1, hi=1)
    b = u(rng, cout)
    ref = CONV_T[nd](t(x), t(w), t(b), strides, pads, opad, groups, dil)

    def build(x):
        return mil.mb.conv_transpose(
            x=x, weight=w, bias=b, strides=list(strides), dilations=list(dil), groups=groups, pad_type="custom",
            pad=[v for q in pads for v in (q, q)], output_shape=list(ref.shape),
        )

    (out,) = mil.run(build, {"x": x})
    close(out, ref.numpy())


@pytest.mark.parametrize("pad_type", ["valid", "same"])
def test_conv_transpose_pad_types(mil, rng, pad_type):
    x, w = u(rng, 1, 3, 5, 4), u(rng, 3, 2, 3, 3)
    (out,) = mil.run(lambda x: mil.mb.conv_transpose(x=x, weight=w, strides=[2, 2], pad_type=pad_type), {"x": x})
    full = F.conv_transpose2d(t(x), t(w), stride=2)  # (1, 2, 11, 9)
    if pad_type == "same":  # out = in * stride; the extra row/column is cut evenly, odd one at the end
        full = full[:, :, 0:10, 0:8]
    close(out, full.numpy())


POOL_CASES = [
    # nd, kernel, stride, pads (torch-style symmetric), ceil_mode
    (2, 2, 2, 0, False),
    (2, 3, 2, 1, False),
    (2, 3, 2, 1, True),
    (2, 3, 2, 0, True),
    (2, (3, 2), (2, 1), (1, 0), True),
    (1, 3, 2, 1, True),
    (3, 2, 2, 1, False),
]


@pytest.mark.parametrize("kind", ["max", "avg_include", "avg_exclude"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_pool(mil, rng, case, kind):
    nd, k, s, p, ceil = case
    if nd == 3 and ceil:
        pytest.skip("MIL has no ceil_mode for 3-D pooling")
    kernel = (k,) * nd if isinstance(k, int) else k
    strides = (s,) * nd if isinstance(s, int) else s
    pads = (p,) * nd if isinstance(p, int) else p
    x = u(rng, 2, 3, *([9, 8, 6][:nd]))
    common = dict(kernel_sizes=list(kernel), strides=list(strides), pad_type="custom", pad=[v for q in pads for v in (q, q)], ceil_mode=ceil)
    if kind == "max":
        (out,) = mil.run(lambda x: mil.mb.max_pool(x=x, **common), {"x": x})
        ref = getattr(F, f"max_pool{nd}d")(t(x), kernel, strides, pads, ceil_mode=ceil)
    else:
        exclude = kind == "avg_exclude"
        (out,) = mil.run(lambda x: mil.mb.avg_pool(x=x, exclude_padding_from_average=exclude, **common), {"x": x})
        ref = getattr(F, f"avg_pool{nd}d")(t(x), kernel, strides, pads, ceil_mode=ceil, count_include_pad=not exclude)
    close(out, ref.numpy())


@pytest.mark.parametrize("pad_type", ["same", "same_lower", "valid"])
def test_max_pool_pad_types(mil, rng, pad_type):
    x = u(rng, 1, 2, 7, 8)
    (out,) = mil.run(lambda x: mil.mb.max_pool(x=x, kernel_sizes=[3, 2], strides=[2, 3], pad_type=pad_type), {"x": x})
    pairs = same_pads((7, 8), (3, 2), (2, 3), (1, 1), lower=pad_type == "same_lower") if pad_type != "valid" else [(0, 0)] * 2
    ref = F.max_pool2d(torch_pad(t(x), pairs, value=-np.inf), (3, 2), (2, 3))
    close(out, ref.numpy())


def test_avg_pool_same_counts_padding(mil, rng):
    x = u(rng, 1, 2, 5, 5)
    (out,) = mil.run(lambda x: mil.mb.avg_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="same"), {"x": x})
    ref = F.avg_pool2d(torch_pad(t(x), [(0, 1), (0, 1)]), 2, 2)  # pads count as zeros by default
    close(out, ref.numpy())


def test_l2_pool(mil, rng):
    x = u(rng, 2, 3, 6, 8)
    (out,) = mil.run(lambda x: mil.mb.l2_pool(x=x, kernel_sizes=[2, 3], strides=[2, 2], pad_type="valid"), {"x": x})
    close(out, F.lp_pool2d(t(x), 2, (2, 3), (2, 2)).numpy())
