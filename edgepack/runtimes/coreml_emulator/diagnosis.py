"""The Core ML emulator's diagnosis hook: every Var of the ML program, as the emulator computes it.

coremltools names each op after the torch graph's fx node (`conv2d_1`, with suffixes such as
`_cast_fp16` for fp16 programs, or `_0` where one node became several ops); a W8A8 program's
`dequantize(quantize(x))` stands for x, quantised with the dequantize's scale and zero point.
Integer Vars (the quantize outputs) are not activations one can compare; their dequantize is.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...types import Sample
from .runtime import CoreMLEmulatorSession, _image_inputs
from .values import numpy_dtype

_SUFFIXES = ("_cast_fp16", "_cast_fp32", "_cast")


def _hint(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _quant(op) -> tuple[str | None, float | None, list[float] | None]:
    """(hint, scale, range) of a dequantize whose input is a quantize."""
    src = op.inputs["input"].op
    scale = op.inputs.get("scale")
    zp = op.inputs.get("zero_point")
    s = None if scale is None or scale.val is None else np.asarray(scale.val)
    hint = _hint(src.inputs["x" if "x" in src.inputs else "input"].name) if src is not None and src.op_type == "quantize" else None
    if s is None or s.size != 1:
        return hint, None, None
    s = float(s.reshape(()))
    z = 0.0 if zp is None or zp.val is None else float(np.asarray(zp.val).reshape(-1)[0])
    qdtype = numpy_dtype(op.inputs["input"]) or np.dtype(np.int8)
    info = np.iinfo(qdtype) if qdtype.kind in "iu" else np.iinfo(np.int8)
    return hint, s, [(info.min - z) * s, (info.max - z) * s]


class CoreMLDiagnosisSession(CoreMLEmulatorSession):
    def __init__(self, model, source_inputs, source_outputs):
        super().__init__(model, source_inputs, source_outputs)
        self._prov: dict[str, dict] = {}
        fn = model.program.functions[model.function_name]
        for op in fn.operations:
            if op.op_type == "const" or op.op_type.startswith("constexpr_"):
                continue
            for var in op.outputs:
                dt = numpy_dtype(var)
                if dt is None or dt.kind != "f":
                    continue
                hint, scale, rng = _quant(op) if op.op_type == "dequantize" else (_hint(var.name), None, None)
                self._prov[var.name] = {"source_name": hint, "op_type": op.op_type, "scale": scale, "range": rng, "layout": None}

    def intermediates(self, feeds: Sample) -> dict[str, np.ndarray]:
        seen: dict[str, np.ndarray] = {}

        def observe(name: str, op_type: str, value) -> None:
            if name in self._prov:
                seen[name] = np.asarray(value, np.float32).copy()

        self.model.run(self.raw_feeds(feeds), observe=observe)
        return seen

    def provenance(self) -> dict[str, dict]:
        return dict(self._prov)


def open_diagnosis(path: Path, source_inputs, source_outputs) -> CoreMLDiagnosisSession:
    from . import load_mlpackage

    session = CoreMLDiagnosisSession(load_mlpackage(path), tuple(source_inputs), tuple(source_outputs))
    session._pixels = _image_inputs(Path(path), session._in_names)
    session._real_reason = "not used by the diagnosis"
    return session
