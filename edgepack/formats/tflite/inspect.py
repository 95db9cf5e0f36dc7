"""Read a .tflite for `edgepack inspect`: I/O, op histogram, weight dtypes, quantisation, metadata."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ...errors import InputError
from ...inspect import Inspection, register_inspector
from ...types import TensorSpec
from .flatbuf import Graph, read_graph


def summary(graph: Graph) -> str:
    """One line: which kind of quantisation the model carries."""
    io = [graph.tensors[i].dtype for i in (*graph.inputs, *graph.outputs)]
    weights = graph.weight_dtypes()
    wtypes = sorted({d for ds in weights.values() for d in ds})
    acts = sorted(
        {graph.tensors[o].dtype for op in graph.ops if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") for o in op.outputs}
    )
    if any(a in ("int8", "int16") for a in acts):
        io_kind = "integer" if any(d in ("int8", "int16") for d in io) else "float"
        return f"full integer: {'/'.join(acts)} activations, {'/'.join(wtypes) or '?'} weights, {io_kind} input/output"
    if "int8" in wtypes:
        return "dynamic range: int8 weights, float activations"
    if "float16" in wtypes:
        return "float16 weights"
    return "none (float)"


@register_inspector(".tflite")
def inspect_tflite(path: Path) -> Inspection:
    from . import metadata

    buf = path.read_bytes()
    try:
        graph = read_graph(buf)
        meta = metadata.read(buf)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}; rebuild it with edgepack build") from None
    except Exception as exc:  # offsets past the end of a truncated or corrupted flatbuffer (struct.error, ...)
        raise InputError(f"{path}: a damaged .tflite flatbuffer ({type(exc).__name__}); rebuild it with edgepack build") from None
    sig_in = graph.signature_inputs or tuple((graph.tensors[i].name, i) for i in graph.inputs)
    sig_out = graph.signature_outputs or tuple((graph.tensors[i].name, i) for i in graph.outputs)

    def spec(name, idx):
        t = graph.tensors[idx]
        return TensorSpec(name, t.shape, t.dtype)

    weights = Counter(t.dtype for t in graph.tensors if t.constant)
    layouts = {}
    for t in (meta or {}).get("inputs") or []:
        if isinstance(t, dict) and t.get("layout"):
            src = t.get("source_layout")
            layouts[str(t.get("name"))] = f"{t['layout']} (source {src})" if src and src != t["layout"] else str(t["layout"])
    return Inspection(
        path=path,
        kind="LiteRT / TensorFlow Lite (.tflite)",
        size_bytes=len(buf),
        inputs=tuple(spec(n, i) for n, i in sig_in),
        outputs=tuple(spec(n, i) for n, i in sig_out),
        op_histogram=graph.op_histogram(),
        weight_dtypes=dict(weights),
        quantization=summary(graph),
        details={
            "weight_dtypes_by_op": graph.weight_dtypes(),
            "io_quantization": {n: graph.tensors[i].quantization for n, i in (*sig_in, *sig_out)},
            "metadata_keys": sorted(graph.metadata),
            "edgepack_metadata": meta,
            **({"layout": _layout_text(layouts)} if layouts else {}),
        },
    )


def _layout_text(layouts: dict[str, str]) -> str:
    """'nhwc (source nchw)' when every input agrees, else 'a: nhwc, b: nchw'."""
    kinds = set(layouts.values())
    return kinds.pop() if len(kinds) == 1 else ", ".join(f"{k}: {v}" for k, v in layouts.items())
