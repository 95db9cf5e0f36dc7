"""The erf form of GELU (ONNX before opset 20) becomes one Gelu node before bridging (fusions.py),
so LiteRT gets its GELU builtin instead of litert-torch's ~30-op erf polynomial (PP-OCRv6's int8
output: cosine 0.35 with the polynomial)."""
from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent / "sources"))

from onnx_parity import assert_parity, make_model  # noqa: E402

R2 = math.sqrt(2.0)


def _gelus():
    """Three spellings of GELU that exporters write, and a near-GELU that must stay."""
    from onnx import helper as h

    n = h.make_node
    nodes = [
        *(n("MatMul", ["x", f"w{k}"], [f"a{k}"]) for k in "ABCD"),  # one input each (identical GELUs would be merged)
        # A: (a * (1 + erf(a / sqrt2))) * 0.5  -- PaddlePaddle's and torch.onnx's
        n("Div", ["aA", "r2"], ["a1"]), n("Erf", ["a1"], ["a2"]), n("Add", ["a2", "one"], ["a3"]), n("Mul", ["aA", "a3"], ["a4"]), n("Mul", ["a4", "half"], ["A"]),
        # B: (a * 0.5) * (1 + erf(a * (1/sqrt2)))
        n("Mul", ["aB", "ir2"], ["b1"]), n("Erf", ["b1"], ["b2"]), n("Add", ["one", "b2"], ["b3"]), n("Mul", ["aB", "half"], ["bh"]), n("Mul", ["bh", "b3"], ["B"]),
        # C: a * ((1 + erf(a / sqrt2)) * 0.5)
        n("Div", ["aC", "r2"], ["c1"]), n("Erf", ["c1"], ["c2"]), n("Add", ["c2", "one"], ["c3"]), n("Mul", ["c3", "half"], ["c4"]), n("Mul", ["c4", "aC"], ["C"]),
        # not a GELU: 0.4 instead of 0.5
        n("Div", ["aD", "r2"], ["d1"]), n("Erf", ["d1"], ["d2"]), n("Add", ["d2", "one"], ["d3"]), n("Mul", ["aD", "d3"], ["d4"]), n("Mul", ["d4", "notahalf"], ["D"]),
        n("Concat", ["A", "B", "C", "D"], ["y"], axis=-1),
        n("Add", ["y", "y"], ["out"]),
    ]
    rng = np.random.default_rng(0)
    inits = {**{f"w{k}": rng.standard_normal((16, 16)).astype(np.float32) for k in "ABCD"}, "r2": np.float32(R2), "ir2": np.float32(1 / R2),
             "one": np.float32(1.0), "half": np.float32(0.5), "notahalf": np.float32(0.4)}
    feeds = {"x": rng.standard_normal((1, 8, 16)).astype(np.float32) * 2}
    return make_model(nodes, feeds, ["out"], inits, opset=11), feeds


def test_every_spelling_of_gelu_becomes_one_node_and_others_stay():
    from edgepack.sources.onnx_torch.fusions import fuse_gelu

    model, _ = _gelus()
    fused = fuse_gelu(model)
    before, after = Counter(n.op_type for n in model.graph.node), Counter(n.op_type for n in fused.graph.node)
    assert (before["Erf"], before["Gelu"]) == (4, 0)  # the caller's model is not changed
    assert (after["Erf"], after["Gelu"]) == (1, 3)
    assert len(fused.graph.node) == len(model.graph.node) - 3 * 4


def test_intermediate_used_elsewhere_is_not_fused():
    from onnx import helper as h

    from edgepack.sources.onnx_torch.fusions import fuse_gelu

    n = h.make_node
    nodes = [n("Div", ["x", "r2"], ["t"]), n("Erf", ["t"], ["e"]), n("Add", ["e", "one"], ["p"]), n("Mul", ["x", "p"], ["m"]),
             n("Mul", ["m", "half"], ["g"]), n("Add", ["g", "e"], ["out"])]  # the Erf's output is read twice
    inits = {"r2": np.float32(R2), "one": np.float32(1.0), "half": np.float32(0.5)}
    model = make_model(nodes, {"x": np.zeros((1, 4), np.float32)}, ["out"], inits, opset=11)
    assert fuse_gelu(model) is model


def test_fused_bridge_matches_onnxruntime():
    model, feeds = _gelus()
    assert_parity(model, feeds, atol=1e-5)


def test_litert_gets_the_gelu_builtin(tmp_path):
    pytest.importorskip("litert_torch")
    import torch

    from edgepack.formats.tflite.flatbuf import read_graph
    from edgepack.formats.tflite.routes import import_litert_torch
    from edgepack.sources.onnx_torch import to_torch

    model, feeds = _gelus()
    module = to_torch(model, {"x": (1, 8, 16)}, {"x": "float32"}, where="t.onnx")
    ep = torch.export.export(module, (torch.from_numpy(feeds["x"]),), strict=False)
    content = bytes(import_litert_torch().convert(ep.module(), (torch.from_numpy(feeds["x"]),)).model_content())
    ops = read_graph(content).op_histogram()
    assert ops.get("GELU") == 3, ops
    assert ops.get("DIV", 0) <= 2, ops  # the one unfused erf's polynomial (litert-torch's: one or two DIVs)
