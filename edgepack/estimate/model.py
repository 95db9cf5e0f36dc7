"""The instruction-count cost model: cycles per instruction per group of instruction classes.

    cycles (one thread) = sum over groups g of  cpi[g] * (instructions of the classes in g)
    ms on the device    = cycles / (clock_ghz * 1e6) * amdahl(threads)
    amdahl(n)           = (1 - p) + p / min(n, cores)        p = the parallel fraction

The cpi values are fitted (non-negative least squares on relative error) to published latencies
of calibration nets whose instructions were counted under QEMU; `leave_one_out` refits without
each point in turn and predicts it. Only numpy; no runtime here.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

OTHER = "*"  # the group that takes every class no other group names


def amdahl(threads: int, cores: int, parallel_fraction: float) -> float:
    """Share of the one-thread time that `threads` threads take on `cores` cores."""
    n = max(1, min(int(threads), int(cores)))
    return (1.0 - parallel_fraction) + parallel_fraction / n


def group_counts(counts: Mapping[str, float], groups: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Sum the per-class counts into the model's groups. A class that no group names goes to
    the group that lists "*" (or is dropped when there is none). A class name matches a group's
    entry exactly or, for an entry ending in "*", by prefix."""
    out = {g: 0.0 for g in groups}
    catch_all = next((g for g, members in groups.items() if OTHER in members), None)
    for cls, n in counts.items():
        if cls == "total":
            continue
        for g, members in groups.items():
            if any(m == cls or (m.endswith("*") and m != OTHER and cls.startswith(m[:-1])) for m in members):
                out[g] += float(n)
                break
        else:
            if catch_all is not None:
                out[catch_all] += float(n)
    return out


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares for a handful of columns: the best unconstrained solution on
    every subset of columns whose solution is non-negative (exact for the small sizes used here)."""
    n = a.shape[1]
    best, best_res = np.zeros(n), float(np.sum(b**2))
    for k in range(1, n + 1):
        for cols in itertools.combinations(range(n), k):
            sub = a[:, cols]
            x, *_ = np.linalg.lstsq(sub, b, rcond=None)
            if np.any(x < 0):
                continue
            res = float(np.sum((sub @ x - b) ** 2))
            if res < best_res - 1e-15:
                full = np.zeros(n)
                full[list(cols)] = x
                best, best_res = full, res
    return best


def design_row(grouped: Mapping[str, float], names: Sequence[str], clock_ghz: float, factor: float) -> np.ndarray:
    """The ms that one cycle-per-instruction of each group adds at this clock and thread factor."""
    return np.array([grouped[g] / (clock_ghz * 1e6) * factor for g in names])


def fit_cpi(rows: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """cpi >= 0 minimising the sum of squared *relative* errors of the predicted ms."""
    return nnls(rows / ms[:, None], np.ones(len(ms)))


def leave_one_out(rows: np.ndarray, ms: np.ndarray) -> list[float]:
    """For each point: the ms predicted by a fit on all the other points."""
    out = []
    for i in range(len(ms)):
        keep = [j for j in range(len(ms)) if j != i]
        cpi = fit_cpi(rows[keep], ms[keep])
        out.append(float(rows[i] @ cpi))
    return out


def estimate_ms(counts: Mapping[str, float], groups: Mapping[str, Sequence[str]], cpi: Mapping[str, float], *, clock_ghz: float, threads: int, cores: int, parallel_fraction: float) -> float:
    grouped = group_counts(counts, groups)
    cycles = sum(cpi[g] * grouped[g] for g in groups)
    return cycles / (clock_ghz * 1e6) * amdahl(threads, cores, parallel_fraction)


def pct_error(predicted: float, published: float) -> float:
    return (predicted - published) / published * 100.0
