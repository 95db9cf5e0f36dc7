"""Dynamic input dimensions take their static size from the calibration data or --input-shape (#9)."""
import json

import numpy as np
import pytest

from conftest import run_cli, save_onnx, tiny_cnn, write_profile

onnx = pytest.importorskip("onnx")

ALL = """
name = "t"
[formats.ort]
precisions = ["fp32", "int8"]
mobile_eps = ["nnapi"]
[formats.tflite]
precisions = ["fp32"]
[formats.coreml]
precisions = ["fp32"]
[latency]
warmup = 0
runs = 2
[validation]
max_samples = 8
"""
ORT = 'name = "t"\n[formats.ort]\nprecisions = ["fp32"]\n[latency]\nruns = 1\nwarmup = 0\n'


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory):
    """The tiny CNN as ONNX with every input dim symbolic, as real exports have them."""
    import torch

    d = tmp_path_factory.mktemp("dyn")
    path = save_onnx(tiny_cnn(), (torch.randn(1, 3, 16, 16),), d / "static.onnx")
    model = onnx.load(str(path))
    for dim, name in zip(model.graph.input[0].type.tensor_type.shape.dim, ("batch", "?", "height", "width")):
        dim.Clear()
        dim.dim_param = name
    for dim, name in zip(model.graph.output[0].type.tensor_type.shape.dim, ("batch", "classes")):
        dim.Clear()
        dim.dim_param = name
    dyn = d / "dynamic.onnx"
    onnx.save(model, str(dyn))
    return dyn


def _calib(tmp_path, *shapes):
    rng = np.random.default_rng(0)
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, shape in enumerate(shapes):
        np.savez(folder / f"s{i:02d}.npz", image=rng.standard_normal(shape).astype(np.float32))
    return folder


def test_dynamic_onnx_builds_all_three_formats_at_the_calibration_shape(tmp_path, dynamic_onnx):
    calib = _calib(tmp_path, *[(1, 3, 16, 16)] * 24)
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(dynamic_onnx), "-c", str(calib), "-t", str(write_profile(tmp_path / "p.toml", ALL)), "-o", str(out))
    assert code == 0, err
    assert "static input shapes: image [1, 3, 16, 16]" in err
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["static_shapes"] == {"image": [1, 3, 16, 16]}
    assert report["model"]["declared_inputs"][0]["shape"] == ["batch", "?", "height", "width"]
    assert {(a["format"], a["precision"]) for a in report["artifacts"]} == {("ort", "fp32"), ("ort", "int8"), ("tflite", "fp32"), ("coreml", "fp32")}
    for a in report["artifacts"]:
        assert a["passed"], a["parity"]
        assert a["inputs"][0]["shape"] in ([1, 3, 16, 16], [1, 16, 16, 3])
        if a["precision"] == "fp32":
            assert a["parity"]["outputs"][0]["min_cosine"] >= 0.99999
    ort = next(a for a in report["artifacts"] if a["format"] == "ort" and a["precision"] == "fp32")
    assert "static inputs image=1x3x16x16" in ort["route"]


def test_samples_of_different_shapes_are_bad_input(tmp_path, dynamic_onnx):
    calib = _calib(tmp_path, (1, 3, 16, 16), (1, 3, 16, 16), (1, 3, 16, 24))
    code, _, err = run_cli("build", str(dynamic_onnx), "-c", str(calib), "-t", str(write_profile(tmp_path / "p.toml", ORT)), "-o", str(tmp_path / "o"))
    assert code == 3
    (line,) = [ln for ln in err.splitlines() if ln.startswith("edgepack: error:")]
    assert "s02.npz: input 'image' has shape (1, 3, 16, 24), but" in line and "--input-shape image=" in line
    assert not (tmp_path / "o").exists()


def test_input_shape_must_match_the_data(tmp_path, dynamic_onnx):
    calib = _calib(tmp_path, *[(1, 3, 16, 16)] * 20)  # 8 held out (validation.min_samples)
    prof = str(write_profile(tmp_path / "p.toml", ORT))
    code, _, err = run_cli("build", str(dynamic_onnx), "-c", str(calib), "-t", prof, "-o", str(tmp_path / "o"), "--input-shape", "image=1,3,32,32")
    assert code == 3 and "but --input-shape asks for (1, 3, 32, 32)" in err
    code, _, err = run_cli("build", str(dynamic_onnx), "-c", str(calib), "-t", prof, "-o", str(tmp_path / "o"), "--input-shape", "img=1,3,16,16")
    assert code == 2 and "'img', which is not an input" in err
    code, _, err = run_cli("build", str(dynamic_onnx), "-c", str(calib), "-t", prof, "-o", str(tmp_path / "o"), "--input-shape", "image=1,3,16,16")
    assert code == 0, err
