"""The steps of a .tflite build between conversion and the written file: op checks, calibration,
the precision variant with its route description, and the metadata."""
from __future__ import annotations

import numpy as np

from typing import Any

from ... import __version__
from ...errors import ConversionError
from ...runtimes.litert import LiteRtSession, new_interpreter, open_checked
from . import calibrate as _calibrate
from . import float_ops, metadata, variants
from .flatbuf import Graph, read_graph
from .op_checks import check_flex, flex_ops
from .routes import FloatModel


def check_float(fm: FloatModel, where: str, *, allow_flex: bool) -> None:
    """Refuse Flex ops (unless allowed) and ops the LiteRT interpreter cannot resolve."""
    graph = read_graph(fm.content)
    check_flex(graph, allow_flex=allow_flex, where=where)
    if not flex_ops(graph):  # Flex ops cannot resolve without the Flex delegate; allowed ones are the app's business
        open_checked(fm.content, where, xnnpack=False)


def check_variant(graph: Graph, where: str, *, allow_flex: bool) -> None:
    check_flex(graph, allow_flex=allow_flex, where=where)
    check_scales(graph, where)


def check_scales(graph: Graph, where: str) -> None:
    """Refuse a quantised tensor whose scale is not a finite positive number. XNNPACK crashes
    (SIGSEGV) preparing a requantize to such a scale, or refuses the model; measured on PP-OCRv6,
    where a -inf padding value (an asymmetric max-pool) gave an activation range of -inf."""
    for t in graph.tensors:
        bad = [s for s in t.scale if not (np.isfinite(s) and s > 0)]
        if bad:
            raise ConversionError(
                f"{where}: the quantised .tflite has tensor {t.index} ('{t.name[-60:]}', {t.dtype}) with scale {bad[0]!r}; "
                "its activation range was not finite; build the float precisions, or report this model"
            )


def calibrate(job, fm: FloatModel, method: str | None = None, samples: list | None = None) -> _calibrate.ActivationStats:
    """Run the float model over the job's calibration samples (or `samples`) and collect activation
    statistics for the profile's method (or `method`)."""
    graph = read_graph(fm.content)
    interp = new_interpreter(fm.content, xnnpack=False, preserve_all_tensors=True)
    session = LiteRtSession(interp, graph, {"inputs": fm.inputs, "outputs": fm.outputs}, job.source.inputs, job.source.outputs)
    samples = job.calibration if samples is None else samples
    return _calibrate.collect(session, graph, samples, method or job.quantization.method, track=job.progress.track)


def cached_calibration(job, fm: FloatModel, layout: str, method: str | None = None, samples: list | None = None) -> _calibrate.ActivationStats:
    """calibrate(), once per float model, method and sample set across the build's cells
    (int8_auto's search calibrates its candidates on a part of the set, and may try another method)."""
    import hashlib

    method = method or job.quantization.method
    samples = job.calibration if samples is None else samples
    h = hashlib.sha256()
    for sample in samples:
        for name in sorted(sample):
            h.update(name.encode())
            h.update(np.ascontiguousarray(sample[name]).tobytes())
    key = f"stats:{layout}:{method}:{h.hexdigest()}"
    if key not in job.shared:
        job.shared[key] = calibrate(job, fm, method, samples)
    return job.shared[key]


_EIGHT_BITS = ("int8", "uint8", "int4")
_WEIGHTY = (*_EIGHT_BITS, "float32", "float16", "bfloat16", "float64", "int16", "uint16")


def int8_weight_share(graph: Graph) -> dict[str, float | int]:
    """How much of a quantised .tflite's weights really are 8-bit (or fewer bits): elements of
    int8/uint8/int4 constants over the elements of every weight-like constant (float, 8/16-bit
    integer; int32 biases and integer shapes are not weights). Scalars are left out (as the .ort's)."""
    total = low = 0
    for t in graph.tensors:
        n = int(np.prod(t.shape)) if t.shape else 1
        if not t.constant or n <= 1 or t.dtype not in _WEIGHTY:
            continue
        total += n
        low += n if t.dtype in _EIGHT_BITS else 0
    return {"int8_weight_share": round(low / total, 4) if total else 0.0, "weight_elements": total, "int8_weight_elements": low}


