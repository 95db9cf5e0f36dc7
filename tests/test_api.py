"""The Python API (issue #14): real signatures, a single target as a string, names as in report.json,
artifact paths that exist after the build, progress=True, and the notes the numbers call for."""
import dataclasses
import inspect
import json
import os
import subprocess
import sys

import pytest

import edgepack
import edgepack.api
from conftest import run_cli, write_profile, write_stacked
from edgepack.errors import ConfigError, InputError

PROFILE = """
name = "{name}"
threads = {threads}
[formats.ort]
precisions = {precisions}
mobile_eps = []
[latency]
warmup = 0
runs = 2
[validation]
max_samples = 10
[tolerances.int8]
min_cosine = 0.9
"""


def _profile(tmp_path, name="api", threads=1, precisions=("fp32", "int8")):
    body = PROFILE.format(name=name, threads=threads, precisions=json.dumps(list(precisions)))
    return write_profile(tmp_path / f"{name}.toml", body)


def test_signatures_and_docstrings():
    build = list(inspect.signature(edgepack.build).parameters)
    assert build == [
        "model", "calibration", "targets", "out", "formats", "precisions", "latency", "progress",
        "allow_pickle", "android_assets", "android_target", "force", "fail_fast", "input_shapes",
        "diagnose", "cache", "use_cache", "recipes",
    ]
    assert build == list(inspect.signature(edgepack.api.build).parameters)  # the wrapper is the real thing
    check = list(inspect.signature(edgepack.check).parameters)
    assert check == ["artifact", "model", "calibration", "target", "precision", "latency", "progress", "allow_pickle"]
    assert check == list(inspect.signature(edgepack.api.check).parameters)
    for name in build[4:]:
        assert inspect.signature(edgepack.build).parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert "targets: a shipped target name" in edgepack.build.__doc__ and "Returns a BuildReport" in edgepack.build.__doc__
    assert "against its source `model`" in edgepack.check.__doc__


def test_import_edgepack_is_light():
    code = "import sys, edgepack\nprint([m for m in ('torch', 'numpy', 'onnx', 'onnxruntime', 'tensorflow', 'coremltools') if m in sys.modules])"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", res.stdout


def test_single_string_target_paths_and_names(tiny_cnn_files, tmp_path, capfd):
    out = tmp_path / "out"
    rep = edgepack.build(tiny_cnn_files["onnx"], tiny_cnn_files["calib"], str(_profile(tmp_path)), out, progress=True)
    assert rep.passed
    assert [(a.target, a.format, a.precision) for a in rep.artifacts] == [("api", "ort", "fp32"), ("api", "ort", "int8")]
    assert rep.results is rep.artifacts  # the old name still works
    for a in rep.artifacts:
        assert a.path == out / a.file and a.path.is_file() and a.path.stat().st_size == a.size_bytes
        assert a.artifact.path == a.path  # not the staging folder, which is gone
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    err = capfd.readouterr().err
    assert "] loading " in err and "] [api] ort int8: parity on held-out samples (10)" in err


def test_shipped_target_name_as_a_string_is_one_target(tiny_cnn_files, tmp_path):
    # "linux-arm64" as a string is one target, not eleven one-letter ones
    with pytest.raises(ConfigError) as exc:
        edgepack.build(tiny_cnn_files["onnx"], tiny_cnn_files["calib"], "linux-arm64", tmp_path / "o", formats=["coreml"])
    assert str(exc.value) == "--format 'coreml' is in none of this build's targets; choose from: ort, tflite"


def test_int8_larger_than_fp32_is_flagged(tmp_path):
    import torch
    from torch import nn

    from conftest import save_pt2

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3)).eval()  # 51 weights: Q/DQ costs more than int8 saves
    model = save_pt2(mlp, (torch.randn(1, 8),), tmp_path / "mlp.pt2")
    calib = write_stacked(tmp_path / "calib", 30, (8,), name="input")
    out = tmp_path / "out"
    code, stdout, err = run_cli("build", str(model), "-c", str(calib), "-t", str(_profile(tmp_path, "mlp")), "-o", str(out))
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    art = {a["precision"]: a for a in report["artifacts"]}
    assert art["int8"]["size_bytes"] > art["fp32"]["size_bytes"]
    growth = art["int8"]["size_bytes"] / art["fp32"]["size_bytes"] - 1
    note = next(n for n in art["int8"]["notes"] if n.startswith("size: "))
    assert note.startswith(f"size: int8 is larger than fp32 (") and f"+{growth:.0%})" in note
    assert art["fp32"]["notes"] == []
    assert f"warning: [mlp] ort {note.split('; ')[0]}; see the report" in err
    assert note in (out / "report.md").read_text()


