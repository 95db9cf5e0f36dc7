"""Converters run in a child process: a segfault, an abort, an out-of-memory kill or a hang fails
only the cell it happened in.

One worker serves all the cells of a build, format by format, so that what a format caches
across precisions and targets (the exported ONNX, the float .tflite, calibration statistics) is
kept, and the heavy imports (torch, litert-torch, coremltools) happen once per build, as they do
in-process. After a crash or a time-out the worker is gone; the next cell starts a fresh one.

Isolation should cost little (benchmarks/isolation_cost.py), so the worker is started at the
beginning of a build (driver.start_converters), before the parent loads the model: it loads the
source and then imports what each format's converters need (`Format.warm_imports`), whenever it has
no cell to build, while the parent reads calibration data, runs the reference model and validates.
The parent, for its part, imports what its runtimes need to check artifacts (`Format.check_imports`,
e.g. coremltools for the Core ML emulator) while it waits for the first cell.

The child is a fresh interpreter (`python -m edgepack.pipeline.child FD`), never a fork: the parent
has torch's and OpenMP's thread pools running, which a forked child may deadlock on. Nor is it
multiprocessing's "spawn", which re-imports the caller's main module: a user script that calls
edgepack.build() at top level would run again in every child. The two talk over a socket pair with
multiprocessing's Connection (pickled messages). The child loads the source itself from the same
spec; everything else (static input shapes, calibration samples, settings) comes over the connection.
The child's side is edgepack/pipeline/child.py.
"""
from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

from ..errors import ExitCode
from .cells import Cell, CellFailure, StageClock


@dataclass
class WorkerSpec:
    """What the child needs to rebuild the parent's source."""

    source_spec: str
    allow_pickle: bool
    input_shapes: dict[str, tuple[int, ...]] | None = None
    sys_path: list[str] = field(default_factory=lambda: [p for p in sys.path if p])  # where format plug-ins import from
    # (format name, its warm_imports) in the order the build needs them; the child imports them when idle
    warm_imports: tuple[tuple[str, tuple[str, ...]], ...] = ()


def warm_import(entry: str) -> None:
    """Import one `warm_imports`/`check_imports` entry: "module", or "module:function" (imported, then
    called with no arguments, for libraries that edgepack imports through a quietening helper).
    Failures are left for the cell that needs the module to report."""
    module, _, func = entry.partition(":")
    try:
        obj = importlib.import_module(module)
        if func:
            getattr(obj, func)()
    except Exception:  # noqa: BLE001 - a missing extra is reported by the cell that needs it
        pass


def run_warm_imports(entries: Sequence[str]) -> None:
    for entry in entries:
        warm_import(entry)


_PICKUP_S = 300.0  # how long a cell may wait for the child to take it up, on top of its own limit


