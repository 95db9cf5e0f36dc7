"""Real exports that broke the .ort route: opset 11 models (paddle2onnx style) in per-channel int8,
and graphs on which ONNX Runtime's EP usability checker crashes (coverage must become a note)."""
import numpy as np
import pytest

from conftest import write_profile, write_stacked

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

PROFILE = """
name = "t"
threads = 1
[formats.ort]
precisions = ["fp32", "int8"]
[latency]
warmup = 0
runs = 2
[validation]
max_samples = 12
"""


def _conv_add_model(path, opset: int):
    """Conv -> Add(bias as a separate initialiser, as paddle2onnx writes it) -> Relu -> Conv, at `opset`."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.standard_normal((1, 8, 1, 1)).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 8, 3, 3)).astype(np.float32) * 0.2, "w2")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Add", ["c1", "b1"], ["a1"], name="bias1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1, 1, 1, 1], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        [w1, b1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_opset11_per_channel_int8_ort_loads_and_keeps_parity(tmp_path):
    import edgepack

    model = _conv_add_model(tmp_path / "old.onnx", opset=11)
    calib = write_stacked(tmp_path / "calib", 30, (3, 16, 16), name="x")
    rep = edgepack.build(str(model), calib, [write_profile(tmp_path / "t.toml", PROFILE)], tmp_path / "out")
    res = {r.artifact.precision: r for r in rep.results}
    int8 = res["int8"]
    assert "opset 11 -> 13" in int8.artifact.route
    sess = ort.InferenceSession(str(tmp_path / "out" / int8.file), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["x"]
    assert int8.parity.outputs[0].min_cosine >= 0.99, int8.parity.outputs
    assert res["fp32"].parity.outputs[0].max_abs <= 1e-4
    assert "opset" not in res["fp32"].artifact.route


def test_upgrade_is_skipped_for_new_opsets(tmp_path):
    from edgepack.formats.ort_mobile.quantize import upgrade_for_per_channel

    model = _conv_add_model(tmp_path / "new.onnx", opset=17)
    assert upgrade_for_per_channel(model, tmp_path / "up.onnx") is None
    assert not (tmp_path / "up.onnx").exists()
    old = _conv_add_model(tmp_path / "old.onnx", opset=11)
    assert upgrade_for_per_channel(old, tmp_path / "up.onnx") == "opset 11 -> 13 (per-channel DequantizeLinear)"
    assert next(o.version for o in onnx.load(str(tmp_path / "up.onnx")).opset_import if o.domain == "") == 13


def test_ep_coverage_checker_crash_becomes_a_note(tmp_path):
    """A file the checker cannot even shape-infer: coverage is 'unknown (reason)', never an exception."""
    from edgepack.formats.ort_mobile.coverage import coverage_notes, ep_coverage

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07not a real model")
    cov = ep_coverage(broken, ["nnapi", "coreml"])
    assert set(cov) == {"nnapi", "coreml"}
    assert all(v["error"].startswith("ONNX Runtime's usability checker failed") for v in cov.values())
    notes = coverage_notes(cov)
    assert len(notes) == 2 and all("coverage unknown" in n for n in notes)


def test_xnnpack_coverage_of_an_unloadable_model_is_a_note():
    pytest.importorskip("ai_edge_litert")
    from edgepack.runtimes.litert import coverage_note, xnnpack_coverage

    cov = xnnpack_coverage(b"\x18\x00\x00\x00TFL3" + b"\x00" * 40)
    assert set(cov) == {"error"} and cov["error"]
    assert coverage_note(cov).startswith("XNNPACK coverage unknown (")
