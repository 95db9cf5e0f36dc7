"""LiteRT's diagnosis hook: every op output of a .tflite, through the interpreter's preserved tensors.

The diagnosis interpreter keeps all tensors (`experimental_preserve_all_tensors`) and runs on
LiteRT's built-in kernels: XNNPACK would take the graph as one delegate node whose inner tensors
are never visible. Integer tensors are dequantised with their own scale and zero point. Tensor
names are what the converter kept (litert-torch derives them from locations; wrapped models may
keep none): the diagnosis falls back to shape and order where they do not name a source tensor.
An artifact built on the NHWC route holds 4-D tensors transposed; provenance says so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..types import Sample
from .litert import LiteRtSession, open_checked


class LiteRtDiagnosisSession(LiteRtSession):
    def __init__(self, path: Path, graph, meta: dict | None, source_inputs, source_outputs):
        interp = open_checked(path, path.name, threads=1, xnnpack=False, preserve_all_tensors=True)
        super().__init__(interp, graph, meta, source_inputs, source_outputs)
        details = {d["index"]: d for d in interp.get_tensor_details()}
        layouts = {p.layout for p in self._in if p.layout}
        layout = "nhwc" if "nhwc" in layouts else None
        seen: dict[str, int] = {}
        self._tensors: dict[str, int] = {}
        self._prov: dict[str, dict] = {}
        for op in interp._get_ops_details():  # experimental API of ai_edge_litert; pinned version
            for t in op["outputs"]:
                t = int(t)
                d = details.get(t)
                if t < 0 or d is None:
                    continue
                kind = np.dtype(d["dtype"]).kind
                scale, zp = d["quantization"]
                if kind != "f" and not scale:
                    continue  # integer tensors that are not quantised values (shapes, indices)
                name = d["name"] or f"tensor {t}"
                seen[name] = seen.get(name, 0) + 1
                key = name if seen[name] == 1 else f"{name} #{t}"
                rng = None
                if scale:
                    info = np.iinfo(d["dtype"])
                    rng = [(info.min - zp) * scale, (info.max - zp) * scale]
                self._tensors[key] = t
                self._prov[key] = {
                    "source_name": d["name"] or None,
                    "op_type": op["op_name"],
                    "scale": float(scale) if scale else None,
                    "range": rng,
                    "layout": layout if len(d["shape"]) == 4 else None,
                }

    def intermediates(self, feeds: Sample) -> dict[str, np.ndarray]:
        self.run_raw(self.raw_feeds(feeds))
        details = {d["index"]: d for d in self.interp.get_tensor_details()}
        out = {}
        for key, t in self._tensors.items():
            y = np.array(self.interp.get_tensor(t))
            scale, zp = details[t]["quantization"]
            out[key] = ((y.astype(np.float32) - np.float32(zp)) * np.float32(scale)) if scale else y.astype(np.float32)
        return out

    def provenance(self) -> dict[str, dict]:
        return dict(self._prov)


def open_diagnosis(path: Path, source_inputs, source_outputs) -> LiteRtDiagnosisSession:
    from ..errors import ConversionError
    from ..formats.tflite import metadata
    from ..formats.tflite.flatbuf import read_graph

    try:
        buf = Path(path).read_bytes()
        graph = read_graph(buf)
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{path}: cannot read the artifact ({exc})") from exc
    return LiteRtDiagnosisSession(Path(path), graph, metadata.read(buf), source_inputs, source_outputs)
