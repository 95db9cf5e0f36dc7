"""The arm64 runtime's availability: why it cannot run here, as one error class."""
from __future__ import annotations

from ..errors import ExitCode, UserError

SETUP_HINT = "run `edgepack setup arm64`"


class NotSetUp(UserError):
    """The arm64 runtime is not set up (exit 5, a missing dependency); builds turn it into a note."""

    exit_code = ExitCode.MISSING_DEPENDENCY

    def __init__(self, detail: str | None = None):
        super().__init__(f"arm64 runtime not set up{f' ({detail})' if detail else ''}: {SETUP_HINT}")


class Unavailable(UserError):
    """QEMU cannot be had on this machine (not Linux, no apt-get, not x86-64/arm64)."""

    exit_code = ExitCode.MISSING_DEPENDENCY
