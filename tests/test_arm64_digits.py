"""End to end: the digits example built for linux-arm64 runs emulated on arm64 (slow tier)."""
from __future__ import annotations

import json

import pytest

import edgepack
from conftest import DIGITS_DATA, DIGITS_ONNX
from test_arm64_runtime import need_arm64


@pytest.mark.slow
def test_digits_int8_runs_emulated_with_parity_counts_estimate_and_goldens(tmp_path, monkeypatch):
    need_arm64()
    monkeypatch.setenv("EDGEPACK_ARM64", "on")
    assets = tmp_path / "assets"
    rep = edgepack.build(
        str(DIGITS_ONNX), DIGITS_DATA, ["linux-arm64"], tmp_path / "out", precisions=["int8"], latency=False,
        android_assets=assets, android_target="linux-arm64",
    )
    assert rep.exit_code == 0 and sorted(r.format for r in rep.artifacts) == ["ort", "tflite"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    for art in report["artifacts"]:
        em = art["emulated"]
        assert (em["label"], em["ran"], em["cpu"], em["samples"]) == ("emulated-arm64", True, "cortex-a76", 3)
        assert em["parity"]["passed"] is True and em["parity"]["outputs"][0]["min_cosine"] > 0.99
        # measured: XNNPACK int8 and ORT's QDQ int8 on arm64 give the host's bits exactly
        assert em["vs_host"]["bit_identical"] is True and em["vs_host"]["outputs"][0]["differing"] == 0
        counts = em["counts"]
        assert counts["sdot"] > 10_000 and counts["total"] == sum(v for k, v in counts.items() if k != "total")
        assert em["versions"]["qemu"].startswith("7.")
        est = art["latency_estimate"]
        assert est is None or (est["label"] == "estimated-device" and est["ms"] > 0)
    tflite = next(a for a in report["artifacts"] if a["format"] == "tflite")
    assert tflite["latency_estimate"]["label"] == "estimated-device"  # H6b's estimate rests on these counts
    golden = json.loads((assets / "golden.json").read_text())
    assert {a["computed_on"] for a in golden["artifacts"]} == {"emulated-arm64 (cortex-a76)"}
    assert all(len(a["results"]) == 3 for a in golden["artifacts"])
