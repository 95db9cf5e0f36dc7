"""The bridged module as a torch.export ExportedProgram, for static input shapes.

The bridge traces one concrete shape per input. Where the source's TensorSpec is static it is
used as is; a symbolic batch (axis 0) becomes 1, like every other route of edgepack; any other
symbolic dimension must come from the caller (`shapes`, e.g. --input-shape or the calibration
set) or the export stops with a ConversionError that names the input, the dimension and the fix.
"""
from __future__ import annotations

import inspect
import keyword
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import ConversionError, first_line, require
from ...types import TensorSpec


def _hint(spec: TensorSpec) -> str:
    letters = {2: "H", 3: "W"} if len(spec.shape) == 4 else {}
    dims = [str(d) if isinstance(d, int) and d >= 0 else ("1" if i == 0 else letters.get(i, f"D{i}")) for i, d in enumerate(spec.shape)]
    return f"give --input-shape {spec.name}={','.join(dims)}"


def static_shapes(inputs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]] | None, where: str) -> dict[str, tuple[int, ...]]:
    """One static shape per input: `shapes[name]` when given (it must agree with the static dims
    of the spec), else the spec's static dims with a symbolic batch set to 1."""
    shapes = dict(shapes or {})
    unknown = sorted(set(shapes) - {t.name for t in inputs})
    if unknown:
        raise ConversionError(f"{where}: static shapes given for {unknown}, which are not inputs of the model (inputs: {[t.name for t in inputs]})")
    out = {}
    for spec in inputs:
        given = shapes.get(spec.name)
        if given is not None:
            given = tuple(int(d) for d in given)
            if len(given) != len(spec.shape) or any(
                isinstance(d, int) and d >= 0 and d != g for d, g in zip(spec.shape, given)
            ) or any(g <= 0 for g in given):
                raise ConversionError(f"{where}: the shape {list(given)} given for input '{spec.name}' does not fit its declared shape {list(spec.shape)}")
            out[spec.name] = given
            continue
        dims = []
        for i, d in enumerate(spec.shape):
            if isinstance(d, int) and d > 0:
                dims.append(d)
            elif i == 0:
                dims.append(1)
            else:
                name = f" ('{d}')" if isinstance(d, str) else ""
                raise ConversionError(
                    f"{where}: input '{spec.name}' has a symbolic dimension {i}{name} in {list(spec.shape)}, and the ONNX->PyTorch "
                    f"bridge needs static shapes; {_hint(spec)}"
                )
        out[spec.name] = tuple(dims)
    return out


def _identifier(name: str, taken: set[str]) -> str:
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit() or keyword.iskeyword(ident):
        ident = f"input_{ident}"
    while ident in taken:
        ident += "_"
    taken.add(ident)
    return ident


def export_program(model, inputs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]] | None, where: str) -> Any:
    """torch.export.export of the bridged ONNX `model` (a ModelProto or path); its user inputs
    carry the source's input names (made Python identifiers where they are not)."""
    torch = require("torch", "torch", "Converting ONNX to PyTorch")
    from .bridge import to_torch

    static = static_shapes(inputs, shapes, where)
    dtypes = {t.name: t.dtype for t in inputs}
    module = to_torch(model, static, dtypes, where=where)
    order = {n: i for i, n in enumerate(module.input_names)}
    if sorted(order) != sorted(static):
        raise ConversionError(f"{where}: the ONNX graph's inputs {module.input_names} differ from the source's {[t.name for t in inputs]}")
    taken: set[str] = set()
    params = [inspect.Parameter(_identifier(t.name, taken), inspect.Parameter.POSITIONAL_OR_KEYWORD) for t in inputs]
    perm = [order[t.name] for t in inputs]  # source order -> graph order

    def forward(*xs):
        ordered = [None] * len(xs)
        for src_i, graph_i in enumerate(perm):
            ordered[graph_i] = xs[src_i]
        return type(module).forward(module, *ordered)

    forward.__signature__ = inspect.Signature(params)
    module.forward = forward
    args = tuple(torch.zeros(static[t.name], dtype=getattr(torch, t.dtype)) for t in inputs)
    try:
        return torch.export.export(module, args, strict=False)
    except Exception as exc:
        first = first_line(exc)
        raise ConversionError(f"{where}: torch.export could not trace the ONNX->PyTorch bridge ({first[:300]})") from exc


def program_input_shapes(ep, specs: Sequence[TensorSpec]) -> list[tuple[int, ...]]:
    """The static shapes of an ExportedProgram's user inputs, in order; for an input that the
    program keeps dynamic, the source's static shape."""
    vals = {n.name: n.meta.get("val") for n in ep.graph.nodes if n.op == "placeholder"}
    out = []
    for name, spec in zip(ep.graph_signature.user_inputs, specs):
        shape = getattr(vals.get(name), "shape", None)
        static = shape is not None and all(type(d) is int for d in shape)
        out.append(tuple(shape) if static else spec.static_shape())
    return out
