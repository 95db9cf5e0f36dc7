"""Tiny ONNX models built in code for the arm64 emulation tests (helpers; no tests here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def qlinearconv_u8(path: Path, cin: int = 16, cout: int = 32, hw: int = 12, seed: int = 0) -> tuple[Path, dict]:
    """A u8 QLinearConv (u8 activations and weights, zero points 128): the model and its parameters."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    p = {
        "w": rng.integers(0, 256, size=(cout, cin, 3, 3)).astype(np.uint8),
        "b": rng.integers(-2000, 2000, size=(cout,)).astype(np.int32),
        "x_scale": 0.02, "x_zp": 128, "w_scale": 0.01, "w_zp": 128, "y_scale": 0.5, "y_zp": 128,
    }
    inits = [
        numpy_helper.from_array(np.array(p["x_scale"], np.float32), "x_scale"),
        numpy_helper.from_array(np.array(p["x_zp"], np.uint8), "x_zp"),
        numpy_helper.from_array(p["w"], "w"),
        numpy_helper.from_array(np.array(p["w_scale"], np.float32), "w_scale"),
        numpy_helper.from_array(np.array(p["w_zp"], np.uint8), "w_zp"),
        numpy_helper.from_array(np.array(p["y_scale"], np.float32), "y_scale"),
        numpy_helper.from_array(np.array(p["y_zp"], np.uint8), "y_zp"),
        numpy_helper.from_array(p["b"], "b"),
    ]
    node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp", "b"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "qconv", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, cin, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, cout, hw, hw])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path, p


def qlinearconv_reference(x: np.ndarray, p: dict) -> np.ndarray:
    """The exact integer result: int64 accumulation, one float rescale, round half to even, clip."""
    import torch

    xi = torch.tensor(x.astype(np.int64) - p["x_zp"], dtype=torch.float64)  # sums stay exact in float64
    wi = torch.tensor(p["w"].astype(np.int64) - p["w_zp"], dtype=torch.float64)
    acc = torch.nn.functional.conv2d(xi, wi, padding=1).numpy() + p["b"].reshape(1, -1, 1, 1)
    scale = np.float32(p["x_scale"]) * np.float32(p["w_scale"]) / np.float32(p["y_scale"])
    return np.clip(np.rint(acc * scale) + p["y_zp"], 0, 255).astype(np.int64)


def conv_fp32(path: Path, cin: int = 8, width: int = 16, hw: int = 12, seed: int = 0) -> Path:
    """Two fp32 3x3 convolutions with a ReLU between (random weights), built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((width, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
    w2 = (rng.standard_normal((width, width, 3, 3)) / np.sqrt(width * 9)).astype(np.float32)
    b = rng.standard_normal(width).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width, hw, hw])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
