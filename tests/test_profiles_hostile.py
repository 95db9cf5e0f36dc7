"""Hostile and careless target profiles (issues #8 and #14): bounded numbers, names that cannot
collide with edgepack's files or span lines, host thread caps, and a "did you mean" for typos."""
from __future__ import annotations

import hashlib

import pytest

from conftest import run_cli
from edgepack.errors import ConfigError, ExitCode
from edgepack.profiles import (
    HOST_THREADS_PER_CORE,
    MAX_LATENCY_RUNS,
    MAX_THREADS,
    default_profile,
    host_cores,
    load_profile,
    resolve_profile,
)
from hostile_inputs import PROFILE_CASES

FAST = 'name = "t"\nthreads = 1\n[formats.ort]\nprecisions = ["fp32"]\n'


def _digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("make", PROFILE_CASES, ids=lambda f: f.__name__[len("make_"):])
def test_hostile_profile_through_the_cli(make, tmp_path):
    case = make(tmp_path)
    kept = {p: _digest(p) for p in case.keep}
    code, _, err = run_cli(*case.argv)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgepack: error: "), err
    assert case.expect_text in lines[0], err
    assert code == case.expect_code == ExitCode.USAGE, err
    assert not (tmp_path / "out").exists()
    assert {p: _digest(p) for p in case.keep} == kept


def _load(tmp_path, body):
    p = tmp_path / "p.toml"
    p.write_text(body, encoding="utf-8")
    return load_profile(p)


@pytest.mark.parametrize(
    "key, table, most",
    [
        ("threads", None, MAX_THREADS),
        ("runs", "latency", MAX_LATENCY_RUNS),
        ("warmup", "latency", 1000),
        ("max_samples", "validation", 100_000),
        ("calibration_samples", "quantization", 100_000),
        ("max_calibration_mb", "validation", 1_000_000),
    ],
)
def test_documented_maximums_are_accepted_and_one_more_is_not(tmp_path, key, table, most):
    def body(v):
        if table is None:
            return FAST.replace("threads = 1", f"threads = {v}")
        return f"{FAST}[{table}]\n{key} = {v}\n"

    prof = _load(tmp_path, body(most))
    where = prof if table is None else getattr(prof, table)
    assert getattr(where, key) == most
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, body(most + 1))
    full = key if table is None else f"{table}.{key}"
    assert f"key '{full}' is {most + 1}; it must be" in str(e.value) and f"..{most:,} (the documented maximum)" in str(e.value)


def test_max_calibration_mb_default_and_bytes(tmp_path):
    prof = _load(tmp_path, FAST)
    assert prof.validation.max_calibration_mb == 4096 and prof.validation.max_calibration_bytes == 4_096_000_000
    assert _load(tmp_path, FAST + "[validation]\nmax_calibration_mb = 16\n").validation.max_calibration_bytes == 16_000_000
    assert default_profile().validation.max_calibration_mb == 4096
    assert prof.to_json()["validation"]["max_calibration_mb"] == 4096


@pytest.mark.parametrize(
    "name, ok",
    [
        ("nl\n", False),
        ("a\nb", False),
        ("report.json", False),
        ("Report.HTML", False),  # case-insensitive file systems (macOS) collide too
        ("report.md", False),
        ("manifest.json", False),
        (".hidden", False),
        ("-dash", False),
        ("", False),
        ("n" * 101, False),
        ("n" * 100, True),
        ("report.json.v2", True),
        ("pixel-8_pro.v1", True),
    ],
)
def test_names(tmp_path, name, ok):
    body = FAST.replace('name = "t"', f"name = {name!r}".replace("'", '"').replace("\n", "\\n"))
    if ok:
        assert _load(tmp_path, body).name == name
    else:
        with pytest.raises(ConfigError) as e:
            _load(tmp_path, body)
        assert "\n" not in str(e.value) and "'name' is" in str(e.value)


