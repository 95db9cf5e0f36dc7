"""Speed-ups around ONNX Runtime's QDQ quantiser, each giving the same model as without it.

ONNX Runtime 1.32's quantiser spends most of a quantisation of a big net in Python plumbing, not in
the numbers (cProfile, MiniLM ONNX, int8_auto .ort: 17 quantisations, 85 s):
- `ONNXModel.replace_input_of_all_nodes` walks every input of every node in Python for each
  tensor it quantises, quadratic in the graph (11 s). `fast_rewiring` swaps in the same
  replacements made through an index of the graph's readers (`_Readers`): a walk that only asked
  protobuf whether a node reads the tensor still took 5.4 s of 62 on the layout detector.
- `quantize_onnx_initializer` quantises each weight channel by channel in Python (22 s). Its
  result depends only on its arguments, so an int8_auto search, which quantises one model dozens of
  times with the same weight scales (weight_quant_params), keeps each weight's result
  (`QuantiserMemo`): keyed by the weight's bytes, its type, scale, zero point, axis and name.
- `quantize_static` first runs ONNX shape inference on the model file and loads its result, half
  a second per quantisation of MiniLM. `QuantiserMemo` keeps the inferred model of a file (by
  path, size and modification time) and hands each quantisation its own copy.
Each applies only inside its `with` block and puts the original back on leaving it. When a
later onnxruntime moves these names, they do nothing (the quantiser runs as it is).
"""
from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class _Readers:
    """tensor name -> the nodes of one graph that read it (the nodes themselves), for
    _replace_input_of_all_nodes. It follows the replacements it makes and indexes the nodes
    appended since it last looked; whenever the node list changed otherwise (a node removed, the
    list cleared and refilled: its last indexed node is no longer where it was), it is built
    again. An entry can go stale (a node rewired elsewhere, by replace_node_input), never
    missing for a tensor the quantiser rewires: those are the model's own tensors and
    initializers, which no rewiring introduces, so every hit is checked again before it is used."""

    def __init__(self, graph):
        self.graph, self.count, self.last, self.by_name = graph, 0, None, {}
        self.catch_up()

    def current(self) -> bool:
        nodes = self.graph.node
        return len(nodes) >= self.count and (self.count == 0 or nodes[self.count - 1] is self.last)

    def catch_up(self) -> None:
        nodes = self.graph.node
        for i in range(self.count, len(nodes)):
            node = nodes[i]
            for name in node.input:
                self.by_name.setdefault(name, []).append(node)
        self.count = len(nodes)
        self.last = nodes[self.count - 1] if self.count else None


def _replace_input_of_all_nodes(self, old_input_name, new_input_name):
    """ONNXModel.replace_input_of_all_nodes, the same replacements: only nodes that read the
    tensor, found by an index of the graph (_Readers) instead of a walk of every node."""
    graph = self.model.graph
    index = getattr(self, "_edgepack_readers", None)
    if index is None or index.graph is not graph or not index.current():
        index = self._edgepack_readers = _Readers(graph)
    else:
        index.catch_up()
    seen: set[int] = set()
    for node in index.by_name.pop(old_input_name, ()):
        if id(node) in seen:  # a node that reads the tensor twice is listed twice
            continue
        seen.add(id(node))
        if old_input_name in node.input:
            for j, name in enumerate(node.input):
                if name == old_input_name:
                    node.input[j] = new_input_name
            index.by_name.setdefault(new_input_name, []).append(node)


def _replace_input_walk(self, old_input_name, new_input_name):
    """The walk of every node that _replace_input_of_all_nodes replaced (tests compare the two)."""
    for node in self.model.graph.node:
        if old_input_name in node.input:
            for j, name in enumerate(node.input):
                if name == old_input_name:
                    node.input[j] = new_input_name


@contextlib.contextmanager
def _swapped(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(owner, name, None)
    if original is None or replacement is None:
        yield
        return
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


def fast_rewiring(walk: bool = False) -> contextlib.AbstractContextManager:
    """ONNXModel.replace_input_of_all_nodes, indexed (or with `walk`, the plain walk) inside the block."""
    from onnxruntime.quantization.onnx_model import ONNXModel

    return _swapped(ONNXModel, "replace_input_of_all_nodes", _replace_input_walk if walk else _replace_input_of_all_nodes)


INFERRED_KEPT = 2  # inferred models a memo keeps: a search quantises a prepared model and its opset-21 copy


class QuantiserMemo:
    """What the quantisations of one prepared model share: its quantised weights and its
    shape-inferred load, kept across them."""

    def __init__(self):
        self._done: dict[tuple, Any] = {}
        self._inferred: dict[tuple, Any] = {}
        self.hits = {"weights": 0, "loads": 0}  # what was reused

    @staticmethod
    def _key(weight, quant_type, zero_point, scale, axis, quant_weight_name, block_size) -> tuple:
        import numpy as np

        data = weight.raw_data or weight.SerializeToString()
        zp, sc = np.asarray(zero_point), np.asarray(scale)
        return (
            weight.name, hashlib.sha1(data, usedforsecurity=False).digest(), tuple(weight.dims), weight.data_type,
            int(quant_type), zp.dtype.str, zp.shape, zp.tobytes(), sc.dtype.str, sc.shape, sc.tobytes(),
            axis, quant_weight_name, block_size,
        )

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        import importlib

        from onnxruntime.quantization import qdq_quantizer

        # the module (the package's own `quantize` attribute is a function of that name)
        ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")

        with _swapped(qdq_quantizer, "quantize_onnx_initializer", self._weights(getattr(qdq_quantizer, "quantize_onnx_initializer", None))), \
                _swapped(ort_quantize, "load_model_with_shape_infer", self._loads(getattr(ort_quantize, "load_model_with_shape_infer", None))):
            yield

    def _loads(self, original):
        if original is None:
            return None
        from onnx import ModelProto

        def load_model_with_shape_infer(model_path):
            st = Path(model_path).stat()
            key = (str(Path(model_path).resolve()), st.st_size, st.st_mtime_ns)
            kept = self._inferred.get(key)
            if kept is None:
                while len(self._inferred) >= INFERRED_KEPT:  # the oldest goes (a model is big)
                    self._inferred.pop(next(iter(self._inferred)))
                kept = self._inferred[key] = original(model_path)
            else:
                self.hits["loads"] += 1
            out = ModelProto()
            out.CopyFrom(kept)  # the quantiser edits its model in place
            return out

        return load_model_with_shape_infer

    def _weights(self, original):
        if original is None:
            return None
        from onnx import TensorProto

        def quantize_onnx_initializer(weight, quant_type, zero_point, scale, axis=None, quant_weight_name=None, block_size=0):
            key = self._key(weight, quant_type, zero_point, scale, axis, quant_weight_name, block_size)
            kept = self._done.get(key)
            if kept is None:
                kept = self._done[key] = original(weight, quant_type, zero_point, scale, axis, quant_weight_name, block_size=block_size)
            else:
                self.hits["weights"] += 1
            out = TensorProto()
            out.CopyFrom(kept)  # the caller's own copy
            return out

        return quantize_onnx_initializer
