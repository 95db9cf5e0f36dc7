import numpy as np

from edgepack.validate.parity import SQNR_CAP_DB, check_parity, error_stats


def test_error_stats_numbers():
    ref = [np.array([[1.0, 2.0, 3.0]]), np.array([[0.0, 1.0, 0.0]])]
    out = [np.array([[1.0, 2.0, 3.5]]), np.array([[0.0, 1.0, 0.0]])]
    s = error_stats("y", ref, out)
    assert s.max_abs == 0.5
    assert abs(s.mean_abs - 0.5 / 6) < 1e-12
    cos0 = (1 + 4 + 10.5) / (np.sqrt(14) * np.sqrt(1 + 4 + 12.25))
    assert abs(s.min_cosine - cos0) < 1e-12
    assert abs(s.sqnr_db - 10 * np.log10(15 / 0.25)) < 1e-9
    assert s.top1_agreement == 1.0


def test_exact_outputs_cap_sqnr():
    ref = [np.ones((1, 4))]
    assert error_stats("y", ref, ref).sqnr_db == SQNR_CAP_DB


def test_all_failures_collected_and_accuracy_drop():
    refs = [[np.array([[0.0, 5.0]])], [np.array([[5.0, 0.0]])]]
    outs = [[np.array([[5.0, 0.0]])], [np.array([[5.0, 0.0]])]]
    rep = check_parity(["logits"], refs, outs, {"max_abs": 1e-4, "min_cosine": 0.99, "min_top1_agreement": 0.9, "max_accuracy_drop": 0.01}, np.array([1, 0]))
    assert not rep.passed
    assert len(rep.failures) == 4
    assert rep.reference_accuracy == 1.0 and rep.accuracy == 0.5
    assert any("top1_agreement 0.5 < 0.9" in f for f in rep.failures)