def test_file_name_default_is_checked_too(tmp_path):
    p = tmp_path / "report.json.toml"  # the name defaults to the file's stem
    p.write_text(FAST.replace('name = "t"\n', ""), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'name' is 'report.json', a file edgepack writes in --out"):
        load_profile(p)


@pytest.mark.parametrize("key", ["description", "device"])
def test_single_line_text(tmp_path, key):
    with pytest.raises(ConfigError, match=rf"key '{key}' must be a single line of text .*got 'a\\tb'"):
        _load(tmp_path, f'{key} = "a\\tb"\n' + FAST)
    assert getattr(_load(tmp_path, f'{key} = "Pixel 8 — Tensor G3"\n' + FAST), key) == "Pixel 8 — Tensor G3"


def test_host_threads_capped_at_four_per_core(tmp_path):
    cores = host_cores()
    small = _load(tmp_path, FAST.replace("threads = 1", f"threads = {min(cores, MAX_THREADS)}"))
    assert small.host_threads == small.threads and not small.threads_capped and small.host_threads_note() is None
    over = _load(tmp_path, FAST.replace("threads = 1", f"threads = {MAX_THREADS}"))
    cap = HOST_THREADS_PER_CORE * cores
    assert over.host_threads == min(MAX_THREADS, cap)
    assert over.threads_capped == (MAX_THREADS > cap)
    if MAX_THREADS > cores:
        note = over.host_threads_note()
        assert note.startswith(f"profile asks {MAX_THREADS} threads; this host has {cores} core")
        if over.threads_capped:
            assert f"host runs use {cap} threads" in note
    assert over.threads == MAX_THREADS  # the profile keeps what the device has


def test_host_cores_follows_affinity():
    import os

    assert host_cores() == len(os.sched_getaffinity(0))


# --- issue #14: target names ------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["IPHONE", "iPhone", "Android-ARM64"])
def test_shipped_names_match_case_insensitively(typed):
    assert resolve_profile(typed).name == typed.lower()


@pytest.mark.parametrize(
    "typed, suggestion",
    [("iphne", "iphone"), ("andriod-arm64", "android-arm64"), ("linux-arm", "linux-arm64"), ("IPHNE", "iphone")],
)
def test_did_you_mean(typed, suggestion):
    with pytest.raises(ConfigError) as e:
        resolve_profile(typed)
    assert str(e.value) == (
        f"unknown target '{typed}'; did you mean '{suggestion}'? (`edgepack targets` lists them, or give a path to a .toml file)"
    )
    assert e.value.exit_code == ExitCode.USAGE


def test_no_close_match_lists_all():
    with pytest.raises(ConfigError, match=r"unknown target 'zzzz'; shipped targets are: android-arm64, iphone, linux-arm64"):
        resolve_profile("zzzz")


def test_a_folder_does_not_hide_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iphone").mkdir()
    assert resolve_profile("iphone").name == "iphone"


def test_unreadable_or_odd_target_paths(tmp_path):
    with pytest.raises(ConfigError, match=r"x/p.toml: cannot read the target profile \(path too long; use a shorter path\)"):
        resolve_profile(str(tmp_path / ("x" * 300) / "p.toml"))
    with pytest.raises(ConfigError, match=r"cannot read the target profile \(it is a folder; give a .toml file\)"):
        load_profile(tmp_path)
    with pytest.raises(ConfigError, match=r"control characters"):
        resolve_profile("iphone\n")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(ConfigError, match=r"big.toml: is 1,000,001 bytes; a target profile is a small TOML file"):
        load_profile(big)


def test_cli_did_you_mean_and_case(tmp_path, tiny_cnn_files):
    code, _, err = run_cli("build", str(tiny_cnn_files["onnx"]), "-c", str(tiny_cnn_files["calib"]), "-t", "Linux-Arm", "-o", str(tmp_path / "o"))
    assert code == 2 and err.strip() == (
        "edgepack: error: unknown target 'Linux-Arm'; did you mean 'linux-arm64'? (`edgepack targets` lists them, or give a path to a .toml file)"
    )
