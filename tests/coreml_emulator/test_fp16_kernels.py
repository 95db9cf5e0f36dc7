"""Kernels on fp16 tensors: the result is float16 and within fp16 rounding (half an ulp, so
2**-11 relative) of the float64 result on the same fp16 inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch.nn.functional as F

from emu_helpers import mil, rng, t  # noqa: F401 (mil, rng are fixtures)

W = np.random.default_rng(5).uniform(-1, 1, size=(4, 3, 3, 3)).astype(np.float16)
LIN = np.random.default_rng(6).uniform(-1, 1, size=(5, 6)).astype(np.float16)

CASES = {
    "conv": (lambda mb, x: mb.conv(x=x, weight=W, pad_type="same"), lambda x: F.conv2d(t(x), t(W), padding=1)),
    "avg_pool": (lambda mb, x: mb.avg_pool(x=x, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"), lambda x: F.avg_pool2d(t(x), 2)),
    "max_pool": (lambda mb, x: mb.max_pool(x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same"), lambda x: F.max_pool2d(t(x), 3, 1, 1)),
    "instance_norm": (lambda mb, x: mb.instance_norm(x=x, epsilon=1e-5), lambda x: F.instance_norm(t(x), eps=1e-5)),
    "upsample_bilinear": (
        lambda mb, x: mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=2, align_corners=False),
        lambda x: F.interpolate(t(x), scale_factor=2, mode="bilinear"),
    ),
    "gelu": (lambda mb, x: mb.gelu(x=x), lambda x: F.gelu(t(x))),
    "softmax": (lambda mb, x: mb.softmax(x=x, axis=-1), lambda x: F.softmax(t(x), -1)),
    "linear": (lambda mb, x: mb.linear(x=x, weight=LIN), lambda x: F.linear(t(x), t(LIN))),
    "layer_norm": (lambda mb, x: mb.layer_norm(x=x, axes=[-1], epsilon=1e-5), lambda x: F.layer_norm(t(x), (6,), eps=1e-5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fp16_kernel(mil, rng, name):
    build, ref = CASES[name]
    x = rng.uniform(-3, 3, size=(1, 3, 4, 6)).astype(np.float16)
    (out,) = mil.run(lambda x: build(mil.mb, x), {"x": x})
    assert out.dtype == np.float16
    expected = ref(x.astype(np.float64)).numpy()
    np.testing.assert_allclose(out.astype(np.float64), expected, rtol=2**-11 * 1.01, atol=2**-24)
