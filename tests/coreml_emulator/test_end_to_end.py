"""Tiny torch models -> ct.convert (fp32 and fp16) -> saved .mlpackage -> the coreml_emulator
runtime plug-in -> compared with torch: fp32 within 1e-4, fp16 cosine >= 0.99 and visibly
rounded (different from the fp32 artifact's result)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgepack.types import TensorSpec
from emu_helpers import EXERCISED, cosine

torch = pytest.importorskip("torch")
ct = pytest.importorskip("coremltools")
nn = torch.nn
F = torch.nn.functional


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        x = F.max_pool2d(x, 2, 2)
        x = F.relu6(self.pw(F.silu(self.dw(x))))
        return self.fc(torch.flatten(x, 1))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.ln, self.l2 = nn.Linear(16, 32), nn.LayerNorm(32), nn.Linear(32, 8)

    def forward(self, x):
        return torch.softmax(self.l2(self.ln(F.gelu(self.l1(x)))), -1)


class Attention(nn.Module):
    def __init__(self, d=16, heads=2):
        super().__init__()
        self.heads, self.ln, self.qkv, self.out = heads, nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln(x)).split(d, -1)
        q, k, v = (z.reshape(b, n, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), -1)
        return x + self.out((a @ v).transpose(1, 2).reshape(b, n, d))


class Decoder(nn.Module):
    """More of what ct.convert emits for image models: transposed and dilated conv, instance
    norm, bilinear and nearest upsampling, reflection padding, concat, avg pool with ceil mode,
    global pooling, hardswish, leaky_relu, sigmoid, tanh, elu."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
        self.inorm = nn.InstanceNorm2d(6, affine=True)
        self.dil = nn.Conv2d(10, 6, 3, dilation=2)
        self.head = nn.Linear(6, 5)

    def forward(self, x):
        y = F.leaky_relu(self.inorm(self.up(x)), 0.1)
        z = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        y = torch.cat([F.hardswish(y), torch.tanh(z)], 1)
        y = F.elu(self.dil(F.pad(y, (2, 2, 2, 2), mode="reflect")))
        y = y + F.interpolate(F.avg_pool2d(y, 3, 2, ceil_mode=True), size=y.shape[-2:], mode="nearest")
        return torch.sigmoid(self.head(y.mean(dim=(2, 3))))


MODELS = {
    "cnn": (CNN, (1, 3, 16, 16)),
    "mlp": (MLP, (4, 16)),
    "attention": (Attention, (2, 5, 16)),
    "decoder": (Decoder, (1, 4, 6, 6)),
}


def convert(module, x, path, precision, target=None, outputs=("y",)):
    ep = torch.export.export(module, (torch.from_numpy(x),)).run_decompositions({})
    ml = ct.convert(
        ep,
        convert_to="mlprogram",
        minimum_deployment_target=target or ct.target.iOS17,
        inputs=[ct.TensorType(name="x", shape=x.shape, dtype=np.float32)],
        outputs=[ct.TensorType(name=n, dtype=np.float32) for n in outputs],
        compute_precision=precision,
    )
    ml.save(str(path))
    return path


def open_session(path, x, outputs=("y",)):
    from edgepack.runtimes.base import get_runtime

    rt = get_runtime("coreml_emulator")
    session = rt.open(
        path,
        threads=1,
        source_inputs=(TensorSpec("x", x.shape, "float32"),),
        source_outputs=tuple(TensorSpec(n, (), "float32") for n in outputs),
    )
    EXERCISED.update(session.model.op_types)
    return session


@pytest.fixture(scope="module", params=sorted(MODELS))
def converted(request, tmp_path_factory):
    torch.manual_seed(0)
    cls, shape = MODELS[request.param]
    module = cls().eval()
    if request.param == "cnn":  # non-trivial batch-norm statistics
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 2.0)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    d = tmp_path_factory.mktemp(request.param)
    paths = {p: convert(module, x, d / f"{request.param}_{p}.mlpackage", getattr(ct.precision, p.upper())) for p in ("float32", "float16")}
    return request.param, x, ref, paths


def test_fp32_matches_torch(converted):
    name, x, ref, paths = converted
    session = open_session(paths["float32"], x)
    (out,) = session.run({"x": x})
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.abs(out - ref).max() <= 1e-4, name
    assert not session.model.computes_in_fp16 and session.findings == []


def test_fp16_is_close_and_really_rounded(converted):
    name, x, ref, paths = converted
    session = open_session(paths["float16"], x)
    (out16,) = session.run({"x": x})
    (out32,) = open_session(paths["float32"], x).run({"x": x})
    assert session.model.computes_in_fp16
    assert out16.dtype == np.float32  # the session hands back float32, as the source gives
    assert cosine(out16, ref) >= 0.99, name
    assert not np.array_equal(out16, out32), f"{name}: the fp16 artifact gave exactly the fp32 result"
    assert session.findings == []


def test_session_io_and_timing_hooks(converted):
    _, x, _, paths = converted
    session = open_session(paths["float16"], x)
    assert [b.name for b in session.inputs] == ["x"] and session.inputs[0].dtype == "float32"
    assert session.inputs[0].shape == x.shape
    raw = session.raw_feeds({"x": x})
    assert set(raw) == {"x"} and raw["x"].dtype == np.float32
    session.run_raw(raw)


