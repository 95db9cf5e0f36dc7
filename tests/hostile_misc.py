"""Hostile-input generators for what is neither a .pt2 payload (tests/hostile_pt2.py) nor a
calibration set or profile (tests/hostile_inputs.py): broken and unusual ONNX models, non-finite
outputs, an artifact of another model, output paths that cannot be written, user files in --out,
entry points that exit.

Every `make_<case>(tmp) -> Case` builds its inputs in `tmp` (tiny ONNX graphs made with
onnx.helper, milliseconds each) and returns the CLI arguments and what must happen; the corpus
test (tests/test_hostile_corpus.py) runs them. A case that cannot be set up on this machine calls
pytest.skip with the reason.
"""
from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hostile_case import Case

PROFILE = 'name = "misc"\nthreads = 1\n\n[formats.ort]\nprecisions = [{precisions}]\n\n[latency]\nwarmup = 1\nruns = 2\n'


# --- helpers ---------------------------------------------------------------------------------

def onnx_model(path: Path, nodes, inputs, outputs, inits=(), domains=()) -> Path:
    """Save a one-graph ONNX model (opset 17, IR 8) built from onnx.helper pieces."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(list(nodes), path.stem, list(inputs), list(outputs), initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), *(helper.make_opsetid(d, 1) for d in domains)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tensor(name: str, shape, elem: str = "FLOAT"):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, getattr(TensorProto, elem), list(shape))


def const(name: str, value) -> object:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def node(op: str, ins, outs, **attrs):
    from onnx import helper

    return helper.make_node(op, list(ins), list(outs), name=outs[0], **attrs)


def relu_model(path: Path) -> Path:
    """x (1, 4) -> relu -> y (1, 4)."""
    return onnx_model(path, [node("Relu", ["x"], ["y"])], [tensor("x", [1, 4])], [tensor("y", [1, 4])])


def calib_npz(path: Path, **arrays) -> Path:
    np.savez(path, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    return path


def profile(tmp: Path, precisions=("fp32",)) -> Path:
    p = tmp / "profile.toml"
    p.write_text(PROFILE.format(precisions=", ".join(f'"{q}"' for q in precisions)), encoding="utf-8")
    return p


def x_calib(tmp: Path, n: int = 20) -> Path:
    return calib_npz(tmp / "calib.npz", x=np.random.default_rng(0).uniform(1, 2, (n, 4)))


def build_args(tmp: Path, model: Path, calib: Path | None = None, prof: Path | None = None, out: Path | None = None) -> list[str]:
    return ["build", str(model), "-c", str(calib or x_calib(tmp)), "-t", str(prof or profile(tmp)), "-o", str(out or tmp / "out"), "-q"]


def ort_artifact(onnx_path: Path, dest: Path) -> Path:
    """An .ort file of `onnx_path`, written by onnxruntime itself (no edgepack build needed)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(dest)
    so.add_session_config_entry("session.save_model_format", "ORT")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return dest


# --- non-finite outputs ----------------------------------------------------------------------

def make_source_gives_inf(tmp: Path) -> Case:
    """The SOURCE computes log(x - x) = log(0) = -Inf on finite input: bad input naming the sample."""
    m = onnx_model(tmp / "log0.onnx", [node("Sub", ["x", "x"], ["d"]), node("Log", ["d"], ["y"])], [tensor("x", [1, 4])], [tensor("y", [1, 4])])
    return Case(build_args(tmp, m), 3, expect_text="Inf")


def make_source_gives_nan(tmp: Path) -> Case:
    """The source computes 0/0 = NaN for every sample (x/x at x = 0 is not possible with finite
    input of ones, so: (x - x) / (x - x))."""
    nodes = [node("Sub", ["x", "x"], ["d"]), node("Div", ["d", "d"], ["y"])]
    m = onnx_model(tmp / "zero_by_zero.onnx", nodes, [tensor("x", [1, 4])], [tensor("y", [1, 4])])
    return Case(build_args(tmp, m), 3, expect_text="NaN")


