"""Detector heads through the ONNX bridge and litert-torch (issue #9's search for litert-torch
conversion failures on YOLO-style heads).

Found: YOLOv5's `(wh * 2) ** 2` on its 1x3xHxWx2 tensor is a 5-D POW with a scalar exponent;
LiteRT's POW broadcasts up to 4-D and litert-torch failed ("failed to legalize operation 'tfl.pow'
that was explicitly marked illegal"). The bridge now writes x**2/x**3 as products, x**0.5 as sqrt,
and any other power of a tensor of rank > 4 on flattened operands.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent / "sources"))

from onnx_parity import assert_parity, make_model  # noqa: E402


def _pow5d():
    """Sigmoid -> Pow(2), Pow(0.5), Pow(1.7), and Pow by a broadcast tensor, all on 1x3x8x8x2."""
    from onnx import helper as h

    n = h.make_node
    nodes = [n("Sigmoid", ["x"], ["s"]), n("Pow", ["s", "two"], ["p2"]), n("Pow", ["s", "half"], ["ph"]),
             n("Pow", ["s", "odd"], ["po"]), n("Pow", ["s", "per_anchor"], ["pa"]),
             n("Concat", ["p2", "ph", "po", "pa"], ["out"], axis=-1)]
    inits = {"two": np.float32(2.0), "half": np.float32(0.5), "odd": np.float32(1.7),
             "per_anchor": np.array([1.0, 2.5, 0.3], np.float32).reshape(1, 3, 1, 1, 1)}
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8, 2)).astype(np.float32)}
    return make_model(nodes, feeds, ["out"], inits, opset=13, out_shapes={"out": [1, 3, 8, 8, 8]}), feeds


def _tflite(model, feeds) -> bytes:
    import torch

    from edgepack.formats.tflite.routes import import_litert_torch
    from edgepack.sources.onnx_torch import to_torch

    module = to_torch(model, {k: v.shape for k, v in feeds.items()}, {k: "float32" for k in feeds}, where="t.onnx")
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    ep = torch.export.export(module, args, strict=False)
    return bytes(import_litert_torch().convert(ep.module(), args).model_content())


def _run_tflite(content: bytes, feeds) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content)
    it.allocate_tensors()
    for d, v in zip(it.get_input_details(), feeds.values()):
        it.set_tensor(d["index"], v)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def test_pow_of_a_5d_tensor_matches_onnxruntime_in_the_bridge():
    model, feeds = _pow5d()
    assert_parity(model, feeds, atol=1e-5)


def test_pow_of_a_5d_tensor_converts_to_tflite():
    pytest.importorskip("litert_torch")
    import onnxruntime as ort

    from edgepack.formats.tflite.flatbuf import read_graph

    model, feeds = _pow5d()
    content = _tflite(model, feeds)
    ops = read_graph(content).op_histogram()
    assert ops.get("POW") == 2 and ops.get("SQRT") == 1, ops  # 1.7 and the per-anchor tensor stay POW (flattened)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(_run_tflite(content, feeds), want, atol=1e-5, rtol=1e-5)