def test_uncompressed_variant_names_the_format_reason(tiny_cnn_files, tmp_path):
    rep = edgepack.build(tiny_cnn_files["onnx"], tiny_cnn_files["calib"], _profile(tmp_path, precisions=("fp32", "int8")), tmp_path / "o")
    from edgepack.report.findings import size_findings

    fp32, int8 = rep.artifacts
    assert size_findings(rep.artifacts) == {}  # int8 of the tiny CNN is about half of fp32
    same = [fp32, dataclasses.replace(int8, size_bytes=int(fp32.size_bytes * 0.97))]
    found = size_findings(same, lambda fmt: f"why {fmt}")
    assert list(found) == [1] and found[1].startswith("size: int8 came out uncompressed (") and found[1].endswith("; why ort")


def test_threads_above_the_host_cores_get_a_note(tiny_cnn_files, tmp_path):
    cores = len(os.sched_getaffinity(0))
    rep = edgepack.build(tiny_cnn_files["onnx"], tiny_cnn_files["calib"], _profile(tmp_path, "many", cores + 2, ("fp32",)), tmp_path / "o")
    (a,) = rep.artifacts
    note = next(n for n in a.notes if n.startswith("threads: "))
    assert f"{cores + 2} threads" in note and f"{cores} core" in note and note.endswith(f"(the profile keeps {cores + 2}: the device has those cores)")
    assert rep.targets[0]["threads"] == cores + 2  # the profile is not changed
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert note in report["artifacts"][0]["notes"]
    rep = edgepack.build(tiny_cnn_files["onnx"], tiny_cnn_files["calib"], _profile(tmp_path, "few", 1, ("fp32",)), tmp_path / "o2")
    assert not [n for n in rep.artifacts[0].notes if n.startswith("threads: ")]


def _marker_entry_point(tmp_path, monkeypatch):
    """An entry point that leaves a file behind when the model loads."""
    marker = tmp_path / "loaded"
    (tmp_path / "ep_marker.py").write_text(
        f"import pathlib\ndef make():\n    pathlib.Path({str(marker)!r}).write_text('x')\n    raise SystemExit('should not load')\n"
    )
    monkeypatch.chdir(tmp_path)
    return "ep_marker.py:make", marker


def test_paths_are_checked_before_the_model_loads(tiny_cnn_files, tmp_path, monkeypatch):
    spec, marker = _marker_entry_point(tmp_path, monkeypatch)
    missing = tmp_path / "no_such_calib"
    with pytest.raises(InputError) as exc:
        edgepack.build(spec, missing, _profile(tmp_path), tmp_path / "o")
    assert str(missing) in str(exc.value) and not marker.exists() and not (tmp_path / "o").exists()
    art = tmp_path / "a.ort"
    art.write_bytes(b"x")
    with pytest.raises(InputError) as exc:
        edgepack.check(art, spec, missing)
    assert str(missing) in str(exc.value) and not marker.exists()
    with pytest.raises(InputError) as exc:
        edgepack.check(art, tmp_path / "nope.onnx", tiny_cnn_files["calib"])
    assert str(exc.value) == f"{tmp_path / 'nope.onnx'}: model file not found; check the path"


@pytest.mark.slow
def test_coreml_variant_of_small_weights_came_out_uncompressed(tmp_path):
    """coremltools skips weights of 2048 elements or fewer: int8_weights of this MLP is the fp16 model."""
    import torch
    from torch import nn

    from conftest import save_pt2

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    model = save_pt2(mlp, (torch.randn(1, 8),), tmp_path / "mlp.pt2")
    calib = write_stacked(tmp_path / "calib", 30, (8,), name="input")
    prof = write_profile(tmp_path / "ios.toml", 'name = "ios"\n[formats.coreml]\nprecisions = ["fp16", "int8_weights"]\n[latency]\nruns = 2\nwarmup = 0\n')
    rep = edgepack.build(model, calib, prof, tmp_path / "o", latency=False)
    fp16, int8 = rep.artifacts
    assert int8.artifact.details["weights_bytes"] == fp16.artifact.details["weights_bytes"] > 0
    (note,) = [n for n in int8.notes if n.startswith("size: ")]
    assert note.startswith("size: int8_weights came out uncompressed (")
    assert note.endswith("; coremltools compresses only weights with more than 2048 elements (weight_threshold); this model's are smaller")


def test_inspect_function_survives_its_submodule():
    from conftest import DIGITS_ONNX
    from edgepack.inspect import inspect_file  # importing the submodule must not replace edgepack.inspect

    first, second = edgepack.inspect(DIGITS_ONNX), edgepack.inspect(DIGITS_ONNX)
    assert first.to_json() == second.to_json() == inspect_file(DIGITS_ONNX).to_json()
    assert [t.name for t in second.inputs] == ["image"]
    assert "edgepack.inspect" in sys.modules and callable(edgepack.inspect)
