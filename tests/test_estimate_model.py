"""The device cost model's arithmetic: thread scaling, class groups, the non-negative fit, leave-one-out."""
from __future__ import annotations

import numpy as np
import pytest

from edgepack.estimate.model import amdahl, estimate_ms, fit_cpi, group_counts, leave_one_out, nnls, pct_error


def test_amdahl_caps_threads_at_cores():
    assert amdahl(1, 4, 0.8) == pytest.approx(1.0)
    assert amdahl(4, 4, 0.8) == pytest.approx(0.2 + 0.2)
    assert amdahl(8, 4, 0.8) == pytest.approx(0.4)  # more threads than cores do not help
    assert amdahl(2, 4, 1.0) == pytest.approx(0.5)


def test_group_counts_sums_classes_and_sends_the_rest_to_the_catch_all():
    counts = {"sdot": 10, "fmla": 5, "vector": 7, "load_vector": 3, "scalar": 100, "total": 125}
    groups = {"mac": ["sdot", "udot", "fmla"], "simd": ["vector", "load_*"], "rest": ["*"]}
    assert group_counts(counts, groups) == {"mac": 15.0, "simd": 10.0, "rest": 100.0}
    assert group_counts(counts, {"mac": ["sdot"]}) == {"mac": 10.0}  # no catch-all: the rest is dropped


def test_nnls_matches_the_unconstrained_solution_when_it_is_positive_and_clamps_otherwise():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert nnls(a, np.array([1.0, 2.0, 3.0])) == pytest.approx([1.0, 2.0])
    # unconstrained: [1, -2]; with the second held at 0, (x-1)^2 + (x+1)^2 is least at x = 0
    assert nnls(a, np.array([1.0, -2.0, -1.0])) == pytest.approx([0.0, 0.0], abs=1e-12)
    assert nnls(a, np.array([2.0, -1.0, 2.0])) == pytest.approx([2.0, 0.0])  # (x-2)^2 + (x-2)^2


def test_fit_recovers_known_cycles_per_instruction_and_leave_one_out_is_exact_without_noise():
    rng = np.random.default_rng(0)
    rows = rng.uniform(1, 10, (6, 3))
    true = np.array([0.5, 1.5, 0.25])
    ms = rows @ true
    assert fit_cpi(rows, ms) == pytest.approx(true, rel=1e-9)
    assert leave_one_out(rows, ms) == pytest.approx(list(ms), rel=1e-9)
    noisy = ms * np.array([1.1, 0.9, 1.0, 1.0, 1.05, 0.95])
    loo = leave_one_out(rows, noisy)
    assert max(abs(pct_error(p, y)) for p, y in zip(loo, noisy)) > 1.0  # noise shows in leave-one-out


def test_estimate_ms_is_cycles_over_clock_times_thread_share():
    counts = {"sdot": 2_000_000, "scalar": 1_000_000}
    groups = {"mac": ["sdot"], "rest": ["*"]}
    ms = estimate_ms(counts, groups, {"mac": 0.5, "rest": 1.0}, clock_ghz=2.0, threads=4, cores=4, parallel_fraction=0.8)
    # (1e6 + 1e6) cycles / 2 GHz = 1 ms on one thread; 4 threads: 0.2 + 0.8 / 4 = 0.4 of it
    assert ms == pytest.approx(0.4)
