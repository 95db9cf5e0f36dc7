"""Ops that LiteRT cannot run with its built-in kernels are one-line errors that name the op."""
import pytest

from conftest import run_cli, save_pt2, write_stacked
from tfl_helpers import profile

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _custom_op_model(code: str) -> bytes:
    """A one-op .tflite whose op is CUSTOM `code` (x[1,4] -> y[1,4])."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = fb.ModelT()
    m.version = 3
    oc = fb.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
    oc.customCode = code
    m.operatorCodes = [oc]
    tensors = []
    for name in ("x", "y"):
        t = fb.TensorT()
        t.shape, t.type, t.name, t.buffer = [1, 4], fb.TensorType.FLOAT32, name, 0
        tensors.append(t)
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    sg = fb.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = tensors, [0], [1], [op]
    m.subgraphs, m.buffers = [sg], [fb.BufferT()]
    return bytes(fu.convert_object_to_bytearray(m))


def test_flex_ops_are_refused_unless_the_profile_allows_them():
    pytest.importorskip("ai_edge_litert")
    from edgepack.errors import ExitCode, UnsupportedOpError
    from edgepack.formats.tflite.flatbuf import read_graph
    from edgepack.formats.tflite.op_checks import check_flex, flex_ops
    from edgepack.runtimes.litert import open_checked

    buf = _custom_op_model("FlexCumprod")
    graph = read_graph(buf)
    assert flex_ops(graph) == ["Cumprod"]
    with pytest.raises(UnsupportedOpError) as e:
        check_flex(graph, allow_flex=False, where="m.pt2")
    assert e.value.op == "Cumprod" and e.value.exit_code == ExitCode.CONVERSION
    assert "'Cumprod'" in str(e.value) and "allow_flex" in str(e.value) and "\n" not in str(e.value)
    check_flex(graph, allow_flex=True, where="m.pt2")  # allowed: the app links the Flex delegate
    with pytest.raises(UnsupportedOpError) as e:  # and the host interpreter, which has no Flex delegate, names it
        open_checked(buf, "m.tflite")
    assert e.value.op == "FlexCumprod" and "Flex" in str(e.value)
    with pytest.raises(UnsupportedOpError) as e:
        open_checked(_custom_op_model("MyOp"), "m.tflite")
    assert e.value.op == "MyOp" and "no kernel" in str(e.value)


def test_op_without_a_litert_kernel_is_a_one_line_cli_error(tmp_path):
    pytest.importorskip("litert_torch")
    import torch

    class Cumprod(torch.nn.Module):  # tf.Cumprod is a Flex op; litert-torch has no lowering for it
        def forward(self, x):
            return torch.cumprod(x, 1) + 1.0

    pt2 = save_pt2(Cumprod().eval(), (torch.rand(1, 8),), tmp_path / "cumprod.pt2")
    calib = write_stacked(tmp_path / "calib", 20, (8,), name="x")  # 8 held out (validation.min_samples)
    prof = profile(tmp_path / "p.toml", ["fp32"])
    code, out, err = run_cli("build", str(pt2), "--calibration", str(calib), "--target", str(prof), "--out", str(tmp_path / "o"), "-q")
    assert code == 4, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "'aten.cumprod'" in lines[0] and lines[0].startswith("edgepack: error:")


def test_onnx_op_outside_the_bridge_is_named(tmp_path):
    pytest.importorskip("litert_torch")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [
            helper.make_node("Hardmax", ["x"], ["h"]),
            helper.make_node("Reshape", ["h", "s"], ["m"]),
            helper.make_node("Det", ["m"], ["z"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [])],
        [helper.make_tensor("s", TensorProto.INT64, [2], [2, 2])],
    )
    path = tmp_path / "hardmax.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    calib = write_stacked(tmp_path / "calib", 20, (4,), name="x")
    code, out, err = run_cli("build", str(path), "--calibration", str(calib), "--target", str(profile(tmp_path / "p.toml", ["fp32"])), "--out", str(tmp_path / "o"), "-q")
    assert code == 4 and len(err.strip().splitlines()) == 1, err
    assert f"{path}: op 'Hardmax' (and 'Det') is not supported by edgepack's ONNX->PyTorch bridge" in err


def test_runtime_error_parsing():
    from edgepack.formats.tflite.op_checks import from_lowering_error, from_runtime_error

    e = from_lowering_error(RuntimeError("Lowering not found: aten.erfinv.default\n"), "m.pt2", "litert-torch 0.10.0")
    assert e.op == "aten.erfinv" and "m.pt2: op 'aten.erfinv'" in str(e)
    assert from_lowering_error(RuntimeError("something else"), "m", "c") is None
    e = from_runtime_error(RuntimeError("Didn't find op for builtin opcode 'STABLEHLO_SORT' version '1'."), "m.tflite")
    assert e.op == "STABLEHLO_SORT"
