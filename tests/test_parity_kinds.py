"""Per-output judgement (issue #10): kinds, metrics by kind, checks with threshold/margin/source."""
import json
import math

import numpy as np
import pytest

from edgepack.report.json_report import finite_json
from edgepack.validate.output_kinds import classify
from edgepack.validate.parity import check_parity, error_stats
from edgepack.validate.tolerances import Threshold


def _samples(rng, n, shape, fn=lambda x: x):
    return [fn(rng.standard_normal(shape)) for _ in range(n)]


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_kinds_from_values_dtype_name_and_profile():
    rng = np.random.default_rng(0)
    logits = _samples(rng, 8, (1, 10))
    probs = [_softmax(x) for x in logits]
    xywh = [np.abs(x) for x in _samples(rng, 8, (1, 20, 4))]  # widths/heights >= 0
    fmap = _samples(rng, 8, (1, 8, 4, 4))
    assert classify("logits", logits) == "class_scores"
    assert classify("scores", probs) == "probabilities"
    assert classify("anchors", xywh) == "boxes"
    assert classify("pred_bbox", _samples(rng, 8, (1, 4))) == "boxes"  # by name, even 2-D
    assert classify("loc", _samples(rng, 8, (1, 30))) == "boxes"
    assert classify("block", _samples(rng, 8, (1, 4))) == "class_scores"  # "block" is no box
    assert classify("emb", _samples(rng, 8, (1, 20, 4))) == "feature_map"  # negative widths: no boxes
    assert classify("fm", fmap) == "feature_map"
    assert classify("value", _samples(rng, 8, (1, 1))) == "regression"
    for name in ("landmarks", "face_landmarks", "kpts", "keypoints_2d", "head_pose", "depth"):  # coordinates, not classes
        assert classify(name, logits) == "regression", name
    assert classify("landmark_logits", probs) == "regression" and classify("langmarks", logits) == "class_scores"
    assert classify("idx", [np.array([[3]], np.int64)]) == "integer"
    assert classify("logits", logits, declared="regression") == "regression"


def test_boxes_get_no_top1_and_their_own_checks():
    """class scores + boxes: one row each, top-1/top-5 only for the scores, boxes checked on
    sqnr/cosine/max_abs with the per-output thresholds and their sources."""
    rng = np.random.default_rng(1)
    scores = _samples(rng, 10, (1, 12))
    boxes = [np.abs(x) * 10 for x in _samples(rng, 10, (1, 6, 4))]
    refs = [[s, b] for s, b in zip(scores, boxes)]
    outs = [[s + 0.01, b + 0.5] for s, b in zip(scores, boxes)]  # boxes off by 0.5 everywhere
    cell = {"min_cosine": 0.99, "min_top1_agreement": 0.95}
    per_box = {
        "min_cosine": Threshold(0.99, "tolerances.int8"),
        "min_sqnr_db": Threshold(30.0, "tolerances.int8.outputs.boxes"),
        "max_abs": Threshold(0.25, "tolerances.int8.ort.outputs.boxes"),
        "min_top1_agreement": Threshold(0.95, "tolerances.int8"),  # never applies to boxes
    }
    rep = check_parity(["scores", "boxes"], refs, outs, cell, None, per_output={"boxes": per_box}, tolerance_source="tolerances.int8")
    s, b = rep.outputs
    assert (s.kind, b.kind) == ("class_scores", "boxes")
    assert s.top1_agreement == 1.0 and s.top5_agreement == 1.0 and s.passed
    assert b.top1_agreement is None and b.top5_agreement is None
    assert [c.metric for c in b.checks] == ["max_abs", "min_cosine", "min_sqnr_db"]
    by = {c.metric: c for c in b.checks}
    assert by["max_abs"].value == pytest.approx(0.5) and by["max_abs"].op == "<="
    assert by["max_abs"].margin == pytest.approx(-0.25) and not by["max_abs"].passed
    assert by["max_abs"].source == "tolerances.int8.ort.outputs.boxes"
    assert by["min_sqnr_db"].source == "tolerances.int8.outputs.boxes"
    assert by["min_cosine"].passed and by["min_cosine"].margin == pytest.approx(by["min_cosine"].value - 0.99)
    assert not b.passed and not rep.passed
    assert "output 'boxes': abs 0.5 > 0.25" in rep.failures
    assert any(f.startswith("output 'boxes': sqnr_db ") and f.endswith("< 30") for f in rep.failures)
    assert not any("scores" in f for f in rep.failures)
    row = rep.to_json()["outputs"][1]
    assert row["output"] == "boxes" and row["kind"] == "boxes" and row["top1_agreement"] is None
    assert row["checks"][0] == {"metric": "max_abs", "value": pytest.approx(0.5), "threshold": 0.25, "op": "<=",
                                "margin": pytest.approx(-0.25), "passed": False, "source": "tolerances.int8.ort.outputs.boxes"}


