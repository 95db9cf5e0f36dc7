"""int8_auto in ONNX Runtime: the search finds the outlier layer, the recipe reproduces the .ort,
and int8 .ort files really hold int8 weights (the Constant-weights fix)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, save_onnx, write_stacked
from int8_auto_models import outlier_net

PROFILE = """
name = "auto"
[formats.ort]
precisions = ["int8", "int8_auto"]
[latency]
runs = 0
[validation]
diagnose = "never"
"""


@pytest.fixture(scope="module")
def outlier_files(tmp_path_factory):
    import torch

    d = tmp_path_factory.mktemp("outlier")
    onnx_path = save_onnx(outlier_net(), (torch.randn(1, 3, 16, 16),), d / "outlier.onnx", output_names=("logits",))
    return {"onnx": onnx_path, "calib": write_stacked(d / "calib", 40, (3, 16, 16)), "dir": d}


def _backend(files, tmp_path):
    from edgepack.formats.ort_mobile.auto import OrtBackend
    from edgepack.profiles import QuantSettings

    return OrtBackend(Path(files["onnx"]), tmp_path, QuantSettings(), {"image": "image"}, None, "all", "arm")


def _samples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(n)]


def test_search_finds_the_outlier_conv_and_falls_back_only_it(outlier_files, tmp_path):
    import onnxruntime as ort

    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    fp32 = ort.InferenceSession(str(outlier_files["onnx"]), providers=["CPUExecutionProvider"])
    budget = Budget(("logits",), {"logits": {"min_cosine": Threshold(0.99, "defaults.int8_auto")}})
    recipe = search("ort", _backend(outlier_files, tmp_path), budget, _samples(24), lambda ss: [fp32.run(None, s) for s in ss])
    steps = recipe.steps
    assert steps[0]["label"] == "full int8" and not steps[0]["passed"]
    assert steps[0]["values"]["logits"]["min_cosine"] < 0.985  # plain int8 misses the budget
    assert recipe.fallbacks == ["node_conv2d"]  # conv1 (+ its relu) only
    # int16 or float activations alone leave conv1's int8 weights: min_cosine 0.9925 at any count,
    # short of the search's 0.995; float with int16 weights (the first last round) reads 0.99996
    assert recipe.precision_of()["node_conv2d"] == "float" and recipe.base["float_weights"] == "int16"
    assert all(0.992 < s["values"]["logits"]["min_cosine"] < 0.995 for s in steps if s["to"] in ("int16", "float"))
    first = next(la for la in recipe.layers if la["name"] == "node_conv2d")
    assert first["op_type"] == "Conv+Relu" and first["sensitivity_db"] < 3  # the noise it adds is as loud as its crushed channels
    others = [la["sensitivity_db"] for la in recipe.layers if la["name"] != "node_conv2d" and la.get("sensitivity_db") is not None]
    assert len(others) == 4 and all(v > 30 for v in others)  # the input, conv2, conv3 and the Linear add little
    last = min((s for s in steps if s["passed"]), key=lambda s: s["fallbacks"])
    assert last["fallbacks"] == 1 and last["values"]["logits"]["min_cosine"] >= 0.99
    assert recipe.search["fit_samples"] == 16 and recipe.search["check_samples"] == 8
    assert recipe.search["confirm_samples"] == 8  # a pass is judged on 16 samples (MIN_JUDGED)
    # full int8, two fixes, counts 1, 2, 4 and 5 at int16 and at float (5 layers: no probe first), one last round
    assert recipe.search["candidates"] == 12


def test_constant_weights_become_int8(tmp_path):
    """A model whose weights are Constant nodes (paddle2onnx style) gets int8 weights, not float
    weights inside Q/DQ pairs (the OCR classifier's int8 .ort was 0.96x fp32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgepack.formats.ort_mobile.quantize import int8_weight_share, to_int8_qdq
    from edgepack.profiles import QuantSettings

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(16, np.float32), "b")
    nodes = [
        helper.make_node("Constant", [], ["W"], value=w),
        helper.make_node("Constant", [], ["B"], value=b),
        helper.make_node("Conv", ["x", "W", "B"], ["y"], pads=[1, 1, 1, 1]),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])])
    src = tmp_path / "const.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)]), str(src))
    assert int8_weight_share(src)["int8_weight_share"] == 0.0
    dest = tmp_path / "const.int8.onnx"
    steps = to_int8_qdq(src, dest, samples=[{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)],
                        quant=QuantSettings(), input_names={"x": "x"}, track=lambda it, n, label: it)
    assert "Constant weights -> initializers" in steps and "opset 11 -> 13" in steps
    share = int8_weight_share(dest)
    assert share["int8_weight_elements"] == 16 * 27 and share["int8_weight_share"] == 1.0


