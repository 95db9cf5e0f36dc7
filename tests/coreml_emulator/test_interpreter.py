"""The interpreter's contract: refusals, fp16 overflow findings, the observe hook, input checks,
and the small public helpers."""
from __future__ import annotations

import numpy as np
import pytest

from edgepack.errors import ConversionError, InputError, UnsupportedOpError
from emu_helpers import EXERCISED, mil, rng, u  # noqa: F401 (mil, rng are fixtures)

torch = pytest.importorskip("torch")
ct = pytest.importorskip("coremltools")
nn = torch.nn


def save(module, x, path, precision=ct.precision.FLOAT32):
    ep = torch.export.export(module, (torch.from_numpy(x),)).run_decompositions({})
    ml = ct.convert(
        ep,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        inputs=[ct.TensorType(name="x", shape=x.shape, dtype=np.float32)],
        outputs=[ct.TensorType(name="y", dtype=np.float32)],
        compute_precision=precision,
    )
    ml.save(str(path))
    return path


class Blowup(nn.Module):
    """(400 x)^2 / 1e4: the square reaches 160000, beyond fp16, though the result fits."""

    def forward(self, x):
        h = x * 400.0
        return torch.relu(h * h / 1e4 - 1.0)


@pytest.fixture(scope="module")
def blowup(tmp_path_factory):
    d = tmp_path_factory.mktemp("blowup")
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)
    return x, {p: save(Blowup().eval(), x, d / f"{p}.mlpackage", getattr(ct.precision, p.upper())) for p in ("float16", "float32")}


def test_fp16_overflow_is_flagged(blowup):
    from edgepack.runtimes.coreml_emulator import FP16_MAX, load_mlpackage

    x, paths = blowup
    model = load_mlpackage(paths["float16"])
    EXERCISED.update(model.op_types)
    out = model.run({"x": x})["y"]
    (finding,) = model.findings
    assert finding.op_type in {"mul", "pow", "square"} and finding.max_abs == pytest.approx(160000, rel=1e-3)
    assert finding.max_abs > FP16_MAX and finding.runs == 1
    assert finding.count == int((np.abs(400 * x.astype(np.float64)) ** 2 > FP16_MAX).sum()) == 6
    assert "would overflow to inf on device" in finding.message()
    assert np.isinf(out).any()  # on device, the overflow reaches the output
    model.run({"x": x})
    assert model.findings[0].runs == 2
    model.reset_findings()
    assert model.findings == []
    fp32 = load_mlpackage(paths["float32"])
    assert np.isfinite(fp32.run({"x": x})["y"]).all() and fp32.findings == []


def test_session_exposes_findings(blowup):
    from edgepack.runtimes.base import get_runtime
    from edgepack.types import TensorSpec

    x, paths = blowup
    session = get_runtime("coreml_emulator").open(
        paths["float16"], threads=1, source_inputs=(TensorSpec("x", x.shape, "float32"),), source_outputs=(TensorSpec("y", (), "float32"),)
    )
    session.run({"x": x})
    assert len(session.findings) == 1


def test_run_mlpackage_and_observe(blowup):
    from edgepack.runtimes.coreml_emulator import run_mlpackage

    x, paths = blowup
    seen = []
    outs, findings = run_mlpackage(paths["float16"], {"x": x}, observe=lambda name, op_type, value: seen.append((name, op_type, value)))
    assert set(outs) == {"y"} and len(findings) == 1
    assert seen[0][:2] == ("x", "input") and seen[0][2].dtype == np.float32
    assert seen[1][1] == "cast" and seen[-1][0] == "y"
    assert all(isinstance(v, np.ndarray) for _, _, v in seen)
    assert {v.dtype for _, op, v in seen if op not in ("cast", "input")} == {np.dtype(np.float16)}
    assert not seen[0][2].flags.writeable  # observers see the live values: read-only


def test_observe_collects_activation_ranges_for_w8a8(mil, rng):
    """A W8A8-style program (quantize -> dequantize around a linear) with an observer that keeps
    min/max per op output, as calibration would."""
    w = u(rng, 8, 16, lo=-0.5, hi=0.5)
    mb = mil.mb

    def build(x):
        q = mb.quantize(input=x, scale=np.float32(0.02), zero_point=np.int8(0), output_dtype="int8")
        y = mb.linear(x=mb.dequantize(input=q, scale=np.float32(0.02), zero_point=np.int8(0)), weight=w)
        return mb.relu(x=y)

    x = u(rng, 4, 16)
    ranges: dict[str, tuple[str, float, float]] = {}

    def observe(name, op_type, value):
        _, lo, hi = ranges.get(name, (op_type, np.inf, -np.inf))
        ranges[name] = (op_type, min(lo, float(value.min())), max(hi, float(value.max())))

    (out,) = mil.run(build, {"x": x}, observe=observe)
    deq = np.clip(np.round(x / np.float32(0.02)), -128, 127) * 0.02
    np.testing.assert_allclose(out, np.maximum(deq.astype(np.float64) @ w.T.astype(np.float64), 0), atol=1e-6)
    assert [op for op, _, _ in ranges.values()] == ["input", "quantize", "dequantize", "linear", "relu"]
    assert ranges["x"][1:] == (float(x.min()), float(x.max()))
    _, q_lo, q_hi = list(ranges.values())[1]
    assert (q_lo, q_hi) == (float(np.round(x.min() / np.float32(0.02))), float(np.round(x.max() / np.float32(0.02))))
    _, lo, hi = list(ranges.values())[-1]
    assert (lo, hi) == (0.0, float(out.max()))


