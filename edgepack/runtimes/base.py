"""The runtime interface: open an artifact file, run it on the source's inputs, time it."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import ConversionError
from ..types import IOBinding, Sample, TensorSpec


def match_names(source: tuple[TensorSpec, ...], artifact: tuple[IOBinding, ...], what: str, path: str) -> list[str]:
    """The artifact's name for each source tensor: the same name, else the one at the same position."""
    names = [b.name for b in artifact]
    out = []
    for i, t in enumerate(source):
        if t.name in names:
            out.append(t.name)
        elif i < len(names):
            out.append(names[i])
        else:
            raise ConversionError(f"{path}: the source has {what} '{t.name}' (#{i + 1}), but the artifact has only {names}")
    return out


class Session(ABC):
    """An opened artifact. `run` takes and returns tensors in the *source's* terms (names,
    float dtypes, layout); the session converts to and from the artifact's own I/O."""

    inputs: tuple[IOBinding, ...]
    outputs: tuple[IOBinding, ...]

    @abstractmethod
    def run(self, feeds: Sample) -> list[np.ndarray]:
        """Outputs in the source's output order."""

    @abstractmethod
    def run_raw(self, raw_feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run once on feeds already in the artifact's own terms (for timing and golden vectors);
        return the artifact's own outputs (its dtype and layout), in the source's output order."""

    @abstractmethod
    def raw_feeds(self, feeds: Sample) -> dict[str, np.ndarray]:
        """Convert source-side feeds into the artifact's own terms."""

    def notes(self) -> list[str]:
        """What the runs so far showed that the report should say (e.g. values that overflow fp16)."""
        return []

    def parity_failures(self) -> list[str]:
        """What the runs so far found that fails parity by itself, one line each (e.g. the Core ML
        emulator's fp16 overflow, even where a later clamp hides it in the outputs)."""
        return []

    # Diagnosis hooks (edgepack/diagnose): sessions from Runtime.diagnosis_session implement them.
    def intermediates(self, feeds: Sample) -> dict[str, np.ndarray]:
        """Every intermediate float tensor of one run on source-side feeds, by the artifact's tensor
        name, dequantised to float32, in the artifact's own layout."""
        raise ConversionError(f"{type(self).__name__}: this runtime cannot show intermediate tensors")

    def provenance(self) -> dict[str, dict]:
        """For each tensor intermediates() returns, in graph order: {"source_name": the source tensor
        name the converter kept (or None), "op_type", "scale", "range": [lo, hi] of a quantised
        tensor (or None), "layout": "nhwc" where the artifact holds 4-D tensors transposed}."""
        return {}


class CompanionMissing(ConversionError):
    """The artifact cannot be opened for diagnosis without a file it was made from (the ONNX an .ort
    was saved from); the diagnosis then rebuilds it."""


class Runtime(ABC):
    name: ClassVar[str]
    extra: ClassVar[str]
    measured_on: ClassVar[str] = "host"  # what the latency figure means
    android_library: ClassVar[str | None] = None  # the Gradle coordinate that runs these artifacts on Android

    @abstractmethod
    def open(self, path: Path, *, threads: int, source_inputs: tuple[TensorSpec, ...], source_outputs: tuple[TensorSpec, ...]) -> Session: ...

    @abstractmethod
    def version(self) -> str: ...

    def diagnosis_session(self, path: Path, *, source_inputs: tuple[TensorSpec, ...], source_outputs: tuple[TensorSpec, ...], companions: tuple[Path, ...] = ()) -> Session:
        """A session whose intermediates() and provenance() work. `companions`: folders that may hold
        the files the artifact was made from (a build's work folder)."""
        raise ConversionError(f"{path}: the {self.name} runtime cannot show intermediate tensors; `edgepack diagnose` does not support it")


_RUNTIMES: dict[str, type[Runtime]] = {}


def register_runtime(cls: type[Runtime]) -> type[Runtime]:
    _RUNTIMES[cls.name] = cls
    return cls


def get_runtime(name: str) -> Runtime:
    from . import PLUGINS

    PLUGINS.load()
    return _RUNTIMES[name]()