@pytest.mark.slow
def test_build_int8_auto_and_reuse_its_recipe_byte_for_byte(outlier_files, tmp_path):
    import hashlib

    profile = tmp_path / "auto.toml"
    profile.write_text(PROFILE, encoding="utf-8")
    out = tmp_path / "out"
    assets = tmp_path / "assets"
    code, stdout, stderr = run_cli("build", str(outlier_files["onnx"]), "-c", str(outlier_files["calib"]), "-t", str(profile), "-o", str(out), "--no-cache", "-q",
                                   "--android-assets", str(assets))
    assert code == 1, stderr  # plain int8 fails its gate; int8_auto passes
    rep = json.loads((out / "report.json").read_text())
    cells = {a["precision"]: a for a in rep["artifacts"]}
    assert cells["int8"]["parity"]["passed"] is False
    auto = cells["int8_auto"]
    assert auto["parity"]["passed"] is True, auto["parity"]["failures"]
    recipe = auto["details"]["recipe"]
    assert recipe["fallbacks"] == ["node_conv2d"] and recipe["counts"]["int8"] == 4  # one fallback (int16 or float)
    assert cells["int8"]["details"]["int8_weight_share"] > 0.95
    share = auto["details"]["int8_weight_share"]  # a float fallback keeps its weights int8 (weight-only) unless the last resort gave them fp32
    assert (share > 0.95) if recipe["base"]["float_weights"] == "int8" else (0.3 < share < 0.6)
    rfile = out / "auto" / "outlier.int8_auto.ort.recipe.json"
    assert rfile.is_file() and str(rfile.relative_to(out)) in auto["extra_files"]
    # the app's assets carry the recipe beside the .ort, and their manifest names that copy
    entry = next(a for a in json.loads((assets / "manifest.json").read_text())["artifacts"] if a["precision"] == "int8_auto")
    assert entry["file"] == "outlier.int8_auto.ort" and entry["int8_auto"]["recipe_file"] == rfile.name
    assert (assets / rfile.name).read_bytes() == rfile.read_bytes()
    sha = auto["sha256"]
    # the recipe again, with no search: the same .ort, byte for byte
    out2 = tmp_path / "out2"
    code, _, stderr = run_cli("build", str(outlier_files["onnx"]), "-c", str(outlier_files["calib"]), "-t", str(profile), "-o", str(out2),
                              "--no-cache", "-q", "-p", "int8_auto", "--recipe", str(rfile))
    assert code == 0, stderr
    again = json.loads((out2 / "report.json").read_text())["artifacts"][0]
    assert again["details"]["recipe"]["search"]["reused"] is True and again["sha256"] == sha
    assert hashlib.sha256((out2 / again["file"]).read_bytes()).hexdigest() == sha


def test_recipe_errors_are_one_line_config_errors(outlier_files, tmp_path):
    profile = tmp_path / "auto.toml"
    profile.write_text(PROFILE, encoding="utf-8")
    bad = tmp_path / "bad.recipe.json"
    bad.write_text("{}", encoding="utf-8")
    args = ("build", str(outlier_files["onnx"]), "-c", str(outlier_files["calib"]), "-t", str(profile), "-o", str(tmp_path / "o"), "--no-cache", "-q")
    code, _, err = run_cli(*args, "--recipe", str(bad))
    assert code == 2 and err.strip().splitlines()[-1] == f'edgepack: error: {bad}: not an edgepack recipe (no "edgepack_recipe": 1); give the .recipe.json an int8_auto build wrote'
    other = tmp_path / "tfl.recipe.json"
    other.write_text(json.dumps({"edgepack_recipe": 1, "format": "tflite", "base": {}, "layers": []}), encoding="utf-8")
    code, _, err = run_cli(*args, "--recipe", str(other))
    assert code == 2 and "is for format 'tflite', which no --target builds in int8_auto" in err
    missing = tmp_path / "nope.recipe.json"
    code, _, err = run_cli(*args, "--recipe", str(missing))
    assert code == 2 and f"{missing}: recipe file not found" in err


