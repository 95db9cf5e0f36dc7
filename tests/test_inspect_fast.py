"""`edgepack inspect` reads every format without torch, TensorFlow or coremltools.

Each reader runs in a fresh interpreter (subprocess) and the test asserts the heavy libraries are
not in sys.modules afterwards; the fields it reports are checked against the real runtime's view
of the same file (onnxruntime, ai-edge-litert, coremltools), loaded in this test process.
Speed is measured by benchmarks/inspect_speed.py, not asserted here.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections import Counter

import pytest

from conftest import DIGITS_DATA, DIGITS_ONNX, DIGITS_PT2, ROOT, run_cli, write_profile

HEAVY = ("torch", "tensorflow", "keras", "coremltools", "onnxruntime", "jax", "litert_torch")
PROBE = (
    "import json, sys\n"
    "from edgepack.cli import main\n"
    "rc = main(['inspect', '--json', sys.argv[1]])\n"
    "print('PROBE ' + json.dumps({'rc': rc, 'heavy': [m for m in %r if m in sys.modules]}))\n" % (HEAVY,)
)

ORT_PROFILE = """
name = "inspect-ort"
threads = 1
[formats.ort]
precisions = ["fp32", "int8"]
mobile_eps = []
[latency]
warmup = 1
runs = 1
[validation]
max_samples = 30
"""

ALL_PROFILE = ORT_PROFILE.replace('name = "inspect-ort"', 'name = "inspect-all"') + """
[formats.tflite]
precisions = ["fp32", "int8"]
layout = "nhwc"
[formats.coreml]
precisions = ["fp16", "int8_weights"]
deployment_target = "iOS17"
compute_precision = "fp16"
io_dtype = "fp32"
"""


def inspect_isolated(path) -> dict:
    """`edgepack inspect --json PATH` in a fresh interpreter: the JSON and the heavy modules it imported."""
    proc = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    out, probe = proc.stdout.rsplit("PROBE ", 1)
    probe = json.loads(probe)
    assert probe["rc"] == 0, proc.stderr
    assert probe["heavy"] == [], f"inspect {path} imported {probe['heavy']}"
    return json.loads(out)


def _io(info: dict, key: str) -> list[tuple]:
    return [(t["name"], t["shape"], t["dtype"]) for t in info[key]]


def _artifacts(out) -> dict[tuple[str, str], object]:
    report = json.loads((out / "report.json").read_text())
    return {(a["format"], a["precision"]): out / a["file"] for a in report["artifacts"]}


@pytest.fixture(scope="module")
def ort_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("inspect_ort")
    prof = write_profile(d / "p.toml", ORT_PROFILE)
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", str(prof), "-o", str(d / "out"))
    assert code == 0, err
    return _artifacts(d / "out")


def test_ort_fields_match_onnxruntime_and_no_heavy_imports(ort_build):
    import onnxruntime as ort

    for prec in ("fp32", "int8"):
        path = ort_build[("ort", prec)]
        info = inspect_isolated(path)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [(i.name, i.shape) for i in sess.get_inputs()] == [(n, s) for n, s, _ in _io(info, "inputs")]
        assert [(o.name, o.shape) for o in sess.get_outputs()] == [(n, s) for n, s, _ in _io(info, "outputs")]
        assert _io(info, "inputs") == [("image", [1, 1, 8, 8], "float32")]
        assert _io(info, "outputs") == [("output", [1, 10], "float32")]
        assert info["kind"] == "ONNX Runtime Mobile (.ort)" and info["size_bytes"] == path.stat().st_size
        assert info["details"]["ort_format_version"] and "ai.onnx" in info["details"]["opsets"]
        assert info["details"]["layout"].startswith("the source model's")
    fp32 = inspect_isolated(ort_build[("ort", "fp32")])
    assert fp32["quantization"] == "none (float)" and fp32["weight_dtypes"]["float32"] == 8  # 3 conv + 1 gemm, weight and bias
    assert sum(n for op, n in fp32["op_histogram"].items() if op.endswith("Conv")) == 3
    int8 = inspect_isolated(ort_build[("ort", "int8")])
    assert int8["quantization"].startswith("quantised (") and int8["weight_dtypes"].get("int8", 0) >= 4
    assert any("Quantize" in op or op.startswith("com.microsoft:Q") for op in int8["op_histogram"])


def test_onnx_reader_imports_no_runtime():
    info = inspect_isolated(DIGITS_ONNX)
    assert _io(info, "inputs") == [("image", [1, 1, 8, 8], "float32")]
    assert info["op_histogram"] == {"Conv": 3, "Relu": 3, "MaxPool": 1, "Reshape": 1, "Gemm": 1}


def test_text_shows_layout_and_metadata(ort_build):
    code, out, err = run_cli("inspect", str(ort_build[("ort", "fp32")]))
    assert code == 0, err
    from edgepack.inspect import inspect_file, text_lines

    lines = text_lines(inspect_file(ort_build[("ort", "fp32")]))
    assert "layout: the source model's (.ort keeps it; manifest.json records it)" in lines
    assert "edgepack metadata: none in this file" in lines
    assert all(len(ln) <= 100 for ln in lines[1:])


# --- .keras: config.json read from the zip, no Keras ---------------------------------------------


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    keras = pytest.importorskip("keras")
    d = tmp_path_factory.mktemp("inspect_keras")
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(5, name="logits")(x)).save(str(d / "cnn.keras"))
    a, b = keras.Input(shape=(4,), name="a"), keras.Input(shape=(6,), name="b")
    c = keras.layers.Concatenate()([a, b])
    keras.Model([a, b], [keras.layers.Dense(3, name="head1")(c), keras.layers.Softmax(name="probs")(keras.layers.Dense(2)(c))]).save(str(d / "two.keras"))
    seq = keras.Sequential([keras.Input(shape=(10,), name="x"), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2, name="y")])
    seq.save(str(d / "seq.keras"))
    return d


def test_keras_cnn(keras_files):
    info = inspect_isolated(keras_files / "cnn.keras")
    assert info["kind"].startswith("Keras model (.keras, Keras 3.")
    assert _io(info, "inputs") == [("image", [None, 16, 16, 3], "float32")]
    assert _io(info, "outputs") == [("logits", [None, 5], "float32")]
    assert info["op_histogram"] == {"Conv2D": 1, "MaxPooling2D": 1, "GlobalAveragePooling2D": 1, "Dense": 1}
    assert info["weight_dtypes"] == {"float32": 4}  # conv kernel+bias, dense kernel+bias (from model.weights.h5)
    assert info["details"]["layout"] == "nhwc" and info["details"]["model_class"] == "Functional"


def test_keras_two_inputs_two_outputs_and_sequential(keras_files):
    from edgepack.sources.base import load_source

    info = inspect_isolated(keras_files / "two.keras")
    assert _io(info, "inputs") == [("a", [None, 4], "float32"), ("b", [None, 6], "float32")]
    assert _io(info, "outputs") == [("head1", [None, 3], "float32"), ("probs", [None, 2], "float32")]
    src = load_source(str(keras_files / "two.keras"))  # Keras itself agrees
    assert [(t.name, list(t.shape)) for t in src.inputs] == [(n, s) for n, s, _ in _io(info, "inputs")]
    assert [list(t.shape) for t in src.outputs] == [s for _, s, _ in _io(info, "outputs")]
    seq = inspect_isolated(keras_files / "seq.keras")
    assert _io(seq, "inputs") == [("x", [None, 10], "float32")] and _io(seq, "outputs") == [("y", [None, 2], "float32")]
    assert seq["op_histogram"] == {"Dense": 2} and seq["details"]["model_class"] == "Sequential"


def test_keras_text_output(keras_files):
    from edgepack.inspect import inspect_file, text_lines

    code, _, err = run_cli("inspect", str(keras_files / "cnn.keras"))
    assert code == 0, err
    lines = text_lines(inspect_file(keras_files / "cnn.keras"))
    assert "  image: float32 [None, 16, 16, 3]" in lines and "layout: nhwc" in lines and "      1  Conv2D" in lines


# --- damaged files: one-line errors, exit 3 -------------------------------------------------------


@pytest.mark.parametrize(
    "name, payload, needle",
    [
        ("bad.ort", b"\x00" * 64, "not an ORT-format model"),
        ("bad.tflite", b"TFL3" * 8, "rebuild it with edgepack build"),
        ("bad.keras", b"PK\x03\x04 not really", "not a .keras file"),
    ],
)
def test_damaged_files_are_bad_input(tmp_path, name, payload, needle):
    p = tmp_path / name
    p.write_bytes(payload)
    code, _, err = run_cli("inspect", str(p))
    assert code == 3, err
    assert err.strip().startswith("edgepack: error: ") and len(err.strip().splitlines()) == 1 and needle in err, err
    assert str(p) in err and "Traceback" not in err


def test_damaged_mlpackage_and_keras_config(tmp_path):
    pkg = tmp_path / "m.mlpackage"
    (pkg / "Data" / "com.apple.CoreML").mkdir(parents=True)
    (pkg / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(b"\x0a\xff\xff\xff\xff\x0f")  # length past the end
    code, _, err = run_cli("inspect", str(pkg))
    assert code == 3 and "its model spec is damaged" in err and str(pkg) in err, err
    (pkg / "Data" / "com.apple.CoreML" / "model.mlmodel").unlink()
    code, _, err = run_cli("inspect", str(pkg))
    assert code == 3 and "not a readable .mlpackage (no Data/com.apple.CoreML/model.mlmodel)" in err, err
    k = tmp_path / "k.keras"
    with zipfile.ZipFile(k, "w") as zf:
        zf.writestr("config.json", "{not json")
    code, _, err = run_cli("inspect", str(k))
    assert code == 3 and "config.json is not valid JSON" in err, err


def test_protobuf_reader_decodes_packed_and_unpacked_fields():
    from edgepack.formats.coreml.spec_reader import _ints, fields

    # field 1 packed [3, 300, 1], field 1 again unpacked 7, field 2 string "ab"
    buf = bytes([0x0A, 4, 3, 0xAC, 0x02, 1, 0x08, 7, 0x12, 2]) + b"ab"
    f = fields(buf)
    assert _ints(f, 1) == [3, 300, 1, 7] and f[2] == [b"ab"]


# --- .tflite and .mlpackage: built once (slow), read without their converters ---------------------


@pytest.fixture(scope="module")
def all_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("inspect_all")
    prof = write_profile(d / "p.toml", ALL_PROFILE)
    code, _, err = run_cli("build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", str(prof), "-o", str(d / "out"))
    assert code == 0, err
    return _artifacts(d / "out")


@pytest.mark.slow
def test_tflite_fields_match_litert(all_build):
    from ai_edge_litert.interpreter import Interpreter

    for prec in ("fp32", "int8"):
        path = all_build[("tflite", prec)]
        info = inspect_isolated(path)
        it = Interpreter(model_path=str(path))
        runner = it.get_signature_runner()
        ins = runner.get_input_details()
        assert [(n, list(v["shape"])) for n, v in ins.items()] == [(n, s) for n, s, _ in _io(info, "inputs")]
        assert _io(info, "inputs") == [("image", [1, 8, 8, 1], "float32")]
        assert info["details"]["layout"] == "nhwc (source nchw)"
        assert info["details"]["edgepack_metadata"]["precision"] == prec
        assert info["op_histogram"]["CONV_2D"] + info["op_histogram"].get("DEPTHWISE_CONV_2D", 0) == 3
    assert inspect_isolated(all_build[("tflite", "int8")])["quantization"].startswith("full integer: int8 activations")


@pytest.mark.slow
def test_mlpackage_fields_match_coremltools(all_build):
    from edgepack._coremltools import coremltools

    ct = coremltools()
    for prec in ("fp16", "int8_weights"):
        path = all_build[("coreml", prec)]
        info = inspect_isolated(path)
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        assert [f.name for f in spec.description.input] == [t["name"] for t in info["inputs"]]
        assert [f.name for f in spec.description.output] == [t["name"] for t in info["outputs"]]
        assert _io(info, "inputs") == [("image", [1, 1, 8, 8], "float32")]
        assert info["details"]["metadata"] == dict(spec.description.metadata.userDefined)
        assert info["details"]["edgepack_metadata"]["precision"] == prec and info["details"]["layout"] == "nchw"
        assert info["kind"] == f"Core ML ML program (.mlpackage, spec v{spec.specificationVersion})"
        prog = spec.mlProgram.functions["main"]
        ops = [op.type for op in prog.block_specializations[prog.opset].operations if op.type != "const"]
        assert info["op_histogram"] == dict(Counter(ops)) and info["op_histogram"]["conv"] == 3
    assert inspect_isolated(all_build[("coreml", "fp16")])["quantization"] == "float16 weights"
    q = inspect_isolated(all_build[("coreml", "int8_weights")])
    assert q["quantization"] == "compressed weights (constexpr_affine_dequantize)" and q["weight_dtypes"]["constexpr_affine_dequantize"] == 3
