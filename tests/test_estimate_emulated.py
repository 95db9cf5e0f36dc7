"""Device estimates end to end, under qemu-aarch64 (slow; skipped with the reason where the arm64
runtime is not set up, a failure with EDGEPACK_REQUIRE_ARM64=1)."""
from __future__ import annotations

import json
import os

import pytest
from conftest import run_cli

from edgepack.estimate.device_model import fitted

FIT = "tflite-cpu-cortex-a76"


def need_arm64():
    from edgepack.arm64.home import ready

    if not ready():
        if os.environ.get("EDGEPACK_REQUIRE_ARM64") == "1":
            pytest.fail("EDGEPACK_REQUIRE_ARM64=1 but the arm64 runtime is not set up (make setup-arm64)")
        pytest.skip("arm64 runtime not set up (make setup-arm64)")


@pytest.mark.slow
def test_recounting_a_calibration_net_gives_the_shipped_counts(tmp_path):
    """The shipped fit rests on its stored counts: building MobileNetV1 int8 again with edgepack's
    pipeline and counting it again must give the same instructions, class by class, within 1%."""
    need_arm64()
    from edgepack.estimate.calibration_nets import build_calibration_artifacts
    from edgepack.estimate.fit import count_artifact

    stored = next(p for p in fitted(FIT)["points"] if p["net"] == "mobilenet_v1" and p["precision"] == "int8")["counts"]
    path = build_calibration_artifacts("mobilenet_v1", tmp_path, precisions=("int8",))["int8"]
    counts = count_artifact(path, "cortex-a76")
    assert counts["total"] == pytest.approx(stored["total"], rel=0.01)
    for cls, n in stored.items():
        assert counts[cls] == pytest.approx(n, rel=0.01, abs=1000), cls
    assert counts["sdot"] > 0.5 * counts["total"] * 0.5  # XNNPACK's int8 convolutions ran on SDOT (cortex-a76 has dotprod)


@pytest.mark.slow
def test_arm_build_reports_the_device_estimate_beside_the_host_figure_and_gates_on_it(tiny_cnn_files, tmp_path, monkeypatch):
    need_arm64()
    monkeypatch.setenv("EDGEPACK_ARM64", "on")  # conftest turns the emulated runs off for the other tests
    prof = tmp_path / "arm.toml"
    prof.write_text(
        'name = "arm"\ndevice = "Pixel-4-class phone"\nthreads = 4\n[formats.ort]\nprecisions = ["int8"]\nmobile_eps = []\n'
        '[latency]\nwarmup = 0\nruns = 3\n[emulation]\narm64 = true\ncpu = "cortex-a76"\nsamples = 1\n'
        '[tolerances.int8]\nmin_cosine = 0.9\nmin_top1_agreement = 0.5\n'
        f'[budgets]\nmax_latency_ms = 0.000001\n[device_model]\ncore = "cortex-a76"\nclock_ghz = 2.42\ncores = 4\nfit = "{FIT}"\n'
    )
    out = tmp_path / "out"
    code, stdout, err = run_cli("build", str(tiny_cnn_files["onnx"]), "-c", str(tiny_cnn_files["calib"]), "-t", str(prof), "-o", str(out), "-q")
    art = json.loads((out / "report.json").read_text())["artifacts"][0]
    est, emulated = art["latency_estimate"], art["emulated"]
    assert emulated["counts"]["total"] > 0, emulated
    assert est["label"] == "estimated-device" and est["device"] == "Pixel-4-class phone" and est["threads"] == 4
    assert est["instructions"] == emulated["counts"] and 0 < est["ms"] < 5
    assert est["error_pct"] == pytest.approx(fitted(FIT)["loo"]["max_abs_error_pct"], abs=0.05) and len(est["points"]) == 4
    assert art["latency"]["label"] == "measured-host" and art["latency"]["p50_ms"] > 0  # the host figure stays beside it
    # the device estimate is what the budget gates on (the arm default): exit 1, and the failure names it
    assert code == 1, err
    assert art["budget_failures"] == [f"estimated-device (error ±{est['error_pct']}%) {est['ms']:.3f} ms > budget 1e-06 ms"]
