"""Slow end-to-end builds: every precision from .pt2 and from .onnx, NHWC input, and sizes."""
import json

import numpy as np
import pytest

import edgepack
from conftest import DIGITS_DATA, DIGITS_ONNX, save_pt2, write_stacked
from tfl_helpers import ALL, assert_variant_types, profile, read_graph

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]

TOL = '[tolerances.fp32]\nmax_abs = 1e-4\n[tolerances.fp16]\nmin_cosine = 0.999\n' + "".join(
    f"[tolerances.{p}]\nmin_cosine = 0.99\n" for p in ("dynamic_int8", "int8", "int8_io", "int16x8", "int16x8_io")
)


@pytest.mark.parametrize("kind,layout", [("pt2", None), ("onnx", "nhwc"), ("pt2", "nhwc")])
def test_every_variant(tmp_path, tiny_cnn_files, kind, layout):
    pytest.importorskip("litert_torch")
    prof = profile(tmp_path / "p.toml", ALL, layout=layout, extra=TOL)
    rep = edgepack.build(str(tiny_cnn_files[kind]), tiny_cnn_files["calib"], [prof], tmp_path / "out")
    res = {r.artifact.precision: r for r in rep.results}
    assert set(res) == set(ALL)
    assert rep.passed, {p: r.parity.failures for p, r in res.items()}
    for prec, r in res.items():
        path = tmp_path / "out" / r.file
        assert_variant_types(path, prec)
        (inp,) = r.inputs
        assert inp.layout == (layout or "nchw")
        assert inp.shape == ((1, 16, 16, 3) if layout == "nhwc" else (1, 3, 16, 16))
        assert r.parity.outputs[0].min_cosine >= (0.99999 if prec == "fp32" else 0.99)
        want = "edgepack ONNX->PyTorch bridge" if kind == "onnx" else "torch.export ExportedProgram"
        assert want in r.artifact.route and "litert-torch" in r.artifact.route
    assert res["fp32"].parity.outputs[0].max_abs <= 1e-4
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {a["inputs"][0]["layout"] for a in man["artifacts"]} == {layout or "nchw"}


def test_int8_is_at_most_0_3_of_fp32_for_a_1m_param_convnet(tmp_path):
    pytest.importorskip("litert_torch")
    import torch
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 160), nn.ReLU(), nn.Linear(160, 10),
    ).eval()  # fmt: skip
    params = sum(p.numel() for p in m.parameters())
    assert params >= 1_000_000
    pt2 = save_pt2(m, (torch.randn(1, 3, 32, 32),), tmp_path / "big.pt2")
    calib = write_stacked(tmp_path / "calib", 50, (3, 32, 32), name="input")
    rep = edgepack.build(str(pt2), calib, [profile(tmp_path / "p.toml", ["fp32", "int8", "int8_io"], runs=2)], tmp_path / "out")
    res = {r.artifact.precision: r for r in rep.results}
    for prec in ("int8", "int8_io"):
        assert res[prec].size_bytes <= 0.3 * res["fp32"].size_bytes, (prec, res[prec].size_bytes, res["fp32"].size_bytes)
        assert res[prec].parity.outputs[0].min_cosine >= 0.99
        assert read_graph(tmp_path / "out" / res[prec].file).weight_dtypes()["CONV_2D"] == ["int8"]
    assert res["fp32"].parity.outputs[0].max_abs <= 1e-4


def test_digits_onnx_int8_accuracy_within_a_point(tmp_path):
    pytest.importorskip("litert_torch")
    prof = profile(tmp_path / "p.toml", ["fp32", "int8", "int8_io", "int16x8"], ort=["int8"], runs=2)
    rep = edgepack.build(str(DIGITS_ONNX), DIGITS_DATA, [prof], tmp_path / "out")
    assert rep.passed
    res = {(r.artifact.format, r.artifact.precision): r for r in rep.results}
    fp32 = res[("tflite", "fp32")].parity
    assert fp32.outputs[0].max_abs <= 1e-4
    for prec in ("int8", "int8_io", "int16x8"):
        p = res[("tflite", prec)].parity
        assert p.accuracy >= fp32.accuracy - 0.01 and p.outputs[0].min_cosine >= 0.99
    assert "edgepack ONNX->PyTorch bridge" in res[("tflite", "int8")].artifact.route
    assert np.isclose(res[("tflite", "int8")].parity.outputs[0].max_abs, res[("ort", "int8")].parity.outputs[0].max_abs, rtol=0.05)


NO_TF = """
import importlib.machinery as im, sys
orig = im.PathFinder.find_spec.__func__
def hidden(cls, name, path=None, target=None):  # as if TensorFlow and Keras were not installed
    return None if name.split(".")[0] in ("tensorflow", "tf_keras", "keras", "tensorboard") else orig(cls, name, path, target)
im.PathFinder.find_spec = classmethod(hidden)
from edgepack.cli import main
code = main(sys.argv[1:])
assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
sys.exit(code)
"""


def test_builds_without_tensorflow(tmp_path):
    """The tflite extra needs no TensorFlow: a .pt2 and an .onnx build with it hidden."""
    pytest.importorskip("litert_torch")
    import subprocess
    import sys

    from conftest import DIGITS_PT2, ROOT

    prof = profile(tmp_path / "p.toml", ["fp32", "int8"], runs=1)
    for model in (DIGITS_PT2, DIGITS_ONNX):
        res = subprocess.run(
            [sys.executable, "-c", NO_TF, "build", str(model), "--calibration", str(DIGITS_DATA), "--target", str(prof), "--out", str(tmp_path / model.suffix[1:]), "-q"],
            capture_output=True, text=True, cwd=ROOT, timeout=600,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        assert (tmp_path / model.suffix[1:] / "tfl" / f"{model.stem}.int8.tflite").is_file()
