"""Silence native libraries (TensorFlow, LiteRT, absl) that print straight to fds 1 and 2."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile


@contextlib.contextmanager
def quiet_native():
    """Silence what native code prints on fds 1 and 2 (LiteRT's INFO lines, absl warnings), and
    Python-level prints and last-resort log lines (torchao's start-up warnings) with them."""
    import sys

    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    saved = []
    try:
        sink = tempfile.TemporaryFile()
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(sink.fileno(), fd)
    except OSError:  # no real fds (embedded interpreters): print as they like
        for fd, old in saved:
            os.dup2(old, fd)
            os.close(old)
        yield
        return
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for fd, old in saved:
            os.dup2(old, fd)
            os.close(old)
        sink.close()
