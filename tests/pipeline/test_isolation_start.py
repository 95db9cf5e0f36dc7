"""The converter worker starts at the beginning of a build, before the parent loads the model, and
imports its formats' `warm_imports` before their first cell (issue #9: isolation must be cheap)."""
import os
from pathlib import Path

import pytest

from conftest import DIGITS_DATA, DIGITS_ONNX, write_profile
from crashy_format import Crashy

PROFILE = """
name = "t"
[formats.crashy]
precisions = ["fp32"]
[latency]
runs = 0
[validation]
max_samples = 8
"""


def _children() -> set[int]:
    """This process's child processes (a child that has just exec'd may not show its command line yet)."""
    return {int(pid) for task in Path(f"/proc/{os.getpid()}/task").iterdir() for pid in (task / "children").read_text().split()}


def _worker_pids() -> set[int]:
    """This process's children that run `python -m edgepack.pipeline.child`."""
    pids = set()
    for pid in _children():
        try:
            if b"edgepack.pipeline.child" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
        except FileNotFoundError:
            pass
    return pids


class _Watch:
    def __init__(self):
        self.at_loading: set[int] | None = None
        self.lines: list[str] = []

    def step(self, message):
        self.lines.append(message)
        if message.startswith("loading "):
            self.at_loading = _children()

    def warn(self, message):
        self.lines.append(message)

    def track(self, items, total, label):
        yield from items


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child processes from /proc (Linux)")
def test_the_worker_runs_before_the_model_is_loaded_and_builds_the_cells_warmed_up(tmp_path, monkeypatch):
    import edgepack
    from edgepack.formats import base

    base.formats()
    monkeypatch.setitem(base._FORMATS, "crashy", Crashy)
    monkeypatch.delenv("EDGEPACK_ISOLATE", raising=False)
    watch = _Watch()
    prof = write_profile(tmp_path / "p.toml", PROFILE)
    report = edgepack.build(DIGITS_ONNX, DIGITS_DATA, prof, tmp_path / "out", progress=watch)
    built = [ln for ln in watch.lines if "crashy: pid" in ln]
    assert len(built) == 1, watch.lines
    pid = int(built[0].split("pid ")[1].split(",")[0])
    assert pid in watch.at_loading  # the worker that built the cell was running when the parent began loading
    assert built[0].endswith("warmed up: True")  # Crashy.warm_imports were imported before its cell
    assert pid != os.getpid() and not _worker_pids()  # the worker is gone once the grid is built
    (failed,) = report.failed_cells  # the .crashy file is not a model onnxruntime can run: validation fails it
    assert failed.stage == "validate"
