"""fp16 overflow and ONNX Runtime, told truthfully (#10, #12).

Measured: the arm64 ONNX Runtime (under qemu-aarch64, cortex-a76) computes an fp16 .onnx in fp16
(an intermediate above 65504 becomes inf; x86 gives a finite value), but edgepack's fp16 .ort is
saved on the x86 host, where ONNX Runtime puts fp32 casts around every op it has no fp16 kernel
for, and those casts are in the file: the .ort computes in fp32 on arm64 too, so no run here can
see the overflow. The ort fp16 cell says so in its parity notes."""
import json

import numpy as np
import pytest

from conftest import run_cli, save_pt2
from edgepack.runtimes.ort_fp16 import fp16_compute, fp16_note


def _fp16_mul_chain(path, *, half=True):
    """y = (x * 300) * 2^-8, with fp32 I/O and (half=True) fp16 compute between two Casts, as
    float16 conversion with keep_io_types writes it."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    dt, npdt = (T.FLOAT16, np.float16) if half else (T.FLOAT, np.float32)
    nodes = [
        h.make_node("Cast", ["x"], ["xh"], to=dt, name="graph_input_cast_0"),
        h.make_node("Mul", ["xh", "a"], ["t"], name="mul"),
        h.make_node("Mul", ["t", "b"], ["yh"], name="mul_1"),
        h.make_node("Cast", ["yh"], ["y"], to=T.FLOAT, name="graph_output_cast_0"),
    ]
    inits = [nh.from_array(np.array([300.0], npdt), "a"), nh.from_array(np.array([2.0**-8], npdt), "b")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 4])], [h.make_tensor_value_info("y", T.FLOAT, [1, 4])], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _save_ort(onnx_path, ort_path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(ort_path)
    so.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return ort_path


def test_an_fp16_ort_saved_on_x86_holds_fp32_casts_and_its_note_says_so(tmp_path):
    half = _save_ort(_fp16_mul_chain(tmp_path / "h.onnx"), tmp_path / "h.ort")
    # both Muls take float32 after ORT's inserted casts; graph_input/output casts are the model's own
    assert fp16_compute(half) == {"float16_ops": 0, "float32_ops": 2, "inserted_casts": 2}
    assert fp16_note(half) == (
        "fp16 computed in fp32 by this .ort: fp16 overflow (> 65504) cannot be seen here (it holds 2 fp32 casts "
        "that ONNX Runtime inserted when it saved the file on an x86 host, so 2 of its 2 ops take float32, "
        "on arm64 and on a phone too; only its weights are fp16)"
    )
    full = _save_ort(_fp16_mul_chain(tmp_path / "f.onnx", half=False), tmp_path / "f.ort")
    assert fp16_compute(full) == {"float16_ops": 0, "float32_ops": 2, "inserted_casts": 0}
    assert fp16_note(full) is None
    assert fp16_compute(tmp_path / "h.onnx") is None and fp16_note(tmp_path / "missing.ort") is None
    from edgepack.runtimes.base import get_runtime
    from edgepack.types import TensorSpec

    spec_in, spec_out = (TensorSpec("x", (1, 4), "float32"),), (TensorSpec("y", (1, 4), "float32"),)
    session = get_runtime("onnxruntime").open(half, threads=1, source_inputs=spec_in, source_outputs=spec_out)
    assert session.notes() == [fp16_note(half)]
    assert session.parity_failures() == []  # Session's default (only the Core ML emulator finds failures itself)
    (y,) = session.run({"x": np.full((1, 4), 300, np.float32)})
    assert np.isfinite(y).all() and y[0, 0] == pytest.approx(351.5, abs=0.1)  # 90000 / 256: fp32 inside


@pytest.mark.slow
def test_ort_fp16_overflow_on_an_arm_target(tmp_path, monkeypatch):
    """The arm64 ORT overflows on the fp16 .onnx; the fp16 .ort that edgepack builds for an arm
    target does not (bit-identical to the host, finite), passes, and its note says why."""
    from test_arm64_runtime import need_arm64

    need_arm64()
    monkeypatch.setenv("EDGEPACK_ARM64", "on")
    import onnxruntime as ort
    import torch

    from edgepack.arm64 import run_arm64

    onnx_path = _fp16_mul_chain(tmp_path / "h.onnx")
    x = {"x": np.full((1, 4), 300, np.float32)}  # 300 * 300 = 90000 > 65504
    host = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, x)[0]
    arm = run_arm64(onnx_path, [x], "cortex-a76").outputs[0][0]
    assert np.isfinite(host).all() and np.isinf(arm).all() and arm.size == 4  # arm64 ORT computes fp16

    class Overflow(torch.nn.Module):
        def forward(self, x):
            h = x * 300.0
            return (h * h) * 2.0**-14  # (300 x)^2 up to 8.1e5 for x in [1, 3]; y <= 50

    model = save_pt2(Overflow().eval(), (torch.ones(1, 4),), tmp_path / "overflow.pt2")
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).uniform(1, 3, (20, 4)).astype(np.float32))  # 8 held out
    prof = tmp_path / "p.toml"
    prof.write_text('name = "p"\n[latency]\nruns = 0\n[formats.ort]\nprecisions = ["fp16"]\n[emulation]\narm64 = true\nsamples = 2\n')
    code, out, err = run_cli("build", str(model), "-c", str(calib), "-t", str(prof), "-o", str(tmp_path / "o"))
    assert code == 0, err
    (cell,) = json.loads((tmp_path / "o" / "report.json").read_text())["artifacts"]
    parity, em = cell["parity"], cell["emulated"]
    assert parity["passed"] and parity["outputs"][0]["nonfinite_values"] == 0
    assert fp16_note(tmp_path / "o" / "p" / "overflow.fp16.ort") in parity["notes"]
    assert any(n.startswith("fp16 computed in fp32 by this .ort: ") and "3 of its 3 ops take float32" in n for n in parity["notes"])
    assert em["ran"] and em["samples"] == 2 and em["parity"]["passed"] and em["vs_host"]["bit_identical"]
    assert em["parity"]["outputs"][0]["nonfinite_values"] == 0