def test_the_last_resort_gives_float_layers_int16_weights_then_fp32(outlier_files, tmp_path):
    """A float layer's weights: int8 (weight-only) first; the last rounds int16 (com.microsoft
    DequantizeLinear, which the .ort keeps: half of fp32's bytes), then fp32."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from edgepack.formats.ort_mobile.convert import save_ort

    be = _backend(outlier_files, tmp_path)
    base = be.base()
    assert [(label, b["float_weights"]) for label, b in be.last_resort(base)] == [
        ("float layers keep int16 weights", "int16"), ("float layers keep fp32 weights", "float")]
    assert [b["float_weights"] for _, b in be.last_resort({**base, "float_weights": "int16"})] == ["float"]
    assert be.last_resort({**base, "float_weights": "float"}) == []
    fp32 = ort.InferenceSession(str(outlier_files["onnx"]), providers=["CPUExecutionProvider"])
    fit, check = _samples(16), _samples(8, seed=1)
    layers = [la["name"] for la in be.layers()]
    every = {n: "float" for n in layers}  # all float: the weights alone decide the error
    errs, sizes = {}, {}
    for w in ("int8", "int16", "float"):
        cand = be.build({**base, "float_weights": w}, every, fit)
        model = onnx.load(str(cand))
        kinds = {numpy_helper.to_array(t).dtype.name for t in model.graph.initializer if len(t.dims) >= 2}
        assert kinds == {"int8": {"int8"}, "int16": {"int16"}, "float": {"float32"}}[w], (w, kinds)
        if w == "int16":
            assert {n.domain for n in model.graph.node if n.op_type == "DequantizeLinear"} == {"com.microsoft"}
        outs = be.run(cand, check)
        errs[w] = max(float(np.abs(o[0] - fp32.run(None, s)[0]).max()) for o, s in zip(outs, check))
        save_ort(cand, tmp_path / f"{w}.ort", target_platform="arm", optimization="all")
        sizes[w] = (tmp_path / f"{w}.ort").stat().st_size
    assert errs["float"] < 1e-4 and errs["int16"] < 1e-3 < errs["int8"], errs  # int16 weights: close to fp32's figures
    # the .ort keeps them int16: one byte per weight more than int8 (folded to fp32 it would be three)
    n = sum(int(np.prod(t.dims)) for t in onnx.load(str(outlier_files["onnx"])).graph.initializer if len(t.dims) >= 2)
    assert 0.9 * n < sizes["int16"] - sizes["int8"] < 1.5 * n, (sizes, n)


def test_candidates_reuse_the_first_ones_weight_scales_byte_for_byte(outlier_files, tmp_path):
    """A candidate (and the artifact after the search) hands the quantiser the weight scales and zero
    points of the first candidate with the same per-channel setting (TensorQuantOverrides) instead
    of computing them again: the .onnx is byte for byte the one computed from scratch, with int16
    activations, float layers and the last resort's int16 weights alike."""
    from edgepack.formats.ort_mobile.quantize import weight_quant_params

    backend = _backend(outlier_files, tmp_path)
    names = [la["name"] for la in backend.layers()]
    fit = _samples(8)
    for per_channel in (True, False):
        base = {**backend.base(), "per_channel": per_channel}
        first = backend.build(base, {}, fit)
        params = weight_quant_params(backend.prepared(per_channel)[0], first)
        assert len(params) == 4  # conv1, conv2, conv3 and the Linear's weight
        assert all(("axis" in ps[0]) == per_channel for ps in params.values())
        # per channel: one entry per output channel (the Linear's MatMul weight: axis 1, its 10 classes)
        assert sorted(len(ps) for ps in params.values()) == ([8, 8, 8, 10] if per_channel else [1, 1, 1, 1])
        for i, (b, precisions) in enumerate([
            (base, {names[1]: "int16"}),
            (base, {names[1]: "float", names[2]: "float"}),
            ({**base, "float_weights": "int16"}, {names[1]: "float"}),
        ]):
            reused = backend.build(b, precisions, fit)
            fresh = backend.quantise(b, precisions, fit, tmp_path / f"fresh{per_channel}{i}.onnx", reuse_weights=False)
            assert reused.read_bytes() == fresh.read_bytes(), (per_channel, b, precisions)


