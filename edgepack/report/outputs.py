"""Per-output figures as the reports show them: every output of every artifact gets its own row, and
every value that was judged has its threshold and margin beside it (ErrorStats.checks, built by
edgepack/validate/). Nothing here judges: it only reads the verdicts and formats them."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..types import ArtifactResult, ErrorStats

# The metrics that ErrorStats carries as fields, in the order the reports show them, with their format.
METRICS = ("max_abs", "mean_abs", "min_cosine", "sqnr_db", "top1_agreement", "top5_agreement", "exact_match")
LABELS = {
    "max_abs": "Max abs",
    "mean_abs": "Mean abs",
    "min_cosine": "Min cosine",
    "sqnr_db": "SQNR dB",
    "top1_agreement": "Top-1 agree",
    "top5_agreement": "Top-5 agree",
    "exact_match": "Exact match",
}
_FORMATS = {"max_abs": ".3g", "mean_abs": ".3g", "min_cosine": ".6f", "sqnr_db": ".1f", "top1_agreement": ".2%", "top5_agreement": ".2%", "exact_match": ".2%"}
_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "="}


def number(value: Any, metric: str = "") -> str:
    """A figure as the reports print it: "–" when absent, "non-finite" for NaN/Inf."""
    if value is None:
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "non-finite"
    return format(value, _FORMATS.get(metric, ".4g"))


def finite(value: Any) -> float | None:
    """`value` as a float, or None when absent or non-finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class Cell:
    """One judged (or merely reported) figure: `text` is the value, `threshold` and `margin` are "" when
    no check applies to it; `failed` is None for a figure that was not judged."""

    metric: str  # the ErrorStats field: sqnr_db
    value: Any
    text: str
    key: str = ""  # the check's tolerance key: min_sqnr_db ("" when not judged)
    threshold: str = ""
    margin: str = ""
    source: str = ""
    failed: bool | None = None

    def full(self) -> str:
        """"0.981234 (≥ 0.99, margin -0.008766)", or the value alone when it was not judged."""
        if not self.threshold:
            return self.text
        return f"{self.text} ({self.threshold}, margin {self.margin})"


@dataclass(frozen=True)
class OutputRow:
    target: str
    format: str
    precision: str
    output: str
    kind: str
    samples: int
    passed: bool
    cells: dict[str, Cell]  # metric -> cell, in METRICS order then the checks' own order
    nonfinite_values: int = 0

    def failing(self) -> list[Cell]:
        return [c for c in self.cells.values() if c.failed]


def kind_of(s: ErrorStats) -> str:
    return s.kind


def checks_of(s: ErrorStats) -> tuple:
    return tuple(s.checks)


def output_passed(s: ErrorStats) -> bool:
    return s.passed


def field_of(metric: str) -> str:
    """The ErrorStats field a check's metric (a tolerance key) judges: min_sqnr_db -> sqnr_db."""
    if metric in METRICS:
        return metric
    bare = metric.removeprefix("min_").removeprefix("max_")
    return bare if bare in METRICS else metric


def _check_cell(c, nonfinite: bool) -> Cell:
    metric = field_of(c.metric)
    margin = finite(c.margin)
    return Cell(
        metric=metric,
        value=c.value,
        text="non-finite" if c.value is None and nonfinite else number(c.value, metric),
        key=c.metric,
        threshold=f"{_OPS.get(c.op, c.op)} {c.threshold:g}",
        margin="–" if margin is None else format(margin, "+" + _FORMATS.get(metric, ".4g")),
        source=str(c.source or ""),
        failed=not c.passed,
    )


def output_cells(s: ErrorStats) -> dict[str, Cell]:
    """Every figure of one output: the judged ones with threshold and margin, then the rest."""
    checks = {field_of(c.metric): _check_cell(c, s.nonfinite) for c in checks_of(s)}
    cells: dict[str, Cell] = {}
    for m in METRICS:
        if m in checks:
            cells[m] = checks.pop(m)
        elif getattr(s, m, None) is not None:
            cells[m] = Cell(metric=m, value=getattr(s, m), text=number(getattr(s, m), m))
    cells.update(checks)  # metrics that are not ErrorStats fields (e.g. an exact-match rate)
    return cells


def output_rows(r: ArtifactResult) -> list[OutputRow]:
    """One row per output of the artifact, in the source's order."""
    return [
        OutputRow(
            target=r.target,
            format=r.artifact.format,
            precision=r.artifact.precision,
            output=s.output,
            kind=kind_of(s),
            samples=s.samples,
            passed=output_passed(s),
            cells=output_cells(s),
            nonfinite_values=s.nonfinite_values,
        )
        for s in r.parity.outputs
    ]


def metric_columns(rows: list[OutputRow]) -> list[str]:
    """The metrics any row has, in METRICS order then first-seen order."""
    seen = [m for m in METRICS if any(m in r.cells for r in rows)]
    for r in rows:
        seen += [m for m in r.cells if m not in seen]
    return seen


def label(metric: str) -> str:
    return LABELS.get(metric, metric.replace("_", " "))


def worst_output(r: ArtifactResult) -> ErrorStats | None:
    """The output to show in a one-line summary: a failing one first, then the lowest cosine (an output
    whose cosine is undefined, e.g. non-finite, counts as the worst)."""
    stats = list(r.parity.outputs)
    if not stats:
        return None

    def key(s: ErrorStats):
        cos = finite(s.min_cosine)
        return (output_passed(s), -math.inf if cos is None else cos)

    return min(stats, key=key)


def worst_sqnr(r: ArtifactResult) -> tuple[float | None, bool]:
    """(the lowest finite SQNR over the outputs, whether any output's SQNR is undefined)."""
    values = [finite(s.sqnr_db) for s in r.parity.outputs]
    known = [v for v in values if v is not None]
    return (min(known) if known else None), any(v is None for v in values)


def failing_output_text(row: OutputRow) -> str:
    """"boxes (boxes): min_cosine 0.780000 (≥ 0.99, margin -0.210000); ..." for a failing output."""
    parts = [f"{c.key} {c.text} ({c.threshold}, margin {c.margin})" for c in row.failing()]
    if row.nonfinite_values and not parts:
        parts.append(f"{row.nonfinite_values} non-finite values")
    return f"{row.output} ({row.kind}): " + ("; ".join(parts) if parts else "failed")


def diagnosis_text(d: dict) -> str:
    """One sentence on a diagnosis (ParityReport.diagnosis): how much was mapped, and the first
    divergent layer with its error before and after, and its scale and range where quantised."""
    mapped = d.get("mapped") or {}
    text = f"Mapped {mapped.get('pairs', '?')} tensor pairs ({mapped.get('source_tensors', '?')} source, {mapped.get('artifact_tensors', '?')} artifact tensors)."
    fd = d.get("first_divergent")
    if d.get("verdict"):  # artifact against artifact: which diverges first
        text += f" Verdict: {d['verdict']}."
    if not fd:
        return text + " No layer diverges."
    rng = fd.get("range")
    return (
        text
        + f" First divergent layer: #{fd['index']} {fd.get('source_name', '')} ({fd.get('op_type', '')}), "
        + f"SQNR {number(fd.get('sqnr_before'), 'sqnr_db')} → {number(fd.get('sqnr_after'), 'sqnr_db')} dB"
        + (f", scale {fd['scale']:.4g}" if fd.get("scale") is not None else "")
        + (f", range [{rng[0]:.4g}, {rng[1]:.4g}]" if rng else "")
        + "."
    )
