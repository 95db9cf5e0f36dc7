"""Progress reporting from the library to whoever renders it (the CLI, a notebook, nothing)."""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    def step(self, message: str) -> None:
        """A new stage of work begins."""

    def track(self, items: Iterable[T], total: int, label: str) -> Iterator[T]:
        """Iterate over a long loop, showing how far it has got."""

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop the build."""


class Silent:
    def step(self, message: str) -> None:
        pass

    def track(self, items: Iterable[T], total: int, label: str) -> Iterator[T]:
        yield from items

    def warn(self, message: str) -> None:
        pass


class StderrProgress:
    """Steps as timed lines on stderr; long loops as a counter that redraws in place when stderr is
    a terminal, else one line. Used by the CLI and by `edgepack.build(..., progress=True)`."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def _stamp(self) -> str:
        return f"[{time.perf_counter() - self.t0:6.1f}s]"

    def _line(self, text: str) -> None:
        if not self.quiet:
            print(f"{self._stamp()} {text}", file=sys.stderr, flush=True)

    def step(self, message: str) -> None:
        self._line(message)

    def track(self, items: Iterable[T], total: int, label: str) -> Iterator[T]:
        """`label` names the work, not the count: the count ({total}) is added here."""
        if self.quiet or not self.tty:
            self._line(f"{label} ({total})")
            yield from items
            return
        stamp = self._stamp()
        done = 0
        for item in items:
            print(f"\r{stamp} {label} {done}/{total}", end="", file=sys.stderr, flush=True)
            yield item
            done += 1
        print(f"\r{stamp} {label} {done}/{total}", file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)


def as_progress(progress: "Progress | bool | None") -> "Progress":
    """A Progress from the API's `progress=` argument: True prints on stderr, None/False is silent."""
    if progress is True:
        return StderrProgress()
    return progress or Silent()
