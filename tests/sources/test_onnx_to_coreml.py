"""ONNX and Keras sources reach Core ML through their own exported_program() (the ONNX->PyTorch
bridge): converted by coremltools, run in edgepack's Core ML emulator, compared with the source."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnx_parity import make_model

pytest.importorskip("coremltools")
pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

from edgepack.errors import ConversionError, UnsupportedOpError  # noqa: E402

N = helper.make_node


def _cosine(a, b) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _to_coreml_and_run(src, feeds, tmp_path: Path) -> dict:
    from edgepack.formats.coreml.convert import convert
    from edgepack.runtimes.coreml_emulator import run_mlpackage

    model = convert(src, precision="fp32", target="iOS17", io_dtype="fp32", image=None, labels=None)
    pkg = tmp_path / "m.mlpackage"
    model.save(str(pkg))
    outs, _ = run_mlpackage(pkg, feeds)
    return outs


def _detector_onnx(path: Path, dims=(1, 3, 16, 16)) -> Path:
    """A small YOLO-style net: Conv, HardSwish, nearest Resize x2, Concat, Split, Sigmoid*Mul, Softmax."""
    rng = np.random.default_rng(0)
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    nodes = [
        N("Conv", ["images", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        N("HardSwish", ["c1"], ["a1"]),
        N("Resize", ["a1", "", "s"], ["up"], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        N("Concat", ["up", "images"], ["cat"], axis=1),
        N("Conv", ["cat", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        N("Reshape", ["c2", "shp"], ["r"]),
        N("Split", ["r", "sp"], ["xy", "cls"], axis=1),
        N("Sigmoid", ["xy"], ["sg"]),
        N("Mul", ["sg", "xy"], ["box"]),
        N("Softmax", ["cls"], ["prob"], axis=1),
        N("Concat", ["box", "prob"], ["out"], axis=1),
    ]
    inits = {"w1": w(8, 3, 3, 3), "b1": w(8), "s": np.array([1, 1, 2, 2], np.float32), "w2": w(6, 11, 3, 3),
             "shp": np.array([0, 6, -1], np.int64), "sp": np.array([2, 4], np.int64)}  # fmt: skip
    m = make_model(nodes, {"images": np.zeros(dims, np.float32)}, ["out"], inits, opset=14, out_shapes={"out": ["n", 6, "k"]})
    onnx.save(m, str(path))
    return path


def test_onnx_detector_reaches_core_ml_with_parity(tmp_path):
    from edgepack.sources.onnx_source import OnnxSource

    src = OnnxSource.load(str(_detector_onnx(tmp_path / "det.onnx")))
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    want = src.run({"images": x})[0]
    got = _to_coreml_and_run(src, {"images": x}, tmp_path)["out"]
    assert got.shape == want.shape == (1, 6, 256)
    assert _cosine(got, want) >= 0.9999
    assert np.abs(got - want).max() <= 1e-3
    assert src.exported_program() is src.exported_program()  # built once, asked by every format


def test_symbolic_dims_need_a_shape_and_say_how(tmp_path):
    from edgepack.sources.onnx_source import OnnxSource

    path = _detector_onnx(tmp_path / "dyn.onnx")
    m = onnx.load(str(path))
    for i, name in ((0, "batch"), (2, "height"), (3, "width")):
        m.graph.input[0].type.tensor_type.shape.dim[i].dim_param = name
    onnx.save(m, str(path))
    src = OnnxSource.load(str(path))
    with pytest.raises(ConversionError) as e:
        src.exported_program()
    assert str(e.value) == (
        f"{path}: input 'images' has a symbolic dimension 2 ('height') in ['batch', 3, 'height', 'width'], and the "
        "ONNX->PyTorch bridge needs static shapes; give --input-shape images=1,3,H,W"
    )
    ep = src.exported_program({"images": (1, 3, 32, 16)})
    assert list(ep.graph_signature.user_inputs) == ["images"]
    val = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == "images").meta["val"]
    assert tuple(val.shape) == (1, 3, 32, 16)


def test_unsupported_op_names_the_op_and_file(tmp_path):
    from edgepack.formats.coreml.convert import convert
    from edgepack.sources.onnx_source import OnnxSource

    m = make_model([N("Hardmax", ["x"], ["y"])], {"x": np.zeros((1, 4), np.float32)}, ["y"], opset=13, out_shapes={"y": [1, 4]})
    path = tmp_path / "hm.onnx"
    onnx.save(m, str(path))
    src = OnnxSource.load(str(path))
    with pytest.raises(UnsupportedOpError, match=rf"^{path}: op 'Hardmax' is not supported by edgepack's ONNX->PyTorch bridge") as e:
        convert(src, precision="fp32", target="iOS17", io_dtype="fp32", image=None, labels=None)
    assert e.value.exit_code == 4 and e.value.op == "Hardmax"


def test_keras_reaches_core_ml_through_its_onnx_route(tmp_path):
    keras = pytest.importorskip("keras")
    from edgepack.sources.keras_source import KerasSource

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="hard_silu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5, activation="softmax", name="probs")(x)
    path = tmp_path / "tiny.keras"
    keras.Model(inp, out).save(str(path))
    src = KerasSource.load(str(path))
    feeds = {"image": np.random.default_rng(2).random((1, 16, 16, 3), dtype=np.float32)}
    want = src.run(feeds)[0]
    ep = src.exported_program()
    assert "tf2onnx" in ep.edgepack_route and "ONNX->PyTorch bridge" in ep.edgepack_route
    got = _to_coreml_and_run(src, feeds, tmp_path)[src.outputs[0].name]
    assert got.shape == want.shape == (1, 5)
    assert _cosine(got, want) >= 0.9999
    assert np.abs(got - want).max() <= 1e-4
