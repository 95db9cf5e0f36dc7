"""torch.export -> run_decompositions (+ recurrent layers) -> ct.convert(mlprogram), with explicit I/O types.

Every source offers the program: PyTorch natively, ONNX and Keras through edgepack's
ONNX->PyTorch bridge (edgepack/sources/onnx_torch), so nothing here depends on the source kind.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from ...errors import ConfigError, ConversionError, UnsupportedOpError, first_line
from ...types import Preprocess
from ..._coremltools import coremltools, no_progress_bars

TARGETS = ("iOS16", "iOS17", "iOS18")


def image_scale_bias(pp: Preprocess, where: str) -> tuple[float, list[float]]:
    """Core ML's ImageType computes scale * pixel + bias[c]: one scale for all channels."""
    if len(set(pp.std)) != 1:
        raise ConfigError(
            f"{where}: Core ML's ImageType has one scale for all channels, but the std differs per channel {list(pp.std)}; "
            "set image_input = false in the profile (the app then normalises), or use one std"
        )
    scale = pp.scale / pp.std[0]
    return scale, [-m / s for m, s in zip(pp.mean, pp.std, strict=True)]


def unsupported_source(source) -> ConversionError:
    """Why `source` cannot reach Core ML: the error its exported_program() raises (sources cache it)."""
    try:
        source.exported_program()
    except ConversionError as exc:
        return exc
    return ConversionError(f"{source.spec}: a {source.kind} source offers no torch.export program for Core ML")


def _failed_op(msg: str, ep) -> str | None:
    """The op a coremltools error is about: a quoted op name, or the target of the fx node it names
    ("Unsupported fx node gru, kind call_function" -> aten.gru)."""
    m = re.search(r"op '([^']+)'", msg) or re.search(r"convert function for op '?([\w.]+)", msg)
    if m:
        return m.group(1)
    m = re.search(r"fx node (\w+)", msg)
    if m:
        node = next((n for n in ep.graph.nodes if n.name == m.group(1)), None)
        if node is not None and node.op == "call_function":
            parts = str(getattr(node.target, "name", lambda: node.target)()).replace("::", ".").split(".")
            return ".".join(parts[:2]) if parts[0] == "aten" else ".".join(parts)
        return m.group(1)
    return None


def _decompositions(ep=None) -> dict:
    """Decompositions on top of run_decompositions' defaults: PyTorch's recurrent layers (aten.gru,
    aten.lstm, aten.rnn_*), which coremltools' torch.export frontend cannot take as one node
    ("Unsupported fx node gru"), become matmuls and element-wise ops. PReLU becomes a select when
    the program has one whose input is not 4-D: Core ML's prelu takes a per-channel alpha only on
    rank 4 ("rank 3 or rank 5 input is only supported when all the values of alpha are same"), and
    MTCNN-style nets put PReLU after Linear layers."""
    import torch
    from torch._decomp import get_decompositions

    aten = torch.ops.aten
    table = get_decompositions([aten.gru.input, aten.lstm.input, aten.rnn_tanh.input, aten.rnn_relu.input])
    if ep is not None and any(_prelu_rank(n) not in (None, 4) for n in ep.graph.nodes):
        table[aten.prelu.default] = _prelu_as_select
    return table


def _prelu_rank(node) -> int | None:
    import torch

    if node.op != "call_function" or node.target is not torch.ops.aten.prelu.default:
        return None
    val = node.args[0].meta.get("val") if hasattr(node.args[0], "meta") else None
    return val.dim() if val is not None else -1


def _prelu_as_select(x, weight):
    """prelu(x) = x where x > 0, else alpha * x, alpha per channel (axis 1) or one for all."""
    import torch

    shape = [1] * x.dim()
    if weight.numel() > 1 and x.dim() >= 2:
        shape[1] = weight.numel()
    return torch.where(x > 0, x, x * weight.reshape(shape))


def convert(source, *, precision: str, target: str, io_dtype: str, image: Preprocess | None, labels: list[str] | None) -> Any:
    from ...sources.onnx_torch.export import program_input_shapes

    ct = coremltools()
    where = source.spec
    ep = source.exported_program()  # a ConversionError here names the real reason (op, shape)
    np_io = np.float16 if io_dtype == "fp16" else np.float32
    inputs = []
    for t, shape in zip(source.inputs, program_input_shapes(ep, source.inputs)):
        if image is not None and len(shape) == 4:
            if source.layout != "nchw":
                raise ConfigError(
                    f"{where}: image_input = true in [formats.coreml] needs NCHW inputs, but this {source.kind} model takes "
                    f"{source.layout.upper()}; set image_input = false"
                )
            scale, bias = image_scale_bias(image, where)
            layout = {"gray": ct.colorlayout.GRAYSCALE, "rgb": ct.colorlayout.RGB, "bgr": ct.colorlayout.BGR}[image.channels]
            inputs.append(ct.ImageType(name=t.name, shape=shape, scale=scale, bias=bias, color_layout=layout, channel_first=True))
        elif t.dtype.startswith(("int", "uint", "bool")):
            inputs.append(ct.TensorType(name=t.name, shape=shape, dtype=np.int32))
        else:
            inputs.append(ct.TensorType(name=t.name, shape=shape, dtype=np_io))
    outputs = [ct.TensorType(name=t.name, dtype=np_io) for t in source.outputs]
    kwargs = {}
    if labels and len(source.outputs) == 1:
        kwargs["classifier_config"] = ct.ClassifierConfig(class_labels=list(labels))
        outputs = None  # a classifier names its own outputs (label and probabilities)
    prog = ep
    try:
        prog = ep.run_decompositions(_decompositions(ep))
        with no_progress_bars():
            return ct.convert(
                prog,
                convert_to="mlprogram",
                minimum_deployment_target=getattr(ct.target, target),
                compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                inputs=inputs,
                outputs=outputs,
                **kwargs,
            )
    except Exception as exc:
        msg = first_line(exc)
        if "not implemented" in msg.lower() or "unsupported" in msg.lower():
            op = _failed_op(msg, prog)
            if op is not None:
                raise UnsupportedOpError(op, "coreml", f"{where}: coremltools cannot convert op '{op}' to Core ML ({msg[:300]})") from exc
        raise ConversionError(f"{where}: coremltools conversion failed ({msg[:300]})") from exc
