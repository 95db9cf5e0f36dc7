"""Default run: the digits example, .pt2 -> .tflite (every precision) and .ort from one command;
the digits .onnx and a 3-channel CNN with NHWC input, in fewer precisions."""
import json

import numpy as np
import pytest

from conftest import DIGITS_DATA, DIGITS_ONNX, run_cli
from tfl_helpers import ALL, INT8_LIKE, assert_variant_types, digits_build, profile, read_graph, report_by

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    pytest.importorskip("litert_torch")
    code, text, out = digits_build(tmp_path_factory.mktemp("tfl-digits"))
    assert code == 0, text
    return out, report_by(out)


def test_one_command_builds_tflite_and_ort(build):
    out, arts = build
    assert {f for f, _ in arts} == {"tflite", "ort"}
    for (fmt, prec), a in arts.items():
        assert (out / a["file"]).is_file() and a["file"].endswith(f".{prec}.{fmt}")
        assert a["passed"], (fmt, prec, a["parity"]["failures"])
    for prec in ALL:
        a = arts[("tflite", prec)]
        assert a["runtime"] == "litert" and "litert-torch" in a["route"] and "torch.export" in a["route"]
        assert a["tool_versions"]["ai-edge-litert"] and a["tool_versions"]["litert-torch"]
    assert "activation ranges by edgepack (minmax) over" in arts[("tflite", "int8")]["route"]


def test_parity_and_accuracy(build):
    _, arts = build
    fp32 = arts[("tflite", "fp32")]["parity"]
    assert fp32["outputs"][0]["max_abs"] <= 1e-4
    for prec in INT8_LIKE:
        p = arts[("tflite", prec)]["parity"]
        assert p["outputs"][0]["min_cosine"] >= 0.99, prec
        assert p["accuracy"] >= fp32["accuracy"] - 0.01, (prec, p["accuracy"], fp32["accuracy"])
    # the same calibration ranges as ORT's MinMax calibrator: identical int8 error
    ort = arts[("ort", "int8")]["parity"]["outputs"][0]["max_abs"]
    assert arts[("tflite", "int8")]["parity"]["outputs"][0]["max_abs"] == pytest.approx(ort, rel=0.05)


@pytest.mark.parametrize("precision", ALL)
def test_op_and_tensor_types(build, precision):
    out, arts = build
    assert_variant_types(out / arts[("tflite", precision)]["file"], precision)


def test_sizes_shrink(build):
    _, arts = build
    size = {p: arts[("tflite", p)]["size_bytes"] for f, p in arts if f == "tflite"}
    assert size["fp16"] < 0.6 * size["fp32"]
    assert size["int8"] < 0.4 * size["fp32"] and size["dynamic_int8"] < 0.4 * size["fp32"]


def test_metadata_inside_the_tflite_and_in_the_manifest(build):
    import edgepack
    from edgepack.formats.tflite import metadata

    out, arts = build
    path = out / arts[("tflite", "int8_io")]["file"]
    meta = metadata.read(path.read_bytes())
    labels = (DIGITS_DATA / "labels.txt").read_text().split()
    assert meta["edgepack_version"] == edgepack.__version__
    assert meta["labels"] == labels and meta["precision"] == "int8_io"
    assert meta["preprocess"]["layout"] == "nchw" and meta["preprocess"]["scale"] == pytest.approx(1 / 255)
    (inp,) = meta["inputs"]
    assert inp["name"] == "image" and inp["layout"] == "nchw" and inp["dtype"] == "int8"
    assert inp["quantization"]["scale"][0] > 0
    assert read_graph(path).metadata["labels.txt"].decode().split() == labels
    man = json.loads((out / "manifest.json").read_text())
    entry = next(a for a in man["artifacts"] if a["file"] == arts[("tflite", "int8_io")]["file"])
    assert entry["inputs"][0]["layout"] == "nchw" and entry["inputs"][0]["dtype"] == "int8"
    assert entry["inputs"][0]["quantization"] == {"scale": inp["quantization"]["scale"], "zero_point": inp["quantization"]["zero_point"]}
    assert man["labels"] == labels and man["edgepack_version"] == edgepack.__version__


