"""Diagnosis end to end (slow): one build of the fragile CNN in int8 .ort, .tflite and Core ML W8A8;
each fails parity and its diagnosis names the fragile conv; then artifact against artifact."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow

PROFILE = """name = "t"
threads = 1
[formats.ort]
precisions = ["int8"]
mobile_eps = []
[formats.tflite]
precisions = ["int8"]
[formats.coreml]
precisions = ["w8a8"]
[latency]
runs = 0
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import torch

    from conftest import save_pt2, write_stacked
    from test_diagnose_ort import fragile_cnn

    d = tmp_path_factory.mktemp("diag")
    pt2 = save_pt2(fragile_cnn(), (torch.randn(1, 3, 16, 16),), d / "fragile.pt2")
    calib = write_stacked(d / "calib", 24, (3, 16, 16))
    (d / "t.toml").write_text(PROFILE)
    code, out, err = run_cli("build", str(pt2), "-c", str(calib), "-t", str(d / "t.toml"), "--out", str(d / "out"), "-q")
    return {"code": code, "err": err, "dir": d, "pt2": pt2, "calib": calib, "report": json.loads((d / "out" / "report.json").read_text())}


@pytest.mark.parametrize("fmt", ["ort", "tflite", "coreml"])
def test_int8_diagnosis_names_the_fragile_conv(built, fmt):
    assert built["code"] == 1
    art = next(a for a in built["report"]["artifacts"] if a["format"] == fmt)
    assert not art["parity"]["passed"]
    d = art["parity"]["diagnosis"]
    assert d is not None, art["parity"]["notes"]
    assert d["first_divergent"]["source_name"] == "features.0"
    assert d["first_divergent"]["sqnr_before"] > 30 and d["first_divergent"]["sqnr_after"] < 5
    assert d["first_divergent"]["range"][1] > 1000  # the int8 range the outlier channel stretched
    assert d["mapped"]["pairs"] / d["mapped"]["source_tensors"] >= 0.8
    assert len(d["samples"]) == 4


def test_artifact_against_artifact(built):
    out = built["dir"] / "out" / "t"
    code, stdout, err = run_cli(
        "diagnose", str(out / "fragile.int8.tflite"), "-m", str(built["pt2"]), "-c", str(built["calib"]),
        "--against", str(out / "fragile.int8.ort"), "--json", "-q",
    )
    assert code == 0, err
    d = json.loads(stdout)
    assert d["against"] == "fragile.int8.ort"
    assert d["first_divergent"]["source_name"] == "features.0" and d["other"]["first_divergent"]["source_name"] == "features.0"
    assert d["verdict"].startswith("both diverge first at layer 2 (features.0)")
    assert "rebuilt from the artifact's route" in " ".join(d["notes"])  # the .ort's ONNX is not shipped