def make_source_exp_overflow(tmp: Path) -> Case:
    """exp(1000 * x) overflows float32 in the source itself."""
    m = onnx_model(tmp / "exp.onnx", [node("Mul", ["x", "k"], ["a"]), node("Exp", ["a"], ["y"])], [tensor("x", [1, 4])], [tensor("y", [1, 4])], [const("k", 1000.0)])
    return Case(build_args(tmp, m), 3, expect_text="Inf")


FP16_NEXT_ABOVE_ONE = 1.0 + 2.0**-10  # 1.0009765625: exact in fp16 and fp32


def fp16_nonfinite_model(tmp: Path) -> tuple[Path, Path]:
    """y = log(x - c), c = 1.0006, which fp16 rounds UP to 1.0009765625. Samples 0-9 hold
    x = 1.0009765625 (artifact: log(0) = -Inf) and 1.0008766 (artifact: log(<0) = NaN) in columns
    0-1 / 2-3; samples 10-19 hold x = 1.5 (finite everywhere). The fp32 source is finite on all."""
    m = onnx_model(tmp / "fp16_edge.onnx", [node("Sub", ["x", "c"], ["d"]), node("Log", ["d"], ["y"])], [tensor("x", [1, 4])], [tensor("y", [1, 4])], [const("c", 1.0006)])
    x = np.full((20, 4), 1.5, np.float32)
    x[:10, :2] = FP16_NEXT_ABOVE_ONE
    x[:10, 2:] = FP16_NEXT_ABOVE_ONE - 1e-4
    return m, calib_npz(tmp / "edge_calib.npz", x=x)


def make_artifact_only_nonfinite_fp16(tmp: Path) -> Case:
    """Only the ort fp16 ARTIFACT gives NaN/-Inf (its constant is rounded past the input): the
    cell fails parity (exit 1), report.json stays strict JSON, the failure counts the values."""
    m, calib = fp16_nonfinite_model(tmp)
    return Case(build_args(tmp, m, calib, profile(tmp, ("fp16",))), 1, expect_text="non-finite values")


# --- shapes and ops ----------------------------------------------------------------------------

def make_nms_data_dependent_shape(tmp: Path) -> Case:
    """NonMaxSuppression: the output's first dimension depends on the scores (exit 4, not 70)."""
    from onnx import numpy_helper

    inits = [
        numpy_helper.from_array(np.array([6], np.int64), "max_out"),
        const("iou", [0.5]),
        const("score_min", [0.5]),
    ]
    m = onnx_model(
        tmp / "nms.onnx",
        [node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score_min"], ["selected"])],
        [tensor("boxes", [1, 6, 4]), tensor("scores", [1, 1, 6])],
        [tensor("selected", ["K", 3], "INT64")],
        inits,
    )
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 1, (20, 6, 4))
    boxes[..., 2:] += boxes[..., :2]
    calib = calib_npz(tmp / "nms_calib.npz", boxes=boxes, scores=rng.uniform(0, 1, (20, 1, 6)))
    return Case(build_args(tmp, m, calib), 4, expect_text="NonMaxSuppression")


def make_custom_domain_op(tmp: Path) -> Case:
    """An op from a custom domain that no runtime has: unsupported op (exit 4), not bad input."""
    m = onnx_model(tmp / "custom.onnx", [node("FancyRelu", ["x"], ["y"], domain="com.example")], [tensor("x", [1, 4])], [tensor("y", [1, 4])], domains=["com.example"])
    return Case(build_args(tmp, m), 4, expect_text="com.example:FancyRelu")


def make_check_artifact_of_other_input(tmp: Path) -> Case:
    """`check` an .ort of a model with another input name and shape (z: 1x8) against relu (x: 1x4)."""
    other = onnx_model(tmp / "other.onnx", [node("MatMul", ["z", "w"], ["v"])], [tensor("z", [1, 8])], [tensor("v", [1, 2])], [const("w", np.ones((8, 2)))])
    art = ort_artifact(other, tmp / "other.ort")
    return Case(["check", str(art), "-m", str(relu_model(tmp / "relu.onnx")), "-c", str(x_calib(tmp)), "-q"], 3, expect_text="other.ort")


