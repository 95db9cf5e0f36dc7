"""`edgepack inspect`: describe a model or artifact file (I/O, op histogram, size, quantisation).

Readers register by file suffix from inside their own plug-ins. Every reader parses the file
itself (flatbuffer, protobuf wire format, zip + JSON): none imports torch, TensorFlow or
coremltools, so inspect answers in well under 2 s (benchmarks/inspect_speed.py times it).
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


# Where each suffix's reader lives, so that inspecting one file imports one reader; any other
# plug-in may register more (they are found by loading all plug-ins).
_READER_MODULES = {
    ".ort": "edgepack.formats.ort_mobile.inspect",
    ".tflite": "edgepack.formats.tflite.inspect",
    ".mlpackage": "edgepack.formats.coreml.inspect",
    ".onnx": "edgepack.sources.onnx_source",
    ".pt2": "edgepack.sources.torch_source",
    ".keras": "edgepack.sources.keras_inspect",
}
TEXT_WIDTH = 100


def _load_all() -> None:
    import importlib

    from .formats import PLUGINS as F
    from .sources import PLUGINS as S

    F.load()
    S.load()
    for mod in _READER_MODULES.values():
        importlib.import_module(mod)


def _reader(suffix: str) -> Reader | None:
    import importlib

    if suffix not in _READERS and suffix in _READER_MODULES:
        importlib.import_module(_READER_MODULES[suffix])
    if suffix not in _READERS:
        _load_all()
    return _READERS.get(suffix)


def _fit(line: str, width: int = TEXT_WIDTH) -> str:
    return line if len(line) <= width else line[: width - 1] + "\u2026"


def _value_text(v: Any) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))


def text_lines(info: Inspection) -> list[str]:
    """The text `edgepack inspect` prints: I/O, layout, quantisation, weights, edgepack's own
    metadata (one key a line, cut to 100 columns; --json has it whole) and the op histogram.
    `layout` and `edgepack_metadata` come from Inspection.details, where each reader puts them."""
    from .report.summary import human_size

    lines = [f"{info.path}: {info.kind}, {human_size(info.size_bytes)} ({info.size_bytes} bytes)"]
    for title, specs in (("inputs", info.inputs), ("outputs", info.outputs)):
        lines.append(f"{title}:")
        lines += [f"  {t.name}: {t.dtype} {list(t.shape)}" for t in specs]
    layout = info.details.get("layout")
    lines.append(f"layout: {_value_text(layout) if layout else 'not recorded'}")
    lines.append(f"quantisation: {info.quantization}")
    lines.append("weights: " + (", ".join(f"{n} {d}" for d, n in sorted(info.weight_dtypes.items())) or "none"))
    meta = info.details.get("edgepack_metadata")
    if meta:
        lines.append("edgepack metadata:")
        lines += [_fit(f"  {k}: {_value_text(v)}") for k, v in sorted(meta.items())]
    else:
        lines.append("edgepack metadata: none in this file")
    lines.append(f"ops ({sum(info.op_histogram.values())}):")
    lines += [f"  {n:5d}  {op}" for op, n in info.op_histogram.items()]
    return lines


def inspect_file(path: str | Path) -> Inspection:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    reader = _reader(path.suffix.lower())
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
