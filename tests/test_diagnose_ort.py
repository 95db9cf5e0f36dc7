"""Diagnosis, default tier: the real ORT int8 QDQ chain on a CNN with one fragile conv, and the rule."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import run_cli


def fragile_cnn():
    """A CNN whose conv `features.0` has one output channel ~1000x larger than the others: a per-tensor
    int8 scale stretched by it rounds every other channel to zero. `head` reads that channel /1000,
    so the float model is ordinary and int8 fails parity."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Fragile(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.features = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
            self.head = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc = nn.Linear(16 * 8 * 8, 10)

        def forward(self, image):
            x = torch.relu(self.stem(image))
            x = self.features(x)
            x = torch.relu(self.head(x))
            return self.fc(torch.flatten(x, 1))

    m = Fragile().eval()
    with torch.no_grad():
        conv = m.features[0]
        conv.weight[0] *= 1000.0
        conv.bias[0] = conv.bias[0].abs() * 1000.0 + 1000.0
        m.head.weight[:, 0] /= 1000.0
    return m


@pytest.fixture(scope="module")
def fragile_files(tmp_path_factory):
    import torch

    from conftest import save_pt2, write_stacked

    d = tmp_path_factory.mktemp("fragile")
    return {"pt2": save_pt2(fragile_cnn(), (torch.randn(1, 3, 16, 16),), d / "fragile.pt2"), "calib": write_stacked(d / "calib", 24, (3, 16, 16)), "dir": d}


def test_ort_int8_names_the_fragile_conv(fragile_files):
    from edgepack.diagnose import diagnose, render_table
    from edgepack.formats.ort_mobile.quantize import to_int8_qdq
    from edgepack.profiles import QuantSettings
    from edgepack.sources.base import load_source

    d = fragile_files["dir"]
    source = load_source(str(fragile_files["pt2"]))
    source.to_onnx(d / "fragile.fp32.onnx")
    x = np.load(fragile_files["calib"] / "samples.npz")["image"]
    cal = [{"image": x[i : i + 1]} for i in range(16)]
    to_int8_qdq(d / "fragile.fp32.onnx", d / "fragile.int8.onnx", samples=cal, quant=QuantSettings(), input_names={"image": "image"}, track=lambda it, n, label: it)
    val = [{"image": x[i : i + 1]} for i in range(20, 24)]
    result = diagnose(source, d / "fragile.int8.onnx", "onnxruntime", val, ["s20", "s21", "s22", "s23"], {"min_cosine": 0.99})
    fd = result["first_divergent"]
    assert fd["source_name"] == "features.0" and fd["op_type"] == "conv2d"
    assert fd["sqnr_before"] > 30 and fd["sqnr_after"] < 5
    assert fd["scale"] > 1.0 and fd["range"][1] > 1000  # the outlier channel stretched the int8 range
    m = result["mapped"]
    assert m["source_tensors"] == 6 and m["pairs"] == 6 and m["by_name"] >= 5
    names = [r["source_name"] for r in result["layers"]]
    assert names == ["image", "stem", "features.0", "head", "flatten", "fc"]
    assert result["layers"][-1]["cosine"] < 0.9  # the final output fails, as parity says
    table = render_table(result)
    assert "first divergent layer: #2 features.0 (conv2d)" in table
    assert all(len(line) <= 100 for line in table.splitlines())


def test_first_divergent_rule():
    from edgepack.diagnose.compare import band_db, first_divergent

    def rows(*s):
        return [{"index": i, "source_name": f"l{i}", "op_type": "conv", "sqnr_db": v, "nonfinite_values": 0} for i, v in enumerate(s)]

    band = band_db({"min_cosine": 0.99})
    assert band == pytest.approx(10 * np.log10(0.99**2 / (1 - 0.99**2)))  # 16.92 dB
    assert first_divergent(rows(40, 38, 12, 11), band)["index"] == 2  # jump below the band
    assert first_divergent(rows(40, 25, 20, 19), band) is None  # a dip that stays inside the band
    slow = first_divergent(rows(40, 33, 26, 19, 14), band)  # slow decline: the first below the band
    assert slow["index"] == 4 and slow["rule"].startswith("first layer below the band")
    assert first_divergent(rows(40, 60, 30), 35.0)["sqnr_before"] == 60


def test_profile_key_validation_diagnose(tmp_path, tiny_cnn_files):
    bad = tmp_path / "p.toml"
    bad.write_text('name = "p"\n[formats.ort]\nprecisions = ["fp32"]\n[validation]\ndiagnose = "sometimes"\n')
    code, out, err = run_cli("build", str(tiny_cnn_files["pt2"]), "-c", str(tiny_cnn_files["calib"]), "-t", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "validation.diagnose" in err and "on-failure, never, always" in err and "'sometimes'" in err