def make_check_artifact_of_other_outputs(tmp: Path) -> Case:
    """Same input, but the artifact gives 2 values per sample where the source gives 4."""
    other = onnx_model(tmp / "x4y2.onnx", [node("MatMul", ["x", "w"], ["y"])], [tensor("x", [1, 4])], [tensor("y", [1, 2])], [const("w", np.ones((4, 2)))])
    art = ort_artifact(other, tmp / "x4y2.ort")
    return Case(["check", str(art), "-m", str(relu_model(tmp / "relu.onnx")), "-c", str(x_calib(tmp)), "-q"], 3, expect_text="x4y2.ort")


def make_check_artifact_with_fewer_outputs(tmp: Path) -> Case:
    """The source has two outputs, the artifact one."""
    two = onnx_model(tmp / "two.onnx", [node("Relu", ["x"], ["y"]), node("Neg", ["x"], ["n"])], [tensor("x", [1, 4])], [tensor("y", [1, 4]), tensor("n", [1, 4])])
    art = ort_artifact(relu_model(tmp / "relu.onnx"), tmp / "relu.ort")
    return Case(["check", str(art), "-m", str(two), "-c", str(x_calib(tmp)), "-q"], 3, expect_text="relu.ort")


# --- broken model files ----------------------------------------------------------------------

def _model_file(tmp: Path, name: str, data: bytes) -> Case:
    p = tmp / name
    p.write_bytes(data)
    return Case(build_args(tmp, p), 3, expect_text=name, keep=[p])


def make_onnx_truncated(tmp: Path) -> Case:
    raw = relu_model(tmp / "full.onnx").read_bytes()
    return _model_file(tmp, "truncated.onnx", raw[: len(raw) // 2])


def make_onnx_random_bytes(tmp: Path) -> Case:
    return _model_file(tmp, "random.onnx", np.random.default_rng(1).integers(0, 256, 700, dtype=np.uint8).tobytes())


def make_onnx_empty(tmp: Path) -> Case:
    return _model_file(tmp, "empty.onnx", b"")


def make_onnx_is_a_zip(tmp: Path) -> Case:
    zpath = tmp / "zipped.onnx"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("model.onnx", relu_model(tmp / "inner.onnx").read_bytes())
    return Case(build_args(tmp, zpath), 3, expect_text="zip", keep=[zpath])


def make_onnx_is_a_folder(tmp: Path) -> Case:
    """A folder named like a model (also the stand-in for an unreadable file when running as root)."""
    d = tmp / "model.onnx"
    d.mkdir()
    return Case(build_args(tmp, d), 3, expect_text="folder")


def make_onnx_unreadable(tmp: Path) -> Case:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root reading the file (make_onnx_is_a_folder covers the path)")
    p = relu_model(tmp / "locked.onnx")
    p.chmod(0)
    return Case(build_args(tmp, p), 3, expect_text="permission denied", teardown=[lambda: p.chmod(0o644)])


def make_onnx_graph_without_outputs(tmp: Path) -> Case:
    m = onnx_model(tmp / "no_out.onnx", [node("Relu", ["x"], ["y"])], [tensor("x", [1, 4])], [])
    return Case(build_args(tmp, m), 3, expect_text="no_out.onnx")


# --- output paths --------------------------------------------------------------------------

def make_out_name_too_long(tmp: Path) -> Case:
    """--out whose last component exceeds NAME_MAX (255 bytes): ENAMETOOLONG is a usage error."""
    out = tmp / ("o" * 300)
    return Case(build_args(tmp, relu_model(tmp / "relu.onnx"), out=out), 2, expect_text="o" * 40)


def make_out_path_too_long(tmp: Path) -> Case:
    """--out nested past PATH_MAX (4096 bytes), each component short."""
    out = tmp.joinpath(*(["d" * 200] * 22))
    return Case(build_args(tmp, relu_model(tmp / "relu.onnx"), out=out), 2, expect_text="too long")


def make_out_on_full_disk(tmp: Path) -> Case:
    """--out inside a 200 KB tmpfs that a 1.2 MB model cannot fit: exit 2 "disk full"."""
    mnt = tmp / "tiny_fs"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}); disk-full needs root with mount rights")
    w = np.random.default_rng(0).standard_normal((4, 75000)).astype(np.float32)  # 1.2 MB of weights
    m = onnx_model(tmp / "big.onnx", [node("MatMul", ["x", "w"], ["y"])], [tensor("x", [1, 4])], [tensor("y", [1, 75000])], [const("w", w)])
    return Case(
        build_args(tmp, m, out=mnt / "out"),
        2,
        expect_text="disk full",
        teardown=[lambda: subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True, timeout=30)],
    )


