"""One row per artifact, as plain strings: shared by the Markdown, HTML and terminal tables."""
from __future__ import annotations

from ..types import ArtifactResult

COLUMNS = ("Target", "Format", "Precision", "Size", "Max abs", "Min cosine", "SQNR dB", "Top-1 agree", "Accuracy", "Latency p50 / p90", "Result")


def _f(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def row(r: ArtifactResult) -> tuple[str, ...]:
    stats = r.parity.outputs
    worst_abs = max((s.max_abs for s in stats), default=None)
    worst_cos = min((s.min_cosine for s in stats), default=None)
    worst_sqnr = min((s.sqnr_db for s in stats), default=None)
    agrees = [s.top1_agreement for s in stats if s.top1_agreement is not None]
    acc = r.parity.accuracy
    lat = r.latency
    latency = "–" if lat is None else f"{lat.p50_ms:.3f} / {lat.p90_ms:.3f} ms ({lat.measured_on}, {lat.threads} thr)"
    return (
        r.target,
        r.artifact.format,
        r.artifact.precision,
        human_size(r.size_bytes),
        _f(worst_abs, ".3g"),
        _f(worst_cos, ".6f"),
        _f(worst_sqnr, ".1f"),
        _f(min(agrees) if agrees else None, ".2%"),
        _f(acc, ".2%") + ("" if r.parity.reference_accuracy is None else f" (src {r.parity.reference_accuracy:.2%})"),
        latency,
        "PASS" if r.passed else "FAIL",
    )


def failures(r: ArtifactResult) -> list[str]:
    return [*r.parity.failures, *r.budget_failures]


def notes(r: ArtifactResult) -> list[str]:
    return [*r.artifact.details.get("notes", []), *r.parity.notes]
