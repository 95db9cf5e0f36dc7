"""The newcomer's CLI (issue #14): --format/--precision/--no-latency, --debug anywhere, tables that fit
100 columns, targets --json, progress lines that say their count once."""
import json

import pytest

import edgepack.api
from conftest import run_cli, write_profile
from test_cli import _one_line_error

ORT = """
name = "{name}"
threads = 1
[formats.ort]
precisions = {precisions}
mobile_eps = []
[latency]
warmup = 1
runs = 3
[validation]
max_samples = 12
[tolerances.int8]
min_cosine = 0.9
"""


def _profile(tmp_path, name="fast", precisions=("fp32", "int8"), extra=""):
    body = ORT.format(name=name, precisions=json.dumps(list(precisions))) + extra
    return str(write_profile(tmp_path / f"{name}.toml", body))


def _cells(out):
    report = json.loads((out / "report.json").read_text())
    return {(a["target"], a["format"], a["precision"]) for a in report["artifacts"]}, report


def _build(files, tmp_path, *args):
    out = tmp_path / "out"
    code, stdout, err = run_cli("build", str(files["onnx"]), "-c", str(files["calib"]), "-o", str(out), *args)
    return code, stdout, err, out


def test_format_narrows_the_profile(tiny_cnn_files, tmp_path):
    prof = _profile(tmp_path, extra='[formats.tflite]\nprecisions = ["fp32"]\n')
    code, _, err, out = _build(tiny_cnn_files, tmp_path, "-t", prof, "--format", "ort", "-q")
    assert code == 0, err
    cells, report = _cells(out)
    assert cells == {("fast", "ort", "fp32"), ("fast", "ort", "int8")}
    assert list(report["targets"][0]["formats"]) == ["ort"]  # the report says what was built
    assert sorted(p.name for p in (out / "fast").glob("*.*[et]")) == ["tiny.fp32.ort", "tiny.int8.ort"]  # no .tflite
    code, _, err, out = _build(tiny_cnn_files, tmp_path, "-t", prof, "--precision", "int8", "-q")
    assert code == 0, err
    assert _cells(out)[0] == {("fast", "ort", "int8")}  # tflite lists no int8: not built


def test_precision_narrows_each_target_and_drops_an_empty_one(tiny_cnn_files, tmp_path):
    a = _profile(tmp_path, "a", ("fp32", "int8"))
    b = _profile(tmp_path, "b", ("fp32", "fp16"))
    code, _, err, out = _build(tiny_cnn_files, tmp_path, "-t", a, "-t", b, "-p", "int8", "-p", "fp16", "-q")
    assert code == 0, err
    assert _cells(out)[0] == {("a", "ort", "int8"), ("b", "ort", "fp16")}  # int8 is not built for b, fp16 not for a

    code, _, err, out = _build(tiny_cnn_files, tmp_path, "-t", a, "-t", b, "--precision", "int8", "-q")
    assert code == 0, err
    cells, report = _cells(out)
    assert cells == {("a", "ort", "int8")}
    assert [t["name"] for t in report["targets"]] == ["a"] and not (out / "b").exists()
    note = "target 'b' has none of the cells asked for (--format/--precision); it is not built"
    assert report["notes"] == [note] and f"warning: {note}" in err


@pytest.mark.parametrize("args, code, needles", [
    (["--format", "tflite"], 2, ["--format 'tflite' is in none of this build's targets", "choose from: ort"]),
    (["--format", "onnx"], 2, ["--format 'onnx'", "choose from: ort"]),
    (["--precision", "int4"], 2, ["--precision 'int4' is in none of this build's targets", "choose from: fp32, int8"]),
    (["-f", "ort", "-p", "dynamic_int8"], 2, ["--precision 'dynamic_int8' is in none of this build's targets for --format ort", "choose from: fp32, int8"]),
])
def test_override_that_matches_nothing_is_a_usage_error(tiny_cnn_files, tmp_path, args, code, needles):
    prof = _profile(tmp_path, extra='[formats.tflite]\nprecisions = ["dynamic_int8"]\n' if "dynamic_int8" in args else "")
    got, _, err, out = _build(tiny_cnn_files, tmp_path, "-t", prof, *args)
    _one_line_error(got, err, code, *needles)
    assert not out.exists()