def test_xnnpack_coverage_is_reported(build):
    _, arts = build
    fp32 = arts[("tflite", "fp32")]["details"]
    assert fp32["xnnpack"]["whole_graph"] and fp32["notes"][0].startswith("XNNPACK took the whole graph")
    i16 = arts[("tflite", "int16x8_io")]["details"]
    assert not i16["xnnpack"]["whole_graph"]  # XNNPACK has no 16x8 kernels
    assert "CONV_2D" in i16["xnnpack"]["left_on_builtin_kernels"] and "CONV_2D" in i16["notes"][0]
    md = (build[0] / "report.md").read_text()
    assert "XNNPACK took" in md


def test_runtime_quantises_inputs_and_dequantises_outputs(build):
    from edgepack.runtimes.base import get_runtime
    from edgepack.sources.base import load_source
    from conftest import DIGITS_PT2

    out, arts = build
    src = load_source(str(DIGITS_PT2))
    x = np.load(DIGITS_DATA / "digits.npz")["image"][:1].astype(np.float32)
    ref = src.run({"image": x})[0]
    for prec, dtype in (("int8_io", np.int8), ("int16x8_io", np.int16)):
        sess = get_runtime("litert").open(out / arts[("tflite", prec)]["file"], threads=1, source_inputs=src.inputs, source_outputs=src.outputs)
        (b,) = sess.inputs
        s, z = b.quantization["scale"][0], b.quantization["zero_point"][0]
        raw = sess.raw_feeds({"image": x})["image"]
        assert raw.dtype == dtype
        np.testing.assert_array_equal(raw, np.clip(np.round(x / s) + z, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype))
        (raw_out,) = sess.run_raw({"image": raw})
        assert raw_out.dtype == dtype and sess.outputs[0].quantization is not None
        (y,) = sess.run({"image": x})
        assert y.dtype == np.float32 and y.argmax() == ref.argmax()
        cos = float((y * ref).sum() / np.linalg.norm(y) / np.linalg.norm(ref))
        assert cos > 0.99


def test_inspect_reads_the_tflite(build):
    out, arts = build
    code, text, err = run_cli("inspect", str(out / arts[("tflite", "int8_io")]["file"]))
    assert code == 0, err
    assert "full integer: int8 activations, int8 weights, integer input/output" in text and "image: int8 [1, 1, 8, 8]" in text


def test_onnx_source_and_nhwc_input(tmp_path, tiny_cnn_files):
    """The ONNX route (edgepack's bridge) and a 3-channel CNN whose .tflite takes NHWC: the session
    feeds the same NCHW samples transposed, so fp32 parity stays at float precision."""
    pytest.importorskip("litert_torch")
    import edgepack

    rep = edgepack.build(str(DIGITS_ONNX), DIGITS_DATA, [profile(tmp_path / "d.toml", ["fp32", "int8_io"], runs=1)], tmp_path / "d")
    res = {r.artifact.precision: r for r in rep.results}
    assert rep.passed and "edgepack ONNX->PyTorch bridge" in res["int8_io"].artifact.route
    assert res["fp32"].parity.outputs[0].max_abs <= 1e-4 and res["int8_io"].parity.accuracy >= res["fp32"].parity.accuracy - 0.01
    assert_variant_types(tmp_path / "d" / res["int8_io"].file, "int8_io")

    rep = edgepack.build(str(tiny_cnn_files["pt2"]), tiny_cnn_files["calib"], [profile(tmp_path / "n.toml", ["fp32", "int8"], layout="nhwc", runs=1)], tmp_path / "n")
    res = {r.artifact.precision: r for r in rep.results}
    for r in res.values():
        assert r.inputs[0].layout == "nhwc" and r.inputs[0].shape == (1, 16, 16, 3)
    assert res["fp32"].parity.outputs[0].max_abs <= 1e-4 and res["int8"].parity.outputs[0].min_cosine >= 0.99
    g = read_graph(tmp_path / "n" / res["fp32"].file)
    assert "TRANSPOSE" not in [o.name for o in g.ops[:2]]  # NHWC all the way in: no layout shuffle at the input
    man = json.loads((tmp_path / "n" / "manifest.json").read_text())
    assert [a["inputs"][0]["layout"] for a in man["artifacts"]] == ["nhwc", "nhwc"]
