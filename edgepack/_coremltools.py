"""Import coremltools quietly: it imports torch and TensorFlow and logs about missing macOS parts."""
from __future__ import annotations

import contextlib
import io
import logging
import os

from ._native import quiet_native
from .errors import require


def coremltools(purpose: str = "Building Core ML artifacts"):
    """`import coremltools`, without the lines it and TensorFlow print while importing."""
    import sys

    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet = [logging.getLogger(n) for n in ("coremltools", "tensorflow", "absl")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        with quiet_native():
            ct = require("coremltools", "coreml", purpose)
    finally:
        for q, lvl in zip(quiet, levels, strict=True):
            q.setLevel(lvl)
    logging.getLogger("coremltools").setLevel(logging.CRITICAL)  # edgepack reports its failures in one line
    return ct


@contextlib.contextmanager
def no_progress_bars():
    """coremltools draws a tqdm bar on stderr for every pass pipeline; edgepack shows its own
    progress, so stderr is held while coremltools works (exceptions still propagate)."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield
