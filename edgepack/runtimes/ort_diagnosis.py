"""ONNX Runtime's diagnosis hook: every intermediate tensor of an .onnx/.ort artifact.

An .ort file cannot be edited (its flatbuffer holds the optimised graph, and onnxruntime cannot
add outputs to it), so the diagnosis runs the ONNX that the .ort was saved from: the ORT format
plug-in writes it beside the .ort in its work folder (`<stem>.<precision>.onnx`); during a build
the diagnosis finds it there, and next to the artifact. Without it, CompanionMissing tells
`edgepack diagnose` to rebuild that ONNX from the artifact's route (edgepack/diagnose/rebuild.py).
A copy of the ONNX gets every float node output as a graph output; it runs with graph
optimisations off, so the QDQ graph runs unfused (the .ort runs fused QLinear kernels on device:
values agree up to int8 rounding, and the diagnosis reports the final outputs of both).

Names: onnxruntime's quantiser keeps the float graph's tensor names and adds `_QuantizeLinear_*`
and `_DequantizeLinear_Output` suffixes; the torch exporter names tensors after the fx nodes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConversionError, require
from ..types import Sample
from .base import CompanionMissing
from .ort import OrtSession

_SUFFIXES = ("_DequantizeLinear_Output", "_QuantizeLinear_Input", "_QuantizeLinear_Output")


def find_companion(path: Path, companions: tuple[Path, ...]) -> Path:
    path = Path(path)
    if path.suffix == ".onnx":
        return path
    name = path.with_suffix(".onnx").name
    for folder in (path.parent, *companions):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise CompanionMissing(f"{path}: the ONNX it was saved from ({name}) is not beside it")


def _const(inits: dict, name: str):
    from onnx import numpy_helper

    return numpy_helper.to_array(inits[name]) if name in inits else None


class OrtDiagnosisSession(OrtSession):
    def __init__(self, onnx_path: Path, artifact: Path, source_inputs, source_outputs):
        onnx = require("onnx", "onnx", "Diagnosing .ort artifacts")
        from ..diagnose.layers import debug_session, onnx_node_tensors

        self.onnx_path = onnx_path
        model = onnx.load(str(onnx_path))
        inits = {t.name: t for t in model.graph.initializer}
        produced_by_const = set(inits)
        self._prov: dict[str, dict] = {}
        for nd, out in onnx_node_tensors(model):
            if all(x in produced_by_const for x in nd.input if x):  # weights being dequantised: not activations
                produced_by_const.add(out)
                continue
            hint = out
            for suffix in _SUFFIXES:
                hint = hint.removesuffix(suffix)
            scale = rng = None
            if nd.op_type == "DequantizeLinear" and len(nd.input) >= 2:
                s = _const(inits, nd.input[1])
                zp = _const(inits, nd.input[2]) if len(nd.input) > 2 else None
                if s is not None and s.size == 1:
                    scale = float(s.reshape(()))
                    info = np.iinfo(zp.dtype if zp is not None else np.int8)
                    z = float(zp.reshape(())) if zp is not None else 0.0
                    rng = [(info.min - z) * scale, (info.max - z) * scale]
            self._prov[out] = {"source_name": hint, "op_type": nd.op_type, "scale": scale, "range": rng, "layout": None}
        self._debug = debug_session(model, list(self._prov), str(onnx_path))
        super().__init__(self._debug, artifact, source_inputs, source_outputs)

    def intermediates(self, feeds: Sample) -> dict[str, np.ndarray]:
        names = list(self._prov)
        outs = self._debug.run(names, self.raw_feeds(feeds))
        return {n: np.asarray(v, np.float32) for n, v in zip(names, outs)}

    def provenance(self) -> dict[str, dict]:
        return dict(self._prov)


def open_diagnosis(path: Path, source_inputs, source_outputs, companions: tuple[Path, ...]) -> OrtDiagnosisSession:
    onnx_path = find_companion(path, companions)
    try:
        return OrtDiagnosisSession(onnx_path, Path(path), source_inputs, source_outputs)
    except ConversionError:
        raise
    except Exception as exc:  # a corrupt companion
        raise ConversionError(f"{onnx_path}: cannot be read for diagnosis ({str(exc).splitlines()[0]})") from exc
