"""Device latency estimates from instruction counts: the numbers, their labels, and when none is given."""
from __future__ import annotations

import json

import pytest
from conftest import run_cli

from edgepack.estimate import estimate_from_emulated, latency_figure
from edgepack.estimate.calibration_nets import PUBLISHED
from edgepack.estimate.device_model import fitted
from edgepack.estimate.estimate import estimate_latency
from edgepack.estimate.model import group_counts
from edgepack.profiles import load_profile, resolve_profile

FIT = "tflite-cpu-cortex-a76"


def _profile(tmp_path, extra="", clock=2.42, threads=4):
    p = tmp_path / "p.toml"
    p.write_text(
        f'name = "t"\ndevice = "Pixel-4-class phone"\nthreads = {threads}\n[formats.ort]\nprecisions = ["fp32"]\nmobile_eps = []\n'
        f'[device_model]\ncore = "cortex-a76"\nclock_ghz = {clock}\ncores = 4\nfit = "{FIT}"\n{extra}'
    )
    return load_profile(p)


def _point(net="mobilenet_v1", precision="int8"):
    return next(p for p in fitted(FIT)["points"] if p["net"] == net and p["precision"] == precision)


def test_estimate_is_the_fitted_cycles_over_the_clock_and_says_what_it_rests_on(tmp_path):
    fit = fitted(FIT)
    prof = _profile(tmp_path)
    counts = _point()["counts"]
    est, note = estimate_latency(prof, counts, counted_on="cortex-a76")
    assert note is None
    grouped = group_counts(counts, fit["groups"])
    cycles = sum(fit["cpi"][g] * grouped[g] for g in fit["groups"])
    share = 0.15 + 0.85 / 4
    assert est["ms"] == pytest.approx(cycles / 2.42e6 * share, rel=1e-4)
    assert est["ms"] == pytest.approx(_point()["fit_ms"], rel=1e-2)  # the Pixel 4 point's own fitted value
    assert est["label"] == "estimated-device" and est["device"] == "Pixel-4-class phone" and est["threads"] == 4
    assert est["error_pct"] == pytest.approx(fit["loo"]["max_abs_error_pct"], abs=0.05)
    assert est["error_kind"] == "largest leave-one-out error over the published points"
    on_a76 = [(p.net, p.precision, p.ms) for p in PUBLISHED if p.core == "cortex-a76"]  # the Pixel 4 points
    assert len(on_a76) == 4 and [(p["net"], p["precision"], p["ms"]) for p in est["points"]] == on_a76
    assert all(p["source"] and "loo_error_pct" in p for p in est["points"])
    assert est["instructions"] == counts and est["counted_on"] == "qemu-aarch64 -cpu cortex-a76, 1 thread"
    # a slower clock and one thread scale it exactly
    slow, _ = estimate_latency(_profile(tmp_path, clock=1.21, threads=1), counts)
    assert slow["ms"] == pytest.approx(est["ms"] * 2 / share, rel=1e-3)


def _counts(net, precision):
    fit = fitted(FIT)
    return next(p for p in fit["points"] + fit["held_out"] if p["net"] == net and p["precision"] == precision)["counts"]


def test_int8_over_fp32_of_the_estimates_lands_near_the_published_ratios(tmp_path):
    prof = _profile(tmp_path)
    ratio = {}
    for net in ("mobilenet_v1", "mobilenet_v2", "efficientnet_lite0"):
        fp32, _ = estimate_latency(prof, _counts(net, "fp32"))
        int8, _ = estimate_latency(prof, _counts(net, "int8"))
        ratio[net] = int8["ms"] / fp32["ms"]
    assert 0.35 <= ratio["mobilenet_v2"] <= 0.7 and 0.35 <= ratio["efficientnet_lite0"] <= 0.7
    assert abs(ratio["mobilenet_v1"] - 5.0 / 14.0) < 0.05  # published on a Pixel 4: 0.36


