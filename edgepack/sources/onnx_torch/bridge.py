"""ONNX graph -> torch.nn.Module that interprets it with torch ops; torch.export traces it flat.

At construction one eager pass over zero inputs (shapes are static) folds everything that depends
only on constants and shapes (Shape, Gather on shapes, Concat of shape pieces, ...); `forward`
runs only the nodes that depend on the inputs. Constants that such nodes use become buffers, so
weights reach the converters (litert-torch, coremltools) as weights, not as traced literals.

Covers the ONNX ops of CNNs, detectors, OCR/segmentation nets, transformers and recurrent nets
(opset 9-21 semantics; see ops.py, shape_ops.py, resize.py, recurrent.py, misc_ops.py). Any other
op is refused before conversion with an UnsupportedOpError that names every missing op.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConversionError, EdgepackError, UnsupportedOpError, first_line, require
from . import misc_ops, ops, recurrent, resize, shape_ops  # noqa: F401  (each registers its handlers)
from . import fusions
from .ops import Const

BRIDGE = "edgepack's ONNX->PyTorch bridge"


def unsupported_ops(model) -> list[str]:
    """The op types of `model` that the bridge has no handler for (domain-qualified when not ai.onnx)."""
    missing: list[str] = []
    for n in model.graph.node:
        name = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"
        if (n.domain not in ("", "ai.onnx") or n.op_type not in ops.HANDLERS) and name not in missing:
            missing.append(name)
    return missing


def check_ops(model, where: str) -> None:
    missing = unsupported_ops(model)
    if missing:
        more = f" (and {', '.join(repr(m) for m in missing[1:])})" if len(missing) > 1 else ""
        raise UnsupportedOpError(
            missing[0],
            "onnx->torch",
            f"{where}: op '{missing[0]}'{more} is not supported by {BRIDGE}, which every format other than .ort "
            "uses for ONNX and Keras sources; export the model from PyTorch (.pt2) instead, or build only the ort format",
        )


def to_torch(model_or_path, input_shapes: dict[str, tuple[int, ...]], input_dtypes: dict[str, str], where: str | None = None):
    """An nn.Module equivalent to the ONNX model (a path or a ModelProto), for static input shapes.
    Its forward takes the graph inputs positionally, in graph order. `where` names the user's
    model in errors (default: the file's name)."""
    onnx = require("onnx", "onnx", "Reading ONNX models")
    require("torch", "torch", "Converting ONNX to PyTorch")
    if isinstance(model_or_path, (str, Path)):
        where = where or Path(model_or_path).name
        model = onnx.load(str(model_or_path))
    else:
        model = model_or_path
        where = where or "the ONNX model"
    if len(model.functions):  # model-local functions (torch.onnx's, e.g.) become their nodes
        from onnx import inliner

        model = inliner.inline_local_functions(model)
    model = fusions.fuse_gelu(model)  # the erf form of GELU as one op (int8 LiteRT: FIELD_NOTES)
    check_ops(model, where)
    return _build_module(model, input_shapes, input_dtypes, where)


def _attrs(node) -> dict[str, Any]:
    from onnx import helper, numpy_helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode() for x in v]
        elif a.type == a.TENSOR:
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out


def _run(ctx_args, where: str):
    node = ctx_args[1]
    ctx = ops.Ctx(*ctx_args)
    try:
        return ctx, ops.HANDLERS[node.op_type](ctx)
    except EdgepackError:
        raise
    except Exception as exc:  # a combination of attributes/shapes the handler cannot take
        first = first_line(exc)
        raise ConversionError(f"{where}: ONNX {node.op_type} node '{node.name}' could not be bridged to PyTorch ({first[:300]})") from exc


def _build_module(model, input_shapes, input_dtypes, where: str):
    import torch
    from onnx import numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    init_names = {i.name for i in graph.initializer}
    consts: dict[str, Const] = {i.name: Const(numpy_helper.to_array(i)) for i in graph.initializer}
    input_names = [i.name for i in graph.input if i.name not in init_names]
    nodes = [(n, _attrs(n)) for n in graph.node]

    class OnnxModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self._buffers_for: dict[tuple[str, str | None], str] = {}
            self._live: list = []
            self._consts = dict(consts)
            self.input_names = list(input_names)
            self._fold()

        # -- constants -------------------------------------------------------------------
        def tensor(self, v, key: str | None, transform: str | None = None):
            """A torch tensor for an argument: dynamic tensors as they are, constants as buffers."""
            if not isinstance(v, Const):
                return v
            arr = v.value.T if transform == "T" else v.value
            if self._folding:
                return torch.from_numpy(np.array(arr, order="C", copy=True))  # ascontiguousarray would make 0-d 1-d
            name = self._buffers_for.get((key, transform))
            if name is None:  # registered during the fold pass
                raise ConversionError(f"{where}: internal: constant '{key}' was not prepared")
            return getattr(self, name)

        def aux(self, key: str, make):
            """A buffer that a handler derives (resize indices, per-direction RNN weights), made once."""
            name = self._buffers_for.get((key, "aux"))
            if name is None:
                name = f"c{len(self._buffers_for)}"
                self.register_buffer(name, torch.from_numpy(np.array(make(), order="C", copy=True)), persistent=True)
                self._buffers_for[(key, "aux")] = name
            return getattr(self, name)

        def _want_buffer(self, v, key, transform):
            if isinstance(v, Const) and (key, transform) not in self._buffers_for:
                arr = v.value.T if transform == "T" else v.value
                name = f"c{len(self._buffers_for)}"
                self.register_buffer(name, torch.from_numpy(np.array(arr, order="C", copy=True)), persistent=True)
                self._buffers_for[(key, transform)] = name

        # -- the two passes --------------------------------------------------------------
        def _fold(self):
            self._folding = True
            env: dict[str, Any] = dict(self._consts)
            for name in input_names:
                dt = getattr(torch, input_dtypes.get(name, "float32"))
                env[name] = torch.zeros(input_shapes[name], dtype=dt)
            with torch.no_grad():
                for node, attrs in nodes:
                    args = [env.get(n) if n else None for n in node.input]
                    foldable = node.op_type in ("Shape", "Size") or all(a is None or isinstance(a, Const) for a in args)
                    ctx, outs = _run((self, node, attrs, args, opset, where), where)
                    if foldable:
                        for n, o in zip(node.output, outs):
                            if n and o is not None:
                                env[n] = self._consts[n] = o if isinstance(o, Const) else Const(o.detach().numpy())
                    else:
                        self._live.append((node, attrs))
                        for key, a in zip(node.input, args):
                            for transform in ctx.wanted.get(key, ()):
                                self._want_buffer(a, key, transform)
                        for n, o in zip(node.output, outs):
                            env[n] = o
            self._folding = False
            self._outputs = [o.name for o in graph.output]

        def forward(self, *xs):
            env: dict[str, Any] = dict(self._consts)
            env.update(zip(input_names, xs))
            for node, attrs in self._live:
                args = [env.get(n) if n else None for n in node.input]
                outs = ops.HANDLERS[node.op_type](ops.Ctx(self, node, attrs, args, opset, where))
                env.update(zip(node.output, outs))
            res = [env[n] if not isinstance(env[n], Const) else torch.from_numpy(env[n].value.copy()) for n in self._outputs]
            return res[0] if len(res) == 1 else tuple(res)

    module = OnnxModule()
    module.train(False)
    return module
