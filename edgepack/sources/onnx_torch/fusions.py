"""Graph rewrites before bridging: subgraphs that exporters spell out, put back as the one op they are.

- GELU: ONNX before opset 20 has no Gelu, so exporters (PaddlePaddle's, torch.onnx's) write
  x * 0.5 * (1 + Erf(x / sqrt(2))), in any grouping of the two Muls, with x / sqrt(2) also written
  as x * (1 / sqrt(2)). Bridged node by node, that Erf reached litert-torch as aten.erf, which it
  lowers to a rational polynomial of ~30 ops per GELU (MUL/ADD/DIV/MINIMUM/MAXIMUM) whose
  intermediate values span 1e-24..1e1; in int8 each of those ops rounds, and PP-OCRv6's int8
  output fell to cosine 0.35 (FIELD_NOTES). As one Gelu node the bridge emits F.gelu, which
  litert-torch lowers to LiteRT's GELU builtin (one op, a lookup table in int8) and Core ML to gelu.

Only exact matches are rewritten: constants within 1e-5 of their values, and no intermediate
tensor used anywhere else or returned by the graph.
"""
from __future__ import annotations

import math

import numpy as np

_SQRT2 = math.sqrt(2.0)


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _scalar(consts: dict[str, np.ndarray], name: str, value: float) -> bool:
    v = consts.get(name)
    return v is not None and v.size == 1 and v.dtype.kind == "f" and abs(float(v.reshape(())) - value) <= 1e-5 * max(1.0, abs(value))


def _other(node, name: str) -> str | None:
    """The input of a binary node that is not `name` (None if `name` is not exactly one of them)."""
    ins = list(node.input)
    if len(ins) != 2 or ins.count(name) != 1:
        return None
    return ins[1] if ins[0] == name else ins[0]


def _scaled_input(consts, node) -> str | None:
    """x, if `node` is x / sqrt(2) or x * (1 / sqrt(2))."""
    if len(node.input) != 2:
        return None
    a, b = node.input
    if node.op_type == "Div":
        return a if _scalar(consts, b, _SQRT2) else None
    if node.op_type == "Mul":
        return a if _scalar(consts, b, 1 / _SQRT2) else (b if _scalar(consts, a, 1 / _SQRT2) else None)
    return None


def fuse_gelu(model):
    """`model` with each erf-form GELU replaced by one Gelu node: a rewritten copy, or `model`
    itself when nothing matches."""
    import onnx
    from onnx import helper

    graph = model.graph
    consts = _constants(graph)
    nodes = list(graph.node)  # one wrapper object per node, so identity (`is`, id) is stable below
    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in graph.output}

    def only_use(name: str):
        c = consumers.get(name, [])
        return c[0] if len(c) == 1 and name not in graph_outputs else None

    remove, replace = set(), {}
    for erf in nodes:
        if erf.op_type != "Erf" or erf.domain not in ("", "ai.onnx"):
            continue
        scale = producer.get(erf.input[0])
        if scale is None or only_use(scale.output[0]) is not erf or len(scale.input) != 2:
            continue
        x = _scaled_input(consts, scale)
        if x is None:
            continue
        add = only_use(erf.output[0])
        if add is None or add.op_type != "Add" or not _scalar(consts, _other(add, erf.output[0]) or "", 1.0):
            continue
        m1 = only_use(add.output[0])
        if m1 is None or m1.op_type != "Mul":
            continue
        f1 = _other(m1, add.output[0])  # x, 0.5, or x * 0.5
        if f1 is None:
            continue
        if f1 == x or _scalar(consts, f1, 0.5):  # (x * (1 + erf)) * 0.5, or (0.5 * (1 + erf)) * x
            last = only_use(m1.output[0])
            f2 = _other(last, m1.output[0]) if last is not None and last.op_type == "Mul" else None
            if f2 is None or not ((f1 == x and _scalar(consts, f2, 0.5)) or (f1 != x and f2 == x)):
                continue
            chain = [scale, erf, add, m1, last]
        else:  # (x * 0.5) * (1 + erf)
            half, last = producer.get(f1), m1
            h = _other(half, x) if half is not None and half.op_type == "Mul" and only_use(f1) is m1 else None
            if h is None or not _scalar(consts, h, 0.5):
                continue
            chain = [scale, erf, add, half, m1]
        remove.update(id(n) for n in chain)
        replace[id(last)] = helper.make_node("Gelu", [x], [last.output[0]], name=f"{erf.name or 'erf'}_gelu")
    if not replace:
        return model
    kept = [replace[id(n)] if id(n) in replace else n for n in nodes if id(n) in replace or id(n) not in remove]
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(kept)
    return out
