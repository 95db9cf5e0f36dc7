"""The format plug-in interface and its registry.

A format turns a Source into artifact files for one runtime, one file per precision.
The pipeline only talks to this interface; nothing outside a plug-in branches on its name.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..profiles import QuantSettings
    from ..progress import Progress
    from ..sources.base import Source
    from ..types import Artifact, Preprocess, Sample


@dataclass(frozen=True)
class Option:
    """One format-specific key that a target profile may set under [formats.NAME]."""

    type: type | tuple[type, ...]
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None


@dataclass
class FormatJob:
    source: Source
    precisions: tuple[str, ...]
    options: dict[str, Any]
    quantization: QuantSettings
    calibration: list[Sample]
    workdir: Path  # a private folder for this target and format
    stem: str  # base file name for artifacts
    progress: Progress
    shared: dict[str, Any] = field(default_factory=dict)  # lives for the whole build; plug-ins cache here
    labels: list[str] | None = None  # class names from the calibration set, for metadata inside artifacts
    preprocess: Preprocess | None = None  # how a picture becomes the input tensor (layout, mean, std)
    on_stage: Callable[[str], None] | None = None  # the pipeline's hook; formats call enter()
    budget: Any = None  # quantize_search.Budget: the cell's resolved tolerances, which int8_auto searches against

    def enter(self, stage: str) -> None:
        """Tell the pipeline which stage of the cell runs now ("convert" until told otherwise,
        "quantise" while calibrating and quantising), so that a failure names its stage."""
        if self.on_stage is not None:
            self.on_stage(stage)


class Format(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    suffix: ClassVar[str]
    runtime: ClassVar[str]  # the runtime plug-in that runs this format's files
    extra: ClassVar[str]  # the pip extra that installs what it needs
    precisions: ClassVar[tuple[str, ...]]
    options: ClassVar[dict[str, Option]] = {}
    # Parity tolerances for precisions that profiles.DEFAULT_TOLERANCES does not know, used when a
    # profile gives none: a precision never goes unchecked for want of a [tolerances.X] table.
    tolerances: ClassVar[dict[str, dict[str, float]]] = {}
    # The precision int8_auto starts from (its full-int8 candidate), where the format has int8_auto:
    # a failed cell of it gets a note that int8_auto searches a recipe against the same budget.
    int8_auto_from: ClassVar[str | None] = None

    def preflight(self, source: Source, precisions: tuple[str, ...], options: dict[str, Any], preprocess: Preprocess | None) -> None:
        """Refuse, before any slow work, what this format cannot build (raise a UserError)."""

    @abstractmethod
    def build(self, job: FormatJob) -> Iterator[Artifact]:
        """Convert and quantise; yield one Artifact per requested precision."""


_FORMATS: dict[str, type[Format]] = {}


def register_format(cls: type[Format]) -> type[Format]:
    if cls.name in _FORMATS:
        raise RuntimeError(f"format '{cls.name}' registered twice")
    _FORMATS[cls.name] = cls
    return cls


def formats() -> dict[str, type[Format]]:
    from . import PLUGINS

    PLUGINS.load()
    return dict(_FORMATS)


def get_format(name: str) -> Format:
    known = formats()
    if name not in known:
        raise KeyError(name)
    return known[name]()




def format_for_file(path: Path) -> type[Format] | None:
    """The format whose artifacts end like `path` (.ort, .tflite, .mlpackage), if any."""
    name = Path(path).name.lower()
    return next((cls for cls in formats().values() if name.endswith(cls.suffix)), None)
