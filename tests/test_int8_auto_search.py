"""The search's own rules, on the real ORT backend: the headroom it holds thresholds to, an honest
failure when nothing reaches the budget, and a candidate that the quantiser refuses."""
from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import run_cli
from test_int8_auto_ort import _backend, _samples
from test_int8_auto_ort import outlier_files as files  # noqa: F401  (the fixture, under this module's name)


def _dir(path):
    path.mkdir()
    return path


def _reference(files):
    import onnxruntime as ort

    fp32 = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    return lambda ss: [fp32.run(None, s) for s in ss]


def test_searched_thresholds_are_a_quarter_tighter_and_the_worst_sample_cosine_half():
    from edgepack.quantize_search.budget import searched_value

    assert searched_value("min_cosine", 0.99) == pytest.approx(0.995)  # a per-sample minimum: half way
    assert searched_value("min_top1_agreement", 0.95) == pytest.approx(0.9625)
    assert searched_value("max_abs", 2.0) == pytest.approx(1.5)
    assert searched_value("mean_abs", 0.08) == pytest.approx(0.06)
    assert searched_value("min_sqnr_db", 30.0) == pytest.approx(30.0 + 10 * np.log10(4 / 3))  # the noise 3/4 as loud
    assert searched_value("min_cosine", 0.99, headroom=0) == 0.99


def test_an_unreachable_budget_fails_with_the_best_figure(files, tmp_path):
    from edgepack.errors import ConversionError
    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    budget = Budget(("logits",), {"logits": {"min_sqnr_db": Threshold(250.0, "tolerances.int8_auto")}})  # past SQNR's 200 dB cap
    with pytest.raises(ConversionError) as exc:
        search("ort", _backend(files, tmp_path), budget, _samples(24), _reference(files))
    msg = str(exc.value)
    assert msg.startswith("int8_auto: the budget is not met on the search-check samples even with every layer at float (float layers keep fp32 weights)")
    assert "min_sqnr_db" in msg and "vs 251.249" in msg and msg.endswith("loosen [tolerances.int8_auto] or use fp16/fp32")


def test_a_budget_met_only_without_the_headroom_takes_the_fewest_fallbacks_that_met_the_gate(files, tmp_path):
    import re

    from edgepack.errors import ConversionError
    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    def budget(db):
        return Budget(("logits",), {"logits": {"min_sqnr_db": Threshold(db, "tolerances.int8_auto")}})

    with pytest.raises(ConversionError) as exc:  # the best SQNR any candidate reaches
        search("ort", _backend(files, _dir(tmp_path / "a")), budget(250.0), _samples(24), _reference(files))
    best = float(re.search(r"min_sqnr_db ([0-9.]+) vs", str(exc.value)).group(1))
    assert 60 < best <= 200  # 200: the cap, for outputs bit-exact with the source (all float, fp32 weights)
    # 0.5 dB under it: met by that candidate alone, and never with the search's 1.25 dB headroom
    recipe = search("ort", _backend(files, _dir(tmp_path / "b")), budget(best - 0.5), _samples(24), _reference(files))
    assert recipe.search["met_headroom"] is False
    assert not any(s["passed"] for s in recipe.steps)  # judged with headroom, no step passed
    assert recipe.counts() == {"int8": 0, "int16": 0, "float": len(recipe.layers)}
    assert recipe.base["float_weights"] == "float"  # the last round: fp32 weights


class RefusesInt16:
    """The real ORT backend, except that it refuses every candidate with an int16 layer, as a
    quantiser or runtime that cannot take one would (ORT's 'Attempt to replace the existing tensor'
    on MiniLM)."""

    def __init__(self, backend):
        self.backend = backend
        self.fallback_options = backend.fallback_options
        self.refused = 0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def build(self, base, precisions, samples):
        if "int16" in precisions.values():
            self.refused += 1
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Attempt to replace the existing tensor")
        return self.backend.build(base, precisions, samples)


