"""Error classes and the exit codes they map to.

User errors (bad config, bad input, unsupported ops, missing packages) are not bugs:
they carry a one-line message that names the file and the fix. Everything else is an
InternalError. Only the CLI turns these into process exit codes.
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    GATE_FAILED = 1  # parity tolerance or size/latency budget not met
    USAGE = 2  # bad command line, bad target profile, unwritable output folder
    BAD_INPUT = 3  # corrupt model, bad calibration data, missing file
    CONVERSION = 4  # a converter failed, or the model has an op the format cannot express
    MISSING_DEPENDENCY = 5  # an optional package is not installed
    INTERNAL = 70  # a bug in edgepack


class EdgepackError(Exception):
    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(EdgepackError):
    """Something the user can fix."""


class ConfigError(UserError):
    exit_code = ExitCode.USAGE


class InputError(UserError):
    exit_code = ExitCode.BAD_INPUT


class ConversionError(UserError):
    exit_code = ExitCode.CONVERSION


class UnsupportedOpError(ConversionError):
    def __init__(self, op: str, fmt: str, message: str):
        super().__init__(message)
        self.op = op
        self.format = fmt


class MissingDependencyError(UserError):
    exit_code = ExitCode.MISSING_DEPENDENCY

    def __init__(self, module: str, extra: str, purpose: str):
        self.module = module
        self.install = f"pip install 'edgepack[{extra}]'"
        super().__init__(f"{purpose} needs the Python package '{module}', which is not installed; run: {self.install}")


class GateError(EdgepackError):
    """Parity or budget failed. The build wrote everything, then reports this."""

    exit_code = ExitCode.GATE_FAILED


class InternalError(EdgepackError):
    exit_code = ExitCode.INTERNAL


def first_line(exc: BaseException) -> str:
    """An exception's first line of text, or its class name when it has none: what one-line
    errors quote of a library's exception."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def require(module: str, extra: str, purpose: str):
    """Import a heavy optional module, or raise MissingDependencyError with the install line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            # the package is there but one of *its* imports failed
            raise MissingDependencyError(exc.name, extra, f"{purpose} (through {module})") from exc
        raise MissingDependencyError(top, extra, purpose) from exc
