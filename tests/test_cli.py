"""The CLI contract: exit codes, one-line errors, no partial output, reports written on gate failure."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import DIGITS_DATA, DIGITS_ONNX, DIGITS_PT2, run_cli, write_profile

FAST = """
name = "fast"
threads = 1
[formats.ort]
precisions = ["fp32", "int8"]
mobile_eps = []
[latency]
warmup = 1
runs = 3
[validation]
max_samples = 30
"""


@pytest.fixture
def fast_profile(tmp_path):
    return str(write_profile(tmp_path / "fast.toml", FAST))


def _one_line_error(code, err, want_code, *needles):
    """Progress lines may come first; the error itself is exactly one line, and it is the last."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("edgepack: error: ")]
    assert code == want_code, err
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert all(ln.startswith("[") for ln in lines[:-1]), err  # only timed progress lines before it
    assert "Traceback" not in err
    for n in needles:
        assert n in errors[0], errors[0]


def _assert_no_output(out_dir):
    assert not out_dir.exists()
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(f".{out_dir.name}.partial")]


def test_build_digits_writes_everything(tmp_path, fast_profile):
    out = tmp_path / "out"
    code, stdout, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(out))
    assert code == 0, err
    assert "PASS" in stdout and "FAIL" not in stdout and "host" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == "2" and report["passed"] is True
    art = {a["precision"]: a for a in report["artifacts"]}
    for key in ("file", "format", "precision", "size_bytes", "sha256", "parity", "latency", "tool_versions", "route"):
        assert key in art["int8"]
    assert art["int8"]["format"] == "ort" and (out / art["int8"]["file"]).stat().st_size == art["int8"]["size_bytes"]
    assert art["int8"]["latency"]["measured_on"] == "host" and art["int8"]["latency"]["threads"] == 1
    assert art["int8"]["tool_versions"]["onnxruntime"]
    assert art["fp32"]["parity"]["outputs"][0]["max_abs"] <= 1e-4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"] == [str(i) for i in range(10)]
    assert manifest["preprocess"]["scale"] == pytest.approx(1 / 255)
    assert manifest["inputs"][0] == {"name": "image", "shape": [1, 1, 8, 8], "dtype": "float32"}
    assert {a["file"] for a in manifest["artifacts"]} == {a["file"] for a in report["artifacts"]}
    assert manifest["artifacts"][0]["inputs"][0]["layout"] == "nchw"
    md = (out / "report.md").read_text()
    assert "| fast | ort | int8 |" in md
    assert "<table>" in (out / "report.html").read_text()


def test_impossible_tolerance_exits_with_parity_code_and_writes_report(tmp_path):
    prof = write_profile(tmp_path / "strict.toml", FAST + "[tolerances.int8]\nmax_abs = 1e-12\n")
    out = tmp_path / "out"
    code, stdout, err = run_cli("build", str(DIGITS_ONNX), "-c", str(DIGITS_DATA), "-t", str(prof), "-o", str(out))
    assert code == 1
    assert "FAIL fast ort int8: output 'logits': abs" in err
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is False
    failing = [a for a in report["artifacts"] if not a["passed"]]
    assert [a["precision"] for a in failing] == ["int8"]
    assert (out / failing[0]["file"]).is_file()  # every artifact is still written


def test_size_budget_fails_gate(tmp_path):
    prof = write_profile(tmp_path / "b.toml", FAST + "[budgets]\nmax_size_mb = 0.001\n")
    code, _, err = run_cli("build", str(DIGITS_ONNX), "-c", str(DIGITS_DATA), "-t", str(prof), "-o", str(tmp_path / "o"))
    assert code == 1 and "MB > budget 0.001 MB" in err


def test_truncated_onnx(tmp_path, fast_profile):
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(DIGITS_ONNX.read_bytes()[:3000])
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(bad), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(out))
    _one_line_error(code, err, 3, str(bad), "not a valid ONNX model")
    _assert_no_output(out)