@pytest.mark.parametrize(
    "counts, cpu, needle",
    [
        (None, None, "no estimated-device latency: no arm64 instruction counts for this artifact"),
        ("mv1", "cortex-a72", "no estimated-device latency: counts are from cortex-a72, but the device model was calibrated on cortex-a76 counts"),
    ],
)
def test_no_estimate_without_matching_counts(tmp_path, counts, cpu, needle):
    counts = _point()["counts"] if counts == "mv1" else counts
    est, note = estimate_from_emulated(_profile(tmp_path), {"counts": counts, "cpu": cpu} if counts else None)
    assert est is None and note == needle


def test_no_estimate_when_the_fit_is_worse_than_the_profile_allows(tmp_path):
    err = fitted(FIT)["loo"]["max_abs_error_pct"]
    est, note = estimate_latency(_profile(tmp_path, f"max_error_pct = {err / 2:g}\n"), _point()["counts"])
    assert est is None
    assert note.startswith(f"no estimated-device latency: the '{FIT}' model's leave-one-out error is {err:.0f}% over its 4 published points (")
    assert "mobilenet_v1 fp32 14 ms (Pixel 4)" in note and note.endswith(f"above device_model.max_error_pct {err / 2:g}%")


def test_profile_ipc_overrides_the_fit_and_then_claims_no_error(tmp_path):
    fit = fitted(FIT)
    groups = list(fit["groups"])
    est, _ = estimate_latency(_profile(tmp_path, "[device_model.ipc]\n" + "".join(f"{g} = 1.0\n" for g in groups)), _point()["counts"])
    assert est["error_pct"] is None and est["points"] == [] and "not calibrated" in est["basis"]
    total = sum(group_counts(_point()["counts"], fit["groups"]).values())
    assert est["ms"] == pytest.approx(total / 2.42e6 * (0.15 + 0.85 / 4), rel=1e-4)


def test_core_ml_gets_no_estimate_because_its_two_published_points_disagree():
    iphone = resolve_profile("iphone")
    err = fitted("coreml-iphone-flop-byte")["loo"]["max_abs_error_pct"]
    assert err > 100  # MobileNetV2 0.48 ms and ResNet50 1.38 ms do not fit one FLOP/byte factor
    est, note = estimate_from_emulated(iphone, None)
    assert est is None and note.startswith(f"no estimated-device latency: the 'coreml-iphone-flop-byte' model's leave-one-out error is {err:.0f}%")


def test_latency_figure_picks_what_the_budget_gates_on(tmp_path):
    prof = _profile(tmp_path)
    est = {"ms": 3.5}
    assert latency_figure(prof, None, est) == ("estimated-device", 3.5)
    assert latency_figure(prof, None, None) == ("estimated-device", None)
    host = _profile(tmp_path, '[budgets]\nlatency_figure = "measured-host"\n')
    assert latency_figure(host, None, est) == ("measured-host", None)


def test_build_without_counts_says_the_device_budget_was_not_checked(tiny_cnn_files, tmp_path):
    """A profile with a device model whose artifact has no arm64 counts: no estimate, no invented
    figure, and the device budget is reported as not checked (the host figure is not used in its place)."""
    prof = tmp_path / "dm.toml"
    prof.write_text(
        'name = "dm"\nthreads = 1\n[formats.ort]\nprecisions = ["fp32"]\nmobile_eps = []\n[latency]\nwarmup = 0\nruns = 2\n'
        f'[budgets]\nmax_latency_ms = 0.000001\n[device_model]\ncore = "cortex-a76"\nclock_ghz = 2.4\ncores = 4\nfit = "{FIT}"\n'
    )
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(tiny_cnn_files["onnx"]), "-c", str(tiny_cnn_files["calib"]), "-t", str(prof), "-o", str(out), "-q")
    art = json.loads((out / "report.json").read_text())["artifacts"][0]
    if art.get("emulated") and (art["emulated"].get("counts") or {}).get("total"):
        pytest.skip("the arm64 run counted this artifact; the estimate path is covered by the slow tests")
    assert code == 0, err
    assert art["latency_estimate"] is None and art["latency"]["label"] == "measured-host" and art["budget_failures"] == []
    assert "latency budget (1e-06 ms) not checked: no estimated-device latency for this artifact" in art["notes"]
