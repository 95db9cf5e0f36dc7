"""Normalisation and resizing (own kernels) against torch / TensorFlow in float64, and the
resize grid points against the examples that MIL's op documentation gives."""
from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F

from edgepack.errors import UnsupportedOpError
from emu_helpers import close, mil, rng, t, u  # noqa: F401 (mil, rng are fixtures)


@pytest.mark.parametrize("rank", [3, 4, 5])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(mil, rng, rank, affine):
    x = u(rng, 2, 4, *([5, 4, 3][: rank - 2]), lo=-3, hi=3)
    mean, var = u(rng, 4), u(rng, 4, lo=0.1, hi=2.0)
    gamma, beta = (u(rng, 4), u(rng, 4)) if affine else (None, None)
    kw = dict(mean=mean, variance=var, epsilon=1e-3) | (dict(gamma=gamma, beta=beta) if affine else {})
    (out,) = mil.run(lambda x: mil.mb.batch_norm(x=x, **kw), {"x": x})
    ref = F.batch_norm(t(x), t(mean), t(var), None if gamma is None else t(gamma), None if beta is None else t(beta), eps=1e-3)
    close(out, ref.numpy())


@pytest.mark.parametrize("rank", [3, 4])
def test_instance_norm(mil, rng, rank):
    x = u(rng, 2, 3, *([6, 5][: rank - 2]), lo=-3, hi=4)
    gamma, beta = u(rng, 3), u(rng, 3)
    (out,) = mil.run(lambda x: mil.mb.instance_norm(x=x, gamma=gamma, beta=beta, epsilon=1e-5), {"x": x})
    close(out, F.instance_norm(t(x), weight=t(gamma), bias=t(beta), eps=1e-5).numpy())


@pytest.mark.parametrize("size", [3, 4])
def test_local_response_norm(mil, rng, size):
    x = u(rng, 2, 6, 4, 5)
    (out,) = mil.run(lambda x: mil.mb.local_response_norm(x=x, size=size, alpha=1e-2, beta=0.75, k=1.5), {"x": x})
    close(out, F.local_response_norm(t(x), size, alpha=1e-2, beta=0.75, k=1.5).numpy())


@pytest.mark.parametrize("scale", [(2, 2), (3, 2), (2.0, 1.5)])
def test_upsample_nearest_neighbor(mil, rng, scale):
    x = u(rng, 1, 2, 4, 6)
    (out,) = mil.run(lambda x: mil.mb.upsample_nearest_neighbor(x=x, scale_factor_height=scale[0], scale_factor_width=scale[1]), {"x": x})
    close(out, F.interpolate(t(x), scale_factor=scale, mode="nearest").numpy())


def test_resize_nearest_neighbor(mil, rng):
    x = u(rng, 1, 2, 5, 6)
    (out,) = mil.run(lambda x: mil.mb.resize_nearest_neighbor(x=x, target_size_height=7, target_size_width=4), {"x": x})
    close(out, F.interpolate(t(x), size=(7, 4), mode="nearest").numpy())


@pytest.mark.parametrize("align", [True, False])
@pytest.mark.parametrize("scale", [2, 3])
def test_upsample_bilinear(mil, rng, align, scale):
    x = u(rng, 1, 2, 4, 5)
    (out,) = mil.run(
        lambda x: mil.mb.upsample_bilinear(x=x, scale_factor_height=scale, scale_factor_width=scale, align_corners=align), {"x": x}
    )
    close(out, F.interpolate(t(x), scale_factor=scale, mode="bilinear", align_corners=align).numpy())


def tf_resize(x, size, align_corners, half_pixel_centers):
    tf = pytest.importorskip("tensorflow")
    nhwc = tf.raw_ops.ResizeBilinear(
        images=np.transpose(x, (0, 2, 3, 1)).astype(np.float64), size=size, align_corners=align_corners, half_pixel_centers=half_pixel_centers
    ).numpy()
    return np.transpose(nhwc, (0, 3, 1, 2))


def test_upsample_bilinear_tensorflow_legacy(mil, rng):
    """align_corners=False, half_pixel_centers=False samples i * in / out (TF1's resize)."""
    x = u(rng, 1, 2, 4, 5)
    (out,) = mil.run(
        lambda x: mil.mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=3, align_corners=False, half_pixel_centers=False),
        {"x": x},
        opset=mil.ct.target.iOS16,
    )
    close(out, tf_resize(x, (8, 15), False, False))


