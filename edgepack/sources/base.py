"""The source interface: a trained model that edgepack reads, describes and runs as the reference."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConversionError, InputError
from ..types import Sample, TensorSpec
from ..files import file_sha256  # noqa: F401 - the source plug-ins import it from here


class Source(ABC):
    kind: ClassVar[str]  # "pytorch", "onnx", ...
    description: ClassVar[str]  # for error messages: what files this source reads
    layout: ClassVar[str] = "nchw"  # the order of 4-D inputs, by the framework's convention

    def __init__(self, spec: str, name: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], sha256: str):
        self.spec = spec
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.sha256 = sha256
        self.declared_inputs = inputs  # as the model file declares them, symbolic dims and all
        self.static_shapes: dict[str, tuple[int, ...]] = {}  # inputs fixed by with_static_shapes()

    def with_static_shapes(self, shapes: dict[str, tuple[int, ...]]) -> Source:
        """This source with the given inputs fixed to static shapes (see edgepack/shapes.py): its
        `inputs` and every representation it hands to formats use them. Returns self for {}."""
        if not shapes:
            return self
        import copy

        from ..shapes import static_specs

        clone = copy.copy(self)
        clone.static_shapes = {**self.static_shapes, **{k: tuple(v) for k, v in shapes.items()}}
        clone.inputs = static_specs(self.declared_inputs, clone.static_shapes)
        clone._shapes_fixed()
        return clone

    def _shapes_fixed(self) -> None:
        """Hook for sources that cache shape-dependent things (called on the copy)."""

    @classmethod
    @abstractmethod
    def claims(cls, spec: str) -> bool:
        """Whether this source reads the model named by `spec` (a path or an entry point)."""

    @classmethod
    @abstractmethod
    def load(cls, spec: str, *, allow_pickle: bool = False) -> Source: ...

    @abstractmethod
    def run(self, feeds: Sample) -> list[np.ndarray]:
        """Run the reference model on named numpy inputs; outputs in self.outputs order."""

    # Representations that format plug-ins ask for. A source offers what it can.
    def to_onnx(self, dest: Path) -> str:
        """Write the model as an ONNX file at dest; return a description of the route."""
        raise ConversionError(f"{self.spec}: a {self.kind} source cannot be turned into ONNX")

    def exported_program(self) -> Any:
        """The model as a torch.export ExportedProgram."""
        raise ConversionError(
            f"{self.spec}: this format needs a PyTorch source (.pt2 or a Python entry point); a {self.kind} source is not supported"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.spec,
            "kind": self.kind,
            "sha256": self.sha256,
            "layout": self.layout,
            "inputs": [t.to_json() for t in self.inputs],
            "declared_inputs": [{"name": t.name, "shape": [d if isinstance(d, int) and d > 0 else str(d or "?") for d in t.shape]} for t in self.declared_inputs],
            "static_shapes": {k: list(v) for k, v in self.static_shapes.items()},
            "outputs": [t.to_json() for t in self.outputs],
        }


_SOURCES: list[type[Source]] = []


def register_source(cls: type[Source]) -> type[Source]:
    _SOURCES.append(cls)
    return cls


def sources() -> list[type[Source]]:
    from . import PLUGINS

    PLUGINS.load()
    return list(_SOURCES)


def load_source(spec: str, *, allow_pickle: bool = False) -> Source:
    """Pick the source plug-in that claims `spec` (tvmc-style: by suffix or form) and load it."""
    for cls in sources():
        if cls.claims(spec):
            return cls.load(spec, allow_pickle=allow_pickle)
    p = Path(spec)
    if not p.exists() and ":" not in spec:
        raise InputError(f"{spec}: model file not found; check the path")
    accepted = "; ".join(c.description for c in sources())
    raise InputError(f"{spec}: unrecognised model; edgepack reads: {accepted}")
