"""int8_auto in LiteRT: the search finds the outlier conv, a layer's fallback reaches the ops that
read it, the recipe reproduces the .tflite byte for byte, and every int8 .tflite says how much of
its weights are 8-bit."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from conftest import run_cli, save_pt2, write_stacked
from int8_auto_models import outlier_net

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

PROFILE = """
name = "auto"
threads = 1
[formats.tflite]
precisions = ["fp32", "int8", "int8_auto"]
layout = "nhwc"
[latency]
runs = 0
[validation]
diagnose = "never"
"""


def _samples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(n)]


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    """outlier_net as a .pt2, its NHWC float .tflite, and a TfliteBackend over it."""
    pytest.importorskip("litert_torch")
    import torch

    from edgepack.formats.base import FormatJob
    from edgepack.formats.tflite import routes
    from edgepack.formats.tflite.auto import TfliteBackend
    from edgepack.profiles import QuantSettings
    from edgepack.progress import Silent
    from edgepack.sources.base import load_source

    d = tmp_path_factory.mktemp("outlier_tfl")
    pt2 = save_pt2(outlier_net(), (torch.randn(1, 3, 16, 16),), d / "outlier.pt2")
    src = load_source(str(pt2))
    job = FormatJob(
        source=src, precisions=("int8_auto",), options={"layout": "nhwc", "allow_flex": False, "recipe": ""},
        quantization=QuantSettings(), calibration=_samples(24), workdir=d, stem="outlier", progress=Silent(),
    )
    fm = routes.float_model(job, "nhwc")
    backend = TfliteBackend(job, fm, "nhwc")
    names = [la["name"] for la in backend.layers()]
    return {"pt2": pt2, "dir": d, "src": src, "job": job, "fm": fm, "backend": backend, "names": names}


def _graph(content):
    from edgepack.formats.tflite.flatbuf import read_graph

    return read_graph(content)


def test_layers_are_the_quantisable_ops_named_by_their_output_tensors(outlier):
    from edgepack.formats.tflite.auto import scope_of

    be, g = outlier["backend"], _graph(outlier["fm"].content)
    assert [la["op_type"] for la in be.layers()] == ["input", "CONV_2D", "CONV_2D", "CONV_2D", "TRANSPOSE", "MEAN", "FULLY_CONNECTED"]
    assert outlier["names"][0] == "serving_default_image"
    assert outlier["names"][1:] == [scope_of(g, op)[:-1] for op in g.ops]  # the quantiser's op scopes (output names)
    assert outlier["names"][-1] == "serving_default_output_output"


def test_search_falls_back_exactly_the_outlier_conv(outlier):
    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    src, be, names = outlier["src"], outlier["backend"], outlier["names"]
    conv1 = names[1]
    budget = Budget(("output",), {"output": {"min_cosine": Threshold(0.99, "defaults.int8_auto"), "min_top1_agreement": Threshold(0.95, "defaults.int8_auto")}})
    recipe = search("tflite", be, budget, _samples(24), lambda ss: [list(src.run(s)) for s in ss])
    first = recipe.steps[0]
    assert first["label"] == "full int8" and not first["passed"]
    assert first["values"]["output"]["min_cosine"] < 0.985  # plain int8 misses the budget
    assert recipe.fallbacks == [conv1] and recipe.precision_of()[conv1] == "float"  # int16 (int8 weights) cannot rescue it
    assert recipe.base["float_weights"] == "fp16"  # nor float compute with int8 weights: the last resort did
    sens = {la["name"]: la["sensitivity_db"] for la in recipe.layers}
    assert sens[conv1] < 3  # the noise it adds is as loud as its crushed channels
    assert sorted(sens.values())[1] > sens[conv1] + 9  # and nothing else comes near
    steps = {st["label"]: st for st in recipe.steps}
    assert not steps["1 to int16"]["passed"] and not steps["7 to int16"]["passed"]
    assert not steps["1 to float"]["passed"] and not steps["7 to float"]["passed"]
    assert steps["7 to float"]["values"]["output"]["min_top1_agreement"] < 0.5  # int8 weights: the argmax flips
    chosen = steps["1 to float (float layers keep fp16 weights)"]
    assert chosen["passed"] and chosen["fallbacks"] == 1 and chosen["values"]["output"]["min_cosine"] >= 0.999
    assert chosen["values"]["output"]["min_top1_agreement"] == 1.0
    assert [f["fix"] for f in recipe.fixes] == ["percentile range (99.99)", "range margin 0.1"]
    assert recipe.search["fit_samples"] == 16 and recipe.search["check_samples"] == 8
    # full int8, 2 fixes, int16 and float (int8 weights) at 1, 2, 3, 4, (6,) 7 fallbacks, float (fp16 weights) at 1
    assert recipe.search["candidates"] <= 16 and recipe.base["range_margin"] == 0.0


def test_a_fallback_reaches_the_ops_that_read_the_layer(outlier):
    """int16: conv1 and its reader conv2 compute in 16x8 (a requantize to int8 after); float: both
    compute in float with int8 weights (DEQUANTIZE), or fp16 weights as the last resort; the rest
    stays int8."""
    from edgepack.formats.tflite.build_steps import int8_weight_share

    be, names, fit = outlier["backend"], outlier["names"], _samples(16)
    base = be.base()
    g8 = _graph(be.build(base, {}, fit))
    assert [g8.tensors[op.outputs[0]].dtype for op in g8.ops if op.name == "CONV_2D"] == ["int8", "int8", "int8"]
    assert int8_weight_share(g8) == {"int8_weight_share": 1.0, "weight_elements": 1448, "int8_weight_elements": 1448}  # int32 biases are not weights
    c16 = be.build(base, {names[1]: "int16"}, fit)
    from edgepack.runtimes.litert import xnnpack_coverage

    cov = xnnpack_coverage(c16)  # runs with XNNPACK on: it takes the 8-bit ops, the 16x8 ones stay on built-in kernels
    assert cov["delegated_nodes"] == 5 and cov["left_on_builtin_kernels"] == {"QUANTIZE": 2, "CONV_2D": 2}
    g16 = _graph(c16)
    convs = [op for op in g16.ops if op.name == "CONV_2D"]
    assert [g16.tensors[op.outputs[0]].dtype for op in convs] == ["int16", "int16", "int8"]
    assert g16.op_histogram()["QUANTIZE"] == 2  # float -> int16 at the input, int16 -> int8 before conv3
    assert int8_weight_share(g16)["int8_weight_share"] == 1.0
    gf = _graph(be.build(base, {names[1]: "float"}, fit))
    convs = [op for op in gf.ops if op.name == "CONV_2D"]
    assert [gf.tensors[op.outputs[0]].dtype for op in convs] == ["float32", "float32", "int8"]
    prod = gf.producer()
    for conv in convs[:2]:  # weight-only int8
        w = prod[conv.inputs[1]]
        assert w.name == "DEQUANTIZE" and gf.tensors[w.inputs[0]].dtype == "int8"
    # 1448 int8 (int32 bias of conv3); conv1's and conv2's float biases, 2 x 8, count against
    assert int8_weight_share(gf) == {"int8_weight_share": 0.9891, "weight_elements": 1464, "int8_weight_elements": 1448}
    gl = _graph(be.build(be.last_resort(base)[0][1], {names[1]: "float"}, fit))
    convs = [op for op in gl.ops if op.name == "CONV_2D"]
    prod = gl.producer()
    for conv in convs[:2]:  # fp16 weights behind a DEQUANTIZE
        w = prod[conv.inputs[1]]
        assert w.name == "DEQUANTIZE" and gl.tensors[w.inputs[0]].dtype == "float16"
    assert gl.weight_dtypes()["CONV_2D"] == ["float16", "int8"]
    # int8: conv3 576 + fc 80; fp16: conv1 216 + conv2 576 + their biases 16
    assert int8_weight_share(gl) == {"int8_weight_share": 0.4481, "weight_elements": 1464, "int8_weight_elements": 656}
    assert int8_weight_share(_graph(outlier["fm"].content)) == {"int8_weight_share": 0.0, "weight_elements": 1472, "int8_weight_elements": 0}


def test_candidates_share_one_quantiser_and_get_the_bytes_of_a_fresh_one(outlier):
    """The backend keeps one ai-edge-quantizer Quantizer for every candidate (it parses the float
    model once); each candidate's bytes equal those of a fresh Quantizer, whatever came before:
    int16, float, per-tensor, then plain int8 again."""
    from edgepack.formats.tflite import variants
    from edgepack.formats.tflite.auto import TfliteBackend

    be, names, fit = outlier["backend"], outlier["names"], _samples(16)
    base = be.base()
    asks = [(base, {names[1]: "int16"}), (base, {names[1]: "float", names[2]: "int16"}), ({**base, "per_channel": False}, {}), (base, {})]
    fresh = TfliteBackend(outlier["job"], outlier["fm"], "nhwc")
    got = []
    for b, precisions in asks:
        got.append(be.build(b, precisions, fit))
        fresh._quantizer = {}  # a new Quantizer for every candidate
        assert got[-1] == fresh.build(b, precisions, fit)
    assert be._quantizer["model"] is outlier["fm"].content
    q = be._quantizer["quantizer"]
    be.build(base, {names[1]: "int16"}, fit)
    assert be._quantizer["quantizer"] is q
    assert len({hashlib.sha256(c).hexdigest() for c in got}) == 4
    g = _graph(got[0])
    assert [g.tensors[op.outputs[0]].dtype for op in g.ops if op.name == "CONV_2D"] == ["int16", "int16", "int8"]
    assert variants.make(outlier["fm"].content, variants.VARIANTS["int8_auto"], per_channel=True, qsvs=be.qsvs(base, {}, fit), where="x") == got[3]


def test_fixes_and_the_range_margin(outlier):
    be = outlier["backend"]
    base = {**be.base(), "per_channel": False}
    assert be.base() == {"method": "minmax", "percentile": 99.999, "per_channel": True, "range_margin": 0.0, "float_weights": "int8"}
    assert be.last_resort(base) == [("float layers keep fp16 weights", {**base, "float_weights": "fp16"})]
    assert be.last_resort({**base, "float_weights": "fp16"}) == []
    assert [label for label, _ in be.fixes(base)] == ["per-channel weights", "percentile range (99.99)", "range margin 0.1"]
    assert [label for label, _ in be.fixes({**base, "method": "entropy"})] == ["per-channel weights", "range margin 0.1"]
    fit = _samples(16)
    plain, wide = be.qsvs(base, {}, fit), be.qsvs({**base, "range_margin": 0.1}, {}, fit)
    name = outlier["names"][1]  # conv1's output: 0 .. about 330
    lo, hi = float(plain[name]["min"].min()), float(plain[name]["max"].max())
    assert hi > 250
    assert float(wide[name]["min"].min()) == pytest.approx(lo - 0.1 * (hi - lo), rel=1e-5)
    assert float(wide[name]["max"].max()) == pytest.approx(hi + 0.1 * (hi - lo), rel=1e-5)


@pytest.mark.slow
def test_build_int8_auto_and_reuse_its_recipe_byte_for_byte(outlier, tmp_path):
    d = outlier["dir"]
    calib = write_stacked(d / "calib", 40, (3, 16, 16))
    profile = tmp_path / "auto.toml"
    profile.write_text(PROFILE, encoding="utf-8")
    out = tmp_path / "out"
    args = ("build", str(outlier["pt2"]), "-c", str(calib), "-t", str(profile), "--no-cache", "-q")
    code, _, stderr = run_cli(*args, "-o", str(out))
    assert code == 1, stderr  # plain int8 fails its gate; int8_auto passes
    cells = {a["precision"]: a for a in json.loads((out / "report.json").read_text())["artifacts"]}
    assert cells["int8"]["parity"]["passed"] is False
    auto = cells["int8_auto"]
    assert auto["parity"]["passed"] is True, auto["parity"]["failures"]
    recipe = auto["details"]["recipe"]
    assert recipe["fallbacks"] == [outlier["names"][1]] and recipe["counts"] == {"int8": 6, "int16": 0, "float": 1}
    assert cells["int8"]["details"]["int8_weight_share"] == 1.0 and auto["details"]["int8_weight_share"] == 0.4481
    assert "int8_weight_share" not in cells["fp32"]["details"]
    # a 1.4k-weight model: tensor names and flatbuffer tables weigh more than its weights, so even
    # plain int8 is 0.73x of fp32 here; the weights themselves: 656 of 1464 int8
    assert auto["size_bytes"] < cells["fp32"]["size_bytes"] and auto["size_bytes"] < 1.3 * cells["int8"]["size_bytes"]
    rfile = out / "auto" / "outlier.int8_auto.tflite.recipe.json"
    assert rfile.is_file() and str(rfile.relative_to(out)) in auto["extra_files"]
    # the recipe again, with no search: the same .tflite, byte for byte
    out2 = tmp_path / "out2"
    code, _, stderr = run_cli(*args, "-o", str(out2), "-p", "int8_auto", "--recipe", str(rfile))
    assert code == 0, stderr
    again = json.loads((out2 / "report.json").read_text())["artifacts"][0]
    assert again["details"]["recipe"]["search"]["reused"] is True and again["sha256"] == auto["sha256"]
    assert hashlib.sha256((out2 / again["file"]).read_bytes()).hexdigest() == auto["sha256"]
    # another model's recipe: exit 2, one line naming the file and the fix
    other = tmp_path / "other.recipe.json"
    data = json.loads(rfile.read_text())
    data["layers"][1]["name"] = "another_model/conv;1"
    other.write_text(json.dumps(data), encoding="utf-8")
    code, _, stderr = run_cli(*args, "-o", str(tmp_path / "out3"), "-p", "int8_auto", "--recipe", str(other))
    assert code == 2
    assert stderr.strip().splitlines()[-1] == (
        f"edgepack: error: [auto] tflite int8_auto failed at quantise: {other}: the recipe names 1 layer(s) this model "
        "does not have (e.g. 'another_model/conv;1'); it was made for another model: drop the recipe to search again"
    )


@pytest.mark.slow
def test_detector_head_falls_back_the_concat_alone_to_int16(tmp_path):
    """One output of boxes (0..320) and scores (0..1): plain int8's one scale crushes the scores;
    the search gives the Concat (the graph output) int16, and the .tflite stays 0.3x fp32."""
    import torch

    from edgepack.formats.base import FormatJob
    from edgepack.formats.tflite import routes
    from edgepack.formats.tflite.auto import TfliteBackend
    from edgepack.formats.tflite.build_steps import int8_weight_share
    from edgepack.profiles import QuantSettings
    from edgepack.progress import Silent
    from edgepack.quantize_search import Budget, search
    from edgepack.sources.base import load_source
    from edgepack.validate.tolerances import Threshold
    from int8_auto_models import DETECTOR_TOLERANCES, detector_head

    src = load_source(str(save_pt2(detector_head(), (torch.randn(1, 3, 32, 32),), tmp_path / "det.pt2")))
    rng = np.random.default_rng(0)
    samples = [{"image": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(24)]
    job = FormatJob(
        source=src, precisions=("int8_auto",), options={"layout": "nhwc", "allow_flex": False, "recipe": ""},
        quantization=QuantSettings(), calibration=samples, workdir=tmp_path, stem="det", progress=Silent(),
    )
    fm = routes.float_model(job, "nhwc")
    be = TfliteBackend(job, fm, "nhwc")
    out = src.outputs[0].name
    th = {"min_cosine": Threshold(0.99, "defaults.int8_auto"), **{k: Threshold(v, "tolerances") for k, v in DETECTOR_TOLERANCES.items()}}
    recipe = search("tflite", be, Budget((out,), {out: th}), samples, lambda ss: [list(src.run(s)) for s in ss])
    first = recipe.steps[0]
    assert not first["passed"] and first["values"][out]["mean_abs"] > 0.4 and first["values"][out]["min_cosine"] > 0.9999
    concat = next(la for la in recipe.layers if la["op_type"] == "CONCATENATION")
    assert recipe.fallbacks == [concat["name"]] and concat["precision"] == "int16" and concat["sensitivity_db"] < 3
    assert recipe.search["candidates"] <= 5  # full int8, the two fixes, every layer at int16 (probed first: > 16 layers), one fallback
    chosen = next(st for st in recipe.steps if st["layers"] == [concat["name"]])
    assert chosen["values"][out]["mean_abs"] < 0.06
    content = be.build(recipe.base, recipe.precision_of(), samples)
    assert len(content) < 0.35 * len(fm.content)
    assert int8_weight_share(_graph(content))["int8_weight_share"] == 1.0


def test_a_candidates_session_reads_only_its_input_and_output_tensors(outlier):
    """A candidate's session reads the I/O tensors alone (read_graph io_only): the same ones, with
    their int8 or float quantisation, as the whole graph's; no ops; and the session's outputs are
    the ones of a session over the whole graph."""
    from edgepack.formats.tflite.flatbuf import read_graph
    from edgepack.runtimes.litert import LiteRtSession, new_interpreter

    be = outlier["backend"]
    cand = be.build(be.base(), {}, _samples(8))
    for content in (outlier["fm"].content, cand):
        full, io = read_graph(content), read_graph(content, io_only=True)
        ports = {*full.inputs, *full.outputs, *(i for _, i in full.signature_inputs + full.signature_outputs)}
        assert io.tensors == {i: full.tensors[i] for i in ports} and io.ops == () and len(full.ops) > 5
        assert (io.inputs, io.outputs, io.signature_inputs, io.signature_outputs) == (full.inputs, full.outputs, full.signature_inputs, full.signature_outputs)
    whole = LiteRtSession(new_interpreter(cand, threads=1), read_graph(cand), be.meta, be.job.source.inputs, be.job.source.outputs)
    x = _samples(2)
    for a, b in zip(be.session(cand).run(x[0]), whole.run(x[0])):
        assert np.array_equal(a, b)
