"""A build is a grid of cells: one cell's failure never costs another (issue #9)."""
import html
import json

import numpy as np
import pytest

from conftest import DIGITS_DATA, DIGITS_ONNX, run_cli, write_profile
from crashy_format import Crashy

PROFILE = """
name = "{name}"
[formats.ort]
precisions = ["fp32"]
mobile_eps = []
{extra}
[latency]
warmup = 0
runs = 2
[validation]
max_samples = 8
[limits]
cell_timeout_s = {timeout}
"""


@pytest.fixture
def crashy_registered(monkeypatch):
    from edgepack.formats import base

    base.formats()  # load the shipped plug-ins first
    monkeypatch.setitem(base._FORMATS, "crashy", Crashy)
    yield


@pytest.mark.parametrize(
    "mode, error, text",
    [
        ("segv", "ConverterCrash", "crashed with SIGSEGV"),
        ("hang", "CellTimeout", "did not finish within 4 s"),
        ("raise", "ConversionError", "crashy cannot express op 'Weird'"),
    ],
)
def test_a_failed_cell_is_recorded_and_every_other_cell_is_written(tmp_path, crashy_registered, mode, error, text):
    extra = f'[formats.crashy]\nprecisions = ["fp32", "int8"]\nmode = "{mode}"'
    prof = write_profile(tmp_path / "p.toml", PROFILE.format(name="t", extra=extra, timeout=4))
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("build", str(DIGITS_ONNX), "-c", str(DIGITS_DATA), "-t", str(prof), "-o", str(out))
    assert code == 4, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is False and report["exit_code"] == 4
    (ort,) = report["artifacts"]
    assert ort["format"] == "ort" and ort["passed"] and (out / ort["file"]).is_file()
    assert ort["parity"]["outputs"][0]["max_abs"] <= 1e-4
    failed = report["failed_cells"]
    assert [(f["format"], f["precision"], f["error"]) for f in failed] == [("crashy", "fp32", error), ("crashy", "int8", error)]
    assert [f["stage"] for f in failed] == ["convert", "quantise"]  # int8 failed after it entered quantise
    assert all(text in f["reason"] for f in failed)
    assert [c["status"] for c in report["cells"]] == ["passed", "failed", "failed"]
    md = (out / "report.md").read_text()
    assert "| t | crashy | fp32 |" in md and "FAIL (convert)" in md and text in md
    assert html.escape(text) in (out / "report.html").read_text()
    errors = [ln for ln in stderr.splitlines() if ln.startswith("edgepack: error:")]
    assert len(errors) == 1 and errors[0].startswith("edgepack: error: 2 of 3 cells failed; the first: [t] crashy fp32")
    assert f"FAIL t crashy int8: failed at" in stderr and "Traceback" not in stderr
    assert "crashy" in stdout and "FAIL (" in stdout  # the summary table has the failed rows


def test_fail_fast_stops_at_the_first_failed_cell(tmp_path, crashy_registered):
    extra = '[formats.crashy]\nprecisions = ["fp32"]\nmode = "raise"'
    prof = write_profile(tmp_path / "p.toml", PROFILE.format(name="t", extra=extra, timeout=60).replace('precisions = ["fp32"]\nmobile_eps', 'precisions = ["fp32"]\nmobile_eps', 1))
    out = tmp_path / "out"
    code, _, stderr = run_cli("build", str(DIGITS_ONNX), "-c", str(DIGITS_DATA), "-t", str(prof), "-o", str(out), "--fail-fast")
    assert code == 4 and not out.exists()
    assert stderr.strip().splitlines()[-1] == (
        f"edgepack: error: [t] crashy fp32 failed at convert: {DIGITS_ONNX}: crashy cannot express op 'Weird'; export it differently"
    )


def test_a_format_that_refuses_the_model_fails_only_its_cells(tmp_path):
    """An ONNX op that edgepack's ONNX->PyTorch bridge lacks: .tflite and .mlpackage cells fail, .ort is built."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Hardmax", ["x"], ["y"], axis=-1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
    )
    model = tmp_path / "hardmax.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    calib = tmp_path / "c.npz"
    np.savez(calib, x=np.random.default_rng(0).standard_normal((20, 6)).astype(np.float32))  # 8 held out (validation.min_samples)
    extra = '[formats.tflite]\nprecisions = ["fp32"]\n[formats.coreml]\nprecisions = ["fp32"]'
    prof = write_profile(tmp_path / "p.toml", PROFILE.format(name="t", extra=extra, timeout=600))
    out = tmp_path / "out"
    code, _, stderr = run_cli("build", str(model), "-c", str(calib), "-t", str(prof), "-o", str(out))
    assert code == 4, stderr
    report = json.loads((out / "report.json").read_text())
    assert [a["format"] for a in report["artifacts"]] == ["ort"] and report["artifacts"][0]["passed"]
    assert report["artifacts"][0]["parity"]["outputs"][0]["max_abs"] == 0.0
    failed = {f["format"]: f for f in report["failed_cells"]}
    assert set(failed) == {"tflite", "coreml"}
    for f in failed.values():
        assert f["error"] == "UnsupportedOpError" and f["stage"] == "convert" and f["exit_code"] == 4
        assert "op 'Hardmax'" in f["reason"] and "ONNX->PyTorch bridge" in f["reason"]
