"""The source's layers: its intermediate tensors, named, in graph order.

A *layer* is what an int8 backend quantises as one unit: a conv / linear / matmul op together with
the batch norm and the activation (relu, relu6, clamp, hardtanh) that follow it when it has no other
consumer. Every converter edgepack drives fuses those (ORT's QDQ conv+relu, TFLite's fused
activation, Core ML's quantize after the relu), so the first quantised tensor after a conv is the
activation's output: the layer is named by its head (the conv's module path), its tensor is the
output of its last member.

Two tracers, both real: a torch.export program run by an fx Interpreter that records every node's
output (names from the fx nodes, module paths from `nn_module_stack`, op types from the targets),
and an ONNX graph run by onnxruntime with every node output added as a graph output.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConversionError, first_line, require

_HEADS = {"conv", "linear", "norm"}
_FOLLOWERS = {"act", "norm"}

_CLASSES = (  # (class, pattern on the lower-cased op type)
    ("conv", r"conv"),
    ("linear", r"^(linear|gemm|matmul|mm|addmm|bmm|fully_connected|batch_matmul|qlinearmatmul)$"),
    ("norm", r"batch_norm|batchnormalization|instance_norm|layer_norm|layernormalization|group_norm"),
    ("act", r"^(relu|relu_|relu6|hardtanh|hardtanh_|clamp|clip|leaky_relu|prelu|gelu|silu|sigmoid|tanh|hardswish|hard_swish|logistic|elu)$"),
    ("pool", r"pool|reduce_mean|mean|globalaverage"),
    ("shape", r"^(reshape|view|flatten|squeeze|unsqueeze|_unsafe_view|expand_dims)$"),
    ("concat", r"^(cat|concat|concatenation)$"),
    ("binary", r"^(add|sub|mul|div|add_|maximum|minimum)$"),
    ("softmax", r"softmax"),
    ("plumbing", r"^(transpose|permute|pad|constant_pad_nd|quantize|dequantize|quantizelinear|dequantizelinear|cast|identity|clone|contiguous|_to_copy|getitem)$"),
)


def op_class(op_type: str) -> str:
    """A family name shared by the ops of every format that compute the same thing."""
    t = op_type.lower()
    for name, pattern in _CLASSES:
        if re.search(pattern, t):
            return name
    return t


@dataclass
class Layer:
    index: int
    source_name: str  # the module path (PyTorch) or the node name (ONNX)
    op_type: str
    key: str  # the name of the tensor the layer outputs, as the source graph calls it
    members: tuple[str, ...]  # the source tensors inside the layer, in order (key is the last)
    shape: tuple[int, ...]
    is_input: bool = False

    @property
    def op_class(self) -> str:
        return "input" if self.is_input else op_class(self.op_type)


@dataclass
class SourceTrace:
    layers: list[Layer]
    tensors: int  # every intermediate tensor the source has (before grouping into layers)
    run: Any = field(repr=False)  # run(sample) -> {layer.key: array}


def _group(nodes: list[tuple[str, str, str, tuple[int, ...], list[str], int]]) -> list[tuple[int, list[int]]]:
    """nodes: (name, module, op_type, shape, input names, users). Returns (head, member indices)."""
    by_name = {n[0]: i for i, n in enumerate(nodes)}
    owner: dict[int, int] = {}
    groups: dict[int, list[int]] = {}
    for i, (name, _mod, op, _shape, ins, _users) in enumerate(nodes):
        cls = op_class(op)
        producers = [by_name[x] for x in ins if x in by_name]
        if cls in _FOLLOWERS and len(producers) == 1:
            p = producers[0]
            head = owner.get(p, p)
            last = groups[head][-1]
            if last == p and nodes[p][5] == 1 and op_class(nodes[head][2]) in _HEADS and (cls == "act" or op_class(nodes[head][2]) != "norm"):
                groups[head].append(i)
                owner[i] = head
                continue
        groups[i] = [i]
        owner[i] = i
    return sorted(groups.items())


def _layers(inputs: list[tuple[str, tuple[int, ...]]], nodes, naming) -> list[Layer]:
    layers = [Layer(i, name, "input", name, (name,), shape, is_input=True) for i, (name, shape) in enumerate(inputs)]
    grouped = _group(nodes)
    names = [naming(nodes[head]) for head, _ in grouped]
    for (head, members), name in zip(grouped, names):
        if names.count(name) > 1:  # several layers in one module: the module path and the node
            name = f"{name}/{nodes[head][0]}" if name else nodes[head][0]
        last = nodes[members[-1]]
        layers.append(Layer(len(layers), name or nodes[head][0], nodes[head][2], last[0], tuple(nodes[m][0] for m in members), last[3]))
    return layers


# -- PyTorch (torch.export) --------------------------------------------------------------


def _fx_op(node) -> str:
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    return name.split(".")[0] if "." in name and not name.startswith("<") else name


def _module_path(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1]
    return path[0] if isinstance(path, tuple) else str(path)


def trace_program(program, input_names: list[str]) -> SourceTrace:
    """Layers of a torch.export ExportedProgram, and a runner recording every node's output."""
    torch = require("torch", "torch", "Diagnosing a PyTorch model")
    gm = program.module()
    nodes, keep = [], {}
    tensor_nodes = 0
    for n in gm.graph.nodes:
        if n.op != "call_function":
            continue
        val = n.meta.get("val")
        if not isinstance(val, torch.Tensor) or not val.dtype.is_floating_point:
            continue
        tensor_nodes += 1
        ins = [a.name for a in n.all_input_nodes]
        if _fx_op(n) == "getitem" and ins:  # e.g. batch norm's tuple: its first item is the op's result
            ins = [a.name for a in n.all_input_nodes[0].all_input_nodes]
        shape = tuple(int(d) for d in val.shape)
        nodes.append((n.name, _module_path(n), _fx_op(n) if _fx_op(n) != "getitem" else _fx_op(n.all_input_nodes[0]), shape, ins, len(n.users)))
        keep[n.name] = n
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    inputs = [(name, tuple(int(d) for d in p.meta["val"].shape)) for name, p in zip(input_names, placeholders)]
    layers = _layers(inputs, nodes, lambda node: node[1])
    wanted = {la.key for la in layers}

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in wanted and isinstance(out, torch.Tensor):
                self.seen[n.name] = out.detach().float().numpy().copy()
            return out

    def run(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(sample[name])) for name in input_names]
        rec = _Recorder(gm)
        rec.seen = {name: np.asarray(sample[name], np.float32) for name in input_names}
        with torch.no_grad():
            rec.run(*args)
        return rec.seen

    return SourceTrace(layers, tensor_nodes, run)


