"""Read a .mlpackage for `edgepack inspect`: I/O, op histogram, weight storage, metadata.

The spec is decoded by spec_reader (protobuf wire format), so coremltools, torch and TensorFlow
are not imported and inspect answers in well under a second.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ...files import artifact_size
from ...inspect import Inspection, quantization_summary, register_inspector
from .metadata import PREFIX
from .spec_reader import WireError, model_spec_path, read_spec


@register_inspector(".mlpackage")
def inspect_mlpackage(path: Path) -> Inspection:
    if not path.is_dir():
        raise InputError(f"{path}: a .mlpackage is a folder, this is a file; rebuild it with edgepack build")
    spec_file = model_spec_path(path)
    try:
        spec = read_spec(spec_file.read_bytes())
    except OSError:
        raise InputError(f"{path}: not a readable .mlpackage (no {spec_file.relative_to(path)}); rebuild it with edgepack build") from None
    except WireError as exc:
        raise InputError(f"{path}: not a readable .mlpackage (its model spec is damaged: {exc}); rebuild it with edgepack build") from None
    if not spec.inputs and not spec.outputs:
        raise InputError(f"{path}: not a readable .mlpackage (its model spec has no inputs or outputs); rebuild it with edgepack build")
    weights, hist = spec.weights, spec.ops
    compressed = sorted(k for k in weights if k.startswith("constexpr_"))
    ours = {k.removeprefix(PREFIX): v for k, v in spec.metadata.items() if k.startswith(PREFIX)}
    details = {
        "metadata": spec.metadata,
        "short_description": spec.short_description,
        "model_type": spec.model_type,
        "opset": spec.opset,
    }
    if spec.image_inputs:
        details["image_inputs"] = spec.image_inputs
    if spec.predicted_feature:
        details["predicted_feature"] = spec.predicted_feature
    if ours:
        details["edgepack_metadata"] = ours
        if ours.get("layout"):
            details["layout"] = ours["layout"]
    return Inspection(
        path=path,
        kind=f"Core ML ML program (.mlpackage, spec v{spec.specification_version})"
        if spec.model_type == "mlProgram"
        else f"Core ML {spec.model_type} (.mlpackage, spec v{spec.specification_version})",
        size_bytes=artifact_size(path),
        inputs=spec.inputs,
        outputs=spec.outputs,
        op_histogram=hist,
        weight_dtypes=weights,
        quantization=f"compressed weights ({', '.join(compressed)})" if compressed else quantization_summary(weights, hist),
        details=details,
    )
