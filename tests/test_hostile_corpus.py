"""The hostile-input corpus (issue #8): every generator, run through the real CLI in a subprocess.

For each `make_<case>(tmp) -> Case` in tests/hostile_inputs.py (H3), tests/hostile_pt2.py (H1) and
tests/hostile_misc.py (H8), with the case's folder as the working directory and TMPDIR, assert:
the exit code; for errors exactly one stderr line `edgepack: error: ...`, the last one, holding
`expect_text`; for a failed gate (exit 1) `FAIL` lines holding it and a strict-JSON report.json;
no "Traceback" and no "internal error"; the payload marker absent; every `keep` file byte-identical;
no edgepack work or staging folder left behind. A module that has not landed yet is one visible skip.
A generator marked `slow = True` (function attribute) runs in the slow tier only.

Issue #8's campaign, bullet by bullet, and the generator that covers it (owner):
- code execution through .pt2 pickles, pre-2.8 top-level layout .......... make_pt2_legacy_toplevel (H1)
- code execution, a model name with a slash (data/weights/sub/model.pt) ... make_pt2_slash_model_name (H1)
- every other torch.export.load layout and payload place ... make_pt2_pickled_sample_inputs, make_pt2_legacy_weights_file,
  make_pt2_legacy_constants_file, make_pt2_use_pickle_weight, make_pt2_use_pickle_constant, make_pt2_custom_obj,
  make_pt2_opaque_obj, make_pt2_aotinductor, make_pt2_sympy_expression, make_pt2_guards_code, make_pt2_callable_target,
  make_pt2_name_injection (H1)
- --out folder holding a report.json (data loss) ........................ make_out_holds_user_report_json (H8; fix H2)
- file appearing in --out during a build; rebuild deleting user files ... tests/test_outdir.py (H2: needs a hook mid-build)
- NaN/Inf outputs: source ........ make_source_gives_inf, make_source_gives_nan, make_source_exp_overflow (H8)
- NaN/Inf outputs: artifact only (fp16) ..... make_artifact_only_nonfinite_fp16 + test_artifact_nonfinite_report (H8)
- .npz members without .npy names ... make_npz_member_without_npy_name, make_npz_member_nested_text (H3)
- .npy/.npz headers that claim 160 TiB ... make_npy_header_claims_160_tib, make_npz_header_claims_160_tib (H3)
- a 15000x15000 PNG ... make_png_15000x15000, make_png_10000x10000, make_png_corrupt (H3)
- a labels.txt that is not UTF-8 ... make_labels_not_utf8 (H3)
- unreadable files (PermissionError) ...... make_onnx_unreadable (skipped as root), make_onnx_is_a_folder (H8);
  make_calibration_file_unreadable, make_calibration_folder_unreadable (H3)
- disk full (ENOSPC) ...................... make_out_on_full_disk (H8; fix H2)
- paths or names too long (ENAMETOOLONG) .. make_out_name_too_long, make_out_path_too_long (H8); make_calibration_path_too_long,
  make_profile_name_too_long (H3)
- profile name = "report.json" ... make_profile_name_report_json, make_profile_name_manifest_json_upper, make_profile_name_hidden (H3)
- threads = 2**63-1; latency.runs = 1e11; threads = 10000 ... make_profile_threads_2_pow_63, make_profile_latency_runs_1e11,
  make_profile_threads_10000, make_profile_warmup_huge, make_profile_max_samples_huge (H3)
- data-dependent output shape (NonMaxSuppression) ... make_nms_data_dependent_shape (H8)
- check with an artifact of another model ..... make_check_artifact_of_other_input, make_check_artifact_of_other_outputs,
  make_check_artifact_with_fewer_outputs, make_check_artifact_truncated, make_check_artifact_is_a_folder,
  make_check_tflite_random_bytes (H8)
- entry point that calls sys.exit() ............. make_entry_point_calls_sys_exit, make_entry_point_exits_on_import (H8)
- 2.3 MB .npz holding 4 GiB of zeros ............ make_npz_zeros_bomb (H3)
- SIGTERM / SIGKILL leftovers, exit 130/143 ...... tests/test_outdir.py (H2: needs signals, not a Case)
- labels count vs classes ... make_labels_3_for_10_classes, make_labels_25_for_10_classes (H3)
- negative class ids ... make_targets_negative, make_targets_out_of_range (H3)
- std = [-1.0] ... make_preprocess_std_negative, make_preprocess_std_zero (H3)
- int4_block_size = 0 ... make_coreml_int4_block_size_zero, make_coreml_int4_block_size_divides_nothing (H3)
- name = "nl\\n" ... make_profile_name_trailing_newline (H3)
- torch logger traceback on a malformed .pt2 zip ... hostile_pt2 (H1; test_fuzz.py mutates .pt2 members)
- permission errors reported as "not a zip file" / "re-export it" ... make_onnx_unreadable (H8); .pt2: hostile_pt2 (H1)
- /etc/shadow through a symlink reported as pickles ... make_npy_symlink_to_etc_shadow, make_npy_symlink_to_dev_zero (H3)
- custom-domain op exits 3, not 4 ................ make_custom_domain_op (H8)
- corrupt / truncated / zip / empty .onnx ........ make_onnx_truncated, make_onnx_random_bytes, make_onnx_is_a_zip,
  make_onnx_empty, make_onnx_graph_without_outputs, make_inspect_truncated_onnx (H8)
- --out that is a file ........................... make_out_is_a_file (H8)
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_case import Case, set_cache_dir

MODULES = ("hostile_inputs", "hostile_pt2", "hostile_misc")
ROOT = Path(__file__).resolve().parent.parent


def _generators():
    params = []
    for mod_name in MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name != mod_name:
                raise
            params.append(pytest.param(None, id=f"{mod_name}-missing", marks=pytest.mark.skip(reason=f"tests/{mod_name}.py has not landed yet")))
            continue
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if name.startswith("make_") and fn.__module__ == mod.__name__:
                marks = [pytest.mark.slow] if getattr(fn, "slow", False) else []
                params.append(pytest.param(fn, id=f"{mod_name}.{name}", marks=marks))
    return params


@pytest.fixture(scope="session", autouse=True)
def _shared_cache(tmp_path_factory):
    set_cache_dir(tmp_path_factory.mktemp("corpus-cache"))


def _digest(p: Path) -> str:
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(str(f.relative_to(p)).encode() + b"\0" + f.read_bytes())
        return "dir:" + h.hexdigest()
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _strict_json(path: Path):
    def refuse(token):
        raise ValueError(f"{path} holds the non-JSON literal {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def run_case(case: Case, cwd: Path) -> tuple[int, str, str]:
    """Run `edgepack *case.argv` in a child process; returns (code, stdout, stderr)."""
    env = dict(os.environ, TMPDIR=str(cwd / "_tmp"), PYTHONUNBUFFERED="1")
    env.pop("EDGEPACK_DEBUG", None)
    (cwd / "_tmp").mkdir(exist_ok=True)
    cmd = [sys.executable, "-c", "from edgepack.cli import run; run()", *case.argv]
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=case.stdin_timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"edgepack {' '.join(case.argv)} did not finish in {case.stdin_timeout} s; stderr: {exc.stderr!r}")
    return p.returncode, p.stdout, p.stderr


def _out_dir(case: Case) -> Path | None:
    for flag in ("-o", "--out"):
        if flag in case.argv[:-1]:
            return Path(case.argv[case.argv.index(flag) + 1])
    return None


def check_case(case: Case, cwd: Path) -> tuple[int, str, str]:
    before = {p: _digest(p) for p in case.keep}
    try:
        code, out, err = run_case(case, cwd)
    finally:
        for fn in case.teardown:
            fn()
    where = f"edgepack {' '.join(case.argv)}\nstdout: {out[-2000:]}\nstderr: {err[-3000:]}"
    assert "Traceback" not in out + err, where
    assert "internal error" not in err, where
    assert code == case.expect_code, where
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if case.expect_code == 1:
        fails = [ln for ln in lines if ln.startswith("FAIL ")]
        assert fails and not any(ln.startswith("edgepack:") for ln in lines), where
        assert any(case.expect_text in ln for ln in fails), where
        out_dir = _out_dir(case)
        if out_dir is not None and case.argv[0] == "build":
            _strict_json((cwd / out_dir / "report.json") if not out_dir.is_absolute() else out_dir / "report.json")
    else:
        errors = [ln for ln in lines if ln.startswith("edgepack:")]
        assert len(errors) == 1 and errors[0].startswith("edgepack: error: "), where
        assert lines[-1] == errors[0], f"the error is not one line at the end of stderr\n{where}"
        assert case.expect_text in errors[0], where
    if case.payload_marker is not None:
        assert not case.payload_marker.exists(), f"a payload ran: {case.payload_marker} exists\n{where}"
    for p, digest in before.items():
        assert p.exists(), f"user file {p} was deleted\n{where}"
        assert _digest(p) == digest, f"user file {p} was changed\n{where}"
    left = [p.name for p in (cwd / "_tmp").iterdir() if p.name.startswith("edgepack-")]
    assert not left, f"work folders left behind: {left}\n{where}"
    out_dir = _out_dir(case)
    if out_dir is not None:
        try:  # the folder beside --out (a path too long for the OS cannot have one)
            partial = [p.name for p in (cwd / out_dir).parent.iterdir() if ".partial-" in p.name]
        except OSError:
            partial = []
        assert not partial, f"staging folders left behind: {partial}\n{where}"
    return code, out, err


@pytest.mark.parametrize("generator", _generators())
def test_hostile_case(generator, tmp_path):
    case = generator(tmp_path)
    assert isinstance(case, Case), f"{generator.__name__} returned {type(case).__name__}, not a Case"
    check_case(case, tmp_path)


def test_artifact_nonfinite_report(tmp_path):
    """fp16 rounding makes the ort artifact give NaN and -Inf where the fp32 source is finite: the
    build fails parity (exit 1) and report.json (strict JSON) says how many values, on which output
    and how many samples, with the undefined statistics null."""
    from hostile_misc import make_artifact_only_nonfinite_fp16

    case = make_artifact_only_nonfinite_fp16(tmp_path)
    _, _, err = check_case(case, tmp_path)
    rep = _strict_json(tmp_path / "out" / "report.json")
    (art,) = rep["artifacts"]
    assert art["precision"] == "fp16" and art["passed"] is False and art["parity"]["passed"] is False
    (y,) = art["parity"]["outputs"]
    assert y["output"] == "y"
    assert y["max_abs"] is None and y["mean_abs"] is None and y["min_cosine"] is None and y["sqnr_db"] is None
    bad_samples = y["nonfinite_samples"]
    assert 0 < bad_samples < art["parity"]["samples"]  # samples with x = 1.5 stay finite
    assert y["nonfinite_values"] == 4 * bad_samples  # each bad sample: 2 x -Inf (log 0), 2 x NaN (log < 0)
    (failure,) = art["parity"]["failures"]
    assert f"gives {4 * bad_samples} non-finite values ({2 * bad_samples} NaN and {2 * bad_samples} Inf)" in failure
    assert f"on {bad_samples} of {art['parity']['samples']} samples" in failure and "output 'y'" in failure
    assert "edge_calib.npz" in failure or "held-out sample #" in failure
    assert failure in err


def test_docstring_names_real_generators():
    """Every make_* named in this module's docstring exists in a module that has landed."""
    import re

    names = set(re.findall(r"\bmake_\w+", __doc__))
    known, landed = set(), []
    for mod_name in MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError:
            continue
        landed.append(mod_name)
        known |= {n for n, _ in inspect.getmembers(mod, inspect.isfunction) if n.startswith("make_")}
    misc = importlib.import_module("hostile_misc")
    mine = {n for n, _ in inspect.getmembers(misc, inspect.isfunction) if n.startswith("make_")}
    assert names <= known, f"named in the docstring but not defined: {sorted(names - known)}"
    assert mine <= names, f"hostile_misc generators missing from the docstring map: {sorted(mine - names)}"
