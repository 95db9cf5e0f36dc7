"""Read a .mlpackage for `edgepack inspect`: I/O, op histogram, weight storage, metadata."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ...errors import InputError
from ...files import artifact_size
from ...inspect import Inspection, quantization_summary, register_inspector
from ...types import TensorSpec
from ..._coremltools import coremltools


def _feature_spec(f) -> TensorSpec:
    kind = f.type.WhichOneof("Type")
    if kind == "multiArrayType":
        arr = f.type.multiArrayType
        dtypes = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}
        return TensorSpec(f.name, tuple(int(d) for d in arr.shape), dtypes.get(arr.dataType, str(arr.dataType)))
    if kind == "imageType":
        img = f.type.imageType
        return TensorSpec(f.name, (int(img.height), int(img.width)), "image")
    return TensorSpec(f.name, (), kind or "?")


@register_inspector(".mlpackage")
def inspect_mlpackage(path: Path) -> Inspection:
    ct = coremltools()
    try:
        model = ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:
        raise InputError(f"{path}: not a readable .mlpackage ({str(exc).splitlines()[0]})") from None
    spec = model.get_spec()
    from ...runtimes.coreml_emulator.loader import load_program

    program, _ = load_program(path)
    ops = Counter(op.op_type for op in program.functions["main"].operations if op.op_type != "const")
    weights = Counter()
    for op in program.functions["main"].operations:
        if op.op_type == "const" and op.outputs[0].val is not None and getattr(op.outputs[0].val, "size", 0) > 16:
            weights[str(op.outputs[0].val.dtype)] += 1
        elif op.op_type.startswith("constexpr_"):
            weights[op.op_type] += 1
    hist = dict(ops.most_common())
    meta = dict(spec.description.metadata.userDefined)
    return Inspection(
        path=path,
        kind=f"Core ML ML program (.mlpackage, spec v{spec.specificationVersion})",
        size_bytes=artifact_size(path),
        inputs=tuple(_feature_spec(f) for f in spec.description.input),
        outputs=tuple(_feature_spec(f) for f in spec.description.output),
        op_histogram=hist,
        weight_dtypes=dict(weights),
        quantization=quantization_summary(dict(weights), hist)
        if not any(k.startswith("constexpr_") for k in weights)
        else f"compressed weights ({', '.join(sorted(k for k in weights if k.startswith('constexpr_')))})",
        details={"metadata": meta, "short_description": spec.description.metadata.shortDescription},
    )