def test_outputs_follow_the_source_order(tmp_path):
    class Two(nn.Module):
        def forward(self, x):
            return x.sum(-1), x * 2

    x = np.random.default_rng(2).standard_normal((2, 3)).astype(np.float32)
    path = convert(Two().eval(), x, tmp_path / "two.mlpackage", ct.precision.FLOAT32, outputs=("total", "doubled"))
    by_name = open_session(path, x, outputs=("doubled", "total")).run({"x": x})
    np.testing.assert_allclose(by_name[0], x * 2, rtol=1e-6)
    np.testing.assert_allclose(by_name[1], x.sum(-1), rtol=1e-6)
    by_position = open_session(path, x, outputs=("first", "second")).run({"x": x})
    np.testing.assert_allclose(by_position[0], x.sum(-1), rtol=1e-6)


def test_runtime_plugin_is_registered():
    from edgepack.runtimes.base import get_runtime
    from edgepack.runtimes.coreml_emulator import CoreMLEmulatorRuntime

    rt = get_runtime("coreml_emulator")
    assert isinstance(rt, CoreMLEmulatorRuntime)
    assert rt.extra == "coreml" and rt.measured_on == "emulator"
    assert rt.version() == f"coremltools {ct.__version__} emulator"


def test_ios18_transformer_layer_uses_sdpa(tmp_path):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0, norm_first=True, activation="gelu").eval()
    x = np.random.default_rng(3).standard_normal((2, 5, 16)).astype(np.float32)
    path = convert(layer, x, tmp_path / "layer.mlpackage", ct.precision.FLOAT32, target=ct.target.iOS18)
    session = open_session(path, x)
    assert "scaled_dot_product_attention" in session.model.op_types
    (out,) = session.run({"x": x})
    with torch.no_grad():
        assert np.abs(out - layer(torch.from_numpy(x)).numpy()).max() <= 1e-4


def test_flexible_batch(tmp_path):
    torch.manual_seed(0)
    module = MLP().eval()
    x = np.random.default_rng(4).standard_normal((2, 16)).astype(np.float32)
    ep = torch.export.export(module, (torch.from_numpy(x),), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=8)},))
    ml = ct.convert(
        ep.run_decompositions({}),
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        inputs=[ct.TensorType(name="x", shape=(ct.RangeDim(1, 8), 16), dtype=np.float32)],
        outputs=[ct.TensorType(name="y", dtype=np.float32)],
        compute_precision=ct.precision.FLOAT32,
    )
    ml.save(str(tmp_path / "flex.mlpackage"))
    session = open_session(tmp_path / "flex.mlpackage", x)
    assert session.inputs[0].shape == (-1, 16)
    for n in (1, 5):
        xn = np.random.default_rng(n).standard_normal((n, 16)).astype(np.float32)
        (out,) = session.run({"x": xn})
        with torch.no_grad():
            assert np.abs(out - module(torch.from_numpy(xn)).numpy()).max() <= 1e-4


def test_unsaved_model_and_in_memory_program():
    """Before anything is saved: an MLModel's temporary package, and a pymil Program."""
    from edgepack.runtimes.coreml_emulator import EmulatedModel, load_mlpackage

    torch.manual_seed(0)
    module = MLP().eval()
    x = np.random.default_rng(5).standard_normal((3, 16)).astype(np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    ep = torch.export.export(module, (torch.from_numpy(x),)).run_decompositions({})
    kw = dict(
        minimum_deployment_target=ct.target.iOS17,
        inputs=[ct.TensorType(name="x", shape=x.shape, dtype=np.float32)],
        outputs=[ct.TensorType(name="y", dtype=np.float32)],
        compute_precision=ct.precision.FLOAT32,
    )
    ml = ct.convert(ep, convert_to="mlprogram", **kw)
    assert np.abs(load_mlpackage(ml.package_path).run({"x": x})["y"] - ref).max() <= 1e-4
    program = ct.convert(ep, convert_to="milinternal", **kw)
    model = EmulatedModel(program, source="<milinternal>")
    assert np.abs(model.run({"x": x})["y"] - ref).max() <= 1e-4


def test_fp16_io_model(tmp_path):
    """A model whose own inputs and outputs are fp16: the session takes and gives float32."""
    torch.manual_seed(0)
    module = MLP().eval()
    x = np.random.default_rng(6).standard_normal((2, 16)).astype(np.float32)
    ep = torch.export.export(module, (torch.from_numpy(x),)).run_decompositions({})
    ml = ct.convert(
        ep,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        inputs=[ct.TensorType(name="x", shape=x.shape, dtype=np.float16)],
        outputs=[ct.TensorType(name="y", dtype=np.float16)],
    )
    ml.save(str(tmp_path / "io16.mlpackage"))
    session = open_session(tmp_path / "io16.mlpackage", x)
    assert session.inputs[0].dtype == "float16" and session.outputs[0].dtype == "float16"
    assert session.raw_feeds({"x": x})["x"].dtype == np.float16
    (out,) = session.run({"x": x})
    assert out.dtype == np.float32
    with torch.no_grad():
        assert cosine(out, module(torch.from_numpy(x)).numpy()) >= 0.99
