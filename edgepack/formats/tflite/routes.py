"""Route to a float .tflite: the source's torch.export ExportedProgram -> litert-torch.

Every source offers that program: PyTorch natively, ONNX and Keras (through tf2onnx) by
edgepack's ONNX -> PyTorch bridge (edgepack/sources/onnx_torch). onnx2tf was the alternative
for ONNX; it pins old TensorFlow/NumPy/ONNX, downloads a sample file when offline and rewrites
its input in place, so it cannot run inside edgepack's environment.

litert-torch needs no TensorFlow. The module is wrapped so that the .tflite's signature uses
the source's input and output names (when they are Python identifiers) and, when the profile
asks for it, takes 4-D inputs in NHWC.
"""
from __future__ import annotations

import contextlib
import io
import keyword
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConversionError, EdgepackError, first_line, require
from ..._native import quiet_native
from ...sources.onnx_torch.export import program_input_shapes
from .op_checks import from_lowering_error

_TO_SOURCE = {("nhwc", "nchw"): (0, 3, 1, 2), ("nchw", "nhwc"): (0, 2, 3, 1)}  # artifact layout -> source layout


@dataclass
class FloatModel:
    content: bytes
    route: str
    inputs: list[dict[str, Any]]  # per artifact input: name, source, layout, source_layout
    outputs: list[dict[str, Any]]
    versions: dict[str, str] = field(default_factory=dict)


def import_litert_torch():
    """litert-torch, imported with its native start-up chatter (absl, oneDNN, torchao) silenced."""
    for name in ("torch.utils._pytree", "torchao", "absl", "jax"):  # their handlers may predate quiet_native
        logging.getLogger(name).setLevel(logging.ERROR)
    with quiet_native(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        litert_torch = require("litert_torch", "tflite", "Converting to .tflite")
    litert_torch.config.show_progress = False
    return litert_torch


def source_layout(job) -> str:
    """The layout of the source's 4-D inputs: the calibration set's declared preprocessing, else
    the source framework's convention (NCHW for PyTorch and ONNX, NHWC for Keras)."""
    pp = getattr(job, "preprocess", None)
    return pp.layout if pp is not None else job.source.layout


def _torch_module(job) -> tuple[Any, str, list[tuple[int, ...]]]:
    """The source as a torch module, how it got there, and its static input shapes."""
    ep = job.source.exported_program()
    return ep.module(), getattr(ep, "edgepack_route", "torch.export ExportedProgram"), program_input_shapes(ep, job.source.inputs)


def _wrapper(inner, in_names: list[str], out_names: list[str], perms: dict[str, tuple[int, ...]]):
    torch = require("torch", "torch", "Converting to .tflite")

    class EdgepackIO(torch.nn.Module):
        """Named inputs/outputs, and inputs permuted from the artifact's layout to the source's."""

        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, **feeds):
            # .contiguous(): a permuted NHWC input has channels-last strides, which convolutions keep,
            # so a later x.view(-1, C*H*W) in the source model would fail ("Cannot view a tensor ...").
            args = [feeds[n].permute(*perms[n]).contiguous() if n in perms else feeds[n] for n in in_names]
            out = self.inner(*args)
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            return {n: o for n, o in zip(out_names, outs)}

    w = EdgepackIO()
    w.training = False  # not .eval(): an ExportedProgram's module refuses train()/eval()
    return w


def float_model(job, layout: str) -> FloatModel:
    """Convert the source to a float32 .tflite with the requested input layout (cached per build)."""
    key = f"float:{layout}"
    if key in job.shared:
        return job.shared[key]
    torch = require("torch", "torch", "Converting to .tflite")
    litert_torch = import_litert_torch()
    where = job.source.spec
    inner, how, static = _torch_module(job)
    src_layout = source_layout(job)
    valid = all(n.isidentifier() and not keyword.iskeyword(n) for n in [t.name for t in job.source.inputs])
    in_names = [t.name if valid else f"args_{i}" for i, t in enumerate(job.source.inputs)]
    out_names = [t.name for t in job.source.outputs]
    perms, inputs, sample = {}, [], {}
    for name, spec, shape in zip(in_names, job.source.inputs, static):
        art_layout = src_layout if layout == "source" or len(shape) != 4 else layout
        if len(shape) == 4 and art_layout != src_layout:
            perms[name] = _TO_SOURCE[(art_layout, src_layout)]
            inv = _TO_SOURCE[(src_layout, art_layout)]
            shape = tuple(shape[i] for i in inv)
        inputs.append({"name": name, "source": spec.name, "layout": art_layout if len(shape) == 4 else None, "source_layout": src_layout if len(shape) == 4 else None})
        sample[name] = torch.zeros(shape, dtype=getattr(torch, spec.dtype))
    outputs = [{"name": n, "source": n, "layout": None, "source_layout": None} for n in out_names]
    module = _wrapper(inner, in_names, out_names, perms)
    for name in ("absl", "litert_torch", "torch._dynamo", "torch._export", "torch.export", "torch.fx", "jax"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with quiet_native(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            edge = litert_torch.convert(module, sample_kwargs=sample)
            content = bytes(edge.model_content())
    except EdgepackError:
        raise
    except Exception as exc:
        err = from_lowering_error(exc, where, f"litert-torch {litert_torch.__version__}")
        if err is not None:
            raise err from exc
        first = first_line(exc)
        raise ConversionError(f"{where}: litert-torch could not convert the model ({first})") from exc
    route = f"{how} -> litert-torch {litert_torch.__version__} (float32)"
    if perms:
        route += f", {layout.upper()} input"
    fm = FloatModel(content, route, inputs, outputs, {"torch": torch.__version__, "litert-torch": litert_torch.__version__})
    job.shared[key] = fm
    return fm
