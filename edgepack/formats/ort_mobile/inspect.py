"""Read an .ort file (ORT flatbuffer) for `edgepack inspect`."""
from __future__ import annotations

from collections import Counter
from pathlib import Path


from ...errors import InputError, require
from ...inspect import Inspection, quantization_summary, register_inspector
from ...types import TensorSpec


@register_inspector(".ort")
def inspect_ort(path: Path) -> Inspection:
    ort = require("onnxruntime", "onnx", "Inspecting .ort files")
    import onnxruntime.tools.ort_format_model  # noqa: F401  (puts ort_flatbuffers_py on sys.path)
    import ort_flatbuffers_py.fbs as fbs

    buf = bytearray(path.read_bytes())
    if not fbs.InferenceSession.InferenceSession.InferenceSessionBufferHasIdentifier(buf, 0):
        raise InputError(f"{path}: not an ORT-format model; rebuild it with edgepack build")
    graph = fbs.InferenceSession.InferenceSession.GetRootAsInferenceSession(buf, 0).Model().Graph()
    ops = Counter()
    for i in range(graph.NodesLength()):
        node = graph.Nodes(i)
        domain = node.Domain().decode()
        op = node.OpType().decode()
        ops[f"{domain}:{op}" if domain and domain != "ai.onnx" else op] += 1
    names = {v: k for k, v in vars(fbs.TensorDataType.TensorDataType).items() if not k.startswith("_")}
    weights = Counter(names.get(graph.Initializers(i).DataType(), "?").lower() for i in range(graph.InitializersLength()))
    weights = Counter({{"float": "float32", "double": "float64"}.get(k, k): v for k, v in weights.items()})

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    from ...runtimes.ort import _np_dtype

    def spec(v):
        return TensorSpec(v.name, tuple(d if isinstance(d, int) else str(d) for d in v.shape), _np_dtype(v.type))

    hist = dict(ops.most_common())
    return Inspection(
        path=path,
        kind="ONNX Runtime Mobile (.ort)",
        size_bytes=path.stat().st_size,
        inputs=tuple(spec(v) for v in sess.get_inputs()),
        outputs=tuple(spec(v) for v in sess.get_outputs()),
        op_histogram=hist,
        weight_dtypes=dict(weights),
        quantization=quantization_summary(dict(weights), hist),
        details={"onnxruntime": ort.__version__},
    )