def kept_float(fm: FloatModel, v: variants.Variant, qsvs: dict | None, graph: Graph | None = None) -> float_ops.FloatOps | None:
    """The ops a static variant keeps in float32 (float_ops.py), from the calibrated ranges;
    `graph`: the float model's, when the caller has read it."""
    if v.kind != "static" or not qsvs:
        return None
    graph = graph if graph is not None else read_graph(fm.content)
    ranges = {n: (float(r["min"].min()), float(r["max"].max())) for n, r in qsvs.items()}
    return float_ops.find(graph, ranges, v.activation_bits)


def make_variant(job, fm: FloatModel, v: variants.Variant, qsvs: dict | None) -> tuple[bytes, str]:
    kept = kept_float(fm, v, qsvs)
    scopes = tuple(kept.scopes(read_graph(fm.content))) if kept is not None else ()
    content = variants.make(fm.content, v, per_channel=job.quantization.per_channel, qsvs=qsvs, where=job.source.spec, float_scopes=scopes)
    if v.kind == "float":
        return content, fm.route
    import importlib.metadata as md

    aeq = f"ai-edge-quantizer {md.version('ai-edge-quantizer')}"
    if v.kind == "fp16":
        return content, f"{fm.route} -> {aeq} float casting: {v.summary}"
    pc = "per-channel" if job.quantization.per_channel else "per-tensor"
    if v.kind == "dynamic":
        return content, f"{fm.route} -> {aeq}: {v.summary}, {pc} weights"
    q = job.quantization
    method = q.method if not (q.method == "entropy" and v.activation_bits == 16) else "minmax (entropy is for 8-bit)"
    if q.method == "percentile":
        method = f"percentile {q.percentile:g}"
    kept_note = f"; {kept.summary()}" if kept is not None and kept.ops else ""
    return content, (
        f"{fm.route} -> {aeq}: {v.summary}, {pc} weights; activation ranges by edgepack ({method}) "
        f"over {len(job.calibration)} calibration samples{kept_note}"
    )


def _ports(graph: Graph, pairs, described: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {d["name"]: d for d in described}
    out = []
    for name, idx in pairs:
        t = graph.tensors[idx]
        d = dict(by_name.get(name, {"name": name, "source": name, "layout": None, "source_layout": None}))
        d.update(dtype=t.dtype, shape=list(t.shape), quantization=t.quantization)
        out.append(d)
    return out


def _preprocess(job, fm: FloatModel) -> dict | None:
    """The calibration set's preprocessing, with the layout this artifact's image input takes."""
    if job.preprocess is None:
        return None
    pp = job.preprocess.to_json()
    layouts = [d["layout"] for d in fm.inputs if d.get("layout")]
    if layouts:
        pp["layout"] = layouts[0]
    return pp


def with_metadata(job, fm: FloatModel, v: variants.Variant, graph: Graph, content: bytes, route: str) -> tuple[bytes, dict]:
    sig_in = graph.signature_inputs or tuple((graph.tensors[i].name, i) for i in graph.inputs)
    sig_out = graph.signature_outputs or tuple((graph.tensors[i].name, i) for i in graph.outputs)
    meta = {
        "edgepack_version": __version__,
        "format": "tflite",
        "precision": v.name,
        "variant": v.summary,
        "route": route,
        "model": {"name": job.stem, "sha256": job.source.sha256},
        "labels": job.labels,
        "preprocess": _preprocess(job, fm),
        "inputs": _ports(graph, sig_in, fm.inputs),
        "outputs": _ports(graph, sig_out, fm.outputs),
    }
    return metadata.embed(content, metadata.entries(meta, job.labels)), meta
