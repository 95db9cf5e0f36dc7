"""The canonical .ort form (edgepack/formats/ort_mobile/canonical.py): saves made with address-space
layout randomisation on give one digest once canonical, and the canonical file is the same model."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgepack.errors import ConversionError
from edgepack.formats.ort_mobile.canonical import canonical_bytes, canonical_ort, read_tree, schema
from edgepack.formats.ort_mobile.convert import save_ort, write_config
from edgepack.formats.ort_mobile.inspect import inspect_ort, read_ort

ROOT = Path(__file__).resolve().parent.parent
# (precision, optimisation level) as the ort format builds them (fp16 keeps to "basic")
LEVELS = {"fp32": "all", "fp16": "basic", "int8": "all"}


def _cnn_onnx(path: Path) -> Path:
    """Conv-BN-Relu, strided Conv-Relu, MaxPool, Flatten, Gemm on (1, 3, 16, 16), built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    inits = [
        init("w1", 8, 3, 3, 3), init("b1", 8), init("g", 8), init("beta", 8), init("mean", 8),
        numpy_helper.from_array(np.abs(rng.standard_normal(8)).astype(np.float32) + 0.5, "var"),
        init("w2", 16, 8, 3, 3), init("b2", 16), init("wf", 10, 16 * 4 * 4), init("bf", 10),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mean", "var"], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny CNN as fp32, fp16 (edgepack's to_fp16) and int8 QDQ ONNX."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgepack.formats.ort_mobile.quantize import to_fp16

    d = tmp_path_factory.mktemp("canonical")
    fp32 = _cnn_onnx(d / "m.fp32.onnx")
    to_fp16(fp32, d / "m.fp16.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self._it = iter([{"image": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(fp32), str(d / "m.int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    return {p: d / f"m.{p}.onnx" for p in LEVELS}


# Saves in fresh interpreters with ASLR on (no setarch), heaps of different sizes before each save.
_CHILD = r"""
import hashlib, json, sys
from pathlib import Path
from edgepack.formats.ort_mobile.convert import save_ort
from edgepack.formats.ort_mobile.canonical import canonical_bytes
seed, out, models = int(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
junk = [bytearray(1 + (seed * 7919 + i * 104729) % 4000) for i in range(200 * seed)]
digests = {}
for precision, (src, level) in sorted(models.items()):
    ort = out / f"{precision}.{seed}.ort"
    save_ort(Path(src), ort, target_platform="arm", optimization=level)
    data = ort.read_bytes()
    digests[precision] = [hashlib.sha256(data).hexdigest(), hashlib.sha256(canonical_bytes(data)).hexdigest()]
print(json.dumps(digests))
"""


def test_saves_with_aslr_on_give_one_canonical_digest(models, tmp_path):
    arg = json.dumps({p: [str(models[p]), LEVELS[p]] for p in LEVELS})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONHASHSEED", None)
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(i), str(tmp_path), arg], env=env, stdout=subprocess.PIPE, text=True) for i in range(6)]
    runs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    for precision in LEVELS:
        canonical = {r[precision][1] for r in runs}
        assert len(canonical) == 1, (precision, [r[precision] for r in runs])
        # the file on disk matches: canonical_ort rewrites in place to exactly canonical_bytes
        one = tmp_path / f"{precision}.0.ort"
        canonical_ort(one)
        assert hashlib.sha256(one.read_bytes()).hexdigest() == canonical.pop()


def _outputs(path: Path, feeds: list[dict]) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [sess.run(None, f)[0] for f in feeds]


@pytest.mark.parametrize("precision", list(LEVELS))
def test_canonical_file_is_the_same_model(models, tmp_path, precision):
    original = tmp_path / f"m.{precision}.ort"
    save_ort(models[precision], original, target_platform="arm", optimization=LEVELS[precision])
    canon = tmp_path / "canon" / original.name
    canon.parent.mkdir()
    canon.write_bytes(canonical_bytes(original.read_bytes()))
    data = canon.read_bytes()
    assert data[4:8] == b"ORTM" and canonical_bytes(data) == data  # idempotent

    # the same tree (every field, every vector's order here) and the same reading by edgepack's inspector
    assert read_tree(original.read_bytes()) == read_tree(data)
    a, b = read_ort(original), read_ort(canon)
    assert a == b and sum(a["ops"].values()) >= 4
    if precision == "int8":  # the arm .ort keeps QDQ
        assert a["ops"].get("QuantizeLinear", 0) >= 1 and a["ops"].get("DequantizeLinear", 0) >= 1, a["ops"]
    assert inspect_ort(canon).details == inspect_ort(original).details

    # bit-identical outputs on random inputs
    rng = np.random.default_rng(7)
    feeds = [{"image": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(5)]
    for x, y in zip(_outputs(original, feeds), _outputs(canon, feeds)):
        assert x.shape == (1, 10) and x.dtype == y.dtype and x.tobytes() == y.tobytes()

    # the reduced-build operator config is the same
    assert write_config(original).read_text() == write_config(canon).read_text()
    assert "ai.onnx;" in write_config(canon).read_text()


def test_set_like_vectors_are_sorted_and_sorting_is_all_that_changes(models, tmp_path):
    """Shuffling the resolver's map entries gives another file and the same canonical bytes."""
    from edgepack.formats.ort_mobile.canonical import write_tree

    ort = tmp_path / "m.ort"
    save_ort(models["fp32"], ort, target_platform="arm", optimization="all")
    data = ort.read_bytes()
    tree = read_tree(data)
    entries = tree.values["KernelTypeStrResolver"].values["OpKernelTypeStrArgs"]
    ops = [e.values["OpId"] for e in entries]
    assert ops == sorted(ops) and len(ops) >= 3, ops
    entries.reverse()
    shuffled = write_tree(tree, b"ORTM")
    assert shuffled != canonical_bytes(data)
    assert canonical_bytes(shuffled) == canonical_bytes(data)


def test_schema_is_read_from_onnxruntime_generated_classes():
    sch = schema()
    tensor = {f.name: (f.slot, f.kind, f.elem, f.target) for f in sch.tables["Tensor"].fields}
    assert tensor["RawData"] == (4, "vector", "scalar", "B") and tensor["Dims"] == (2, "vector", "scalar", "q")
    assert sch.structs["EdgeEnd"] == (12, 4)
    assert len(sch.tables) >= 30


def test_damaged_file_is_a_one_line_conversion_error(tmp_path):
    bad = tmp_path / "broken.ort"
    bad.write_bytes(b"\x10\x00\x00\x00ORTM" + b"\xff" * 8)
    with pytest.raises(ConversionError) as err:
        canonical_ort(bad)
    text = str(err.value)
    assert text.startswith("broken.ort: could not re-serialise the .ort") and "\n" not in text
    assert bad.read_bytes() == b"\x10\x00\x00\x00ORTM" + b"\xff" * 8  # left as it was


def test_a_file_that_is_not_ort_is_named_in_the_error(tmp_path):
    other = tmp_path / "model.onnx.ort"
    other.write_bytes(b"\x08\x00\x00\x00TFL3" + b"\x00" * 16)
    with pytest.raises(ConversionError, match=r"^model\.onnx\.ort: not an ORT-format model \(no ORTM identifier\)$"):
        canonical_ort(other)
