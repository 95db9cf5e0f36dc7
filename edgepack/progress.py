"""Progress reporting from the library to whoever renders it (the CLI, a notebook, nothing)."""
from __future__ import annotations

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
