"""`edgepack inspect`: describe a model or artifact file (I/O, op histogram, size, quantisation).

Readers register by file suffix from inside their own plug-ins.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .types import TensorSpec


@dataclass
class Inspection:
    path: Path
    kind: str
    size_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    op_histogram: dict[str, int]
    weight_dtypes: dict[str, int]  # dtype -> number of weight tensors
    quantization: str  # a one-line summary
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "op_histogram": self.op_histogram,
            "weight_dtypes": self.weight_dtypes,
            "quantization": self.quantization,
            "details": self.details,
        }


Reader = Callable[[Path], Inspection]
_READERS: dict[str, Reader] = {}


def register_inspector(*suffixes: str):
    def deco(fn: Reader) -> Reader:
        for s in suffixes:
            _READERS[s] = fn
        return fn

    return deco


def _load_all() -> None:
    from .formats import PLUGINS as F
    from .sources import PLUGINS as S

    F.load()
    S.load()


def inspect_file(path: str | Path) -> Inspection:
    path = Path(path)
    _load_all()
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"{path}: edgepack cannot inspect '{path.suffix}' files; it reads: {', '.join(sorted(_READERS))}")
    return reader(path)


def quantization_summary(weight_dtypes: dict[str, int], ops: dict[str, int]) -> str:
    q_ops = sorted(o for o in ops if "Quantize" in o or o.startswith("QLinear") or "quantize" in o.lower())
    ints = sorted(d for d in weight_dtypes if d.startswith(("int", "uint")))
    if q_ops:
        return f"quantised ({', '.join(q_ops)}; integer weights: {', '.join(ints) or 'none'})"
    if "float16" in weight_dtypes:
        return "float16 weights"
    return "none (float)"
