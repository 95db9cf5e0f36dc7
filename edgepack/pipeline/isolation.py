"""Converters run in a child process: a segfault, an abort, an out-of-memory kill or a hang fails
only the cell it happened in.

One worker serves all the cells of one format, in order, so that what a format caches across
precisions and targets (the exported ONNX, the float .tflite, calibration statistics) is kept, and
the heavy imports (torch, litert-torch, coremltools) happen once per format. After a crash or a
time-out the worker is gone; the next cell of that format starts a fresh one.

The child is a fresh interpreter (`python -m edgepack.pipeline.child FD`), never a fork: the parent
has torch's and OpenMP's thread pools running, which a forked child may deadlock on. Nor is it
multiprocessing's "spawn", which re-imports the caller's main module: a user script that calls
edgepack.build() at top level would run again in every child. The two talk over a socket pair with
multiprocessing's Connection (pickled messages). The child loads the source itself from the same
spec; everything else (calibration samples, settings) comes over the connection.
"""
from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

from ..errors import EdgepackError, ExitCode, first_line
from .cells import Cell, CellFailure


@dataclass
class WorkerSpec:
    """What the child needs to rebuild the parent's source."""

    source_spec: str
    allow_pickle: bool
    input_shapes: dict[str, tuple[int, ...]] | None = None
    sys_path: list[str] = field(default_factory=lambda: [p for p in sys.path if p])  # where format plug-ins import from


class ConverterWorker:
    """A child process that runs one format plug-in's build() for each cell it is given."""

    def __init__(self, spec: WorkerSpec, progress):
        self.spec = spec
        self.progress = progress
        self._proc: subprocess.Popen | None = None
        self._conn = None
        self._sent: set[int] = set()  # calibration lists the child already holds (sent once, by id)

    # --- lifecycle -------------------------------------------------------------------------
    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds edgepack/
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "edgepack.pipeline.child", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._sent = set()
        self._conn.send(("init", self.spec))

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
                try:
                    self._proc.wait(2)
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
        deadline = time.monotonic() + timeout_s
        artifacts: list[Any] = []
        stage = "convert"
        try:
            samples = fields.get("calibration")
            if samples is not None:
                token = id(samples)  # the caller keeps one list per target alive for the whole build
                if token not in self._sent:
                    self._conn.send(("data", token, samples))
                    self._sent.add(token)
                fields = {**fields, "calibration": _Token(token)}
            self._conn.send(("build", fmt_cls.__module__, fmt_cls.__qualname__, fields))
        except (OSError, ValueError) as exc:
            return self._died(cell, stage, f"could not reach the converter process ({exc})")
        while True:
            left = deadline - time.monotonic()
            try:
                ready = self._conn.poll(max(left, 0))
            except (OSError, EOFError):
                ready = True
            if not ready:
                self._kill()
                return CellFailure(
                    cell.target, cell.format, cell.precision, stage,
                    f"the converter did not finish within {timeout_s:g} s and was stopped; raise "
                    f"[limits] cell_timeout_s in the target profile if the model is that large",
                    "CellTimeout", int(ExitCode.CONVERSION),
                )
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                return self._died(cell, stage)
            kind = msg[0]
            if kind == "progress":
                _, how, text = msg
                getattr(self.progress, how)(text)
            elif kind == "stage":
                stage = msg[1]
            elif kind == "artifact":
                artifacts.append(msg[1])
            elif kind == "done":
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


# --- the child side ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    """Stands for a calibration list that was sent to the child once."""

    id: int


class _PipeProgress:
    """Progress that forwards to the parent; `track` sends one line, then iterates locally."""

    def __init__(self, conn):
        self.conn = conn

    def step(self, message: str) -> None:
        self.conn.send(("progress", "step", message))

    def warn(self, message: str) -> None:
        self.conn.send(("progress", "warn", message))

    def track(self, items, total, label):
        self.conn.send(("progress", "step", f"{label} ({total})"))
        yield from items


def child_main(fd: int) -> None:
    """The child's entry point (edgepack/pipeline/child.py): serve cells until told to stop."""
    import warnings

    # Library deprecation chatter (torch pytree, coremltools) is not the user's business.
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    conn = Connection(fd)
    try:
        kind, spec = conn.recv()
    except (EOFError, OSError):
        return
    if kind == "init":
        _child_main(conn, spec)


def _child_main(conn, spec: WorkerSpec) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops this process
    for p in spec.sys_path:
        if p not in sys.path:
            sys.path.append(p)
    source = None
    shared: dict[str, dict] = {}
    data: dict[int, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        if msg[0] == "data":
            data[msg[1]] = msg[2]
            continue
        _, module, qualname, fields = msg
        if isinstance(fields.get("calibration"), _Token):
            fields = {**fields, "calibration": data[fields["calibration"].id]}
        stage = ["convert"]
        try:
            from ..formats.base import FormatJob

            if source is None:
                source = _load_source(spec)
            fmt_cls = _resolve(module, qualname)

            def enter(name: str) -> None:
                stage[0] = name
                conn.send(("stage", name))

            job = FormatJob(source=source, progress=_PipeProgress(conn), shared=shared.setdefault(fmt_cls.name, {}), on_stage=enter, **fields)
            for artifact in fmt_cls().build(job):
                conn.send(("artifact", artifact))
            conn.send(("done",))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as a cell failure
            conn.send(("error", _describe(exc, stage[0])))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return


def _load_source(spec: WorkerSpec):
    from ..sources.base import load_source

    source = load_source(spec.source_spec, allow_pickle=spec.allow_pickle)
    if spec.input_shapes:
        source = source.with_static_shapes(spec.input_shapes)
    return source


def _resolve(module: str, qualname: str) -> type:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _describe(exc: BaseException, stage: str) -> dict[str, Any]:
    text = first_line(exc)
    if isinstance(exc, EdgepackError):
        code = int(exc.exit_code)
    elif isinstance(exc, MemoryError):
        code, text = int(ExitCode.CONVERSION), f"the converter ran out of memory ({text})"
    else:
        code = int(ExitCode.INTERNAL)
        text = f"internal error in the converter: {type(exc).__name__}: {text} (rerun with --debug for the traceback, and please report it)"
    return {
        "error": type(exc).__name__,
        "exit_code": code,
        "message": text,
        "stage": stage,
        "traceback": "".join(traceback.format_exception(exc)),
    }
