"""The accuracy budget of an int8_auto cell, and how a candidate is judged against it.

The budget is the cell's own tolerances, resolved exactly as the gate resolves them (per output,
per format: validate/tolerances.py), so a recipe that meets it on the search-check samples is
judged by the same thresholds on the held-out samples afterwards. The search judges its few
search-check samples with headroom: each threshold a quarter of the way tighter towards a
perfect figure (SEARCH_HEADROOM: max_abs 2.0 -> 1.5), and min_cosine, the one per-sample minimum,
half of the way (0.99 -> 0.995), so that a recipe that only just meets the budget on them does
not miss it on the held-out samples. The worst sample's cosine swings most between sample sets:
MiniLM in LiteRT met 0.9925 on its 16 judged samples (0.9940 at worst once calibrated on all 18)
and one of its 12 held-out sentences read 0.9889; held to 0.995 it takes 85 int16 layers instead
of 80 (6 kB more) and reads 0.9929. Errors pooled over every value (max_abs, mean_abs, SQNR) keep
a quarter: at a half, a detector's int8 boxes at 1.09 px against a 2 px budget would fall back.
When no candidate meets the headroom, the search takes the fewest fallbacks that met the gate's
own thresholds (search.met_headroom false) and the gate decides. The searcher runs in the
converter worker, which has no profile: the parent resolves the thresholds (cell_budget) and
sends them with the cell.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..validate.parity import METRICS, error_stats, judge
from ..validate.output_kinds import classify
from ..validate.tolerances import Threshold


SEARCH_HEADROOM = 0.25
KEY_HEADROOM = {"min_cosine": 0.5}  # the worst sample's figure: the most swing between sample sets


def headroom_of(key: str) -> float:
    return KEY_HEADROOM.get(key, SEARCH_HEADROOM)


def searched_value(key: str, value: float, headroom: float | None = None) -> float:
    """The threshold the search holds a candidate to: `headroom` (by default the key's own,
    headroom_of) of the way from the gate's threshold to a perfect figure (1 for agreement/cosine
    keys, 0 for error keys; a SQNR floor rises by the dB of that noise share)."""
    headroom = headroom_of(key) if headroom is None else headroom
    op = METRICS.get(key, (None, ">="))[1]
    if headroom <= 0:
        return value
    if op == "<=":
        return value * (1 - headroom)
    if value <= 1:
        return value + headroom * (1 - value)
    return value - 10 * float(np.log10(1 - headroom))


@dataclass(frozen=True)
class Budget:
    outputs: tuple[str, ...]  # the source's output names, in order
    thresholds: dict[str, dict[str, Threshold]]  # per output: {tolerance key: Threshold}
    kinds: dict[str, str] = field(default_factory=dict)  # declared output kinds ([outputs.NAME] kind)

    def to_json(self) -> dict[str, Any]:
        """{output: {key: {"value": the gate's threshold, "source", "searched": the search's}}}"""
        return {
            o: {k: {"value": t.value, "source": t.source, "searched": round(searched_value(k, t.value), 9)} for k, t in th.items()}
            for o, th in self.thresholds.items()
        }


def cell_budget(profile, fmt: str, precision: str, output_names: list[str]) -> Budget:
    """The budget of one cell: what its gate will check, output by output."""
    return Budget(
        tuple(output_names),
        {n: dict(profile.tolerance_sources(precision, format=fmt, output=n)) for n in output_names},
        dict(profile.output_kinds),
    )


@dataclass(frozen=True)
class Figures:
    """How one candidate did on the search-check samples."""

    passed: bool
    score: float  # the worst check's margin relative to its threshold: >= 0 when every check holds
    values: dict[str, dict[str, float]]  # {output: {tolerance key: value}}
    failures: tuple[str, ...]
    binding: tuple[str, str] | None  # (output, key) of the worst check
    failed_keys: tuple[tuple[str, str], ...] = ()  # (output, key) of each failure ("nonfinite" for non-finite values)
    samples: int = 0  # how many samples the figures are over

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "score": round(self.score, 6), "values": self.values, "failures": list(self.failures),
                "binding": list(self.binding) if self.binding else None}


def _relative(margin: float | None, threshold: float) -> float:
    if margin is None or not np.isfinite(margin):
        return -1e9
    return margin / max(abs(threshold), 1e-6)


def failed(reason: str) -> Figures:
    """The figures of a candidate that could not be built or run."""
    return Figures(False, -1e9, {}, (reason,), None)


def evaluate(budget: Budget, refs: list[list[np.ndarray]], outs: list[list[np.ndarray]], headroom: float | None = None) -> Figures:
    """Every check of the budget on these samples (refs/outs: per sample, outputs in order), each
    threshold tightened by `headroom` (searched_value; None: each key's own, 0: the gate's)."""
    return evaluate_at(budget, refs, outs, (headroom,))[0]


def output_kinds(budget: Budget, refs: list[list[np.ndarray]]) -> dict[str, str]:
    """{output: its kind} over these samples' reference outputs (the declared kind wins)."""
    return {name: classify(name, [x[i] for x in refs], declared=budget.kinds.get(name)) for i, name in enumerate(budget.outputs)}


def evaluate_at(budget: Budget, refs: list[list[np.ndarray]], outs: list[list[np.ndarray]], headrooms: tuple[float | None, ...],
                kinds: dict[str, str] | None = None) -> list[Figures]:
    """evaluate() at each of `headrooms`, the error statistics computed once; `kinds` (output_kinds
    of a larger sample set) instead of the kinds these samples show."""
    kinds = kinds or output_kinds(budget, refs)
    stats = []
    for i, name in enumerate(budget.outputs):
        r, o = [x[i] for x in refs], [x[i] for x in outs]
        stats.append((name, error_stats(name, r, o, kinds[name])))
    return [dataclasses.replace(_figures(budget, stats, h), samples=len(refs)) for h in headrooms]


# Figures that are the worst sample's (a minimum or maximum over samples): more samples can only
# make them worse, so a candidate that misses the gate's own threshold on some samples misses it
# on all of them. Non-finite outputs stay non-finite too.
WORST_SAMPLE_KEYS = ("min_cosine", "max_abs")


def hopeless(gate: Figures) -> bool:
    """True when figures judged at the gate's own thresholds (headroom 0) on some of the samples
    already fail a worst-sample check: the candidate cannot meet the budget on all of them."""
    return any(key in (*WORST_SAMPLE_KEYS, "nonfinite") for _output, key in gate.failed_keys)


def _figures(budget: Budget, stats, headroom: float | None) -> Figures:
    values, failures, failed_keys = {}, [], []
    worst, binding = float("inf"), None
    for name, st in stats:
        th = {k: Threshold(searched_value(k, t.value, headroom), t.source) for k, t in budget.thresholds.get(name, {}).items()}
        s = judge(st, th)
        values[name] = {c.metric: (c.value if c.value is not None else float("nan")) for c in s.checks}
        if s.nonfinite:
            failures.append(f"output '{name}': {s.nonfinite_values} non-finite values")
            failed_keys.append((name, "nonfinite"))
            worst, binding = -1e9, (name, "nonfinite")
        for c in s.checks:
            rel = _relative(c.margin, c.threshold)
            if rel < worst:
                worst, binding = rel, (name, c.metric)
            if not c.passed:
                failures.append(f"output '{name}': {c.metric} {f'{c.value:.6g}' if c.value is not None else 'undefined'} vs {c.threshold:g}")
                failed_keys.append((name, c.metric))
    if worst == float("inf"):
        worst = 0.0
    return Figures(not failures, float(worst), values, tuple(failures), binding, tuple(failed_keys))
