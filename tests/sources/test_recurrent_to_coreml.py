"""Recurrent nets reach Core ML: PyTorch GRU/LSTM (.pt2) and ONNX GRU/LSTM (through the bridge),
converted by coremltools and run in edgepack's Core ML emulator."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import save_pt2
from onnx_parity import make_model

torch = pytest.importorskip("torch")
pytest.importorskip("coremltools")


def _coreml_outputs(src, feeds, tmp_path):
    from edgepack.formats.coreml.convert import convert
    from edgepack.runtimes.coreml_emulator import run_mlpackage

    pkg = tmp_path / "m.mlpackage"
    convert(src, precision="fp32", target="iOS17", io_dtype="fp32", image=None, labels=None).save(str(pkg))
    return list(run_mlpackage(pkg, feeds)[0].values())


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_pytorch_recurrent_layers_reach_core_ml(kind, tmp_path):
    from edgepack.sources.base import load_source

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(4, 6, num_layers=2, batch_first=True, bidirectional=True)
            self.head = torch.nn.Linear(12, 3)

        def forward(self, x):
            return self.head(self.rnn(x)[0])

    torch.manual_seed(0)
    src = load_source(str(save_pt2(Net().eval(), (torch.zeros(1, 5, 4),), tmp_path / "rnn.pt2")))
    x = np.random.default_rng(0).standard_normal((1, 5, 4)).astype(np.float32)
    want = src.run({src.inputs[0].name: x})[0]
    got = _coreml_outputs(src, {src.inputs[0].name: x}, tmp_path)[0]
    assert got.shape == want.shape == (1, 5, 3)
    assert np.abs(got - want).max() <= 1e-5


def test_onnx_bidirectional_gru_reaches_core_ml(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    from edgepack.sources.onnx_source import OnnxSource

    rng = np.random.default_rng(1)
    h = 5
    inits = {"W": rng.standard_normal((2, 3 * h, 4)).astype(np.float32) * 0.4, "R": rng.standard_normal((2, 3 * h, h)).astype(np.float32) * 0.4,
             "B": rng.standard_normal((2, 6 * h)).astype(np.float32) * 0.2}  # fmt: skip
    node = helper.make_node("GRU", ["x", "W", "R", "B"], ["y", "yh"], hidden_size=h, direction="bidirectional", linear_before_reset=1)
    x = rng.standard_normal((6, 1, 4)).astype(np.float32)
    m = make_model([node], {"x": x}, ["y", "yh"], inits, opset=14, out_shapes={"y": [6, 2, 1, h], "yh": [2, 1, h]})
    path = tmp_path / "gru.onnx"
    onnx.save(m, str(path))
    src = OnnxSource.load(str(path))
    want = src.run({"x": x})
    got = _coreml_outputs(src, {"x": x}, tmp_path)
    for w, g in zip(want, got):
        assert g.shape == w.shape
        assert np.abs(g - w).max() <= 1e-5
