"""End-to-end: real torch/ONNX export, ORT quantisation and .ort conversion, run in onnxruntime."""
import json

import numpy as np
import pytest

import edgepack
from conftest import DIGITS_DATA, DIGITS_PT2, save_pt2, write_profile, write_stacked
from edgepack.inspect import inspect_file

PROFILE = """
name = "{name}"
threads = 1
[formats.ort]
precisions = {precisions}
[latency]
warmup = 1
runs = 5
[validation]
max_samples = 20
"""


def _profile(tmp_path, name="t", precisions='["fp32", "fp16", "int8"]'):
    return write_profile(tmp_path / f"{name}.toml", PROFILE.format(name=name, precisions=precisions))


def _by_precision(report):
    return {r.artifact.precision: r for r in report.results}


@pytest.mark.parametrize("kind", ["pt2", "onnx"])
def test_tiny_cnn_all_precisions(tmp_path, tiny_cnn_files, kind):
    ort = pytest.importorskip("onnxruntime")
    rep = edgepack.build(str(tiny_cnn_files[kind]), tiny_cnn_files["calib"], [_profile(tmp_path)], tmp_path / "out")
    assert rep.passed
    res = _by_precision(rep)
    assert set(res) == {"fp32", "fp16", "int8"}
    for r in res.values():
        path = tmp_path / "out" / r.file
        assert path.suffix == ".ort" and path.is_file()
        assert path.with_name(path.stem + ".required_operators_and_types.config").is_file()
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # the .ort loads
        assert sess.get_inputs()[0].shape == [1, 3, 16, 16]
    assert res["fp32"].parity.outputs[0].max_abs <= 1e-4
    assert res["fp16"].parity.outputs[0].min_cosine >= 0.999
    assert res["int8"].parity.outputs[0].min_cosine >= 0.99
    int8_ops = inspect_file(tmp_path / "out" / res["int8"].file).op_histogram
    assert any(("QuantizeLinear" in op) or ("QLinear" in op) for op in int8_ops), int8_ops
    assert "float16" in inspect_file(tmp_path / "out" / res["fp16"].file).weight_dtypes
    assert res["int8"].latency.measured_on == "host" and res["int8"].latency.runs == 5
    assert res["int8"].latency.p90_ms >= res["int8"].latency.p50_ms > 0


def test_int8_is_small_for_a_1m_param_convnet(tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10),
    ).eval()
    params = sum(p.numel() for p in m.parameters())
    assert params >= 1_000_000
    model = save_pt2(m, (torch.randn(1, 3, 16, 16),), tmp_path / "big.pt2")
    calib = write_stacked(tmp_path / "calib", 24, (3, 16, 16), name="input")  # nn.Sequential names its input "input"
    rep = edgepack.build(str(model), calib, [_profile(tmp_path, precisions='["fp32", "int8"]')], tmp_path / "out")
    res = _by_precision(rep)
    ratio = res["int8"].size_bytes / res["fp32"].size_bytes
    assert res["fp32"].size_bytes > params * 4 * 0.95
    assert ratio <= 0.3, ratio
    assert res["int8"].parity.outputs[0].min_cosine >= 0.99


def test_digits_int8_accuracy_within_one_point(tmp_path):
    out = tmp_path / "digits"
    rep = edgepack.build(str(DIGITS_PT2), DIGITS_DATA, ["android-arm64"], out)
    res = _by_precision(rep)
    fp32, int8 = res["fp32"].parity.accuracy, res["int8"].parity.accuracy
    assert fp32 >= 0.97
    assert fp32 - int8 <= 0.01
    report = json.loads((out / "report.json").read_text())
    accs = {a["precision"]: a["parity"]["accuracy"] for a in report["artifacts"]}
    assert accs["fp32"] == fp32 and accs["int8"] == int8
    assert "accuracy" in (out / "report.md").read_text().lower()


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_other_calibration_methods(tmp_path, tiny_cnn_files, method):
    prof = write_profile(
        tmp_path / "p.toml", PROFILE.format(name="p", precisions='["int8"]') + f'[quantization]\nmethod = "{method}"\n'
    )
    rep = edgepack.build(str(tiny_cnn_files["onnx"]), tiny_cnn_files["calib"], [prof], tmp_path / "out")
    r = rep.results[0]
    assert method in r.artifact.route
    assert r.parity.outputs[0].min_cosine >= 0.98
