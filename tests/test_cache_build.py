"""The cell cache in real builds (issue #13): a warm rebuild reuses every cell without loading the
model, a corrupt entry is detected and rebuilt, and two builds share cells through a real
S3-compatible server on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_cli, write_profile

PROFILE = """
name = "cache-test"
threads = 1
[formats.ort]
precisions = ["fp32", "int8"]
[validation]
split = 0.4
[latency]
runs = 0
"""


def _build(files, profile, out, cache, *extra):
    return run_cli("build", str(files["onnx"]), "-c", str(files["calib"]), "-t", str(profile), "-o", str(out), "--cache", str(cache), *extra)


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _shas(out: Path) -> dict[str, str]:
    return {a["file"]: a["sha256"] for a in _report(out)["artifacts"]}


def test_warm_rebuild_reuses_every_cell_without_loading_the_model(tiny_cnn_files, tmp_path):
    profile = write_profile(tmp_path / "p.toml", PROFILE)
    cache = tmp_path / "cache"
    code, _, err = _build(tiny_cnn_files, profile, tmp_path / "cold", cache)
    assert code == 0, err
    cold = _report(tmp_path / "cold")
    assert cold["cache"]["stored"] == 2 and cold["cache"]["hits"] == 0
    assert [a["cache"]["hit"] for a in cold["artifacts"]] == [False, False]

    # the warm build in a fresh interpreter: no torch, onnx or onnxruntime is imported at all
    script = (
        "import sys, json; from edgepack.cli import main; rc = main(sys.argv[1:]);"
        "print(json.dumps({'rc': rc, 'heavy': sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'tensorflow', 'coremltools') if m in sys.modules)}))"
    )
    args = ["build", str(tiny_cnn_files["onnx"]), "-c", str(tiny_cnn_files["calib"]), "-t", str(profile), "-o", str(tmp_path / "warm"), "--cache", str(cache)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"rc": 0, "heavy": []}, done.stderr
    assert "every cell (2) reused from the cell cache" in done.stderr
    warm = _report(tmp_path / "warm")
    assert warm["cache"]["hits"] == 2 and warm["cache"]["stored"] == 0
    assert [a["cache"]["hit"] for a in warm["artifacts"]] == [True, True]
    assert _shas(tmp_path / "warm") == _shas(tmp_path / "cold")
    for a in warm["artifacts"]:  # the files are there and are the ones the report names
        from edgepack.files import artifact_sha256

        assert artifact_sha256(tmp_path / "warm" / a["file"]) == a["sha256"]
    # validation results travel with the artifact
    assert [a["parity"]["outputs"][0]["min_cosine"] for a in warm["artifacts"]] == [a["parity"]["outputs"][0]["min_cosine"] for a in cold["artifacts"]]


def test_corrupt_entry_is_detected_and_rebuilt(tiny_cnn_files, tmp_path):
    profile = write_profile(tmp_path / "p.toml", PROFILE.replace('["fp32", "int8"]', '["fp32"]'))
    cache = tmp_path / "cache"
    assert _build(tiny_cnn_files, profile, tmp_path / "a", cache)[0] == 0
    (blob,) = [p for p in cache.rglob("*.ort")]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    blob.write_bytes(bytes(data))
    code, _, err = _build(tiny_cnn_files, profile, tmp_path / "b", cache)
    assert code == 0, err
    rep = _report(tmp_path / "b")
    assert len(rep["cache"]["corrupt"]) == 1 and "does not match its digest" in rep["cache"]["corrupt"][0]
    assert rep["cache"]["hits"] == 0 and rep["cache"]["stored"] == 1
    assert rep["artifacts"][0]["cache"]["hit"] is False
    assert _shas(tmp_path / "b") == _shas(tmp_path / "a")  # rebuilt, not the corrupted bytes
    assert "corrupt entry was rebuilt" in err
    assert _build(tiny_cnn_files, profile, tmp_path / "c", cache)[0] == 0  # and the rebuilt entry serves again
    assert _report(tmp_path / "c")["cache"]["hits"] == 1


def test_no_cache_reads_and_writes_nothing(tiny_cnn_files, tmp_path):
    profile = write_profile(tmp_path / "p.toml", PROFILE.replace('["fp32", "int8"]', '["fp32"]'))
    code, _, _ = _build(tiny_cnn_files, profile, tmp_path / "a", tmp_path / "cache", "--no-cache")
    assert code == 0
    assert _report(tmp_path / "a")["cache"] is None and not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_shared_s3_cache_serves_a_second_build(tiny_cnn_files, tmp_path, monkeypatch):
    pytest.importorskip("s3fs")
    from s3_server import s3_server

    profile = write_profile(tmp_path / "p.toml", PROFILE)
    with s3_server() as (url, env):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        code, _, err = _build(tiny_cnn_files, profile, tmp_path / "ci1", "s3://edgepack-cache/team")
        assert code == 0, err
        assert _report(tmp_path / "ci1")["cache"]["stored"] == 2
        code, _, err = _build(tiny_cnn_files, profile, tmp_path / "ci2", "s3://edgepack-cache/team")
        assert code == 0, err
        rep = _report(tmp_path / "ci2")
        assert rep["cache"]["hits"] == 2 and rep["cache"]["location"] == "s3://edgepack-cache/team"
        assert _shas(tmp_path / "ci2") == _shas(tmp_path / "ci1")


def test_a_cell_validated_without_its_arm64_run_is_not_reused_with_it(tiny_cnn_files, tmp_path, monkeypatch):
    profile = write_profile(tmp_path / "p.toml", PROFILE.replace('["fp32", "int8"]', '["fp32"]'))
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEPACK_ARM64", "off")
    assert _build(tiny_cnn_files, profile, tmp_path / "a", cache)[0] == 0
    assert _build(tiny_cnn_files, profile, tmp_path / "b", cache)[0] == 0
    assert _report(tmp_path / "b")["cache"]["hits"] == 1  # same switch: reused
    monkeypatch.setenv("EDGEPACK_ARM64", "on")  # arm64 runs on (or, where not set up, the reason why not)
    assert _build(tiny_cnn_files, profile, tmp_path / "c", cache)[0] == 0
    assert _report(tmp_path / "c")["cache"]["hits"] == 0
