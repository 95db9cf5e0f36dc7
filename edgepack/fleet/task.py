"""One fleet task, run in a worker (a local process or a Ray task): edgepack.api.build for one model,
one target and one format, all of that format's precisions.

The result is plain JSON data (the BuildReport through edgepack.cache.codec; never pickle), so it
travels to the driver and into `.fleet/tasks.json` the same way. On Ray the worker may be another
machine: the task then builds into a temporary folder and returns its files' bytes.

Test hook (fault injection, for the retry tests only): when $EDGEPACK_TEST_KILL_WORKER_ONCE names a
file that does not exist yet, the first task attempt to start creates it (writing its task id into
it) and then kills its own worker process with SIGKILL, as a lost machine would. Every later attempt
finds the file and runs normally. $EDGEPACK_TEST_KILL_TASK limits this to the task with that id.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import EdgepackError, ExitCode, first_line
from ..outdir import REPORT_FILES

KILL_ONCE_ENV = "EDGEPACK_TEST_KILL_WORKER_ONCE"
KILL_TASK_ENV = "EDGEPACK_TEST_KILL_TASK"
HOOK_ENVS = (KILL_ONCE_ENV, KILL_TASK_ENV)


def _fault_hook(task_id: str) -> None:
    marker = os.environ.get(KILL_ONCE_ENV)
    if not marker or os.environ.get(KILL_TASK_ENV, task_id) != task_id:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return
    os.write(fd, task_id.encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def encode_report(report) -> dict[str, Any]:
    from ..cache.codec import encode

    data = encode(report)
    for f in data.get("failed_cells", []):
        f["detail"] = ""  # a child's traceback: shown with --debug only, never written to files
    return data


def _manifest_calibration(out: Path) -> dict[str, Any]:
    """What manifest.json needs from the calibration set (labels, preprocessing): the merged
    per-model manifest is written from it."""
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {"labels": m.get("labels"), "preprocess": m.get("preprocess")}


def run_task(task: dict[str, Any], out: str | None, cache: dict[str, Any], attempt: int = 1) -> dict[str, Any]:
    """Build one task into `out` (None: a temporary folder whose files are returned as bytes in
    result["files"]). Never raises for a build's failure: result["status"] is "built" (with
    "report") or "error" (with "error", "exit_code", "reason")."""
    _fault_hook(task["id"])
    from ..api import build

    started = time.perf_counter()
    tmp = None
    if out is None:
        tmp = tempfile.mkdtemp(prefix="edgepack-fleet-")
        out = os.path.join(tmp, "out")
    result: dict[str, Any] = {"id": task["id"], "attempt": attempt}
    try:
        report = build(
            task["model"], task["calibration"], targets=[task["target"]], formats=[task["format"]], out=out, progress=False,
            cache=cache.get("cache"), use_cache=cache.get("use_cache", True),
        )
        result |= {"status": "built", "report": encode_report(report), "manifest": _manifest_calibration(Path(out))}
    except EdgepackError as exc:
        result |= {"status": "error", "error": type(exc).__name__, "exit_code": int(exc.exit_code), "reason": first_line(exc)}
    except Exception as exc:  # noqa: BLE001 - a bug in edgepack: this task's cells fail with 70, the fleet goes on
        why = f"internal error: {type(exc).__name__}: {first_line(exc)} (rerun the model alone with edgepack build --debug, and please report it)"
        result |= {"status": "error", "error": type(exc).__name__, "exit_code": int(ExitCode.INTERNAL), "reason": why}
    result["duration_s"] = round(time.perf_counter() - started, 2)
    if tmp is not None:
        try:
            result["files"] = _read_files(Path(out)) if result["status"] == "built" else {}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def _read_files(out: Path) -> dict[str, bytes]:
    """Every file the build wrote, except its own reports (the fleet writes merged ones)."""
    skip = {*REPORT_FILES}
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and rel not in skip and not rel.startswith("."):
            files[rel] = p.read_bytes()
    return files
