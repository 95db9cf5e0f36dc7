"""A build is a grid of cells: target × format × precision. One row each in every report.

A cell either built (an ArtifactResult, which may still fail its gate) or failed at a stage
(convert, quantise, validate, time) with a one-line reason and its error class. One cell's failure
never costs another.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import EdgepackError, ExitCode, first_line

STAGES = ("convert", "quantise", "validate", "time")


class StageClock:
    """Wall time per stage of one cell: `enter(stage)` closes the running stage and opens the next.
    "load" is the cell's wait for its converter (the model's loading and the converter's imports,
    where the cell had to wait for them); the others are STAGES. Times are time.monotonic(), one
    clock for every process of the machine: a converter process stamps its stage changes (`at`),
    so a parent that reads them late (busy with another cell) still splits the stages where they
    happened."""

    def __init__(self, first: str = "load"):
        import time

        self._now = time.monotonic
        self.stage, self.since = first, self._now()
        self.seconds: dict[str, float] = {}

    def enter(self, stage: str, at: float | None = None) -> None:
        now = self._now() if at is None else min(max(at, self.since), self._now())
        self.seconds[self.stage] = round(self.seconds.get(self.stage, 0.0) + now - self.since, 4)
        self.stage, self.since = stage, now

    def stop(self, at: float | None = None) -> dict[str, float]:
        self.enter(self.stage, at)
        return dict(self.seconds)


@dataclass(frozen=True)
class Cell:
    target: str
    format: str
    precision: str

    @property
    def label(self) -> str:
        return f"[{self.target}] {self.format} {self.precision}"


@dataclass(frozen=True)
class CellFailure:
    """A cell that produced no artifact (or one that could not be validated)."""

    target: str
    format: str
    precision: str
    stage: str  # one of STAGES
    reason: str  # one line, naming the file and the fix where edgepack knows it
    error: str  # the error class, e.g. "UnsupportedOpError", "ConverterCrash", "CellTimeout"
    exit_code: int  # what this failure alone would exit with (3, 4, 5, 70)
    detail: str = ""  # the child's traceback, shown with --debug only; never written to reports

    @property
    def passed(self) -> bool:
        return False

    @property
    def label(self) -> str:
        return f"[{self.target}] {self.format} {self.precision}"

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "format": self.format,
            "precision": self.precision,
            "status": "failed",
            "stage": self.stage,
            "reason": self.reason,
            "error": self.error,
            "exit_code": self.exit_code,
        }


def failure_from(cell: Cell, stage: str, exc: BaseException, detail: str = "") -> CellFailure:
    """A CellFailure for an exception raised in this process (validation, timing)."""
    code = int(exc.exit_code) if isinstance(exc, EdgepackError) else int(ExitCode.INTERNAL)
    text = first_line(exc)
    if code == ExitCode.INTERNAL and not isinstance(exc, EdgepackError):
        text = f"internal error: {type(exc).__name__}: {text} (rerun with --debug for the traceback, and please report it)"
    return CellFailure(cell.target, cell.format, cell.precision, stage, text, type(exc).__name__, code, detail)
