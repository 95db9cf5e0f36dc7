"""LiteRT (TensorFlow Lite) on the host CPU: ai_edge_litert's Interpreter with XNNPACK on.

The session feeds each artifact the source's float samples in the artifact's own terms: it
transposes 4-D inputs into the artifact's layout (NCHW or NHWC, read from the edgepack metadata
inside the .tflite), quantises them for int8/int16 inputs with the tensor's scale and zero point,
and dequantises integer outputs back to float.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._native import quiet_native
from ..errors import ConversionError, first_line, require
from ..types import IOBinding, Sample, TensorSpec
from .base import Runtime, Session, register_runtime

EXTRA = "tflite"
_PERMS = {("nchw", "nhwc"): (0, 2, 3, 1), ("nhwc", "nchw"): (0, 3, 1, 2)}


def new_interpreter(model: Path | bytes, *, threads: int = 1, xnnpack: bool = True, preserve_all_tensors: bool = False):
    """An allocated ai_edge_litert Interpreter; XNNPACK is LiteRT's default delegate."""
    require("ai_edge_litert.interpreter", EXTRA, "Running .tflite artifacts")
    import warnings

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: dict[str, Any] = {"model_path": str(model)} if isinstance(model, Path) else {"model_content": bytes(model)}
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with quiet_native(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # preserve_all_tensors warns that it is meant for debugging
        interp = Interpreter(
            **kwargs,
            num_threads=threads,
            experimental_op_resolver_type=resolver,
            experimental_preserve_all_tensors=preserve_all_tensors,
        )
        interp.allocate_tensors()
    return interp


def open_checked(model: Path | bytes, where: str, **kwargs):
    """new_interpreter, with unresolved ops turned into UnsupportedOpError and the rest into ConversionError."""
    from ..formats.tflite.op_checks import from_runtime_error

    try:
        return new_interpreter(model, **kwargs)
    except Exception as exc:
        err = from_runtime_error(exc, where)
        if err is not None:
            raise err from exc
        first = first_line(exc)
        raise ConversionError(f"{where}: the LiteRT interpreter cannot load it ({first})") from exc


def xnnpack_coverage(model: Path | bytes) -> dict[str, Any]:
    """Which nodes XNNPACK took ({"error": reason} when that cannot be told: the coverage only
    informs the report, so it never fails a cell)."""
    try:
        return _xnnpack_coverage(model)
    except Exception as exc:  # noqa: BLE001
        return {"error": first_line(exc)}


def _xnnpack_coverage(model: Path | bytes) -> dict[str, Any]:
    """Which nodes XNNPACK took: a DELEGATE node replaces each partition it claims.

    A partition's nodes are found by walking back from the DELEGATE node's outputs through
    their producers until the partition's inputs. The rest stay on LiteRT's built-in kernels.
    """
    try:
        interp = new_interpreter(model, threads=1, xnnpack=True)
        details = interp._get_ops_details()  # experimental API of ai_edge_litert; pinned version
    except Exception as exc:
        return {"error": first_line(exc)}
    nodes = [d for d in details if d["op_name"] != "DELEGATE"]
    delegates = [d for d in details if d["op_name"] == "DELEGATE"]
    producer = {int(t): d["index"] for d in nodes for t in d["outputs"]}
    by_index = {d["index"]: d for d in nodes}
    taken: set[int] = set()
    for dlg in delegates:
        ins = {int(t) for t in dlg["inputs"]}
        stack = [int(t) for t in dlg["outputs"]]
        while stack:
            t = stack.pop()
            p = producer.get(t)
            if t in ins or p is None or p in taken:
                continue
            taken.add(p)
            stack.extend(int(x) for x in by_index[p]["inputs"] if int(x) >= 0)
    left = Counter(d["op_name"] for d in nodes if d["index"] not in taken)
    return {
        "delegate": "XNNPACK",
        "nodes": len(nodes),
        "delegated_nodes": len(taken),
        "partitions": len(delegates),
        "whole_graph": bool(nodes) and not left,
        "left_on_builtin_kernels": dict(left.most_common()),
    }


def coverage_note(cov: dict[str, Any]) -> str:
    if "error" in cov:
        return f"XNNPACK coverage unknown ({cov['error']})"
    if cov["whole_graph"]:
        return f"XNNPACK took the whole graph ({cov['nodes']} nodes, {cov['partitions']} partition)"
    left = ", ".join(f"{op} x{n}" for op, n in cov["left_on_builtin_kernels"].items())
    if not cov["delegated_nodes"]:
        return f"XNNPACK took none of the {cov['nodes']} nodes; all run on LiteRT's built-in (non-XNNPACK) kernels: {left}"
    return (
        f"XNNPACK took {cov['delegated_nodes']} of {cov['nodes']} nodes in {cov['partitions']} partition(s); "
        f"left on LiteRT's built-in (non-XNNPACK) kernels: {left}"
    )


@dataclass(frozen=True)
class _Port:
    name: str  # signature name
    tensor: int  # tensor index in the main subgraph
    source: str  # the source tensor it stands for
    shape: tuple[int, ...]
    dtype: str
    layout: str | None
    perm: tuple[int, ...] | None  # source layout -> artifact layout
    scale: float | None
    zero_point: int

    def binding(self) -> IOBinding:
        q = None if self.scale is None else {"scale": [self.scale], "zero_point": [self.zero_point]}
        return IOBinding(self.name, self.shape, self.dtype, self.layout, q)


def _ports(graph, pairs, meta_ports: list[dict], sources: tuple[TensorSpec, ...]) -> list[_Port]:
    by_name = {m.get("name"): m for m in meta_ports}
    src_names = [s.name for s in sources]
    out = []
    for pos, (name, idx) in enumerate(pairs):
        t = graph.tensors[idx]
        m = by_name.get(name, {})
        source = m.get("source") or (name if name in src_names else (src_names[pos] if pos < len(src_names) else name))
        layout, src_layout = m.get("layout"), m.get("source_layout")
        perm = _PERMS.get((src_layout, layout))
        if not m and len(t.shape) == 4 and source in src_names:  # a .tflite without edgepack metadata: go by shape
            spec = sources[src_names.index(source)]
            with contextlib.suppress(ValueError):
                s = spec.static_shape()
                if tuple(s) != t.shape and tuple(s[i] for i in (0, 2, 3, 1)) == t.shape:
                    perm, layout = (0, 2, 3, 1), "nhwc"
        quant = t.scale and t.dtype in ("int8", "uint8", "int16")
        out.append(
            _Port(
                name=name,
                tensor=idx,
                source=source,
                shape=t.shape,
                dtype=t.dtype,
                layout=layout if len(t.shape) == 4 else None,
                perm=perm,
                scale=float(t.scale[0]) if quant else None,
                zero_point=int(t.zero_point[0]) if quant and t.zero_point else 0,
            )
        )
    return out


class LiteRtSession(Session):
    def __init__(self, interp, graph, meta: dict | None, source_inputs, source_outputs):
        self.interp = interp
        meta = meta or {}
        sig_in = graph.signature_inputs or tuple((graph.tensors[i].name, i) for i in graph.inputs)
        sig_out = graph.signature_outputs or tuple((graph.tensors[i].name, i) for i in graph.outputs)
        self._in = _ports(graph, sig_in, meta.get("inputs", []), source_inputs)
        self._out = _ports(graph, sig_out, meta.get("outputs", []), source_outputs)
        if len(self._out) != len(source_outputs):
            raise ConversionError(f"the artifact has {len(self._out)} outputs, the source {len(source_outputs)}")
        by_source = {p.source: p for p in self._out}
        self._out_order = [by_source.get(t.name, self._out[i]) for i, t in enumerate(source_outputs)]
        self.inputs = tuple(p.binding() for p in self._in)
        self.outputs = tuple(p.binding() for p in self._out)

    def raw_feeds(self, feeds: Sample) -> dict[str, np.ndarray]:
        raw = {}
        for p in self._in:
            x = np.asarray(feeds[p.source])
            if p.perm is not None:
                x = x.transpose(p.perm)
            if p.scale is not None:
                info = np.iinfo(p.dtype)
                x = np.clip(np.round(x.astype(np.float64) / p.scale) + p.zero_point, info.min, info.max)
            raw[p.name] = np.array(x, dtype=p.dtype, order="C")
        return raw

    def run_raw(self, raw_feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run on feeds in the artifact's own terms; its own outputs (dtype, layout), in source order."""
        for p in self._in:
            self.interp.set_tensor(p.tensor, raw_feeds[p.name])
        self.interp.invoke()
        return [np.array(self.interp.get_tensor(p.tensor)) for p in self._out_order]  # copies: the interpreter reuses buffers

    def run(self, feeds: Sample) -> list[np.ndarray]:
        outs = []
        for p, y in zip(self._out_order, self.run_raw(self.raw_feeds(feeds))):
            if p.scale is not None:
                y = (y.astype(np.float32) - np.float32(p.zero_point)) * np.float32(p.scale)
            elif y.dtype == np.float16:
                y = y.astype(np.float32)
            if p.perm is not None:
                y = np.ascontiguousarray(y.transpose(np.argsort(p.perm)))
            outs.append(y)
        return outs


@register_runtime
class LiteRt(Runtime):
    name = "litert"
    extra = EXTRA
    android_library = "com.google.ai.edge.litert:litert"

    def version(self) -> str:
        require("ai_edge_litert", self.extra, "Running .tflite artifacts")
        from importlib.metadata import version

        return version("ai-edge-litert")

    def open(self, path: Path, *, threads: int, source_inputs, source_outputs) -> Session:
        from ..formats.tflite import metadata
        from ..formats.tflite.flatbuf import read_graph

        try:
            buf = Path(path).read_bytes()
        except OSError as exc:  # a folder, unreadable, gone
            raise ConversionError(f"{path}: cannot read the artifact ({exc.strerror or type(exc).__name__})") from exc
        try:
            graph = read_graph(buf)
        except ValueError as exc:
            raise ConversionError(f"{path}: {exc}") from exc
        interp = open_checked(Path(path), str(Path(path).name), threads=threads, xnnpack=True)
        return LiteRtSession(interp, graph, metadata.read(buf), source_inputs, source_outputs)

    def diagnosis_session(self, path: Path, *, source_inputs, source_outputs, companions=()) -> Session:
        """Every op output, from the interpreter's preserved tensors (litert_diagnosis)."""
        from .litert_diagnosis import open_diagnosis

        return open_diagnosis(Path(path), source_inputs, source_outputs)
