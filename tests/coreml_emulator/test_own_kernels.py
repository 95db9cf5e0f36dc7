"""The emulator's own kernels for activations and data movement, against torch, TensorFlow or
numpy definitions (1e-6 in fp32, float64 references)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emu_helpers import Case, check_case, mil, rng, t, u, x_only  # noqa: F401 (mil, rng are fixtures)

SQRT_2_PI = math.sqrt(2 / math.pi)


def manual_gather_nd(x, i, batch_dims):
    if batch_dims == 0:
        return x[tuple(np.moveaxis(i, -1, 0))]
    return np.stack([manual_gather_nd(xb, ib, batch_dims - 1) for xb, ib in zip(x, i)])


def _set(x, index, y):
    out = x.copy()
    out[index] = y
    return out


def exclusive(c, axis):
    return torch.cat([torch.zeros_like(c.narrow(axis, 0, 1)), c.narrow(axis, 0, c.shape[axis] - 1)], axis)


CASES = [
    Case("silu", lambda mb, x: mb.silu(x=x), x_only(2, 3, 4, lo=-8, hi=8), lambda x: F.silu(t(x))),
    Case("gelu_exact", lambda mb, x: mb.gelu(x=x, mode="EXACT"), x_only(2, 3, 4, lo=-5, hi=5), lambda x: F.gelu(t(x))),
    Case("gelu_tanh", lambda mb, x: mb.gelu(x=x, mode="TANH_APPROXIMATION"), x_only(2, 3, 4, lo=-5, hi=5),
         lambda x: F.gelu(t(x), approximate="tanh")),
    Case("gelu_sigmoid", lambda mb, x: mb.gelu(x=x, mode="SIGMOID_APPROXIMATION"), x_only(2, 3, 4, lo=-5, hi=5),
         lambda x: t(x) * torch.sigmoid(1.702 * t(x))),
    Case("erf", lambda mb, x: mb.erf(x=x), x_only(2, 3, 4, lo=-3, hi=3), lambda x: torch.erf(t(x))),
    Case("thresholded_relu", lambda mb, x: mb.thresholded_relu(x=x, alpha=0.5), x_only(2, 3, 4),
         lambda x: F.threshold(t(x), 0.5, 0.0) + (t(x) == 0.5) * 0.5),
    Case("slice_by_index", lambda mb, x: mb.slice_by_index(x=x, begin=[0, 1, -3], end=[2, 3, -1], stride=[1, 1, 2]),
         x_only(2, 4, 6), lambda x: x[0:2, 1:3, -3:-1:2]),
    Case("slice_by_index_masks",
         lambda mb, x: mb.slice_by_index(x=x, begin=[1, 5, 0], end=[0, 0, 4], stride=[1, -2, 1],
                                         begin_mask=[False, False, True], end_mask=[True, True, False], squeeze_mask=[False, False, False]),
         x_only(2, 6, 5), lambda x: x[1:, 5::-2, :4]),
    Case("slice_by_index_squeeze", lambda mb, x: mb.slice_by_index(x=x, begin=[1, 0, -1], end=[2, 3, 0], squeeze_mask=[True, False, True]),
         x_only(2, 3, 4), lambda x: x[1, 0:3, -1]),
    Case("slice_update", lambda mb, x, y: mb.slice_update(x=x, update=y, begin=[0, 1, 0], end=[2, 4, 6], stride=[1, 2, 3]),
         lambda r: {"x": u(r, 2, 5, 6), "y": u(r, 2, 2, 2)}, lambda x, y: _set(x, (slice(0, 2), slice(1, 4, 2), slice(0, 6, 3)), y), "iOS18"),
    Case("slice_update_squeeze", lambda mb, x, y: mb.slice_update(x=x, update=y, begin=[1, 0, 2], end=[2, 5, 3], squeeze_mask=[True, False, True]),
         lambda r: {"x": u(r, 2, 5, 6), "y": u(r, 5)}, lambda x, y: _set(x, (1, slice(0, 5), 2), y), "iOS18"),
    Case("concat", lambda mb, x, y: mb.concat(values=(x, y, x), axis=1), lambda r: {"x": u(r, 2, 3, 4), "y": u(r, 2, 5, 4)},
         lambda x, y: np.concatenate([x, y, x], 1)),
    Case("concat_interleave", lambda mb, x, y: mb.concat(values=(x, y), axis=1, interleave=True),
         lambda r: {"x": u(r, 2, 3), "y": u(r, 2, 3)}, lambda x, y: np.stack([x, y], 2).reshape(2, 6)),
    Case("split_sizes", lambda mb, x: mb.split(x=x, split_sizes=[1, 3, 2], axis=-1), x_only(2, 6),
         lambda x: [x[:, :1], x[:, 1:4], x[:, 4:]]),
    Case("split_num", lambda mb, x: mb.split(x=x, num_splits=2, axis=0), x_only(4, 3), lambda x: [x[:2], x[2:]]),
    Case("cumsum", lambda mb, x: mb.cumsum(x=x, axis=1), x_only(2, 5, 3), lambda x: torch.cumsum(t(x), 1)),
    Case("cumsum_exclusive_reverse", lambda mb, x: mb.cumsum(x=x, axis=1, exclusive=True, reverse=True), x_only(2, 5, 3),
         lambda x: torch.flip(exclusive(torch.cumsum(torch.flip(t(x), (1,)), 1), 1), (1,))),
    Case("band_part", lambda mb, x: mb.band_part(x=x, lower=1, upper=2), x_only(2, 5, 6),
         lambda x: torch.triu(torch.tril(t(x), 2), -1)),
    Case("band_part_lower_triangle", lambda mb, x: mb.band_part(x=x, lower=-1, upper=0), x_only(4, 4),
         lambda x: torch.tril(t(x))),
    Case("range_1d", lambda mb, c_s, c_e, c_d: mb.range_1d(start=c_s, end=c_e, step=c_d),
         lambda r: {"c_s": np.int32(2), "c_e": np.int32(11), "c_d": np.int32(3)}, lambda c_s, c_e, c_d: torch.arange(2, 11, 3)),
    Case("range_1d_runtime_float", lambda mb, s: mb.range_1d(start=mb.reduce_sum(x=s), end=8.0, step=1.5),
         lambda r: {"s": np.array([0.25, 0.25], np.float32)}, lambda s: torch.arange(0.5, 8.0, 1.5, dtype=torch.float64)),
    Case("one_hot", lambda mb, i: mb.one_hot(indices=i, one_hot_vector_size=5), lambda r: {"i": np.array([[0, 4, 2], [1, 1, 3]], np.int32)},
         lambda i: F.one_hot(torch.from_numpy(i.astype(np.int64)), 5)),
    Case("one_hot_axis0", lambda mb, i: mb.one_hot(indices=i, one_hot_vector_size=4, axis=0, on_value=2.0, off_value=-1.0),
         lambda r: {"i": np.array([3, 0, 2], np.int32)}, lambda i: np.where(np.arange(4)[:, None] == i[None, :], 2.0, -1.0)),
    Case("gather_nd", lambda mb, x, i: mb.gather_nd(x=x, indices=i), lambda r: {"x": u(r, 3, 4, 5), "i": np.array([[0, 1], [2, 3], [1, 0]], np.int32)},
         lambda x, i: manual_gather_nd(x, i, 0)),
    Case("gather_nd_batch_dims", lambda mb, x, i: mb.gather_nd(x=x, indices=i, batch_dims=1),
         lambda r: {"x": u(r, 2, 4, 5), "i": np.array([[[1], [3]], [[0], [2]]], np.int32)}, lambda x, i: manual_gather_nd(x, i, 1)),
    Case("pixel_shuffle", lambda mb, x: mb.pixel_shuffle(x=x, upscale_factor=2), x_only(1, 8, 3, 4),
         lambda x: F.pixel_shuffle(t(x), 2)),
    Case("pixel_unshuffle", lambda mb, x: mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2)), x_only(1, 2, 4, 6),
         lambda x: F.pixel_unshuffle(t(x), 2)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_own_kernel(mil, rng, case):
    check_case(mil, rng, case, folded=False)


def test_thresholded_relu_leaves_its_input_alone(mil, rng):
    """coremltools' value_inference for thresholded_relu writes into its input; ours must not."""
    x = u(rng, 3, 4)
    relu_then_identity = lambda mb, x: (mb.thresholded_relu(x=x, alpha=0.5), mb.identity(x=x))  # noqa: E731
    _, same = mil.run(lambda **v: relu_then_identity(mil.mb, **v), {"x": x})
    np.testing.assert_array_equal(same, x)