def make_out_holds_user_report_json(tmp: Path) -> Case:
    """--out is a user folder that happens to hold a report.json beside photos: never replaced."""
    out = tmp / "holiday"
    out.mkdir()
    photo, report = out / "photo.jpg", out / "report.json"
    photo.write_bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    report.write_text('{"mine": true}\n')
    return Case(build_args(tmp, relu_model(tmp / "relu.onnx"), out=out), 2, expect_text="holiday", keep=[photo, report])


def make_out_is_a_file(tmp: Path) -> Case:
    f = tmp / "notes.txt"
    f.write_text("my notes\n")
    return Case(build_args(tmp, relu_model(tmp / "relu.onnx"), out=f), 2, expect_text="notes.txt", keep=[f])


# --- entry points --------------------------------------------------------------------------

def _entry_module(tmp: Path, name: str, body: str) -> None:
    (tmp / f"{name}.py").write_text(body, encoding="utf-8")


def make_entry_point_calls_sys_exit(tmp: Path) -> Case:
    """An entry point that calls sys.exit(0) instead of returning: bad input, not a silent 70."""
    _entry_module(tmp, "exits_entry", "import sys\n\ndef model():\n    sys.exit(0)\n")
    calib = calib_npz(tmp / "c.npz", x=np.ones((10, 4)))
    return Case(build_args(tmp, Path("exits_entry:model"), calib), 3, expect_text="sys.exit")


def make_entry_point_exits_on_import(tmp: Path) -> Case:
    _entry_module(tmp, "exits_on_import", "import sys\nsys.exit(3)\n\ndef model():\n    pass\n")
    calib = calib_npz(tmp / "c.npz", x=np.ones((10, 4)))
    return Case(build_args(tmp, Path("exits_on_import:model"), calib), 3, expect_text="sys.exit")


def make_inspect_truncated_onnx(tmp: Path) -> Case:
    raw = relu_model(tmp / "full.onnx").read_bytes()
    p = tmp / "cut.onnx"
    p.write_bytes(raw[:-7])
    return Case(["inspect", str(p)], 3, expect_text="cut.onnx", keep=[p])


def make_check_artifact_truncated(tmp: Path) -> Case:
    art = ort_artifact(relu_model(tmp / "relu.onnx"), tmp / "relu.ort")
    cut = tmp / "cut.ort"
    cut.write_bytes(art.read_bytes()[:100])
    return Case(["check", str(cut), "-m", str(tmp / "relu.onnx"), "-c", str(x_calib(tmp)), "-q"], 3, expect_text="cut.ort", keep=[cut])


def make_check_artifact_is_a_folder(tmp: Path) -> Case:
    """A folder named like a .tflite artifact."""
    d = tmp / "model.tflite"
    d.mkdir()
    return Case(["check", str(d), "-m", str(relu_model(tmp / "relu.onnx")), "-c", str(x_calib(tmp)), "-q"], 3, expect_text="model.tflite")


def make_check_tflite_random_bytes(tmp: Path) -> Case:
    p = tmp / "noise.tflite"
    p.write_bytes(np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return Case(["check", str(p), "-m", str(relu_model(tmp / "relu.onnx")), "-c", str(x_calib(tmp)), "-q"], 3, expect_text="noise.tflite", keep=[p])


# Cases that build or import torch for several seconds and repeat what a fast case covers: slow tier.
# (make_artifact_only_nonfinite_fp16 runs in the fast tier as test_artifact_nonfinite_report.)
for _slow in (make_source_gives_nan, make_source_exp_overflow, make_entry_point_exits_on_import, make_artifact_only_nonfinite_fp16):
    _slow.slow = True
