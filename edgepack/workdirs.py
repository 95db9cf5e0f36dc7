"""Folders edgepack makes for the length of one run (staging beside --out, work in the temp folder).

Each carries an owner file, `.edgepack-owner`, naming the process that made it: its pid, its start
time (from /proc/PID/stat, so a reused pid is told apart) and the host. A run that is killed
(SIGKILL, a power cut) leaves its folders behind; the next run removes those whose owner file
says edgepack made them and whose process is gone. A folder without a readable owner file, made by
another user or host, or whose process still runs, is never touched.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

OWNER_FILE = ".edgepack-owner"
WORK_PREFIX = "edgepack-work-"


def process_start(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot, or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def _owner() -> dict:
    return {"pid": os.getpid(), "start": process_start(os.getpid()), "host": socket.gethostname(), "uid": _uid()}


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def write_owner(folder: Path) -> None:
    (folder / OWNER_FILE).write_text(json.dumps(_owner()) + "\n", encoding="utf-8")


def remove_owner(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (folder / OWNER_FILE).unlink()


def _alive(pid: int, start: int | None) -> bool:
    """Whether the process that wrote an owner file still runs. Unsure means alive."""
    if pid == os.getpid():
        return start is None or start == process_start(pid)
    now = process_start(pid)
    if now is not None:
        return start is None or now == start  # same pid, other start time: the pid was reused
    if Path("/proc/self/stat").exists():
        return False  # /proc works here and has no such process
    try:  # no /proc (macOS): ask the kernel whether the pid exists; the start time cannot be checked
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def is_stale(folder: Path) -> bool:
    """True only for a real folder (not a link) of this user, whose owner file names a process of
    this host that is gone."""
    try:
        if folder.is_symlink() or not folder.is_dir():
            return False
        if _uid() is not None and folder.stat().st_uid != _uid():
            return False
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
        pid, start, host = owner["pid"], owner.get("start"), owner.get("host")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or (start is not None and not isinstance(start, int)):
        return False
    if host != socket.gethostname():
        return False
    return not _alive(pid, start)


def remove_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove the stale edgepack folders named `prefix*` in `parent` (one listdir); returns them."""
    removed = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        folder = Path(parent) / name
        if is_stale(folder):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed


def make_owned(prefix: str, parent: Path | None = None) -> Path:
    """mkdtemp, with the owner file written first thing."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        write_owner(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


@contextlib.contextmanager
def work_folder(prefix: str = WORK_PREFIX) -> Iterator[Path]:
    """A scratch folder in the temp folder (TMPDIR), removed on exit, even on SIGTERM (the CLI turns
    it into an exception). Stale work folders of killed runs are removed first."""
    from .outdir import translate_os_error

    parent = Path(tempfile.gettempdir())
    remove_stale(parent, prefix)
    try:
        folder = make_owned(prefix, parent)
    except OSError as exc:
        raise translate_os_error(exc, parent, "the work folder (TMPDIR)") from None
    try:
        yield folder
    except OSError as exc:
        err = translate_os_error(exc, folder, "the work folder (TMPDIR)", only_if_inside=True)
        if err is None:
            raise
        raise err from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Terminated(BaseException):
    """SIGTERM (CI cancellation, `docker stop`), raised like KeyboardInterrupt so that every `with`
    block unwinds and removes its staging and work folders. The CLI exits 143 on it."""


def _on_sigterm(signum, frame):
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
    raise Terminated()


def catch_sigterm():
    """Make SIGTERM raise Terminated (main thread only). Returns the previous handler, for restore_sigterm."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def restore_sigterm(previous) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
