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


def _yolo(version: str):
    """A YOLOv8-style (DFL box head: Split, Softmax over the 16 bins, anchors - lt / + rb) or
    YOLOv5-style (5-D view/permute, sigmoid, (xy*2 + grid)*stride, (wh*2)**2*anchor, Tile) detector
    on a small backbone with nearest and bilinear upsampling and Concat."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    nc = 5
    torch.manual_seed(0)

    def cbs(i, o, s=1):
        bn = nn.BatchNorm2d(o)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        return nn.Sequential(nn.Conv2d(i, o, 3, s, 1), bn, nn.SiLU())

    class Det(nn.Module):
        def __init__(self):
            super().__init__()
            self.b1, self.b2, self.b3, self.f2, self.f1 = cbs(3, 8, 2), cbs(8, 16, 2), cbs(16, 16, 2), cbs(32, 16), cbs(24, 16)
            no = 64 + nc if version == "v8" else 3 * (5 + nc)
            self.heads = nn.ModuleList(nn.Conv2d(16, no, 1) for _ in range(3))
            self.dfl = nn.Conv2d(16, 1, 1, bias=False)
            self.dfl.weight.data[:] = torch.arange(16, dtype=torch.float32).view(1, 16, 1, 1)
            anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
            self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(3, 3, 2))

        def forward(self, images):
            p1 = self.b1(images)
            p2 = self.b2(p1)
            p3 = self.b3(p2)
            n2 = self.f2(torch.cat([F.interpolate(p3, scale_factor=2.0, mode="nearest"), p2], 1))
            n1 = self.f1(torch.cat([F.interpolate(n2, scale_factor=2.0, mode="bilinear"), p1], 1))
            feats = [h(f) for h, f in zip(self.heads, (n1, n2, p3))]
            return self.v8(feats) if version == "v8" else self.v5(feats)

        def v8(self, feats):
            anchors, strides = [], []
            for f, st in zip(feats, (2, 4, 8)):
                hh, ww = f.shape[2:]
                gy, gx = torch.meshgrid(torch.arange(hh, dtype=torch.float32) + 0.5, torch.arange(ww, dtype=torch.float32) + 0.5, indexing="ij")
                anchors.append(torch.stack((gx, gy), -1).view(-1, 2))
                strides.append(torch.full((hh * ww, 1), float(st)))
            anchors, strides = torch.cat(anchors).transpose(0, 1).unsqueeze(0), torch.cat(strides).transpose(0, 1)
            box, cls = torch.cat([f.view(1, 64 + nc, -1) for f in feats], 2).split((64, nc), 1)
            a = box.shape[2]
            lt, rb = self.dfl(box.view(1, 4, 16, a).transpose(2, 1).softmax(1)).view(1, 4, a).chunk(2, 1)
            dbox = torch.cat(((2 * anchors - lt + rb) / 2, lt + rb), 1) * strides
            return torch.cat((dbox, cls.sigmoid()), 1)

        def v5(self, feats):
            z = []
            for i, f in enumerate(feats):
                ny, nx = f.shape[2:]
                f = f.view(1, 3, 5 + nc, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
                yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
                grid = torch.stack((xv, yv), 2).expand(1, 3, ny, nx, 2).float() - 0.5
                xy, wh, conf = f.sigmoid().split((2, 2, nc + 1), 4)
                wh = (wh * 2) ** 2 * self.anchors[i].view(1, 3, 1, 1, 2)
                z.append(torch.cat(((xy * 2 + grid) * 2 ** (i + 1), wh, conf), 4).view(1, -1, 5 + nc))
            out = torch.cat(z, 1)
            return torch.cat([out[..., :4], out[..., 4:5] * out[..., 5:], out[..., -1:].tile(1, 1, 2)], -1)

    return Det().eval()


@pytest.mark.slow
@pytest.mark.parametrize("version,exporter", [("v8", "legacy-opset11"), ("v5", "dynamo")])
def test_yolo_head_fp32_tflite_matches_onnxruntime(tmp_path, version, exporter):
    """Measured here (edgepack 2026-12, litert-torch 0.10): both heads, and the same with the other
    exporter, convert with cosine >= 0.99999999; the v5 head failed before the Pow rewrite."""
    pytest.importorskip("litert_torch")
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent / "real_models"))
    from real_bridge import measure

    path = tmp_path / f"yolo{version}.onnx"
    x = torch.zeros(1, 3, 64, 64)
    if exporter == "dynamo":
        torch.onnx.export(_yolo(version), (x,), input_names=["images"], output_names=["output0"], dynamo=True, external_data=False).save(str(path))
    else:
        torch.onnx.export(_yolo(version), (x,), str(path), input_names=["images"], output_names=["output0"], opset_version=11, dynamo=False)
    result = measure(path, {}, cells=("tflite",))["tflite"]
    assert "error" not in result, result
    assert result["cosine"] >= 0.9999999, result
    assert result["max_abs"] < 1e-3, result
