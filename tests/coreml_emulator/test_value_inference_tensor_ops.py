"""Shape and gather ops the emulator runs through coremltools' own value_inference: checked
against numpy/torch definitions, and against coremltools' compile-time result on constants."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emu_helpers import Case, check_case, mil, rng, t, u, x_only  # noqa: F401 (mil, rng are fixtures)


def ints(r, shape, lo, hi):
    return r.integers(lo, hi, size=shape).astype(np.int32)


CASES = [
    Case("reshape", lambda mb, x: mb.reshape(x=x, shape=[4, -1]), x_only(2, 3, 4), lambda x: x.reshape(4, 6)),
    Case("transpose", lambda mb, x: mb.transpose(x=x, perm=[2, 0, 1]), x_only(2, 3, 4), lambda x: x.transpose(2, 0, 1)),
    Case("transpose_negative_perm", lambda mb, x: mb.transpose(x=x, perm=[0, 2, -1, -3]), x_only(2, 3, 4, 5),
         lambda x: x.transpose(0, 2, 3, 1)),
    Case("squeeze", lambda mb, x: mb.squeeze(x=x, axes=[1]), x_only(2, 1, 3, 1), lambda x: x[:, 0]),
    Case("squeeze_all", lambda mb, x: mb.squeeze(x=x), x_only(2, 1, 3, 1), lambda x: x[:, 0, :, 0]),
    Case("expand_dims", lambda mb, x: mb.expand_dims(x=x, axes=[0, -1]), x_only(2, 3), lambda x: x[None, :, :, None]),
    Case("slice_by_size", lambda mb, x: mb.slice_by_size(x=x, begin=[0, 1, 1], size=[2, -1, 2]), x_only(2, 3, 4),
         lambda x: x[0:2, 1:, 1:3]),
    Case("shape", lambda mb, x: mb.shape(x=x), x_only(2, 3, 4), lambda x: np.array([2, 3, 4])),
    Case("flatten2d", lambda mb, x: mb.flatten2d(x=x, axis=2), x_only(2, 3, 4, 5), lambda x: x.reshape(6, 20)),
    Case("reverse", lambda mb, x: mb.reverse(x=x, axes=[0, 2]), x_only(2, 3, 4), lambda x: torch.flip(t(x), (0, 2))),
    Case("tile", lambda mb, x: mb.tile(x=x, reps=[2, 1, 3]), x_only(2, 3, 4), lambda x: torch.tile(t(x), (2, 1, 3))),
    Case("stack", lambda mb, x, y: mb.stack(values=(x, y), axis=1), lambda r: {"x": u(r, 2, 3), "y": u(r, 2, 3)},
         lambda x, y: torch.stack([t(x), t(y)], 1)),
    Case("gather", lambda mb, x, i: mb.gather(x=x, indices=i, axis=0),
         lambda r: {"x": u(r, 5, 4), "i": np.array([[0, 4], [-1, 2], [3, -5]], np.int32)},
         lambda x, i: x[np.where(i < 0, i + 5, i)]),
    Case("gather_axis1_batch_dims", lambda mb, x, i: mb.gather(x=x, indices=i, axis=1, batch_dims=1),
         lambda r: {"x": u(r, 3, 5, 2), "i": ints(r, (3, 4), 0, 5)},
         lambda x, i: np.stack([x[b][i[b]] for b in range(3)])),
    Case("gather_along_axis", lambda mb, x, i: mb.gather_along_axis(x=x, indices=i, axis=1),
         lambda r: {"x": u(r, 3, 4), "i": ints(r, (3, 2), 0, 4)},
         lambda x, i: torch.gather(t(x), 1, torch.from_numpy(i.astype(np.int64)))),
    Case("pad_constant", lambda mb, x: mb.pad(x=x, pad=[1, 2, 2, 1], mode="constant", constant_val=0.5), x_only(1, 2, 4, 5),
         lambda x: F.pad(t(x), (2, 1, 1, 2), value=0.5)),
    Case("pad_reflect", lambda mb, x: mb.pad(x=x, pad=[1, 2, 2, 1], mode="reflect"), x_only(1, 2, 4, 5),
         lambda x: F.pad(t(x), (2, 1, 1, 2), mode="reflect")),
    Case("pad_replicate", lambda mb, x: mb.pad(x=x, pad=[1, 2, 2, 1], mode="replicate"), x_only(1, 2, 4, 5),
         lambda x: F.pad(t(x), (2, 1, 1, 2), mode="replicate")),
    Case("fill", lambda mb, s: mb.fill(shape=s, value=1.5), lambda r: {"s": np.array([2, 3], np.int32)},
         lambda s: np.full((2, 3), 1.5)),
    Case("fill_like", lambda mb, x: mb.fill_like(ref_tensor=x, value=2.0), x_only(2, 3), lambda x: np.full((2, 3), 2.0)),
    Case("select", lambda mb, c, a, b: mb.select(cond=c, a=a, b=b),
         lambda r: {"c": r.random((2, 3)) < 0.5, "a": u(r, 2, 3), "b": u(r, 3)}, lambda c, a, b: np.where(c, a, b)),
    Case("topk", lambda mb, x: mb.topk(x=x, k=2, axis=-1, ascending=False), x_only(3, 6),
         lambda x: list(torch.topk(t(x), 2, -1))),
    Case("topk_ascending_axis0", lambda mb, x: mb.topk(x=x, k=3, axis=0, ascending=True), x_only(5, 2),
         lambda x: list(torch.topk(t(x), 3, 0, largest=False))),
    Case("argsort", lambda mb, x: mb.argsort(x=x, axis=-1, ascending=True), x_only(3, 6), lambda x: torch.argsort(t(x), -1)),
    Case("sdpa", lambda mb, q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v),
         lambda r: {"q": u(r, 2, 3, 5, 8), "k": u(r, 2, 3, 6, 8), "v": u(r, 2, 3, 6, 4)},
         lambda q, k, v: F.scaled_dot_product_attention(t(q), t(k), t(v)), "iOS18"),
    Case("sdpa_bool_mask", lambda mb, q, k, v, m: mb.scaled_dot_product_attention(query=q, key=k, value=v, attn_mask=m),
         lambda r: {"q": u(r, 2, 5, 8), "k": u(r, 2, 6, 8), "v": u(r, 2, 6, 4), "m": np.tril(np.ones((5, 6), bool))},
         lambda q, k, v, m: F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=torch.from_numpy(m)), "iOS18"),
    Case("sdpa_float_mask", lambda mb, q, k, v, m: mb.scaled_dot_product_attention(query=q, key=k, value=v, attn_mask=m),
         lambda r: {"q": u(r, 2, 5, 8), "k": u(r, 2, 6, 8), "v": u(r, 2, 6, 4), "m": u(r, 5, 6)},
         lambda q, k, v, m: F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=t(m)), "iOS18"),
    Case("non_zero", lambda mb, x: mb.non_zero(x=x), lambda r: {"x": np.round(u(r, 3, 4, lo=-1, hi=1))},
         lambda x: torch.nonzero(t(x))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_value_inference_tensor_op(mil, rng, case):
    check_case(mil, rng, case, folded=True)
