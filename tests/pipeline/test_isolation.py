"""Converters run in a child process: a crash, an abort or a hang fails only its cell."""
import signal

import numpy as np
import pytest

from conftest import DIGITS_ONNX
from crashy_format import Crashy
from edgepack.pipeline.cells import Cell, CellFailure
from edgepack.pipeline.isolation import ConverterWorker, WorkerSpec
from edgepack.profiles import QuantSettings


class _Lines:
    def __init__(self):
        self.lines = []

    def step(self, m):
        self.lines.append(m)

    def warn(self, m):
        self.lines.append("warning: " + m)

    def track(self, items, total, label):
        yield from items


def _fields(tmp_path, mode, precision="fp32", samples=None):
    samples = samples if samples is not None else [{"image": np.zeros((1, 1, 8, 8), np.float32)}] * 3
    return dict(
        precisions=(precision,), options={"mode": mode}, quantization=QuantSettings(), calibration=samples,
        workdir=tmp_path, stem="digits", labels=None, preprocess=None,
    )


@pytest.fixture(scope="module")
def worker():
    lines = _Lines()
    with ConverterWorker(WorkerSpec(str(DIGITS_ONNX), False), lines) as w:
        w.lines = lines
        yield w


@pytest.mark.parametrize(
    "mode, signame",
    [("segv", "SIGSEGV"), ("abort", "SIGABRT")],
)
def test_a_crashing_converter_fails_only_its_cell_and_the_next_cell_builds(worker, tmp_path, mode, signame):
    cell = Cell("t", "crashy", "fp32")
    failed = worker.build(Crashy, _fields(tmp_path, mode), cell, timeout_s=120)
    assert isinstance(failed, CellFailure)
    assert failed.error == "ConverterCrash" and failed.exit_code == 4 and failed.stage == "convert"
    assert f"crashed with {signame}" in failed.reason and "the other cells are unaffected" in failed.reason
    built = worker.build(Crashy, _fields(tmp_path, "ok"), cell, timeout_s=120)  # a fresh child
    assert [a.precision for a in built] == ["fp32"]
    assert built[0].path.read_text() == "3 samples; build 1 in this worker"


def test_a_hung_converter_is_stopped_at_the_time_limit(worker, tmp_path):
    failed = worker.build(Crashy, _fields(tmp_path, "hang"), Cell("t", "crashy", "fp32"), timeout_s=3)
    assert isinstance(failed, CellFailure)
    assert failed.error == "CellTimeout" and failed.exit_code == 4
    assert "did not finish within 3 s" in failed.reason and "cell_timeout_s" in failed.reason


def test_errors_keep_their_class_exit_code_and_stage(worker, tmp_path):
    failed = worker.build(Crashy, _fields(tmp_path, "raise", "int8"), Cell("t", "crashy", "int8"), timeout_s=120)
    assert (failed.error, failed.exit_code, failed.stage) == ("ConversionError", 4, "quantise")
    assert failed.reason.endswith("crashy cannot express op 'Weird'; export it differently")
    assert "Traceback" in failed.detail and "Traceback" not in failed.reason
    oom = worker.build(Crashy, _fields(tmp_path, "memory"), Cell("t", "crashy", "fp32"), timeout_s=120)
    assert (oom.error, oom.exit_code) == ("MemoryError", 4) and "ran out of memory" in oom.reason


def test_the_worker_keeps_its_cache_and_calibration_across_cells(worker, tmp_path):
    samples = [{"image": np.ones((1, 1, 8, 8), np.float32)}] * 5
    a = worker.build(Crashy, _fields(tmp_path, "ok", "fp32", samples), Cell("t", "crashy", "fp32"), timeout_s=120)
    b = worker.build(Crashy, _fields(tmp_path, "ok", "int8", samples), Cell("t", "crashy", "int8"), timeout_s=120)
    first = int(a[0].path.read_text().split("build ")[1].split()[0])
    assert b[0].path.read_text() == f"5 samples; build {first + 1} in this worker"
    assert id(samples) in worker._sent  # sent once, referred to by token after that
    assert "crashy: ok" in worker.lines.lines  # progress reaches the parent
