"""Byte-identical rebuilds (issue #13): the same inputs with the same tools give the same bytes, in
every format and precision. Two --no-cache builds, every file of every artifact compared."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import run_cli, write_profile

ALL_FORMATS = """
name = "repro"
threads = 1
[formats.ort]
precisions = ["fp32", "fp16", "int8"]
[formats.tflite]
precisions = ["fp32", "fp16", "dynamic_int8", "int8"]
[formats.coreml]
precisions = ["fp32", "fp16", "int8_weights", "palettize6", "w8a8"]
[latency]
runs = 0
[tolerances.fp32]
min_cosine = 0.0
[tolerances.fp16]
min_cosine = 0.0
[tolerances.int8]
min_cosine = 0.0
[tolerances.dynamic_int8]
min_cosine = 0.0
"""


def _digests(out: Path) -> dict[str, str]:
    """sha256 of every file the build wrote for its artifacts (inside .mlpackage folders too)."""
    skip = {"report.json", "report.md", "report.html", ".edgepack-output.json"}
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def _twice(files, profile: Path, tmp: Path, model: str) -> tuple[dict, dict]:
    outs = []
    for i in (1, 2):
        out = tmp / f"b{i}"
        code, _, err = run_cli("build", str(files[model]), "-c", str(files["calib"]), "-t", str(profile), "-o", str(out), "--no-cache")
        assert code in (0, 1), err
        outs.append(out)
    return _digests(outs[0]), _digests(outs[1])


def test_ort_rebuild_is_byte_identical(tiny_cnn_files, tmp_path):
    profile = write_profile(tmp_path / "p.toml", 'name = "repro"\nthreads = 1\n[formats.ort]\nprecisions = ["fp32", "int8"]\n[latency]\nruns = 0\n')
    first, second = _twice(tiny_cnn_files, profile, tmp_path, "onnx")
    assert [k for k in first if k.endswith(".ort")] == ["repro/tiny.fp32.ort", "repro/tiny.int8.ort"]
    assert first == second


def test_ort_amd64_rebuild_is_byte_identical(tiny_cnn_files, tmp_path):
    """amd64 fp32 runs the NCHWc transformer, whose added nodes follow heap addresses unless the
    saver's layout is fixed (pipeline/layout.py); the canonical form alone does not cover it."""
    from edgepack.formats.ort_mobile.inspect import read_ort

    profile = write_profile(tmp_path / "p.toml", 'name = "repro"\nthreads = 1\n[formats.ort]\nprecisions = ["fp32"]\ntarget_platform = "amd64"\n[latency]\nruns = 0\n')
    first, second = _twice(tiny_cnn_files, profile, tmp_path, "onnx")
    assert [k for k in first if k.endswith(".ort")] == ["repro/tiny.fp32.ort"]
    assert first == second
    ops = read_ort(tmp_path / "b1" / "repro" / "tiny.fp32.ort")["ops"]
    assert ops.get("com.microsoft.nchwc:ReorderOutput", 0) >= 1, ops


@pytest.mark.slow
def test_every_format_and_precision_rebuilds_byte_identical(tiny_cnn_files, tmp_path):
    profile = write_profile(tmp_path / "p.toml", ALL_FORMATS)
    first, second = _twice(tiny_cnn_files, profile, tmp_path, "pt2")
    kinds = {Path(k).parts[1].split(".mlpackage")[0] + (".mlpackage" if ".mlpackage" in k else "") for k in first if k.startswith("repro/")}
    assert len([k for k in kinds if k.endswith((".ort", ".tflite", ".mlpackage"))]) == 12, sorted(kinds)
    differing = sorted(k for k in first if first[k] != second.get(k))
    assert differing == [], differing
    assert first == second
    report = json.loads((tmp_path / "b2" / "report.json").read_text())
    rec = report["reproducibility"]
    assert rec["ort_saver_address_layout"] == "fixed (setarch -R)" and rec["seeds"]["PYTHONHASHSEED"] == "0"
    assert rec["model_sha256"] == hashlib.sha256(Path(tiny_cnn_files["pt2"]).read_bytes()).hexdigest()