# -- ONNX ----------------------------------------------------------------------------------


def onnx_node_tensors(model) -> list[tuple[Any, str]]:
    """(node, output name) for every float output of every node, in graph order."""
    onnx = require("onnx", "onnx", "Diagnosing an ONNX model")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes then come from the runs
        inferred = model
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
    return [(nd, o) for nd in model.graph.node for o in nd.output if o and types.get(o, onnx.TensorProto.FLOAT) in floats]


def debug_session(model, names: list[str], where: str):
    """An onnxruntime session of `model` with `names` added as graph outputs (graph optimisations off,
    so that no exposed tensor is fused away and each op runs as the graph says)."""
    onnx = require("onnx", "onnx", "Diagnosing an ONNX model")
    ort = require("onnxruntime", "onnx", "Diagnosing an ONNX model")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConversionError(f"{where}: onnxruntime cannot run the model with its intermediate tensors exposed ({first_line(exc)})") from exc


def trace_onnx(path, input_names: list[str]) -> SourceTrace:
    onnx = require("onnx", "onnx", "Diagnosing an ONNX model")
    model = onnx.load(str(path))
    pairs = onnx_node_tensors(model)
    sess = debug_session(model, [o for _, o in pairs], str(path))
    users: dict[str, int] = {}
    for nd in model.graph.node:
        for x in nd.input:
            users[x] = users.get(x, 0) + 1
    out_names = [o.name for o in sess.get_outputs()]
    dims = {o.name: o.shape for o in sess.get_outputs()}
    nodes = []
    for nd, o in pairs:
        shape = tuple(d if isinstance(d, int) else -1 for d in (dims.get(o) or ()))
        nodes.append((o, nd.name or o, nd.op_type, shape, [x for x in nd.input if x], users.get(o, 0)))
    inputs = [(i.name, tuple(d if isinstance(d, int) else -1 for d in i.shape)) for i in sess.get_inputs() if i.name in input_names]

    def run(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {name: sample[name] for name in input_names}
        outs = sess.run(out_names, feeds)
        got = {name: np.asarray(v, np.float32) for name, v in zip(out_names, outs) if np.asarray(v).dtype.kind == "f"}
        got.update({name: np.asarray(sample[name], np.float32) for name in input_names})
        return got

    return SourceTrace(_layers(inputs, nodes, lambda node: node[1]), len(pairs), run)  # shapes: from the first run
