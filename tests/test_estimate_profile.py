"""[device_model] and [budgets] latency_figure in target profiles: strict keys, one-line errors, defaults."""
from __future__ import annotations

import pytest
from conftest import run_cli

from edgepack.errors import ConfigError
from edgepack.estimate.device_model import fitted_names
from edgepack.profiles import load_profile, resolve_profile

BASE = """
name = "t"
threads = 4
[formats.tflite]
precisions = ["fp32", "int8"]
"""
DM = """
[device_model]
core = "cortex-a76"
clock_ghz = 2.4
cores = 4
fit = "tflite-cpu-cortex-a76"
"""


def _load(tmp_path, extra: str):
    p = tmp_path / "p.toml"
    p.write_text(BASE + extra)
    return p, load_profile(p)


def test_device_model_is_read_with_defaults_and_makes_the_device_estimate_the_budget_figure(tmp_path):
    _, prof = _load(tmp_path, DM + "[budgets]\nmax_latency_ms = 20\n")
    dm = prof.device_model
    assert (dm.core, dm.clock_ghz, dm.cores, dm.fit, dm.count_cpu) == ("cortex-a76", 2.4, 4, "tflite-cpu-cortex-a76", "cortex-a76")
    assert dm.parallel_fraction == 0.85 and dm.max_error_pct == 50.0 and dm.ipc == {}
    assert prof.budgets.latency_figure == "estimated-device"
    assert prof.to_json()["device_model"]["clock_ghz"] == 2.4
    _, plain = _load(tmp_path, "[budgets]\nmax_latency_ms = 20\n")
    assert plain.device_model is None and plain.budgets.latency_figure == "measured-host"
    _, host = _load(tmp_path, DM + '[budgets]\nlatency_figure = "measured-host"\n')
    assert host.budgets.latency_figure == "measured-host"


def test_a_device_budget_needs_no_host_timing(tmp_path):
    _, prof = _load(tmp_path, DM + "[latency]\nruns = 0\n[budgets]\nmax_latency_ms = 20\n")
    assert prof.budgets.max_latency_ms == 20.0
    with pytest.raises(ConfigError, match="budgets.max_latency_ms needs latency.runs > 0"):
        _load(tmp_path, DM + '[latency]\nruns = 0\n[budgets]\nmax_latency_ms = 20\nlatency_figure = "measured-host"\n')


@pytest.mark.parametrize(
    "extra, needle",
    [
        (DM + "clock = 3\n", "unknown key 'device_model.clock'; allowed keys in device_model are: core, clock_ghz, cores"),
        (DM.replace("tflite-cpu-cortex-a76", "pixel9"), "key 'device_model.fit' is 'pixel9'; fitted device models are: "),
        (DM.replace("clock_ghz = 2.4\n", ""), "missing required key 'device_model.clock_ghz'"),
        (DM.replace("2.4", "24"), "key 'device_model.clock_ghz' is 24; a CPU clock is 0.1..10 GHz"),
        (DM.replace("2.4", '"fast"'), "key 'device_model.clock_ghz' must be float"),
        (DM.replace("cores = 4", "cores = 0"), "key 'device_model.cores' is 0; it must be 1..64"),
        (DM + "parallel_fraction = 1.5\n", "key 'device_model.parallel_fraction' is 1.5; it must be between 0 and 1"),
        (DM + 'count_cpu = "cortex-a72"\n', "but fit 'tflite-cpu-cortex-a76' was calibrated on counts from 'cortex-a76'"),
        (DM + "[device_model.ipc]\nflops = 2\n", "unknown key 'device_model.ipc.flops'; allowed keys in device_model.ipc are: "),
        (DM + '[budgets]\nlatency_figure = "device"\n', "key 'budgets.latency_figure' has 'device'; choose from: estimated-device, measured-host"),
    ],
)
def test_device_model_mistakes_are_one_line_config_errors(tmp_path, extra, needle):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, extra)
    msg = str(e.value)
    assert needle in msg and str(tmp_path / "p.toml") in msg and "\n" not in msg
    if "fitted device models" in needle:
        assert all(n in msg for n in fitted_names())


def test_cli_reports_a_device_model_mistake_with_exit_code_2(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text(BASE + DM.replace("tflite-cpu-cortex-a76", "pixel9"))
    code, out, err = run_cli("build", str(tmp_path / "m.pt2"), "-c", str(tmp_path), "-t", str(p), "-o", str(tmp_path / "out"))
    assert code == 2, err
    assert err.startswith(f"edgepack: error: {p}: key 'device_model.fit' is 'pixel9'; fitted device models are: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_shipped_arm_targets_carry_a_calibrated_device_model():
    for name, clock in (("android-arm64", 2.42), ("linux-arm64", 2.4)):
        prof = resolve_profile(name)
        dm = prof.device_model
        assert dm is not None and dm.kind == "instruction-counts" and dm.core == "cortex-a76" and dm.clock_ghz == clock
        assert prof.budgets.latency_figure == "estimated-device"
    iphone = resolve_profile("iphone")
    assert iphone.device_model.kind == "flop-byte" and iphone.budgets.latency_figure == "measured-host"