def test_int16_candidates_quantise_a_model_converted_once_to_opset_21_as_the_quantiser_would(outlier_files, tmp_path):
    """ONNX Runtime's quantiser converts a model below opset 21 whenever a tensor is int16, once per
    candidate; the backend hands it the prepared model converted once instead. The quantised model
    is the same: the same nodes, initializers and outputs, bit for bit, as the quantiser's own
    conversion of the prepared model gives; and every later candidate reuses the quantised weights."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from edgepack.formats.ort_mobile.quantize import default_opset, quantize_prepared

    backend = _backend(outlier_files, tmp_path)
    names = [la["name"] for la in backend.layers()]
    fit, check = _samples(8), _samples(4, seed=1)
    base = backend.base()
    backend.build(base, {}, fit)  # the first candidate: weight scales for the others
    pre = backend.prepared(True)[0]
    assert default_opset(onnx.load(str(pre))) < 21
    precisions = {names[1]: "int16", names[2]: "int16"}
    ours = backend.build(base, precisions, fit)
    assert default_opset(onnx.load(str(backend.at_int16_opset(pre)))) == 21
    theirs = tmp_path / "theirs.onnx"  # the prepared model itself: the quantiser converts it
    tensors = [la["tensor"] for la in backend._layers if la["name"] in precisions]
    quantize_prepared(pre, theirs, samples=fit, quant=backend.quant, input_names=backend.input_names, track=lambda it, n, label: it,
                      int16_tensors=tuple(tensors))
    a, b = onnx.load(str(ours)), onnx.load(str(theirs))
    assert default_opset(a) == default_opset(b) == 21
    assert [(n.op_type, n.domain, list(n.input), list(n.output)) for n in a.graph.node] == \
        [(n.op_type, n.domain, list(n.input), list(n.output)) for n in b.graph.node]
    assert sum(n.op_type == "QuantizeLinear" and n.domain == "com.microsoft" for n in a.graph.node) >= 2
    ia = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
    ib = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
    assert ia.keys() == ib.keys() and all(np.array_equal(ia[k], ib[k]) for k in ia)
    sa, sb = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (ours, theirs))
    for s in check:
        assert np.array_equal(sa.run(None, s)[0], sb.run(None, s)[0])
    # the int16 candidate's 4 weights came from the first one's, and a second int16 candidate
    # reuses the opset-21 model's shape-inferred load
    assert backend._memo.hits == {"weights": 4, "loads": 0}
    again = backend.build(base, {names[1]: "int16"}, fit)
    assert backend._memo.hits == {"weights": 8, "loads": 1}
    assert again.read_bytes() != ours.read_bytes()  # a different candidate all the same


def test_the_percentile_fix_clips_only_the_most_sensitive_layers_outputs(outlier_files, tmp_path):
    """ORT's percentile fix sets the ranges of the most sensitive layers' outputs alone to their
    99.99th percentiles over the calibration samples (edgepack's own, from the float model's run),
    not the whole model's: the clipped tensor's int8 scale is (hi - lo) / 255 of those percentiles,
    narrower than its min/max one, and every other tensor keeps its min/max scale."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    backend = _backend(outlier_files, tmp_path)
    layers = backend.layers()
    names = [la["name"] for la in layers]
    base = backend.base()
    inner = [n for n, la in zip(names, layers) if la["op_type"] != "input"]
    (label, fixed), = [(lb, b) for lb, b in backend.fixes(base, sensitive=lambda: tuple(names)) if "percentile" in lb]
    assert label == f"percentile range (99.99) on the {min(8, len(inner))} most sensitive layers"
    tensor = backend._layers[names.index(inner[0])]["tensor"]  # the first of `sensitive` that is not an input
    assert fixed["clip_tensors"][0] == tensor and fixed["method"] == "minmax"
    fit = _samples(8)
    one = {**base, "clip_tensors": [tensor], "clip_percentile": 99.99}
    clipped, plain = backend.build(one, {}, fit), backend.build(base, {}, fit)

    sess = ort.InferenceSession(str(backend.prepared(True)[0]), providers=["CPUExecutionProvider"])
    model = onnx.load(str(backend.prepared(True)[0]))
    model.graph.output.append(onnx.ValueInfoProto(name=tensor))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.concatenate([sess.run([tensor], s)[0].ravel() for s in fit])
    lo, hi = np.percentile(x, [0.01, 99.99])
    (got,) = backend.clip_ranges(one, fit).items()
    assert got[0] == tensor and got[1] == pytest.approx((min(float(lo), 0.0), max(float(hi), 0.0)), rel=1e-6)

    def scales(path):
        m = onnx.load(str(path))
        inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
        return {n.input[0]: float(inits[n.input[1]]) for n in m.graph.node if n.op_type == "QuantizeLinear" and inits[n.input[1]].ndim == 0}

    a, b = scales(clipped), scales(plain)
    assert a[tensor] == pytest.approx((max(hi, 0) - min(lo, 0)) / 255, rel=1e-6)
    assert a[tensor] < b[tensor] * 0.999 and x.max() > hi
    assert {k: v for k, v in a.items() if k != tensor} == {k: v for k, v in b.items() if k != tensor}