def test_a_refused_candidate_fails_its_trial_not_the_search(files, tmp_path):
    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    budget = Budget(("logits",), {"logits": {"min_cosine": Threshold(0.99, "defaults.int8_auto")}})
    backend = RefusesInt16(_backend(files, tmp_path))
    recipe = search("ort", backend, budget, _samples(24), _reference(files))
    refused = [s for s in recipe.steps if s["failures"] and s["failures"][0].startswith("candidate failed: RuntimeError: [ONNXRuntimeError]")]
    assert backend.refused >= 1 and len(refused) == backend.refused
    assert all(s["size_bytes"] is None and s["score"] == -1e9 for s in refused)
    assert recipe.counts()["int16"] == 0 and recipe.fallbacks == ["node_conv2d"]  # float took int16's place
    assert any(s["passed"] and s["layers"] == ["node_conv2d"] and "to float" in s["label"] for s in recipe.steps)


def test_cli_exit_4_names_the_best_figure(files, tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text('name = "t"\n[formats.ort]\nprecisions = ["int8_auto"]\n[latency]\nruns = 0\n[validation]\ndiagnose = "never"\n'
                       "[tolerances.int8_auto]\nmin_sqnr_db = 250\n", encoding="utf-8")
    code, _, err = run_cli("build", str(files["onnx"]), "-c", str(files["calib"]), "-t", str(profile), "-o", str(tmp_path / "o"), "--no-cache", "-q")
    assert code == 4
    last = err.strip().splitlines()[-1]
    assert last.startswith("edgepack: error: [t] ort int8_auto failed at quantise: int8_auto: the budget is not met") and "best: output 'logits': min_sqnr_db" in last


def test_movers_follow_the_layers_they_read():
    from edgepack.quantize_search.search import settled

    movers = {"pad": ["conv"], "transpose": ["pad"], "cat": ["conv", "conv2"]}
    options = ("int16", "float")
    # conv fell back: its pad follows, and the transpose that reads the pad; the concat also reads an int8 conv
    got = settled({"conv": "float", "pad": "int8", "transpose": "int8", "cat": "int8", "conv2": "int8"}, movers, options)
    assert got == {"conv": "float", "pad": "float", "transpose": "float", "cat": "int8", "conv2": "int8"}
    # a concat of an int16 and a float layer takes the better of the two
    got = settled({"conv": "int16", "conv2": "float"}, movers, options)
    assert got["cat"] == "float" and got["pad"] == "int16" and got["transpose"] == "int16"
    # a mover set by the search itself keeps its precision; nothing fallen back: nothing follows
    assert settled({"conv": "float", "pad": "int16"}, movers, options)["pad"] == "int16"
    assert settled({"conv": "int8"}, movers, options) == {"conv": "int8"}


def test_ort_movers_are_the_slices_of_the_outlier_conv(tmp_path):
    import torch

    from conftest import save_onnx
    from edgepack.formats.ort_mobile.auto import OrtBackend
    from edgepack.profiles import QuantSettings
    from int8_auto_models import outlier_split_net

    path = save_onnx(outlier_split_net(), (torch.randn(1, 3, 16, 16),), tmp_path / "split.onnx", output_names=("logits",))
    backend = OrtBackend(path, tmp_path, QuantSettings(), {"image": "image"}, None, "all", "arm")
    types = {la["name"]: la["op_type"] for la in backend.layers()}
    movers = backend.movers()
    assert movers and {types[m] for m in movers} == {"Slice"}
    assert all(reads == ["node_conv2d"] and types[reads[0]] == "Conv+Relu" for reads in movers.values())


class RecordsRuns:
    """The real ORT backend, recording the samples of each run."""

    def __init__(self, backend):
        self.backend = backend
        self.fallback_options = backend.fallback_options
        self.runs: list[tuple[int, ...]] = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def run(self, candidate, samples):
        self.runs.append(tuple(id(s) for s in samples))
        return self.backend.run(candidate, samples)


@pytest.mark.parametrize("n, confirm", [(24, 8), (60, 0)])
def test_a_pass_on_few_check_samples_is_confirmed_on_fit_samples(files, tmp_path, n, confirm):
    """24 calibration samples: 16 fit, 8 check; a candidate that meets the budget on the 8 is judged
    again on 8 fit samples too (MIN_JUDGED 16), a failing one is not. 60: 20 check, none added.
    A fallback candidate first runs one check sample (FIRST_LOOK) and the rest only when that one
    does not already miss the gate's own min_cosine; full int8 runs them all. A fallback count that
    passes on the check samples is confirmed only when the search comes to take it."""
    from edgepack.quantize_search import Budget, search
    from edgepack.quantize_search.search import FIRST_LOOK, MIN_JUDGED, split_calibration
    from edgepack.validate.tolerances import Threshold

    budget = Budget(("logits",), {"logits": {"min_cosine": Threshold(0.99, "defaults.int8_auto")}})
    backend = RecordsRuns(_backend(files, tmp_path))
    samples = _samples(n)
    recipe = search("ort", backend, budget, samples, _reference(files))
    fit, check = split_calibration(samples)
    ids = lambda xs: tuple(id(s) for s in xs)  # noqa: E731
    check_ids, extra_ids = ids(check), ids(fit[:confirm])
    first, rest = ids(check[:FIRST_LOOK]), ids(check[FIRST_LOOK:])
    assert recipe.search["confirm_samples"] == confirm == max(0, MIN_JUDGED - len(check))
    assert set(backend.runs) <= {check_ids, first, rest, extra_ids}
    assert backend.runs[0] == check_ids  # full int8: every check sample
    assert backend.runs.count(check_ids) + backend.runs.count(first) == recipe.search["candidates"]
    assert all(backend.runs[i - 1] == first for i, r in enumerate(backend.runs) if r == rest)
    # confirming runs: only for candidates that passed on the check samples (a fallback count once
    # the search comes to take it: settle), and the one taken is among them
    confirmed = [i for i, r in enumerate(backend.runs) if r == extra_ids and confirm]
    assert len(confirmed) <= sum(1 for s in recipe.steps if s["passed"] or s["samples"] == len(check) + confirm)
    assert (len(confirmed) >= 1) == bool(confirm)
    best = min((s for s in recipe.steps if s["passed"]), key=lambda s: s["fallbacks"])
    assert best["values"]["logits"]["min_cosine"] >= 0.995 and best["samples"] == len(check) + confirm
    # a step judged on its first look alone missed the gate's own threshold there
    looked = [s for s in recipe.steps if s["samples"] == FIRST_LOOK]
    assert all(not s["passed"] and s["values"]["logits"]["min_cosine"] < 0.99 for s in looked)
    assert len(looked) == backend.runs.count(first) - backend.runs.count(rest)


def test_steps_record_what_their_layers_went_to_and_the_binding_check(files, tmp_path):
    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    budget = Budget(("logits",), {"logits": {"min_cosine": Threshold(0.99, "defaults.int8_auto")}})
    recipe = search("ort", _backend(files, tmp_path), budget, _samples(24), _reference(files))
    assert {s["to"] for s in recipe.steps} <= {"int8", "int16", "float", "float (float layers keep int16 weights)", "float (float layers keep fp32 weights)"}
    assert all(s["to"] == "int8" for s in recipe.steps if s["fallbacks"] == 0)
    assert all(s["label"].endswith("to " + s["to"]) for s in recipe.steps if s["fallbacks"])
    assert all(s["binding"] == ["logits", "min_cosine"] for s in recipe.steps)  # the only check


def test_only_a_worst_sample_miss_at_the_gate_threshold_is_hopeless():
    """A first look stops a candidate only where more samples could not save it: the worst sample's
    cosine or largest error already past the gate's own threshold, or non-finite values. A pooled
    figure (SQNR) or a miss of the search's headroom alone runs the other samples."""
    from edgepack.quantize_search.budget import Budget, evaluate_at, hopeless
    from edgepack.validate.tolerances import Threshold

    t = lambda v: Threshold(v, "tolerances.int8_auto")  # noqa: E731
    budget = Budget(("y",), {"y": {"min_cosine": t(0.99), "max_abs": t(0.5), "min_sqnr_db": t(30.0)}})
    ref = [np.array([[1.0, 2.0, 3.0, 4.0]])]

    def looks(out):
        head, gate = evaluate_at(budget, [ref], [[np.array([out])]], (None, 0))
        return head.passed, gate.passed, hopeless(gate)

    assert looks([1.0, 2.0, 3.0, 4.0]) == (True, True, False)
    assert looks([1.0, 2.0, 3.0, 3.0]) == (False, False, True)  # cosine 0.983, |err| 1.0: both past the gate
    assert looks([1.0, 2.0, 3.0, 4.3]) == (False, False, False)  # SQNR 25 dB < 30: pooled, more samples may lift it
    assert looks([1.0, 2.0, 3.0, 4.45]) == (False, False, False)  # max_abs 0.45 < 0.5, but past the search's 0.375
    assert looks([1.0, 2.0, float("nan"), 4.0]) == (False, False, True)


def test_a_candidate_past_the_gate_on_its_first_sample_runs_no_more(files, tmp_path):
    """min_cosine 0.9995: the counts before the answer miss it on their first check sample already;
    they run that one sample (their step says so), the answer runs all of them."""
    from edgepack.quantize_search import Budget, search
    from edgepack.quantize_search.search import FIRST_LOOK, split_calibration
    from edgepack.validate.tolerances import Threshold

    budget = Budget(("logits",), {"logits": {"min_cosine": Threshold(0.9995, "tolerances.int8_auto")}})
    backend = RecordsRuns(_backend(files, tmp_path))
    recipe = search("ort", backend, budget, _samples(60), _reference(files))
    _fit, check = split_calibration(_samples(60))
    looked = [s for s in recipe.steps if s["samples"] == FIRST_LOOK]
    assert looked and all(s["values"]["logits"]["min_cosine"] < 0.9995 and not s["passed"] for s in looked)
    assert sum(len(r) for r in backend.runs) < recipe.search["candidates"] * len(check)
    chosen = min((s for s in recipe.steps if s["passed"]), key=lambda s: s["fallbacks"])
    assert chosen["samples"] == len(check) == 20 and chosen["values"]["logits"]["min_cosine"] >= 0.99975


class CosineBackend:
    """A backend whose candidates read a set cosine (the output is the reference plus noise
    orthogonal to it): full int8 0.9895, the range margin fix 0.9901 (past the gate's 0.99, short of
    the search's 0.995 and of a quarter of the gap), every fallback count 0.98."""

    fallback_options = ("float",)

    def layers(self):
        return [{"name": f"l{i}", "op_type": "Conv"} for i in range(3)]

    def base(self):
        return {"per_channel": True, "range_margin": 0.0}

    def fixes(self, base, sensitive=tuple):
        from edgepack.quantize_search.search import standard_fixes

        return standard_fixes(base, percentile=False)

    def build(self, base, precisions, samples):
        if any(p != "int8" for p in precisions.values()):
            return 0.98
        return 0.9901 if base["range_margin"] else 0.9895

    def run(self, cosine, samples):
        eps = (1 / cosine**2 - 1) ** 0.5
        return [[s["y"] + eps * np.array([[-s["y"][0, 1], s["y"][0, 0]]])] for s in samples]

    def size(self, cosine):
        return 100

    def layer_errors(self, cosine, samples):
        return {"l0": 1.0, "l1": 2.0, "l2": 3.0}


def test_a_fix_that_met_only_the_gate_and_is_taken_is_recorded_as_helping():
    from edgepack.quantize_search import Budget, search

    from edgepack.validate.tolerances import Threshold

    budget = Budget(("y",), {"y": {"min_cosine": Threshold(0.99, "tolerances.int8_auto")}}, {"y": "regression"})
    rng = np.random.default_rng(0)
    samples = [{"y": rng.standard_normal((1, 2))} for _ in range(30)]
    recipe = search("coreml", CosineBackend(), budget, samples, lambda ss: [[s["y"]] for s in ss])
    assert recipe.search["met_headroom"] is False and recipe.fallbacks == [] and recipe.base["range_margin"] == 0.1
    (fix,) = recipe.fixes
    assert fix["fix"] == "range margin 0.1" and fix["helped"] is True and fix["passed"] is False
    taken = [s for s in recipe.steps if s["label"] == "full int8 + range margin 0.1"]
    assert len(taken) == 1 and taken[0]["values"]["y"]["min_cosine"] == pytest.approx(0.9901)


class CountBackend(CosineBackend):
    """20 layers; a candidate with k float layers reads cosine 0.999 on the check samples from k = 6
    and on the search-fit samples only from k = 9 (0.98 below either). `slow`: "run" (5 ms a
    sample, as Core ML's emulator on a big net against its builds) or "build" (20 ms a build, as
    ONNX Runtime's quantiser against its runs)."""

    def __init__(self, slow: str):
        self.slow = slow

    def layers(self):
        return [{"name": f"l{i:02d}", "op_type": "Conv"} for i in range(20)]

    def build(self, base, precisions, samples):
        if self.slow == "build":
            time.sleep(0.02)
        return sum(p != "int8" for p in precisions.values())

    def run(self, k, samples):
        if self.slow == "run":
            time.sleep(0.005 * len(samples))
        out = []
        for s in samples:
            cosine = 0.999 if k >= (6 if s["i"] % 3 == 2 else 9) else 0.98  # split_calibration: every third checks
            eps = (1 / cosine**2 - 1) ** 0.5
            out.append([s["y"] + eps * np.array([[-s["y"][0, 1], s["y"][0, 0]]])])
        return out

    def layer_errors(self, k, samples):
        return {f"l{i:02d}": float(i) for i in range(20)}


@pytest.mark.parametrize("slow", ["run", "build"])
def test_a_pass_is_confirmed_when_taken_where_runs_cost_more_than_builds(slow):
    """Counts 6-8 meet the budget on the check samples but not on the search-fit ones.

    Runs dearer than builds: a pass is confirmed only when the bisection comes to take it. 6 is
    refused there; the passes held above it are confirmed in turn (8 refused, 12 holds), and from
    then on every pass at once (else every count up could pass the check samples alone and cost a
    bisection of its own), down to 9, the fewest that pass on both. 20, held above 12, never is.
    Builds dearer than runs: every pass is confirmed at once, and the bisection lands on 9 too."""
    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    budget = Budget(("y",), {"y": {"min_cosine": Threshold(0.99, "tolerances.int8_auto")}}, {"y": "regression"})
    rng = np.random.default_rng(0)
    samples = [{"y": rng.standard_normal((1, 2)), "i": i} for i in range(24)]
    recipe = search("ort", CountBackend(slow), budget, samples, lambda ss: [[s["y"]] for s in ss])
    assert len(recipe.fallbacks) == 9 and recipe.search["met_headroom"] is True and recipe.search["confirm_samples"] == 8
    by = {s["fallbacks"]: s for s in recipe.steps if s["fallbacks"]}
    assert by[8]["passed"] is False and by[8]["samples"] == 16 and by[8]["values"]["y"]["min_cosine"] == pytest.approx(0.98)
    assert all(by[k]["passed"] and by[k]["samples"] == 16 for k in (9, 10, 12))
    assert all(not by[k]["passed"] and by[k]["samples"] == 1 for k in (1, 2, 4))  # clear misses on their first look
    if slow == "run":
        assert by[6]["passed"] is False and by[6]["samples"] == 16 and by[5]["samples"] == 1
        assert by[20]["passed"] and by[20]["samples"] == 8
        assert sorted(by) == [1, 2, 4, 5, 6, 8, 9, 10, 12, 20] and recipe.search["candidates"] == 1 + 1 + 10
    else:
        assert by[20]["passed"] and by[20]["samples"] == 16
        assert sorted(by) == [1, 2, 4, 8, 9, 10, 12, 20] and recipe.search["candidates"] == 1 + 1 + 8


class NeverOnFitBackend(CountBackend):
    """As CountBackend, but the search-fit samples never read better than 0.98."""

    def run(self, k, samples):
        time.sleep(0.005 * len(samples))
        out = []
        for s in samples:
            cosine = 0.999 if s["i"] % 3 == 2 and k >= 6 else 0.98
            eps = (1 / cosine**2 - 1) ** 0.5
            out.append([s["y"] + eps * np.array([[-s["y"][0, 1], s["y"][0, 0]]])])
        return out


def test_passes_held_on_the_check_samples_that_all_miss_on_the_fit_ones_fail_the_cell():
    """Every count from 6 (the probe at 20 too) meets the budget on the check samples and none on
    the search-fit ones: each held pass is refused when confirmed, and the search ends as an
    unreachable budget does, not with a pass the fit samples refute."""
    from edgepack.errors import ConversionError
    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    budget = Budget(("y",), {"y": {"min_cosine": Threshold(0.99, "tolerances.int8_auto")}}, {"y": "regression"})
    rng = np.random.default_rng(0)
    samples = [{"y": rng.standard_normal((1, 2)), "i": i} for i in range(24)]
    steps = []
    with pytest.raises(ConversionError, match="even with every layer at float"):
        search("ort", NeverOnFitBackend("run"), budget, samples, lambda ss: [[s["y"]] for s in ss], step=steps.append)
    refused = [m for m in steps if ": misses" not in m and "on 16 samples" in m]
    assert refused and all("min_cosine 0.98" in m for m in refused)
    assert any(m.startswith("int8_auto: 20 to float: output 'y': min_cosine 0.98") for m in refused)  # the probe, held, then refused


class ManyLayersBackend(CountBackend):
    """330 layers (layout's count in ONNX Runtime); a candidate meets the budget from 203 float layers."""

    def __init__(self, need: int = 203, n: int = 330):
        super().__init__("none")
        self.need, self.n = need, n

    def layers(self):
        return [{"name": f"l{i:03d}", "op_type": "Conv"} for i in range(self.n)]

    def run(self, k, samples):
        out = []
        for s in samples:
            cosine = 0.999 if k >= self.need else 0.98
            eps = (1 / cosine**2 - 1) ** 0.5
            out.append([s["y"] + eps * np.array([[-s["y"][0, 1], s["y"][0, 0]]])])
        return out

    def layer_errors(self, k, samples):
        return {f"l{i:03d}": float(i) for i in range(self.n)}


@pytest.mark.parametrize(("need", "taken", "bracket", "candidates"), [
    (203, 207, [188, 207], 1 + 1 + 1 + 3 + 4),  # full, the margin fix, the 330 probe, 1, 2, 4; 167, 248, 207, 187
    (9, 9, [9, 9], 1 + 1 + 1 + 3 + 9),  # below 16 it is exact: 167, 85, 44, 24, 14, 9, 6, 7, 8
])
def test_the_bisection_stops_within_an_eighth_of_the_fewest_past_16_fallbacks(need, taken, bracket, candidates):
    """Past 16 fallbacks the last bisection steps would buy a few layers of hundreds at a candidate
    each: the search takes a count within 1/8 of the fewest, and its record gives the bracket."""
    from edgepack.quantize_search import Budget, search
    from edgepack.validate.tolerances import Threshold

    budget = Budget(("y",), {"y": {"min_cosine": Threshold(0.99, "tolerances.int8_auto")}}, {"y": "regression"})
    rng = np.random.default_rng(0)
    samples = [{"y": rng.standard_normal((1, 2)), "i": i} for i in range(24)]
    recipe = search("ort", ManyLayersBackend(need), budget, samples, lambda ss: [[s["y"]] for s in ss])
    assert len(recipe.fallbacks) == taken and recipe.search["fewest_within"] == bracket
    assert recipe.search["candidates"] == candidates
    assert bracket[1] - bracket[0] < max(1, taken // 8) and bracket[0] <= need <= bracket[1]
