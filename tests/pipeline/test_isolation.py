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


def test_stage_seconds_are_the_converters_own_while_the_parent_is_busy(worker, tmp_path):
    """The parent reads the converter's stage changes late when it is busy (here 1.5 s in on_wait,
    as with another cell's validation): the converter's own stamps split the stages."""
    import time

    worker.on_wait = lambda: time.sleep(1.5)
    built = worker.build(Crashy, _fields(tmp_path, "timed", "int8"), Cell("t", "crashy", "int8"), timeout_s=120)
    seconds = built[0].stage_seconds
    assert set(seconds) == {"load", "convert", "quantise"}
    assert 0.25 <= seconds["convert"] < 0.9, seconds  # 0.3 s of sleep, not the parent's 1.5 s
    assert 0.45 <= seconds["quantise"] < 1.1, seconds
    assert seconds["load"] >= 0


def test_stage_clock_uses_the_stamps_it_is_given():
    from edgepack.pipeline.cells import StageClock

    clock = StageClock("load")
    t0 = clock.since
    clock.enter("convert", t0 + 0.0)
    clock.enter("quantise", t0 - 5.0)  # a stamp before the running stage began counts as its start
    assert clock.seconds == {"load": 0.0, "convert": 0.0}
    clock.stop()
    assert clock.seconds["quantise"] >= 0.0 and set(clock.seconds) == {"load", "convert", "quantise"}
