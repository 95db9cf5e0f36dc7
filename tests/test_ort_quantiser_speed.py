"""quantiser_speed.fast_rewiring: ONNX Runtime's quantiser gives the same bytes with the indexed
rewiring as with its own walk, on a graph with the cases that rewiring meets (a tensor read twice
by one node, a quantised graph output that another node reads, weights shared by two nodes, int16
activations, per-channel weights), and the index follows appends and rebuilds on any other change."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _graph_model():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 8, 1, 1)).astype(np.float32), "w2")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Add", ["r1", "r1"], ["sq"], name="add_twice"),  # one node reads r1 twice
        helper.make_node("Conv", ["sq", "w2"], ["feat"], name="conv2"),  # feat: a graph output ...
        helper.make_node("Conv", ["feat", "w2"], ["c3"], name="conv3"),  # ... that conv3 reads; w2 shared
        helper.make_node("GlobalAveragePool", ["c3"], ["pool"], name="pool"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("feat", TensorProto.FLOAT, [1, 8, 8, 8]), helper.make_tensor_value_info("pool", TensorProto.FLOAT, [1, 8, 1, 1])],
        [w, w2, b],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class _Reader:
    def __init__(self, n=4):
        rng = np.random.default_rng(1)
        self.it = iter([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.it, None)


@pytest.mark.parametrize("int16", [False, True])
def test_indexed_rewiring_gives_the_quantisers_own_bytes(tmp_path, int16):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.onnx_model import ONNXModel

    from edgepack.formats.ort_mobile import quantiser_speed as qs

    src = tmp_path / "m.onnx"
    onnx.save(_graph_model(), str(src))
    extra = {"TensorQuantOverrides": {"r1": [{"quant_type": QuantType.QInt16}], "feat": [{"quant_type": QuantType.QInt16}]}, "UseQDQContribOps": True} if int16 else {}
    original = ONNXModel.replace_input_of_all_nodes
    out = {}
    calls = []
    for mode in ("theirs", "walk", "index"):
        ctx = contextlib.nullcontext() if mode == "theirs" else qs.fast_rewiring(walk=mode == "walk")
        with ctx:
            if mode == "index":
                assert ONNXModel.replace_input_of_all_nodes is qs._replace_input_of_all_nodes
                inner = ONNXModel.replace_input_of_all_nodes

                def counted(self, old, new):
                    calls.append(old)
                    return inner(self, old, new)

                ONNXModel.replace_input_of_all_nodes = counted
            try:
                quantize_static(str(src), str(tmp_path / f"{mode}.onnx"), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, extra_options=extra)
            finally:
                if mode == "index":
                    ONNXModel.replace_input_of_all_nodes = qs._replace_input_of_all_nodes
        out[mode] = (tmp_path / f"{mode}.onnx").read_bytes()
    assert ONNXModel.replace_input_of_all_nodes is original  # put back on leaving
    assert out["walk"] == out["theirs"] and out["index"] == out["theirs"]
    assert {"w", "w2", "x", "r1", "sq", "c3"} <= set(calls)  # the weights and the activations went through the index
    q = onnx.load(str(tmp_path / "index.onnx"))
    add = next(n for n in q.graph.node if n.name == "add_twice")
    assert add.input[0] == add.input[1] != "r1" and add.input[0].endswith("_DequantizeLinear_Output")  # both reads rewired
    (made_feat,) = [n for n in q.graph.node if "feat" in n.output]
    assert made_feat.op_type == "DequantizeLinear"  # the graph output, read by conv3 too, is its DequantizeLinear's
    assert sum(n.op_type == "DequantizeLinear" and (n.domain == "com.microsoft") == int16 for n in q.graph.node) >= 2


def test_the_index_follows_appends_and_rebuilds_after_a_removal_or_a_refill():
    from onnx import helper

    from edgepack.formats.ort_mobile import quantiser_speed as qs

    class Model:  # what _replace_input_of_all_nodes reads of an ONNXModel
        def __init__(self, m):
            self.model = m

    m = Model(_graph_model())
    qs._replace_input_of_all_nodes(m, "r1", "r1_dq")
    idx = m._edgepack_readers
    assert [list(n.input) for n in m.model.graph.node if n.name == "add_twice"] == [["r1_dq", "r1_dq"]]
    m.model.graph.node.extend([helper.make_node("Relu", ["sq"], ["late"], name="late")])  # appended: indexed on the next call
    qs._replace_input_of_all_nodes(m, "sq", "sq_dq")
    assert m._edgepack_readers is idx and idx.count == 7
    assert [list(n.input) for n in m.model.graph.node if n.name in ("conv2", "late")] == [["sq_dq", "w2"], ["sq_dq"]]
    m.model.graph.node.remove(m.model.graph.node[5])  # pool removed, one appended: the last indexed node moved
    m.model.graph.node.extend([helper.make_node("Relu", ["c3"], ["c3r"], name="c3r")])
    qs._replace_input_of_all_nodes(m, "c3", "c3_dq")
    assert m._edgepack_readers is not idx  # built again
    assert [list(n.input) for n in m.model.graph.node if n.name == "c3r"] == [["c3_dq"]]
    idx = m._edgepack_readers
    nodes = [type(n)() for n in m.model.graph.node]
    for a, b in zip(nodes, m.model.graph.node):
        a.CopyFrom(b)
    m.model.graph.ClearField("node")  # cleared and refilled with copies (a topological sort does this)
    m.model.graph.node.extend(nodes)
    qs._replace_input_of_all_nodes(m, "feat", "feat_dq")
    assert m._edgepack_readers is not idx
    assert [list(n.input) for n in m.model.graph.node if n.name == "conv3"] == [["feat_dq", "w2"]]
    assert [list(n.input) for n in m.model.graph.node if n.name == "conv2"] == [["sq_dq", "w2"]]  # its output is no input
