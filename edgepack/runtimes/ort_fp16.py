"""What an fp16 .ort really computes in: read from the .ort file's own graph.

ONNX Runtime saves a .ort after assigning kernels: on the x86 host that saves edgepack's .ort
files, the CPU EP has no fp16 kernel for most ops (Mul, Add, MatMul, Pow, ...), so it puts a Cast
to float32 before each such op and a Cast back after it (nodes named
"InsertedPrecisionFreeCast_..."), and drops the cast pairs between two of them. Those casts are
in the file: the arm64 ONNX Runtime of a phone runs them too, and computes those ops in fp32,
although it has fp16 kernels for them (measured under qemu-aarch64, cortex-a76: an fp16 .onnx
whose Mul, Add, MatMul, Gemm or Conv exceeds 65504 gives inf there and a finite value on x86).

    fp16_compute(path) -> {"float16_ops": n, "float32_ops": n, "inserted_casts": n} | None
    fp16_note(path) -> the report note for a .ort whose fp16 graph computes in fp32, or None
"""
from __future__ import annotations

from pathlib import Path

INSERTED_CAST = "InsertedPrecisionFreeCast_"
NOTE = (
    "fp16 computed in fp32 by this .ort: fp16 overflow (> 65504) cannot be seen here (it holds {casts} fp32 casts "
    "that ONNX Runtime inserted when it saved the file on an x86 host, so {f32} of its {ops} ops take float32, "
    "on arm64 and on a phone too; only its weights are fp16)"
)


def _tensor_type(typeinfo, fbs) -> int | None:
    if typeinfo is None or typeinfo.ValueType() != fbs.TypeInfoValue.TypeInfoValue.tensor_type:
        return None
    t = fbs.TensorTypeAndShape.TensorTypeAndShape()
    value = typeinfo.Value()
    t.Init(value.Bytes, value.Pos)
    return t.ElemType()


def fp16_compute(path: Path | str) -> dict[str, int] | None:
    """Counts of the compute ops (all but Cast) of the .ort's main graph by the float type they
    take, and of the casts ONNX Runtime inserted; None when the file cannot be read as a .ort."""
    try:
        from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

        buf = Path(path).read_bytes()
        if not fbs.InferenceSession.InferenceSession.InferenceSessionBufferHasIdentifier(buf, 0):
            return None
        graph = fbs.InferenceSession.InferenceSession.GetRootAs(buf, 0).Model().Graph()
    except Exception:  # not a .ort (or no onnxruntime tools): nothing to say
        return None
    if graph is None:
        return None
    types = {}
    for j in range(graph.NodeArgsLength()):
        arg = graph.NodeArgs(j)
        types[arg.Name().decode()] = _tensor_type(arg.Type(), fbs)
    f16, f32 = fbs.TensorDataType.TensorDataType.FLOAT16, fbs.TensorDataType.TensorDataType.FLOAT
    out = {"float16_ops": 0, "float32_ops": 0, "inserted_casts": 0}
    for i in range(graph.NodesLength()):
        node = graph.Nodes(i)
        if node.OpType().decode() == "Cast":
            out["inserted_casts"] += (node.Name() or b"").decode().startswith(INSERTED_CAST)
            continue
        seen = {types.get(node.Inputs(k).decode()) for k in range(node.InputsLength())}
        seen |= {types.get(node.Outputs(k).decode()) for k in range(node.OutputsLength())}
        if f16 in seen:
            out["float16_ops"] += 1
        elif f32 in seen:
            out["float32_ops"] += 1
    return out


def fp16_note(path: Path | str) -> str | None:
    """The note for an fp16 .ort whose ops run in fp32 because of ONNX Runtime's inserted casts."""
    c = fp16_compute(path)
    if not c or not c["inserted_casts"] or not c["float32_ops"]:
        return None
    ops = c["float16_ops"] + c["float32_ops"]
    return NOTE.format(casts=c["inserted_casts"], f32=c["float32_ops"], ops=ops)
