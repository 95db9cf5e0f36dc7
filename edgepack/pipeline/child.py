"""`python -m edgepack.pipeline.child FD`: a converter worker (see isolation.py), started by the
build; FD is its end of the socket pair to the parent.

Between cells the child works through its warm-up list: first it loads the source, then it imports
each format's `warm_imports`, in the build's order, one entry at a time and only while no message
waits. A cell first finishes the warm-up of its own format (it would import that anyway); its time
limit starts after that, when the child reports "started". Nothing in the warm-up can fail a cell:
a failed import is repeated, and reported, by the cell that needs the module.
"""
from __future__ import annotations

import importlib
import signal
import sys
import time
import traceback
from typing import Any

from edgepack.errors import EdgepackError, ExitCode, first_line
from edgepack.pipeline.isolation import WorkerSpec, _Token, warm_import


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


class _Source:
    """The source, loaded once (at start-up, or by the first cell), with the shapes the parent sent."""

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.shapes = spec.input_shapes
        self._loaded = None
        self._error: BaseException | None = None
        self._shaped: tuple[Any, Any] | None = None  # (shapes, source with them)

    def load(self) -> None:
        if self._loaded is None and self._error is None:
            from edgepack.sources.base import load_source

            try:
                self._loaded = load_source(self.spec.source_spec, allow_pickle=self.spec.allow_pickle)
            except Exception as exc:  # noqa: BLE001 - every cell reports it
                self._error = exc

    def get(self):
        self.load()
        if self._error is not None:
            raise self._error
        if not self.shapes:
            return self._loaded
        if self._shaped is None or self._shaped[0] != self.shapes:
            self._shaped = (self.shapes, self._loaded.with_static_shapes(self.shapes))
        return self._shaped[1]


def child_main(fd: int) -> None:
    """Serve cells until told to stop."""
    import warnings
    from multiprocessing.connection import Connection

    # Library deprecation chatter (torch pytree, coremltools) is not the user's business.
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    conn = Connection(fd)
    try:
        kind, spec = conn.recv()
    except (EOFError, OSError):
        return
    if kind == "init":
        _serve(conn, spec)


def _serve(conn, spec: WorkerSpec) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops this process
    for p in spec.sys_path:
        if p not in sys.path:
            sys.path.append(p)
    source = _Source(spec)
    tasks: list[tuple[str | None, Any]] = [(None, source.load)]  # (the format that needs it, what to do)
    seen: set[str] = set()
    for fmt, entries in spec.warm_imports:
        for entry in entries:
            if entry not in seen:
                seen.add(entry)
                tasks.append((fmt, entry))
    tasks.reverse()  # popped from the end
    shared: dict[str, dict] = {}
    data: dict[int, Any] = {}
    while True:
        try:
            while tasks and not conn.poll(0):
                _run(tasks.pop())
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        if msg[0] == "data":
            data[msg[1]] = msg[2]
            continue
        if msg[0] == "shapes":
            source.shapes = msg[1]
            continue
        _, module, qualname, fields = msg
        # What this cell's format warms up (and all before it) is done first: the cell would import
        # it anyway, and its time limit is for converting, not for start-up.
        name = getattr(_resolve_quietly(module, qualname), "name", None)
        if any(fmt == name for fmt, _ in tasks):
            while tasks:
                fmt, _ = task = tasks.pop()
                _run(task)
                if fmt == name and not any(f == name for f, _ in tasks):
                    break
        conn.send(("started", time.monotonic()))
        if isinstance(fields.get("calibration"), _Token):
            fields = {**fields, "calibration": data[fields["calibration"].id]}
        if not _build(conn, source, shared, module, qualname, fields):
            return


def _build(conn, source: _Source, shared: dict, module: str, qualname: str, fields: dict) -> bool:
    """One cell; False when the child should end (interrupted)."""
    stage = ["convert"]
    try:
        from edgepack.formats.base import FormatJob

        src = source.get()
        fmt_cls = _resolve(module, qualname)

        def enter(name: str) -> None:
            stage[0] = name
            conn.send(("stage", name, time.monotonic()))

        job = FormatJob(source=src, progress=_PipeProgress(conn), shared=shared.setdefault(fmt_cls.name, {}), on_stage=enter, **fields)
        for artifact in fmt_cls().build(job):
            conn.send(("artifact", artifact))
        conn.send(("done", time.monotonic()))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as a cell failure
        conn.send(("error", _describe(exc, stage[0])))
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return False
    return True


def _run(task: tuple[str | None, Any]) -> None:
    what = task[1]
    what() if callable(what) else warm_import(what)


def _resolve_quietly(module: str, qualname: str) -> type | None:
    try:
        return _resolve(module, qualname)
    except Exception:  # noqa: BLE001 - the cell itself reports it
        return None


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


if __name__ == "__main__":
    child_main(int(sys.argv[1]))