def test_wrong_shape_calibration(tmp_path, fast_profile):
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=np.zeros((10, 1, 28, 28), np.float32))
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(calib), "-t", fast_profile, "-o", str(out))
    _one_line_error(code, err, 3, str(calib), "(1, 1, 8, 8)")
    _assert_no_output(out)


def test_nan_calibration(tmp_path, fast_profile):
    x = np.zeros((10, 1, 8, 8), np.float32)
    x[4, 0, 0, 0] = np.nan
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=x)
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(calib), "-t", fast_profile, "-o", str(out))
    _one_line_error(code, err, 3, str(calib), "sample 4", "NaN")
    _assert_no_output(out)


def test_unknown_profile_key(tmp_path):
    prof = write_profile(tmp_path / "typo.toml", FAST.replace("threads = 1", "threds = 1"))
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", str(prof), "-o", str(out))
    _one_line_error(code, err, 2, str(prof), "'threds'", "threads")
    _assert_no_output(out)


def test_missing_model_file(tmp_path, fast_profile):
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(tmp_path / "nope.pt2"), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(out))
    _one_line_error(code, err, 3, "nope.pt2", "not found")
    _assert_no_output(out)


def test_unwritable_output_folder(tmp_path, fast_profile):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / "out"  # a parent that is a file: unwritable even for root
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(out))
    _one_line_error(code, err, 2, str(out), "cannot write the output folder", "--out")
    assert blocker.read_text() == "not a folder"


def test_refuses_to_clobber_foreign_folder(tmp_path, fast_profile):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(out))
    _one_line_error(code, err, 2, "did not write")
    assert (out / "thesis.tex").read_text() == "precious"


def test_debug_shows_traceback(tmp_path, fast_profile):
    code, _, err = run_cli("--debug", "build", str(tmp_path / "nope.onnx"), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(tmp_path / "o"))
    assert code == 3 and "Traceback" in err


def test_usage_error_exit_code():
    code, _, err = run_cli("build", "model.onnx")
    assert code == 2 and "--calibration" in err


def test_targets_lists_shipped_profiles():
    code, out, _ = run_cli("targets")
    assert code == 0
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "ort[fp32/fp16/int8]" in rows["android-arm64"]
    assert "linux-arm64" in rows


def test_inspect_onnx_and_pt2():
    code, out, _ = run_cli("inspect", str(DIGITS_ONNX))
    assert code == 0
    assert "image: float32 [1, 1, 8, 8]" in out and "logits: float32 [1, 10]" in out
    assert "3  Conv" in out and "quantisation: none (float)" in out
    code, out, _ = run_cli("inspect", "--json", str(DIGITS_PT2))
    info = json.loads(out)
    assert info["op_histogram"]["conv2d.default"] == 3 and info["details"]["parameters"] > 10_000


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\nfrom edgepack.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'coremltools', 'onnxruntime', 'onnx', 'litert_torch') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in res.stdout, res.stdout
    assert "Exit codes" in res.stdout


def test_two_targets_with_one_name(tmp_path, fast_profile):
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", fast_profile, "-t", fast_profile, "-o", str(tmp_path / "o"))
    _one_line_error(code, err, 2, "both named 'fast'")


