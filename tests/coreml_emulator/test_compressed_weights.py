"""Compressed weights: every constexpr_* op materialises, from real coremltools.optimize output
saved to disk and from hand-built programs with hand-computed expectations."""
from __future__ import annotations

import numpy as np
import pytest

from emu_helpers import EXERCISED, cosine, mil, rng  # noqa: F401 (mil, rng are fixtures)

torch = pytest.importorskip("torch")
ct = pytest.importorskip("coremltools")
cto = pytest.importorskip("coremltools.optimize.coreml")
nn = torch.nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(32, 32, 3, padding=1)
        self.l1, self.l2 = nn.Linear(32 * 4 * 4, 64), nn.Linear(64, 10)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(torch.flatten(torch.relu(self.conv(x)), 1))))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    module = Net().eval()
    x = np.random.default_rng(0).standard_normal((1, 32, 4, 4)).astype(np.float32)
    return module, x


def convert(module, x, target):
    ep = torch.export.export(module, (torch.from_numpy(x),)).run_decompositions({})
    return ct.convert(
        ep,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        inputs=[ct.TensorType(name="x", shape=x.shape, dtype=np.float32)],
        outputs=[ct.TensorType(name="y", dtype=np.float32)],
        compute_precision=ct.precision.FLOAT32,
    )


def emulate(ml, path, x):
    from edgepack.runtimes.coreml_emulator import load_mlpackage

    ml.save(str(path))
    model = load_mlpackage(path)
    EXERCISED.update(model.op_types)
    return model, model.run({"x": x})["y"]


def magnitude_pruned(module, sparsity=0.5):
    """The module with each compressed weight's smallest-magnitude half set to zero."""
    pruned = Net().eval()
    pruned.load_state_dict(module.state_dict())
    with torch.no_grad():
        for layer in (pruned.conv, pruned.l1):
            w = layer.weight
            k = int(w.numel() * sparsity)
            threshold = w.abs().flatten().kthvalue(k).values
            w[w.abs() <= threshold] = 0.0
    return pruned


