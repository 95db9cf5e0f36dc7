"""Core ML format end to end: real ct.convert and coremltools.optimize, parity in the emulator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgepack
from edgepack.errors import ConfigError
from edgepack.inspect import inspect_file

ROOT = Path(__file__).resolve().parents[2]
DIGITS_PT2 = ROOT / "examples" / "digits" / "digits_cnn.pt2"
DIGITS_ONNX = ROOT / "examples" / "digits" / "digits_cnn.onnx"
DIGITS_DATA = ROOT / "calibration_data" / "digits"

pytest.importorskip("coremltools")

PROFILE = """
name = "ios"
threads = 1
[formats.coreml]
precisions = {precisions}
deployment_target = "{target}"
[latency]
warmup = 0
runs = 2
[validation]
max_samples = {val}
[quantization]
calibration_samples = 60
"""


def _profile(tmp_path: Path, precisions, target="iOS17", val=200, extra="") -> Path:
    p = tmp_path / f"ios-{target}.toml"
    p.write_text(PROFILE.format(precisions=json.dumps(precisions), target=target, val=val) + extra)
    return p


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("coreml")
    prof = _profile(tmp, ["fp32", "fp16", "int8_weights", "palettize4", "palettize6", "w8a8"])
    out = tmp / "out"
    report = edgepack.build(str(DIGITS_PT2), DIGITS_DATA, [prof], out)
    return report, out


def _res(report):
    return {r.artifact.precision: r for r in report.results}


def test_every_variant_passes_parity(digits_build):
    report, out = digits_build
    res = _res(report)
    assert res["fp32"].parity.outputs[0].max_abs <= 1e-4
    for p in ("fp16", "int8_weights", "palettize6", "w8a8"):
        assert res[p].parity.outputs[0].min_cosine >= 0.99, p
    fp32_acc = res["fp32"].parity.accuracy
    assert fp32_acc >= 0.97
    for p in ("fp16", "int8_weights", "w8a8"):
        assert fp32_acc - res[p].parity.accuracy <= 0.01, p
    for r in res.values():
        assert r.latency.measured_on == "emulator"
        assert r.artifact.runtime == "coreml_emulator"
        assert any("emulator only" in n for n in r.parity.notes)


def test_op_types_in_each_program(digits_build):
    report, out = digits_build
    res = _res(report)
    ops = {p: inspect_file(out / r.file).op_histogram for p, r in res.items()}
    assert not any(o.startswith("constexpr_") for o in ops["fp32"])
    assert ops["int8_weights"].get("constexpr_affine_dequantize", 0) >= 3
    assert ops["palettize4"].get("constexpr_lut_to_dense", 0) >= 3
    assert ops["palettize6"].get("constexpr_lut_to_dense", 0) >= 3
    assert ops["w8a8"].get("quantize", 0) >= 3 and ops["w8a8"].get("dequantize", 0) >= 3
    assert ops["w8a8"].get("constexpr_affine_dequantize", 0) >= 3


def test_sizes(digits_build):
    report, _ = digits_build
    size = {p: r.size_bytes for p, r in _res(report).items()}
    assert size["fp16"] < 0.65 * size["fp32"]
    assert size["int8_weights"] < 0.4 * size["fp32"]
    assert size["palettize4"] < size["palettize6"] < size["fp16"]


def test_metadata_and_classifier(digits_build):
    import coremltools as ct

    report, out = digits_build
    r = _res(report)["fp16"]
    spec = ct.models.MLModel(str(out / r.file), skip_model_load=True).get_spec()
    meta = dict(spec.description.metadata.userDefined)
    assert meta["com.edgepack.version"] == edgepack.__version__
    assert meta["com.edgepack.source_sha256"] == report.model["sha256"]
    assert json.loads(meta["com.edgepack.preprocess"])["scale"] == pytest.approx(1 / 255)
    assert meta["com.edgepack.layout"] == "nchw"
    assert "digits_cnn (fp16)" in spec.description.metadata.shortDescription
    assert spec.description.predictedFeatureName == "classLabel"  # labels.txt made it a classifier
    assert list(spec.description.input)[0].type.multiArrayType.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32


def test_w8a8_never_calls_predict(tmp_path, monkeypatch):
    import coremltools as ct

    def no_predict(*a, **k):
        raise AssertionError("predict was called")

    monkeypatch.setattr(ct.models.MLModel, "predict", no_predict)
    monkeypatch.setenv("EDGEPACK_ISOLATE", "0")  # convert in this process, where predict is patched
    rep = edgepack.build(str(DIGITS_PT2), DIGITS_DATA, [_profile(tmp_path, ["w8a8"], val=40)], tmp_path / "o")
    r = rep.results[0]
    assert r.parity.passed and "activation ranges" in r.artifact.route


def test_int4_needs_ios18(tmp_path):
    with pytest.raises(ConfigError, match=r'int4_weights .*needs deployment_target = "iOS18"'):
        edgepack.build(str(DIGITS_PT2), DIGITS_DATA, [_profile(tmp_path, ["int4_weights"])], tmp_path / "o")
    assert not (tmp_path / "o").exists()
    rep = edgepack.build(str(DIGITS_PT2), DIGITS_DATA, [_profile(tmp_path, ["int4_weights"], target="iOS18", val=40)], tmp_path / "o18")
    r = rep.results[0]
    ops = inspect_file(tmp_path / "o18" / r.file).op_histogram
    assert any(o in ops for o in ("constexpr_blockwise_shift_scale", "constexpr_affine_dequantize")), ops
    assert r.parity.outputs[0].min_cosine >= 0.98


def test_onnx_source_reaches_core_ml_through_the_bridge(tmp_path):
    rep = edgepack.build(str(DIGITS_ONNX), DIGITS_DATA, [_profile(tmp_path, ["fp32"])], tmp_path / "o")
    assert not rep.failed_cells, rep.failed_cells
    (r,) = rep.artifacts
    assert rep.passed and r.artifact.format == "coreml" and r.path.is_dir()
    assert "ONNX->PyTorch bridge" in r.artifact.route
    assert r.parity.outputs[0].min_cosine >= 0.99999 and r.parity.outputs[0].max_abs <= 1e-3


def test_op_the_emulator_lacks_is_a_one_line_error(tmp_path):
    import torch

    from conftest import run_cli  # noqa: F401  (path set by the root conftest)

    class Warp(torch.nn.Module):
        def forward(self, image):
            grid = torch.zeros(1, 8, 8, 2)
            return torch.nn.functional.grid_sample(image, grid, align_corners=False).flatten(1)

    model = tmp_path / "warp.pt2"
    torch.export.save(torch.export.export(Warp().eval(), (torch.randn(1, 1, 8, 8),)), str(model))
    calib = tmp_path / "c.npz"
    np.savez(calib, image=np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32))  # 8 held out (validation.min_samples)
    code, _, err = run_cli("build", str(model), "-c", str(calib), "-t", str(_profile(tmp_path, ["fp32"], val=8)), "-o", str(tmp_path / "o"))
    lines = [ln for ln in err.splitlines() if ln.startswith("edgepack: error:")]
    assert code == 4, err
    assert len(lines) == 1 and "no kernel for op 'resample'" in lines[0] and "failed at validate" in lines[0]
    report = json.loads((tmp_path / "o" / "report.json").read_text())  # the grid's report records the failed cell
    (failed,) = report["failed_cells"]
    assert (failed["format"], failed["stage"], failed["exit_code"]) == ("coreml", "validate", 4) and not report["artifacts"]
    assert not list((tmp_path / "o").rglob("*.mlpackage"))  # an artifact that could not be validated is not shipped


def test_image_input_takes_pixels_with_scale_and_bias(tmp_path):
    import coremltools as ct

    prof = _profile(tmp_path, ["fp32"], val=40, extra="")
    prof.write_text(prof.read_text().replace('deployment_target = "iOS17"', 'deployment_target = "iOS17"\nimage_input = true'))
    rep = edgepack.build(str(DIGITS_PT2), DIGITS_DATA, [prof], tmp_path / "o")
    r = rep.results[0]
    spec = ct.models.MLModel(str(tmp_path / "o" / r.file), skip_model_load=True).get_spec()
    inp = spec.description.input[0]
    assert inp.type.WhichOneof("Type") == "imageType" and inp.type.imageType.width == 8
    assert "mul" in inspect_file(tmp_path / "o" / r.file).op_histogram  # scale 1/255 folded into the program
    assert r.parity.outputs[0].max_abs <= 1e-4  # the emulator was fed pixels, not the normalised tensor


def test_image_input_refuses_per_channel_std(tmp_path):
    from edgepack.formats.coreml.convert import image_scale_bias
    from edgepack.preprocess import load_preprocess

    pp = load_preprocess(ROOT / "calibration_data" / "images" / "preprocess.toml")
    with pytest.raises(ConfigError, match="one scale for all channels"):
        image_scale_bias(pp, "model.pt2")


def test_digits_builds_all_three_formats_in_one_command(tmp_path):
    """The shipped android-arm64 and iphone profiles: .ort, .tflite and .mlpackage side by side."""
    out = tmp_path / "digits"
    rep = edgepack.build(str(DIGITS_PT2), DIGITS_DATA, ["android-arm64", "iphone"], out)
    assert rep.passed
    assert {r.artifact.format for r in rep.results} == {"ort", "tflite", "coreml"}
    md = (out / "report.md").read_text()
    assert "| iphone | coreml | fp16 |" in md and "emulator" in md
    report = json.loads((out / "report.json").read_text())
    coreml = [a for a in report["artifacts"] if a["format"] == "coreml"]
    assert coreml and all(a["parity"]["outputs"][0]["min_cosine"] >= 0.99 for a in coreml)
    assert all(a["latency"]["measured_on"] == "emulator" for a in coreml)
    assert all(a["file"].endswith(".mlpackage") and (out / a["file"] / "Manifest.json").is_file() for a in coreml)


def test_fp16_overflow_is_flagged_in_the_report(tmp_path):
    """An intermediate beyond 65504 in an fp16 program overflows on device: the cell fails parity
    although the clamp hides it from the output (issue #10: a failure, not only a note)."""
    import torch

    class Big(torch.nn.Module):
        def forward(self, x):
            y = (x * 400.0) ** 2  # up to 160000: inf in fp16
            return torch.clamp(y, max=1.0)

    model = tmp_path / "big.pt2"
    torch.export.save(torch.export.export(Big().eval(), (torch.ones(1, 4),)), str(model))
    calib = tmp_path / "c.npz"
    np.savez(calib, x=np.ones((20, 4), np.float32))
    prof = _profile(tmp_path, ["fp16"], val=8)
    rep = edgepack.build(str(model), calib, [prof], tmp_path / "o")
    parity = rep.results[0].parity
    assert parity.outputs[0].passed and parity.outputs[0].max_abs == 0.0  # the clamp hides it from the output
    assert not parity.passed and rep.exit_code == 1
    assert any(f.startswith("fp16 overflow in the Core ML emulator: ") and "would overflow to inf on device" in f for f in parity.failures), parity.failures
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert any("overflow" in f for f in report["artifacts"][0]["parity"]["failures"])


def test_core_ml_problems_are_refused_before_any_conversion(tmp_path):
    """int4 below iOS18 (a profile mistake) fails before any format builds."""
    from conftest import run_cli

    prof = _profile(tmp_path, ["int4_weights"])
    ort = tmp_path / "ort.toml"
    ort.write_text('name = "ortonly"\n[formats.ort]\nprecisions = ["fp32"]\n')
    code, out, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", str(ort), "-t", str(prof), "-o", str(tmp_path / "o"))
    assert code == 2 and f"{prof}: int4_weights" in err and "[ortonly] ort" not in err