def test_no_latency_skips_timing_and_the_latency_budget(tiny_cnn_files, tmp_path):
    prof = _profile(tmp_path, precisions=("fp32",), extra="[budgets]\nmax_latency_ms = 0.000001\n")
    code, _, err, _ = _build(tiny_cnn_files, tmp_path, "-t", prof, "-q")
    assert code == 1 and "ms > budget 1e-06 ms" in err  # the budget is real without the flag
    code, stdout, err, out = _build(tiny_cnn_files, tmp_path, "-t", prof, "--no-latency")
    assert code == 0, err
    art = _cells(out)[1]["artifacts"][0]
    assert art["latency"] is None and art["latency_skipped"] == "--no-latency" and art["budget_failures"] == []
    assert art["notes"] == ["latency budget (1e-06 ms) not checked: latency not measured (--no-latency)"]
    assert "timing" not in err and "not measured" in stdout and "Latency not measured (--no-latency)." in stdout
    md = (out / "report.md").read_text()
    assert "| not measured (--no-latency) | PASS |" in md and "latency budget (1e-06 ms) not checked" in md


def test_debug_after_the_subcommand(tmp_path):
    prof = _profile(tmp_path)
    args = ["build", str(tmp_path / "nope.onnx"), "-c", str(tmp_path), "-t", prof, "-o", str(tmp_path / "o")]
    for argv in (args + ["--debug"], args[:1] + ["--debug"] + args[1:], ["--debug"] + args):
        code, _, err = run_cli(*argv)
        assert code == 3 and "Traceback" in err, err
        assert err.splitlines()[-1] == f"edgepack: error: {tmp_path / 'nope.onnx'}: model file not found; check the path"
        assert "rerun with --debug" not in err
    for cmd in ("build", "check", "targets", "inspect"):
        assert "--debug" in run_cli(cmd, "--help")[1]


def test_debug_drops_the_rerun_hint(tiny_cnn_files, tmp_path, monkeypatch):
    (tmp_path / "ep.py").write_text("def raises():\n    raise RuntimeError('boom in user code')\n")
    monkeypatch.chdir(tmp_path)
    argv = ["build", "ep.py:raises", "-c", str(tiny_cnn_files["calib"]), "-t", _profile(tmp_path), "-o", str(tmp_path / "o")]
    code, _, err = run_cli(*argv)
    assert code == 3 and err.splitlines()[-1].endswith("boom in user code; fix it, then rerun (--debug shows where)")
    code, _, err = run_cli(*argv, "--debug")
    assert code == 3 and "Traceback" in err
    assert err.splitlines()[-1] == "edgepack: error: ep.py:raises: the entry point raised RuntimeError: boom in user code; fix it, then rerun"


@pytest.mark.parametrize("message, shown", [
    ("x.py:f: the entry point raised E: boom; fix it, then rerun (--debug shows where)", "x.py:f: the entry point raised E: boom; fix it, then rerun"),
    ("ort int8: crashed; the other cells are unaffected. Rerun with --debug, or report it with the model",
     "ort int8: crashed; the other cells are unaffected. Report it with the model"),
    ("m.onnx: broken; rerun with --debug to see why", "m.onnx: broken"),
])
def test_debug_hints_are_dropped_under_debug(monkeypatch, tmp_path, message, shown):
    from edgepack.errors import ConversionError

    def fails(*args, **kwargs):
        raise ConversionError(message)

    monkeypatch.setattr(edgepack.api, "build", fails)
    argv = ["build", "m.onnx", "-c", "c", "-t", "fast", "-o", str(tmp_path / "o")]
    assert run_cli(*argv)[2].splitlines()[-1] == f"edgepack: error: {message}"
    code, _, err = run_cli(*argv, "--debug")
    assert code == 4 and err.splitlines()[-1] == f"edgepack: error: {shown}"