QUANTISE = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
INT4_BLOCK = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=32)
CASES = {
    # name: (target, compress, expected constexpr op types)
    "int8_per_channel_ios17": (ct.target.iOS17, lambda m: cto.linear_quantize_weights(m, cto.OptimizationConfig(QUANTISE)), {"constexpr_affine_dequantize"}),
    "int8_per_channel_ios18": (ct.target.iOS18, lambda m: cto.linear_quantize_weights(m, cto.OptimizationConfig(QUANTISE)), {"constexpr_blockwise_shift_scale"}),
    "int4_per_block_ios18": (ct.target.iOS18, lambda m: cto.linear_quantize_weights(m, cto.OptimizationConfig(INT4_BLOCK)), {"constexpr_blockwise_shift_scale"}),
    "palettize_4bit": (ct.target.iOS17, lambda m: cto.palettize_weights(m, cto.OptimizationConfig(cto.OpPalettizerConfig(mode="kmeans", nbits=4))), {"constexpr_lut_to_dense"}),
    "palettize_6bit": (ct.target.iOS17, lambda m: cto.palettize_weights(m, cto.OptimizationConfig(cto.OpPalettizerConfig(mode="kmeans", nbits=6))), {"constexpr_lut_to_dense"}),
    "palettize_4bit_grouped_ios18": (
        ct.target.iOS18,
        lambda m: cto.palettize_weights(m, cto.OptimizationConfig(cto.OpPalettizerConfig(mode="kmeans", nbits=4, granularity="per_grouped_channel", group_size=16))),
        {"constexpr_lut_to_dense"},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_compressed_weights(net, tmp_path, name):
    module, x = net
    target, compress, expected = CASES[name]
    model, out = emulate(compress(convert(module, x, target)), tmp_path / f"{name}.mlpackage", x)
    assert expected <= {op for op in model.op_types if op.startswith("constexpr_")}
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    assert cosine(out, ref) >= 0.99


PRUNE = cto.OptimizationConfig(cto.OpMagnitudePrunerConfig(target_sparsity=0.5))
PRUNED = {
    "pruned_ios17": (ct.target.iOS17, lambda m: cto.prune_weights(m, PRUNE), {"constexpr_sparse_to_dense"}, 1e-4),
    "pruned_palettized_ios18": (
        ct.target.iOS18,
        lambda m: cto.palettize_weights(cto.prune_weights(m, PRUNE), cto.OptimizationConfig(cto.OpPalettizerConfig(mode="kmeans", nbits=4)), joint_compression=True),
        {"constexpr_lut_to_sparse", "constexpr_sparse_to_dense"},
        None,
    ),
    "pruned_quantized_ios18": (
        ct.target.iOS18,
        lambda m: cto.linear_quantize_weights(cto.prune_weights(m, PRUNE), cto.OptimizationConfig(QUANTISE), joint_compression=True),
        {"constexpr_sparse_blockwise_shift_scale", "constexpr_sparse_to_dense"},
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(PRUNED))
def test_pruned_weights(net, tmp_path, name):
    """Against torch with the same magnitude pruning applied by hand: exact up to fp32 for plain
    pruning, cosine >= 0.99 when the kept values are also palettised or quantised."""
    module, x = net
    target, compress, expected, tol = PRUNED[name]
    model, out = emulate(compress(convert(module, x, target)), tmp_path / f"{name}.mlpackage", x)
    assert expected <= {op for op in model.op_types if op.startswith("constexpr_")}
    with torch.no_grad():
        ref = magnitude_pruned(module)(torch.from_numpy(x)).numpy()
    if tol is None:
        assert cosine(out, ref) >= 0.99
    else:
        assert np.abs(out - ref).max() <= tol


def pack(values, nbits):
    """Pack small unsigned ints LSB first, as Core ML stores palette indices."""
    bits = ((np.asarray(values)[:, None] >> np.arange(nbits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bits, bitorder="little")


def test_constexpr_ops_by_hand(mil, rng):
    mb = mil.mb
    q = rng.integers(-128, 128, size=(3, 4)).astype(np.int8)
    scale, zp = np.array([0.5, 0.25, 2.0], np.float32), np.array([1, -2, 0], np.int8)
    idx = rng.integers(0, 4, size=12)
    lut = np.array([-1.5, 0.0, 0.25, 3.0], np.float32)
    mask = rng.random(12) < 0.5
    dense_sparse = np.zeros(12, np.float32)
    dense_sparse[mask] = np.arange(1, mask.sum() + 1, dtype=np.float32)
    half = rng.standard_normal((3, 4)).astype(np.float16)

    def build(x):
        return (
            mb.add(x=x, y=mb.constexpr_affine_dequantize(quantized_data=q, zero_point=zp, scale=scale, axis=0)),
            mb.add(x=x, y=mb.constexpr_lut_to_dense(lut=lut, indices=pack(idx, 2), shape=np.array([3, 4], np.uint32))),
            mb.add(x=x, y=mb.constexpr_sparse_to_dense(nonzero_data=dense_sparse[mask], mask=np.packbits(mask.astype(np.uint8), bitorder="little"), shape=np.array([3, 4], np.uint32))),
            mb.add(x=x, y=mb.constexpr_cast(source_val=half, output_dtype="fp32")),
        )

    x = np.zeros((3, 4), np.float32)
    outs = mil.run(build, {"x": x}, opset=ct.target.iOS17)
    np.testing.assert_array_equal(outs[0], (q.astype(np.float32) - zp[:, None]) * scale[:, None])
    np.testing.assert_array_equal(outs[1], lut[idx].reshape(3, 4))
    np.testing.assert_array_equal(outs[2], dense_sparse.reshape(3, 4))
    np.testing.assert_array_equal(outs[3], half.astype(np.float32))


def test_blockwise_shift_scale_by_hand(mil, rng):
    data = rng.integers(-8, 8, size=(4, 8)).astype(np.int8)
    scale = rng.uniform(0.1, 1.0, size=(4, 2)).astype(np.float32)
    offset = rng.integers(-2, 3, size=(4, 2)).astype(np.int8)

    def build(x):
        return mil.mb.add(x=x, y=mil.mb.constexpr_blockwise_shift_scale(data=data, scale=scale, offset=offset))

    (out,) = mil.run(build, {"x": np.zeros((4, 8), np.float32)}, opset=ct.target.iOS18)
    expected = (data.astype(np.float32) - np.repeat(offset, 4, axis=1)) * np.repeat(scale, 4, axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-7)
