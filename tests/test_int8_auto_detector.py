"""int8_auto on a detector-style head (tests/int8_auto_models.detector_head): one output that
concatenates boxes in pixels (0..320) and class scores (0..1). Plain int8 gives the whole output
one scale (steps of 1.25), which crushes the scores; the search falls back the Concat alone (to
int16). Also: the range margin, compounding fixes and weight-only int8 for float layers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, save_onnx, write_stacked
from int8_auto_models import DETECTOR_TOLERANCES, detector_head, detector_tolerances_toml, outlier_net

SHAPE = (1, 3, 32, 32)
WEIGHTS = 3 * 32 * 9 + 32 * 64 * 9 + 64 * 64 * 9 + 64 * 20 + 64 * 2  # the conv weights and the grid (an int8 input of the Add)


@pytest.fixture(scope="module")
def det_files(tmp_path_factory):
    import torch

    d = tmp_path_factory.mktemp("det")
    onnx_path = save_onnx(detector_head(), (torch.randn(*SHAPE),), d / "det.onnx", output_names=("det",))
    return {"onnx": onnx_path, "calib": write_stacked(d / "calib", 40, SHAPE[1:]), "dir": d}


def _samples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image": rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(n)]


def _backend(onnx_path, work, **quant):
    from edgepack.formats.ort_mobile.auto import OrtBackend
    from edgepack.profiles import QuantSettings

    return OrtBackend(Path(onnx_path), work, QuantSettings(**quant), {"image": "image"}, None, "all", "arm")


def _budget():
    from edgepack.quantize_search import Budget
    from edgepack.validate.tolerances import Threshold

    th = {"min_cosine": Threshold(0.99, "defaults.int8_auto")}
    th.update({k: Threshold(v, "tolerances.int8_auto.outputs.det") for k, v in DETECTOR_TOLERANCES.items()})
    return Budget(("det",), {"det": th})


def _reference(onnx_path):
    import onnxruntime as ort

    fp32 = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return lambda ss: [fp32.run(None, s) for s in ss]


@pytest.fixture(scope="module")
def det_search(det_files, tmp_path_factory):
    from edgepack.quantize_search import search

    work = tmp_path_factory.mktemp("det_search")
    backend = _backend(det_files["onnx"], work)
    return backend, search("ort", backend, _budget(), _samples(24), _reference(det_files["onnx"]))


def test_plain_int8_crushes_the_scores_and_only_the_declared_budget_sees_it(det_search):
    _, recipe = det_search
    full = recipe.steps[0]
    assert full["label"] == "full int8" and not full["passed"]
    v = full["values"]["det"]
    assert v["min_cosine"] > 0.9999  # the default budget (cosine 0.99) sees only the boxes: it would pass
    assert v["mean_abs"] > 0.35  # the 16 score columns at 0 or 1.25: mean error > 4x the budget (0.08)
    assert v["max_abs"] < DETECTOR_TOLERANCES["max_abs"]  # the boxes themselves are within 2 px
    # the search holds the gate's 0.08 a quarter of the way tighter (SEARCH_HEADROOM): 0.06
    assert full["failures"] == [f"output 'det': mean_abs {v['mean_abs']:.6g} vs 0.06"]
    assert recipe.budget["det"]["mean_abs"] == {"value": 0.08, "source": "tolerances.int8_auto.outputs.det", "searched": 0.06}


def test_search_falls_back_the_concat_alone_to_int16(det_search):
    _, recipe = det_search
    assert recipe.fallbacks == ["node_cat"] and recipe.precision_of()["node_cat"] == "int16"
    assert recipe.counts() == {"int8": 16, "int16": 1, "float": 0}
    cat = next(la for la in recipe.layers if la["name"] == "node_cat")
    assert cat["op_type"] == "Concat" and cat["sensitivity_db"] < 1  # its score channels: noise as loud as the signal
    assert all(la["sensitivity_db"] > 10 for la in recipe.layers if la["name"] != "node_cat")
    last = next(s for s in recipe.steps if s["layers"] == ["node_cat"])
    assert last["passed"] and last["fallbacks"] == 1
    assert last["values"]["det"]["mean_abs"] < 0.06 and last["values"]["det"]["max_abs"] < 1.5
    # full int8, two fixes, every layer at int16 (17 layers: the option is probed first), one fallback
    assert recipe.search["candidates"] == 5 and [s["fallbacks"] for s in recipe.steps if "int16" in s["label"]] == [1, 17]
    assert recipe.base == {"method": "minmax", "per_channel": True, "percentile": 99.999, "range_margin": 0.0, "float_weights": "int8"}


def test_every_fix_is_recorded_with_its_score(det_search):
    _, recipe = det_search
    full = recipe.steps[0]["score"]
    fixes = {f["fix"]: f for f in recipe.fixes}
    # per-channel is already on; the percentile ranges go on the 8 most sensitive layers' outputs
    assert list(fixes) == ["percentile range (99.99) on the 8 most sensitive layers", "range margin 0.1"]
    margin = fixes["range margin 0.1"]
    # a wider range makes the Concat's steps coarser still: it does not help here, and says so
    assert margin["helped"] is False and margin["passed"] is False and margin["score"] < full - 1
    assert margin["on_top_of"] == [] and fixes["percentile range (99.99) on the 8 most sensitive layers"]["helped"] is False
    assert "clip_tensors" not in recipe.base


def test_int8_auto_ort_is_at_most_half_the_fp32_ort(det_search, det_files, tmp_path):
    """The searched recipe built into an .ort, and the same with conv3 forced to float: its weights
    stay int8 (weight-only), so the size bound holds for float fallbacks too."""
    from edgepack.formats.ort_mobile.convert import to_ort
    from edgepack.formats.ort_mobile.quantize import int8_weight_share

    backend, recipe = det_search
    fp32 = tmp_path / "fp32.ort"
    to_ort(Path(det_files["onnx"]), fp32, target_platform="arm", optimization="all")
    sizes = {}
    for label, precisions in (("auto", recipe.precision_of()), ("conv3 float", {**recipe.precision_of(), "node_conv2d_2": "float"})):
        onnx_path = tmp_path / f"{label.replace(' ', '_')}.onnx"
        backend.quantise(recipe.base, precisions, _samples(24), onnx_path, cache=False)
        share = int8_weight_share(onnx_path)
        # every weight is int8; only the float layers' float biases (conv3's, and the head's that reads it) are not
        assert share["int8_weight_elements"] == WEIGHTS and share["weight_elements"] == WEIGHTS + (0 if label == "auto" else 64 + 20)
        to_ort(onnx_path, onnx_path.with_suffix(".ort"), target_platform="arm", optimization="all")
        sizes[label] = onnx_path.with_suffix(".ort").stat().st_size / fp32.stat().st_size
    assert 0.3 < sizes["auto"] < 0.4 and 0.3 < sizes["conv3 float"] < 0.4, sizes


def test_range_margin_widens_every_calibrated_range(tmp_path):
    """range_margin 0.1: each activation's int8 scale is 1.2x the plain one (its range [lo, hi]
    becomes [lo - 0.1 w, hi + 0.1 w])."""
    import onnx
    import torch
    from onnx import numpy_helper

    src = save_onnx(outlier_net(), (torch.randn(1, 3, 16, 16),), tmp_path / "o.onnx", output_names=("logits",))
    backend = _backend(src, tmp_path)
    prec = {la["name"]: "int8" for la in backend.layers()}
    samples = [{"image": s["image"][:, :, :16, :16].copy()} for s in _samples(8)]

    def scales(margin):
        dest = tmp_path / f"m{margin}.onnx"
        backend.quantise({**backend.base(), "range_margin": margin}, prec, samples, dest, cache=False)
        model = onnx.load(str(dest))
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"}

    plain, wide = scales(0.0), scales(0.1)
    assert (tmp_path / "m0.1.onnx").read_bytes() != (tmp_path / "m0.0.onnx").read_bytes()
    again = (tmp_path / "m0.1.onnx").read_bytes()
    scales(0.1)
    assert (tmp_path / "m0.1.onnx").read_bytes() == again  # the same margin, the same bytes (recipe reuse)
    assert set(plain) == set(wide) and len(plain) >= 5
    ratio = {t: wide[t] / plain[t] for t in plain}
    # ranges that hold 0 (the ReLU outputs: lo = 0) grow by exactly 1.2; one above 0 (the mean:
    # ORT stretches it down to 0) by less, but still
    exact = [t for t, r in ratio.items() if r == pytest.approx(1.2, rel=1e-5)]
    assert len(exact) >= len(ratio) - 1 and {"relu", "relu_1", "relu_2"} <= set(exact), ratio
    assert all(1.0 < r < 1.2 + 1e-5 for r in ratio.values()), ratio


def test_fixes_compound(tmp_path):
    """With per-channel weights off, the fixes are tried in turn, each on top of those that helped."""
    import torch

    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    src = save_onnx(outlier_net(), (torch.randn(1, 3, 16, 16),), tmp_path / "o.onnx", output_names=("logits",))
    samples = [{"image": s["image"][:, :, :16, :16].copy()} for s in _samples(24)]
    budget = Budget(("logits",), {"logits": {"min_cosine": Threshold(0.99, "defaults.int8_auto")}})
    recipe = search("ort", _backend(src, tmp_path, per_channel=False), budget, samples, _reference(src))
    fixes = recipe.fixes
    assert [f["fix"] for f in fixes][:1] == ["per-channel weights"]
    kept = []
    for f in fixes:
        assert f["on_top_of"] == kept
        kept += [f["fix"]] if f["helped"] else []
    assert recipe.base["per_channel"] is ("per-channel weights" in kept)
    assert recipe.base["range_margin"] == (0.1 if "range margin 0.1" in kept else 0.0)
    assert recipe.base["method"] == ("percentile" if "percentile range (99.99)" in kept else "minmax")


@pytest.mark.slow
def test_build_detector_int8_fails_its_gate_int8_auto_passes_at_a_third_of_fp32(det_files, tmp_path):
    profile = tmp_path / "det.toml"
    profile.write_text(
        'name = "det"\n[formats.ort]\nprecisions = ["fp32", "int8", "int8_auto"]\n[latency]\nruns = 0\n[validation]\ndiagnose = "never"\n'
        + detector_tolerances_toml("int8") + detector_tolerances_toml("int8_auto"),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code, _, stderr = run_cli("build", str(det_files["onnx"]), "-c", str(det_files["calib"]), "-t", str(profile), "-o", str(out), "--no-cache", "-q")
    assert code == 1, stderr  # plain int8 fails its gate
    cells = {a["precision"]: a for a in json.loads((out / "report.json").read_text())["artifacts"]}
    int8, auto = cells["int8"], cells["int8_auto"]
    assert int8["parity"]["passed"] is False
    assert [f.split(" ")[:3] for f in int8["parity"]["failures"]] == [["output", "'det':", "mean_abs"]]
    assert int8["parity"]["outputs"][0]["min_cosine"] > 0.9999  # the default check alone would have passed it
    assert auto["parity"]["passed"] is True, auto["parity"]["failures"]
    checks = {c["metric"]: c for c in auto["parity"]["outputs"][0]["checks"]}
    assert checks["mean_abs"]["source"] == "tolerances.int8_auto.outputs.det" and checks["mean_abs"]["value"] < 0.06
    recipe = auto["details"]["recipe"]
    assert recipe["fallbacks"] == ["node_cat"] and recipe["counts"] == {"int8": 16, "int16": 1, "float": 0}
    assert auto["details"]["int8_weight_share"] == 1.0
    assert auto["size_bytes"] / cells["fp32"]["size_bytes"] < 0.4