def test_slice_by_index_to_an_fp16_scalar(mil):
    """coremltools' value_inference cannot squeeze an fp16 tensor to a scalar; ours can."""
    x = np.arange(6, dtype=np.float16).reshape(2, 3) / 4
    (out,) = mil.run(lambda x: mil.mb.slice_by_index(x=x, begin=[1, 2], end=[2, 3], squeeze_mask=[True, True]), {"x": x})
    assert out.dtype == np.float16 and out.shape == () and out == x[1, 2]


def _tf_depth_to_space_nhwc(x, bs):
    """tf.nn.depth_to_space as TensorFlow documents it (DCR order), written out in numpy."""
    b, h, w, c = x.shape
    return x.reshape(b, h, w, bs, bs, c // (bs * bs)).transpose(0, 1, 3, 2, 4, 5).reshape(b, h * bs, w * bs, c // (bs * bs))


def _tf_space_to_depth_nhwc(x, bs):
    """tf.nn.space_to_depth as TensorFlow documents it, written out in numpy."""
    b, h, w, c = x.shape
    return x.reshape(b, h // bs, bs, w // bs, bs, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // bs, w // bs, bs * bs * c)


@pytest.mark.parametrize("op", ["depth_to_space", "space_to_depth"])
def test_depth_space_against_tensorflow_semantics(mil, rng, op):
    x = u(rng, 2, 8, 4, 6) if op == "depth_to_space" else u(rng, 2, 2, 4, 6)
    (out,) = mil.run(lambda x: getattr(mil.mb, op)(x=x, block_size=2), {"x": x})
    ref = _tf_depth_to_space_nhwc if op == "depth_to_space" else _tf_space_to_depth_nhwc
    nhwc = ref(np.transpose(x, (0, 2, 3, 1)), 2)
    np.testing.assert_array_equal(out, np.transpose(nhwc, (0, 3, 1, 2)))