def test_top5_agreement_counts_the_source_top1_in_the_artifact_top5():
    ref = [np.arange(10.0).reshape(1, 10)] * 4  # top-1 is class 9
    moved = np.arange(10.0).reshape(1, 10).copy()
    moved[0, 9] = 5.5  # class 9 falls to rank 4: still in the top 5
    gone = np.arange(10.0).reshape(1, 10).copy()
    gone[0, 9] = -1.0  # out of the top 5
    s = error_stats("y", ref, [ref[0], moved, gone, ref[0]])
    assert s.top1_agreement == 0.5 and s.top5_agreement == 0.75
    assert error_stats("y", [np.ones((1, 3))], [np.ones((1, 3))]).top5_agreement is None  # 3 classes: no top-5


def test_integer_outputs_get_exact_match():
    refs = [[np.array([[1, 2, 3, 4]], np.int64)], [np.array([[5, 6, 7, 8]], np.int64)]]
    outs = [[np.array([[1, 2, 3, 4]], np.int64)], [np.array([[5, 6, 0, 8]], np.int64)]]
    rep = check_parity(["ids"], refs, outs, {"min_exact_match": 0.9, "min_cosine": 0.99, "min_top1_agreement": 0.9}, None)
    (s,) = rep.outputs
    assert s.kind == "integer" and s.exact_match == 0.875 and s.top1_agreement is None
    assert [c.metric for c in s.checks] == ["min_exact_match"]  # no cosine, no top-1 for integers
    assert rep.failures == ("output 'ids': exact_match 0.875 < 0.9",)


def test_accuracy_drop_is_a_check_of_the_class_output():
    scores = [np.array([[0.0, 5.0]]), np.array([[5.0, 0.0]])]
    refs = [[np.array([[1.0]]), s] for s in scores]  # a regression output first: accuracy is on the class output
    outs = [[np.array([[1.0]]), np.array([[5.0, 0.0]])], [np.array([[1.0]]), np.array([[5.0, 0.0]])]]
    rep = check_parity(["value", "logits"], refs, outs, {"max_accuracy_drop": 0.01}, np.array([1, 0]))
    assert rep.reference_accuracy == 1.0 and rep.accuracy == 0.5
    (c,) = rep.outputs[1].checks
    assert (c.metric, c.value, c.threshold, c.op, c.passed) == ("max_accuracy_drop", 0.5, 0.01, "<=", False)
    assert c.margin == pytest.approx(-0.49)
    assert rep.outputs[0].passed and not rep.outputs[1].passed
    assert rep.failures == ("accuracy 0.5000 is 0.5000 below the source's 1.0000 (> 0.01)",)


def test_nonfinite_artifact_output_is_a_finding_with_null_values():
    refs = [[np.ones((1, 4))], [np.ones((1, 4))], [np.ones((1, 4))]]
    bad = np.array([[1.0, np.inf, np.nan, 1.0]])
    outs = [[np.ones((1, 4))], [bad], [np.ones((1, 4))]]
    rep = check_parity(["y"], refs, outs, {"min_sqnr_db": 40.0, "min_cosine": 0.99}, None, origins=["a.npy", "b.npy", "c.npy"])
    assert not rep.passed and len(rep.failures) == 1
    assert "2 non-finite values (1 NaN and 1 Inf) on 1 of 3 samples (b.npy)" in rep.failures[0]
    row = json.loads(json.dumps(finite_json(rep.to_json()), allow_nan=False))["outputs"][0]
    assert row["sqnr_db"] is None and row["nonfinite"] is True and row["nonfinite_values"] == 2 and row["nonfinite_samples"] == 1
    assert [(c["metric"], c["value"], c["margin"], c["passed"]) for c in row["checks"]] == [
        ("min_cosine", None, None, False), ("min_sqnr_db", None, None, False)]  # a NaN SQNR never passes a gate
    assert row["passed"] is False


def test_runtime_failures_fail_the_gate_even_when_outputs_match():
    refs = outs = [[np.ones((1, 4))]] * 2
    rep = check_parity(["y"], refs, outs, {"min_cosine": 0.99}, None, runtime_failures=["fp16 overflow in the Core ML emulator: op 'mul'"], min_samples=2)
    assert rep.outputs[0].passed and not rep.passed and rep.failures == ("fp16 overflow in the Core ML emulator: op 'mul'",)
    assert rep.to_json()["min_samples"] == 2 and math.isclose(rep.outputs[0].min_cosine, 1.0)