@pytest.mark.parametrize(
    "mode,reference",
    [
        ("STRICT_ALIGN_CORNERS", lambda x: F.interpolate(t(x), size=(7, 3), mode="bilinear", align_corners=True).numpy()),
        ("ALIGN_CORNERS", lambda x: F.interpolate(t(x), size=(7, 3), mode="bilinear", align_corners=True).numpy()),
        ("UNALIGN_CORNERS", lambda x: F.interpolate(t(x), size=(7, 3), mode="bilinear", align_corners=False).numpy()),
        ("DEFAULT", lambda x: tf_resize(x, (7, 3), False, False)),
    ],
)
def test_resize_bilinear(mil, rng, mode, reference):
    x = u(rng, 1, 2, 4, 5)
    (out,) = mil.run(lambda x: mil.mb.resize_bilinear(x=x, target_size_height=7, target_size_width=3, sampling_mode=mode), {"x": x})
    close(out, reference(x))


@pytest.mark.parametrize(
    "mode,n_out,grid",
    [  # the examples in MIL's resize_bilinear documentation, for Xin = 2
        ("UNALIGN_CORNERS", 5, [0.0, 0.1, 0.5, 0.9, 1.0]),
        ("STRICT_ALIGN_CORNERS", 5, [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("DEFAULT", 5, [0.0, 0.4, 0.8, 1.0, 1.0]),
        ("OFFSET_CORNERS", 5, [0.1, 0.3, 0.5, 0.7, 0.9]),
        ("UNALIGN_CORNERS", 6, [0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0]),
        ("DEFAULT", 6, [0.0, 1 / 3, 2 / 3, 1.0, 1.0, 1.0]),
        ("OFFSET_CORNERS", 6, [1 / 12, 0.25, 5 / 12, 7 / 12, 0.75, 11 / 12]),
        ("ALIGN_CORNERS", 1, [0.5]),
        ("STRICT_ALIGN_CORNERS", 1, [0.0]),
    ],
)
def test_resize_bilinear_documented_grid(mil, mode, n_out, grid):
    x = np.array([0.0, 1.0], np.float32).reshape(1, 1, 1, 2)  # value == coordinate, so the output is the grid
    (out,) = mil.run(lambda x: mil.mb.resize_bilinear(x=x, target_size_height=1, target_size_width=n_out, sampling_mode=mode), {"x": x})
    close(out.reshape(-1), np.array(grid))


def test_resize_ios17(mil, rng):
    x = u(rng, 1, 2, 4, 5)
    ios17 = mil.ct.target.iOS17
    shape = np.array([6, 8], np.int32)
    (lin,) = mil.run(lambda x, s: mil.mb.resize(x=x, shape=s, resized_dims=np.uint32(2), sampling_mode="UNALIGN_CORNERS"), {"x": x, "s": shape}, ios17)
    close(lin, F.interpolate(t(x), size=(6, 8), mode="bilinear", align_corners=False).numpy())
    (near,) = mil.run(lambda x, s: mil.mb.resize(x=x, shape=s, resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR"), {"x": x, "s": shape}, ios17)
    close(near, F.interpolate(t(x), size=(6, 8), mode="nearest").numpy())
    keep = np.array([0, 7], np.int32)  # 0 keeps the input's size on that axis
    (part,) = mil.run(lambda x, s: mil.mb.resize(x=x, shape=s, resized_dims=np.uint32(2), sampling_mode="STRICT_ALIGN_CORNERS"), {"x": x, "s": keep}, ios17)
    close(part, F.interpolate(t(x), size=(4, 7), mode="bilinear", align_corners=True).numpy())


def test_resize_variant_without_kernel_is_refused(mil, rng):
    x = u(rng, 1, 2, 4, 5)
    with pytest.raises(UnsupportedOpError, match="resize.*NEAREST_NEIGHBOR.*ALIGN_CORNERS"):
        mil.run(
            lambda x, s: mil.mb.resize(x=x, shape=s, resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR", sampling_mode="ALIGN_CORNERS"),
            {"x": x, "s": np.array([6, 8], np.int32)},
        )


def test_crop(mil, rng):
    x = u(rng, 2, 3, 6, 7)
    (out,) = mil.run(lambda x: mil.mb.crop(x=x, crop_height=[1, 2], crop_width=[0, 3]), {"x": x})
    close(out, x[..., 1:4, 0:4])