def test_the_final_quantisation_merges_the_fit_parts_ranges_byte_for_byte(outlier_files, tmp_path):
    """The artifact after a min/max search takes the search's fit-part calibration and calibrates
    only the check part (merge_minmax): the ranges equal one calibration over every sample, and the
    .onnx is byte for byte the one calibrated over all of them at once, whether the search made the
    fit part's cache (its candidates) or not (a reused recipe), with a range margin and int16 too."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    from edgepack.formats.ort_mobile.quantize import calibrate_minmax, merge_minmax
    from edgepack.quantize_search.search import split_calibration

    samples = _samples(12, seed=3)
    fit, check = split_calibration(samples)
    for d in ("a", "r0", "r1"):
        (tmp_path / d).mkdir()
    searched = _backend(outlier_files, tmp_path / "a")
    names = [la["name"] for la in searched.layers()]
    pre = searched.prepared(True)[0]
    whole = load_tensors_data(calibrate_minmax(pre, samples, {"image": "image"}, tmp_path / "whole.json"))
    merged = load_tensors_data(merge_minmax([calibrate_minmax(pre, part, {"image": "image"}, tmp_path / f"p{i}.json")
                                             for i, part in enumerate((fit, check))], tmp_path / "merged.json"))
    assert sorted(whole) == sorted(merged) and len(list(whole)) >= 8
    assert all(np.array_equal(whole[t].range_value[k], merged[t].range_value[k]) for t in whole for k in (0, 1))
    # one check sample holds a range of its own: the merge is not the fit part's alone
    fit_only = load_tensors_data(tmp_path / "p0.json")
    assert any(not np.array_equal(fit_only[t].range_value[1], merged[t].range_value[1]) for t in merged)
    for i, (base, precisions) in enumerate([
        (searched.base(), {}),
        ({**searched.base(), "range_margin": 0.1}, {names[1]: "int16"}),
    ]):
        searched.build(base, precisions, fit)  # the search's candidate: the fit part's cache is made
        assert searched.ranges_path(base, fit).is_file()
        reused = _backend(outlier_files, tmp_path / f"r{i}")  # a reused recipe: no search ran
        a = searched.final(base, precisions, samples, tmp_path / f"a{i}.onnx").read_bytes()
        b = reused.final(base, precisions, samples, tmp_path / f"b{i}.onnx").read_bytes()
        direct = searched.quantise(base, precisions, samples, tmp_path / f"d{i}.onnx", cache=False).read_bytes()
        assert a == b == direct, i
    few = samples[:2]  # below 3 samples both parts are all of them: the search's own cache, taken once
    searched.build(searched.base(), {}, few)
    a = searched.final(searched.base(), {}, few, tmp_path / "a_few.onnx").read_bytes()
    assert a == searched.quantise(searched.base(), {}, few, tmp_path / "d_few.onnx", cache=False).read_bytes()