def test_internal_error_hint_follows_debug(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(edgepack.api, "build", bug)  # the CLI's mapping of a bug, not a runtime stand-in
    argv = ["build", "m.onnx", "-c", "c", "-t", "fast", "-o", str(tmp_path / "o")]
    code, _, err = run_cli(*argv)
    assert code == 70 and err.splitlines()[-1] == "edgepack: internal error: RuntimeError: a bug (rerun with --debug for the traceback, and please report it)"
    code, _, err = run_cli(*argv, "--debug")
    assert code == 70 and "Traceback" in err and "rerun with --debug" not in err
    assert err.splitlines()[-1] == "edgepack: internal error: RuntimeError: a bug (the traceback is above; please report it)"


def test_unknown_target_through_the_cli(tiny_cnn_files, tmp_path):
    code, _, err, out = _build(tiny_cnn_files, tmp_path, "-t", "andriod-arm64")
    _one_line_error(code, err, 2, "unknown target 'andriod-arm64'; did you mean 'android-arm64'?")
    assert not out.exists()


def test_tables_fit_100_columns(tiny_cnn_files, tmp_path):
    prof = _profile(tmp_path, "a-target-name-that-is-long", ("fp32", "int8"))
    code, stdout, err, out = _build(tiny_cnn_files, tmp_path, "-t", prof)
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].split() == ["Target", "Format", "Precision", "Size", "Worst", "output", "Cosine", "Top-1", "Acc", "p50", "ms", "Result"]
    rows = [ln.split() for ln in lines[2:4]]
    assert [r[:3] for r in rows] == [["a-target-nam…", "ort", "fp32"], ["a-target-nam…", "ort", "int8"]]
    assert all(r[-1] == "PASS" for r in rows)
    assert max(len(ln) for ln in lines if str(tmp_path) not in ln) <= 100, stdout  # the --out path can be any length
    # progress lines carry paths, which can be any length; every other line fits too
    assert all(len(ln) <= 100 for ln in err.splitlines() if str(tmp_path) not in ln), err
    # the count is said once: "(N)" is added by the progress printer, not in the label too
    assert "] [a-target-name-that-is-long] ort fp32: parity on held-out samples (12)" in err
    assert "samples (12) (12)" not in err and "on 12 held-out" not in err

    int8 = out / "a-target-name-that-is-long" / "tiny.int8.ort"
    code, stdout, err = run_cli("check", str(int8), "-m", str(tiny_cnn_files["onnx"]), "-c", str(tiny_cnn_files["calib"]), "-t", prof, "-p", "int8", "-q")
    assert code == 0, err
    assert max(map(len, stdout.splitlines())) <= 100 and stdout.splitlines()[2].split()[:3] == ["a-target-nam…", "ort", "int8"]


def test_targets_fits_100_columns_and_has_json():
    code, out, _ = run_cli("targets")
    assert code == 0
    assert max(map(len, out.splitlines())) <= 100, out
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip() and not ln.startswith(" ")}
    assert "ort[fp32/fp16/int8]" in rows["android-arm64"] and rows["android-arm64"].rstrip().endswith("…")
    assert any(ln.split() == ["tflite[fp32/fp16/dynamic_int8/int8]"] for ln in out.splitlines())  # one line per format
    code, out, _ = run_cli("targets", "--json")
    assert code == 0
    data = {t["name"]: t for t in json.loads(out)}
    assert set(data) >= {"android-arm64", "linux-arm64", "iphone"}
    assert data["android-arm64"]["threads"] == 4 and data["android-arm64"]["formats"]["ort"]["precisions"] == ["fp32", "fp16", "int8"]
    assert data["android-arm64"]["description"].startswith("Android arm64 phones: LiteRT and ONNX Runtime Mobile")