def test_check_an_existing_artifact(tmp_path, fast_profile):
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(out), "-q")
    assert code == 0, err
    int8 = out / "fast" / "digits_cnn.int8.ort"
    # the ONNX twin of the model checks the artifact built from the .pt2
    code, stdout, err = run_cli("check", str(int8), "-m", str(DIGITS_ONNX), "-c", str(DIGITS_DATA), "-p", "int8", "--json", "-q")
    assert code == 0, err
    entry = json.loads(stdout)
    assert entry["format"] == "ort" and entry["runtime"] == "onnxruntime" and entry["route"] == "checked as given"
    assert entry["parity"]["outputs"][0]["min_cosine"] >= 0.99 and entry["parity"]["tolerances"]["min_cosine"] == 0.99
    assert entry["file"] == "digits_cnn.int8.ort" and entry["size_bytes"] == int8.stat().st_size
    # with no --precision, check takes int8 from the build's manifest.json beside the .ort
    code, stdout, err = run_cli("check", str(int8), "-m", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-q")
    assert code == 0, err
    # fp32 tolerances forced on an int8 artifact: the gate fails, with the parity exit code
    code, stdout, err = run_cli("check", str(int8), "-m", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-p", "fp32", "-q")
    assert code == 1 and "FAIL digits_cnn.int8.ort fp32: output 'output': abs" in err and "| FAIL" not in stdout


def test_check_refuses_unknown_files_and_precisions(tmp_path):
    code, _, err = run_cli("check", str(DIGITS_ONNX), "-m", str(DIGITS_PT2), "-c", str(DIGITS_DATA))
    _one_line_error(code, err, 3, "not an artifact edgepack can run", ".ort", ".tflite", ".mlpackage")
    art = tmp_path / "m.ort"
    art.write_bytes(b"x")
    code, _, err = run_cli("check", str(art), "-m", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-p", "int4")
    _one_line_error(code, err, 2, "--precision 'int4' is not a ort precision")


@pytest.mark.parametrize("name", ["../escape", "", "/abs"])
def test_profile_name_must_be_a_plain_folder_name(tmp_path, name):
    prof = write_profile(tmp_path / "p.toml", FAST.replace('name = "fast"', f'name = "{name}"'))
    out = tmp_path / "o" / "x"
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", str(prof), "-o", str(out))
    _one_line_error(code, err, 2, "'name'", "letters, digits")
    assert not (tmp_path / "o").exists() and not (tmp_path / "escape").exists()


@pytest.mark.parametrize("extra, needle", [
    ("[budgets]\nmax_latency_ms = nan\n", "must be a finite number"),
    ("[tolerances.fp32]\nmax_abs = inf\n", "must be a finite number"),
    ("[tolerances.fp32]\nmin_cosine = 2.0\n", "between 0 and 1"),
])
def test_profile_numbers_are_checked(tmp_path, extra, needle):
    prof = write_profile(tmp_path / "p.toml", FAST + extra)
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", str(prof), "-o", str(tmp_path / "o"))
    _one_line_error(code, err, 2, needle)


@pytest.mark.parametrize("assets", ["same", "inside", "around"])
def test_android_assets_apart_from_out(tmp_path, fast_profile, assets):
    out = tmp_path / "b" / "out"
    where = {"same": out, "inside": out / "assets", "around": tmp_path / "b"}[assets]
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(out), "--android-assets", str(where))
    _one_line_error(code, err, 2, "--android-assets must be a folder apart from --out")
    assert not (tmp_path / "b").exists()


def test_out_cannot_be_the_current_folder(tmp_path, fast_profile, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", ".")
    _one_line_error(code, err, 2, "--out is the current folder")


def test_out_that_is_a_file_is_one_line(tmp_path, fast_profile):
    f = tmp_path / "file.txt"
    f.write_text("x")
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(f))
    _one_line_error(code, err, 2, "--out exists and is a file")


def test_entry_point_that_raises_is_bad_input(tmp_path, fast_profile, monkeypatch):
    (tmp_path / "ep.py").write_text("def raises():\n    raise RuntimeError('boom in user code')\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("build", "ep.py:raises", "-c", str(DIGITS_DATA), "-t", fast_profile, "-o", str(tmp_path / "o"))
    _one_line_error(code, err, 3, "ep.py:raises: the entry point raised RuntimeError: boom in user code")


def test_onnx_with_external_weights(tmp_path, fast_profile):
    import torch

    from conftest import tiny_cnn, write_stacked

    model = tmp_path / "ext.onnx"
    prog = torch.onnx.export(tiny_cnn(), (torch.randn(1, 3, 16, 16),), dynamo=True, input_names=["image"])
    prog.save(str(model), external_data=True)
    assert (tmp_path / "ext.onnx.data").is_file()
    calib = write_stacked(tmp_path / "calib", 20, (3, 16, 16))  # 8 held out (validation.min_samples)
    code, _, err = run_cli("build", str(model), "-c", str(calib), "-t", fast_profile, "-o", str(tmp_path / "o"), "-q")
    assert code == 0, err