class ConverterWorker:
    """A child process that runs one format plug-in's build() for each cell it is given."""

    def __init__(self, spec: WorkerSpec, progress, on_wait: Callable[[], None] | None = None):
        self.spec = spec
        self.progress = progress
        self.on_wait = on_wait  # called once the child has a cell to build: the parent's own warm-up
        self._proc: subprocess.Popen | None = None
        self._conn = None
        # calibration lists the child already holds, sent once and named by id() after that; each is kept
        # here, so that its id cannot be reused by another list while the child knows it by that id
        self._sent: dict[int, Any] = {}
        self._crashed = False

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The running child's process id (None before start() and after close())."""
        return self._proc.pid if self._alive() else None

    def start(self) -> ConverterWorker:
        """Start the child now (build() starts it when needed); it loads the source and warms up."""
        if not self._alive():
            self._start()
        return self

    def set_input_shapes(self, shapes: dict[str, tuple[int, ...]] | None) -> None:
        """The static input shapes, once the parent knows them (the child may already be running)."""
        self.spec.input_shapes = shapes or None
        if self._alive():
            try:
                self._conn.send(("shapes", self.spec.input_shapes))
            except (OSError, ValueError):
                pass  # the next build() sees the dead child

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds edgepack/
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        argv = [sys.executable, "-m", "edgepack.pipeline.child", str(theirs.fileno())]
        try:
            self._proc = subprocess.Popen(argv, pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._sent = {}
        spec = self.spec
        if self._crashed:  # a warm-up import might be what crashed: a restarted child imports only what its cells need
            spec = WorkerSpec(spec.source_spec, spec.allow_pickle, spec.input_shapes, spec.sys_path)
        self._conn.send(("init", spec))

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            if self._alive():
                try:
                    self._conn.send(("stop",))
                except (OSError, ValueError):
                    pass
                try:  # a child in the middle of a warm-up import does not read "stop"; it holds nothing of value
                    self._proc.wait(0.2)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if self._alive():
                self._proc.kill()
                self._proc.wait(5)
            if self._conn is not None:
                try:
                    self._conn.close()
                except OSError:
                    pass
            self._proc, self._conn = None, None

    def __enter__(self) -> ConverterWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one cell ---------------------------------------------------------------------------
    def build(self, fmt_cls: type, fields: dict[str, Any], cell: Cell, timeout_s: float) -> list[Any] | CellFailure:
        """Run `fmt_cls().build(FormatJob(**fields))` in the child; its Artifacts, or why it failed."""
        if not self._alive():
            self._start()
        # Until the child takes the cell up it may finish a warm-up import (tens of seconds on a busy
        # machine): that wait has its own allowance; the cell's limit counts from "started".
        deadline = time.monotonic() + timeout_s + _PICKUP_S
        artifacts: list[Any] = []
        stage = "convert"
        started = False
        clock = StageClock("load")
        try:
            samples = fields.get("calibration")
            if samples is not None:
                token = id(samples)  # the caller keeps one list per target alive for the whole build
                if token not in self._sent:
                    self._conn.send(("data", token, samples))
                    self._sent[token] = samples
                fields = {**fields, "calibration": _Token(token)}
            self._conn.send(("build", fmt_cls.__module__, fmt_cls.__qualname__, fields))
        except (OSError, ValueError) as exc:
            return self._died(cell, stage, f"could not reach the converter process ({exc})")
        if self.on_wait is not None:
            wait, self.on_wait = self.on_wait, None
            wait()
        while True:
            left = deadline - time.monotonic()
            try:
                ready = self._conn.poll(max(left, 0))
            except (OSError, EOFError):
                ready = True
            if not ready:
                self._crashed = True
                self._kill()
                why = (
                    f"the converter did not finish within {timeout_s:g} s and was stopped; raise "
                    f"[limits] cell_timeout_s in the target profile if the model is that large"
                    if started else
                    f"the converter process did not take the cell up within {timeout_s + _PICKUP_S:g} s "
                    f"(stuck while starting up) and was stopped; rerun with EDGEPACK_ISOLATE=0 --debug to see where"
                )
                return CellFailure(cell.target, cell.format, cell.precision, stage, why, "CellTimeout", int(ExitCode.CONVERSION))
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                return self._died(cell, stage)
            kind = msg[0]
            if kind == "started":  # the time limit counts from here, not from a warm-up import the cell waited for
                started, deadline = True, time.monotonic() + timeout_s
                clock.enter("convert", _stamp(msg, 1))
            elif kind == "progress":
                _, how, text = msg
                getattr(self.progress, how)(text)
            elif kind == "stage":
                stage = msg[1]
                clock.enter(stage, _stamp(msg, 2))
            elif kind == "artifact":
                artifacts.append(msg[1])
            elif kind == "done":
                seconds = clock.stop(_stamp(msg, 1))
                for a in artifacts:
                    a.stage_seconds = dict(seconds)
                return artifacts
            elif kind == "error":
                info = msg[1]
                return CellFailure(
                    cell.target, cell.format, cell.precision, info.get("stage", stage), info["message"],
                    info["error"], info["exit_code"], info.get("traceback", ""),
                )

    def _kill(self) -> None:
        if self._alive():
            self._proc.kill()
        self.close()

    def _died(self, cell: Cell, stage: str, why: str | None = None) -> CellFailure:
        self._crashed = True
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(5)
        self.close()
        if why is None:
            if code is not None and code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = f"signal {-code}"
                hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
                why = f"the converter process crashed with {name}{hint}"
            else:
                why = f"the converter process exited unexpectedly (exit status {code})"
        return CellFailure(
            cell.target, cell.format, cell.precision, stage,
            f"{why}; the other cells are unaffected. Rerun with --debug, or report it with the model",
            "ConverterCrash", int(ExitCode.CONVERSION),
        )


def _stamp(msg: tuple, i: int) -> float | None:
    """The converter's time.monotonic() stamp at msg[i] (None from a converter that sends none)."""
    return msg[i] if len(msg) > i and isinstance(msg[i], float) else None


@dataclass(frozen=True)
class _Token:
    """Stands for a calibration list that was sent to the child once."""

    id: int