def test_op_without_kernel_is_refused(mil):
    def build(x):
        noise = mil.mb.random_uniform(shape=np.array([2, 3], np.int32), low=0.0, high=1.0)
        return mil.mb.add(x=mil.mb.random_normal(shape=np.array([2, 3], np.int32)), y=mil.mb.add(x=x, y=noise))

    with pytest.raises(UnsupportedOpError, match="no kernel for op 'random_uniform' .*, nor for 'random_normal'") as info:
        mil.model(build, {"x": np.zeros((2, 3), np.float32)})
    assert info.value.op == "random_uniform" and info.value.format == "coreml"


def test_removed_kernel_is_refused_naming_file_and_op(blowup, monkeypatch):
    from edgepack.runtimes.coreml_emulator import kernels, load_mlpackage

    kernels.lookup("relu")  # load the registry before patching it
    monkeypatch.delitem(kernels._KERNELS, "relu")
    _, paths = blowup
    with pytest.raises(UnsupportedOpError, match=rf"{paths['float32']}.*no kernel for op 'relu'"):
        load_mlpackage(paths["float32"])


def test_input_errors(blowup):
    from edgepack.runtimes.coreml_emulator import load_mlpackage

    x, paths = blowup
    model = load_mlpackage(paths["float32"])
    with pytest.raises(InputError, match="input 'x' is missing"):
        model.run({})
    with pytest.raises(InputError, match=r"has shape \(8, 2\); the model takes \(2, 8\)"):
        model.run({"x": x.T})
    with pytest.raises(InputError, match="unknown input"):
        model.run({"x": x, "z": x})
    before = x.copy()
    model.run({"x": x})
    np.testing.assert_array_equal(x, before)


def test_not_an_ml_program(tmp_path):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    from edgepack.runtimes.coreml_emulator import load_mlpackage

    builder = NeuralNetworkBuilder([("x", datatypes.Array(3))], [("y", datatypes.Array(3))])
    builder.add_activation("relu", "RELU", "x", "y")
    path = tmp_path / "nn.mlmodel"
    ct.utils.save_spec(builder.spec, str(path))
    package = tmp_path / "nn.mlpackage"
    ct.models.MLModel(builder.spec, skip_model_load=True).save(str(package))
    for p in (path, package):
        with pytest.raises(ConversionError, match=rf"{p}: a 'neuralNetwork' Core ML model, not an ML program"):
            load_mlpackage(p)


def test_missing_or_broken_files(tmp_path):
    from edgepack.runtimes.coreml_emulator import load_mlpackage

    with pytest.raises(InputError, match="no such Core ML model"):
        load_mlpackage(tmp_path / "absent.mlpackage")
    (tmp_path / "empty.mlpackage").mkdir()
    with pytest.raises(InputError, match="no Manifest.json"):
        load_mlpackage(tmp_path / "empty.mlpackage")


def test_real_coreml_available_is_honest():
    import sys

    from edgepack.runtimes.coreml_emulator import real_coreml_available

    ok, reason = real_coreml_available()
    if sys.platform != "darwin":
        assert not ok
        assert reason == f"Core ML runs only on macOS; coremltools {ct.__version__} on Linux can convert and save but not predict"


def test_version_note(blowup):
    from edgepack.runtimes.coreml_emulator import TESTED_COREMLTOOLS, load_mlpackage

    _, paths = blowup
    notes = load_mlpackage(paths["float32"]).notes
    if ct.__version__ == TESTED_COREMLTOOLS:
        assert notes == ()
    else:
        assert ct.__version__ in notes[0] and TESTED_COREMLTOOLS in notes[0]


def test_covered_ops_say_where_numbers_come_from():
    from edgepack.runtimes.coreml_emulator import covered_ops

    ops = covered_ops()
    assert ops["conv"] == ops["silu"] == ops["batch_norm"] == ops["upsample_bilinear"] == "emulator"
    assert ops["add"] == ops["matmul"] == ops["softmax"] == "value_inference"
    assert ops["constexpr_lut_to_dense"] == ops["dequantize"] == "materialized_val_inference"
    assert "random_uniform" not in ops and "while_loop" not in ops
