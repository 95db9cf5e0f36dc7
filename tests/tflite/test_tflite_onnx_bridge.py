"""The ONNX -> PyTorch bridge (edgepack.sources.onnx_torch) matches onnxruntime on small graphs."""
import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _w(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32) * 0.3


def _cnn(h, rng):
    n = h.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], pads=[0, 0, 1, 1], strides=[2, 2]),
        n("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn"], epsilon=1e-3),
        n("Clip", ["bn", "lo", "hi"], ["r6"]),
        n("Conv", ["r6", "wd"], ["dw"], group=8, pads=[1, 1, 1, 1]),
        n("HardSwish", ["dw"], ["hs"]),
        n("MaxPool", ["hs"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 2], pads=[0, 0, 1, 1], count_include_pad=1),
        n("GlobalAveragePool", ["ap"], ["gp"]),
        n("Flatten", ["gp"], ["fl"]),
        n("Gemm", ["fl", "wf", "bf"], ["gm"], transB=0, alpha=0.5),
        n("Softmax", ["gm"], ["y"], axis=-1),
    ]
    inits = {
        "w1": _w(rng, 8, 3, 3, 3), "b1": _w(rng, 8), "g": 1 + _w(rng, 8), "be": _w(rng, 8), "mu": _w(rng, 8),
        "var": np.abs(1 + _w(rng, 8)), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32),
        "wd": _w(rng, 8, 1, 3, 3), "wf": _w(rng, 8, 5), "bf": _w(rng, 5),
    }  # fmt: skip
    return nodes, inits, {"x": [1, 3, 11, 11]}, {"y": [1, 5]}


def _shapes(h, rng):
    n = h.make_node
    nodes = [
        n("Shape", ["x"], ["s"]),
        n("Gather", ["s", "i0"], ["s0"], axis=0),
        n("Unsqueeze", ["s0", "ax0"], ["s0u"]),
        n("Concat", ["s0u", "m1"], ["shape"], axis=0),
        n("Reshape", ["x", "shape"], ["flat"]),
        n("MatMul", ["flat", "wm"], ["mm"]),
        n("Add", ["mm", "bm"], ["ad"]),
        n("LeakyRelu", ["ad"], ["lr"], alpha=0.1),
        n("Unsqueeze", ["lr", "ax2"], ["u3"]),
        n("Transpose", ["u3"], ["tr"], perm=[0, 2, 1]),
        n("ReduceMean", ["tr", "ax2"], ["rm"], keepdims=1),
        n("Split", ["tr", "sp"], ["a", "b"], axis=2),
        n("Mul", ["a", "sc"], ["am"]),
        n("Sub", ["am", "b"], ["d"]),
        n("Sigmoid", ["d"], ["sg"]),
        n("Slice", ["sg", "st", "en", "ax2"], ["sl"]),
        n("Div", ["sl", "rm"], ["y"]),
    ]
    inits = {
        "i0": np.array(0, np.int64), "ax0": np.array([0], np.int64), "m1": np.array([-1], np.int64),
        "wm": _w(rng, 24, 12), "bm": _w(rng, 12), "ax2": np.array([2], np.int64),
        "sp": np.array([6, 6], np.int64), "sc": np.array(1.5, np.float32),
        "st": np.array([1], np.int64), "en": np.array([5], np.int64),
    }  # fmt: skip
    return nodes, inits, {"x": [1, 4, 6]}, {"y": [1, 1, 4]}


def _upsample(h, rng):
    n = h.make_node
    nodes = [
        n("Resize", ["x", "", "scales"], ["up"], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        n("Resize", ["x", "", "", "sizes"], ["bl"], mode="linear", coordinate_transformation_mode="half_pixel"),
        n("Concat", ["up", "bl"], ["cat"], axis=1),
        n("Pad", ["cat", "pads"], ["pd"], mode="constant"),
        n("ConvTranspose", ["pd", "wt"], ["ct"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
        n("Relu", ["ct"], ["y"]),
    ]
    inits = {
        "scales": np.array([1, 1, 2, 2], np.float32), "sizes": np.array([1, 2, 8, 8], np.int64),
        "pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "wt": _w(rng, 4, 3, 3, 3),
    }  # fmt: skip
    return nodes, inits, {"x": [1, 2, 4, 4]}, {"y": [1, 3, 22, 22]}


@pytest.mark.parametrize("case", [_cnn, _shapes, _upsample])
def test_bridge_matches_onnxruntime(tmp_path, case):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from onnx import TensorProto, helper, numpy_helper

    from edgepack.sources.onnx_torch import to_torch

    rng = np.random.default_rng(0)
    nodes, inits, ins, outs = case(helper, rng)
    g = helper.make_graph(
        nodes,
        case.__name__,
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in ins.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in outs.items()],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    feeds = {k: rng.standard_normal(v).astype(np.float32) for k, v in ins.items()}
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    module = to_torch(path, {k: tuple(v) for k, v in ins.items()}, {k: "float32" for k in ins})
    args = tuple(torch.from_numpy(feeds[k]) for k in ins)
    with torch.no_grad():
        got = module(*args).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
    ep = torch.export.export(module, args)  # what litert-torch will trace
    np.testing.assert_allclose(ep.module()(*args).detach().numpy(), want, atol=2e-5, rtol=1e-4)
    consts = {n.target for n in ep.graph.nodes if n.op == "placeholder"}
    assert len(consts) > 1  # weights arrive as buffers, not as traced-in literals
