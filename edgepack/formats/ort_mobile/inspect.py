"""Read an .ort file (ORT flatbuffer) for `edgepack inspect`, without starting onnxruntime.

onnxruntime ships the flatbuffer accessors of its format as plain Python
(onnxruntime/tools/ort_format_model/ort_flatbuffers_py, which needs only the `flatbuffers`
package). They are found on disk and imported without importing onnxruntime itself, whose
package init loads the C++ runtime.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

from ...errors import InputError, MissingDependencyError, require
from ...inspect import Inspection, quantization_summary, register_inspector
from ...types import TensorSpec

# fbs.TensorDataType names -> numpy dtype names (the others are lower-cased as they are)
_DTYPES = {"float": "float32", "double": "float64", "string": "str"}


@lru_cache(maxsize=1)
def ort_schema():
    """The `ort_flatbuffers_py.fbs` package from the installed onnxruntime, onnxruntime not imported."""
    require("flatbuffers", "onnx", "Reading .ort files")
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("onnxruntime", "onnx", "Reading .ort files")
    parent = Path(list(spec.submodule_search_locations)[0]) / "tools" / "ort_format_model"
    if not (parent / "ort_flatbuffers_py" / "fbs").is_dir():
        raise MissingDependencyError("onnxruntime", "onnx", "Reading .ort files (its ort_flatbuffers_py schema is missing)")
    if str(parent) not in sys.path:
        sys.path.append(str(parent))  # the generated modules import each other as ort_flatbuffers_py.fbs.*
    return importlib.import_module("ort_flatbuffers_py.fbs")


def _dtype_names(fbs) -> dict[int, str]:
    table = {v: k.lower() for k, v in vars(fbs.TensorDataType.TensorDataType).items() if not k.startswith("_")}
    return {k: _DTYPES.get(v, v) for k, v in table.items()}


def _value_spec(fbs, dtypes: dict[int, str], name: str, info) -> TensorSpec:
    """A graph input/output from its ValueInfo (dims: int, the symbolic name, or None)."""
    if info is None or info.Type() is None:
        return TensorSpec(name, (), "?")
    t = info.Type()
    if t.ValueType() != fbs.TypeInfoValue.TypeInfoValue.tensor_type:
        return TensorSpec(name, (), "non-tensor")
    tt = fbs.TensorTypeAndShape.TensorTypeAndShape()
    tt.Init(t.Value().Bytes, t.Value().Pos)
    shape = []
    sh = tt.Shape()
    for i in range(sh.DimLength() if sh is not None else 0):
        v = sh.Dim(i).Value()
        kind = v.DimType() if v is not None else 0
        if kind == fbs.DimensionValueType.DimensionValueType.VALUE:
            shape.append(int(v.DimValue()))
        elif kind == fbs.DimensionValueType.DimensionValueType.PARAM:
            shape.append((v.DimParam() or b"").decode() or None)
        else:
            shape.append(None)
    return TensorSpec(name, tuple(shape), dtypes.get(tt.ElemType(), str(tt.ElemType())))


def read_ort(path: Path) -> dict:
    """Ops, weights and I/O of an .ort file, read from the flatbuffer."""
    fbs = ort_schema()
    buf = bytearray(path.read_bytes())
    IS = fbs.InferenceSession.InferenceSession
    if len(buf) < 8 or not IS.InferenceSessionBufferHasIdentifier(buf, 0):
        raise InputError(f"{path}: not an ORT-format model; rebuild it with edgepack build")
    try:
        session = IS.GetRootAsInferenceSession(buf, 0)
        model = session.Model()
        graph = model.Graph()
        ops = Counter()
        for i in range(graph.NodesLength()):
            node = graph.Nodes(i)
            domain = (node.Domain() or b"").decode()
            op = (node.OpType() or b"").decode()
            ops[f"{domain}:{op}" if domain and domain != "ai.onnx" else op] += 1
        dtypes = _dtype_names(fbs)
        inits = [graph.Initializers(i) for i in range(graph.InitializersLength())]
        weights = Counter(dtypes.get(t.DataType(), "?") for t in inits)
        init_names = {(t.Name() or b"").decode() for t in inits}
        args = {}
        for i in range(graph.NodeArgsLength()):
            a = graph.NodeArgs(i)
            args[(a.Name() or b"").decode()] = a
        ins = [(graph.Inputs(i) or b"").decode() for i in range(graph.InputsLength())]
        outs = [(graph.Outputs(i) or b"").decode() for i in range(graph.OutputsLength())]
        meta = {}
        for i in range(model.MetadataPropsLength()):
            p = model.MetadataProps(i)
            meta[(p.Key() or b"").decode()] = (p.Value() or b"").decode()
        used = {op.split(":")[0] if ":" in op else "ai.onnx" for op in ops}
        opsets = {}
        for i in range(model.OpsetImportLength()):  # the format lists every domain; keep the used ones
            o = model.OpsetImport(i)
            domain = (o.Domain() or b"").decode() or "ai.onnx"
            if domain in used:
                opsets[domain] = int(o.Version())
        return {
            "ops": dict(ops.most_common()),
            "weights": dict(weights),
            "inputs": tuple(_value_spec(fbs, dtypes, n, args.get(n)) for n in ins if n not in init_names),
            "outputs": tuple(_value_spec(fbs, dtypes, n, args.get(n)) for n in outs),
            "metadata": meta,
            "opsets": opsets,
            "format_version": (session.OrtVersion() or b"").decode(),
            "producer": (model.ProducerName() or b"").decode(),
        }
    except InputError:
        raise
    except Exception as exc:  # a truncated or corrupted flatbuffer
        raise InputError(f"{path}: a damaged ORT-format model ({type(exc).__name__}); rebuild it with edgepack build") from None


@register_inspector(".ort")
def inspect_ort(path: Path) -> Inspection:
    r = read_ort(path)
    meta = r["metadata"]
    details = {"opsets": r["opsets"], "ort_format_version": r["format_version"], "producer": r["producer"]}
    edgepack_meta = {k.removeprefix("edgepack."): v for k, v in meta.items() if k.startswith("edgepack")}
    if meta:
        details["metadata"] = meta
    if edgepack_meta:
        details["edgepack_metadata"] = edgepack_meta
    layout = edgepack_meta.get("layout")
    if layout:
        details["layout"] = layout
    elif any(len(t.shape) == 4 for t in r["inputs"]):
        details["layout"] = "the source model's (.ort keeps it; manifest.json records it)"
    return Inspection(
        path=path,
        kind="ONNX Runtime Mobile (.ort)",
        size_bytes=path.stat().st_size,
        inputs=r["inputs"],
        outputs=r["outputs"],
        op_histogram=r["ops"],
        weight_dtypes=r["weights"],
        quantization=quantization_summary(r["weights"], r["ops"]),
        details=details,
    )
