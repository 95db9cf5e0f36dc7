"""One row per artifact, as plain strings: the full row for the Markdown and HTML tables, and a
narrow one for the terminal (which must fit 100 columns; the reports carry the rest)."""
from __future__ import annotations

from ..types import ArtifactResult

COLUMNS = ("Target", "Format", "Precision", "Size", "Max abs", "Min cosine", "SQNR dB", "Top-1 agree", "Accuracy", "Latency p50 / p90", "Result")
TERMINAL_COLUMNS = ("Target", "Format", "Precision", "Size", "Max abs", "Cosine", "Top-1", "Acc", "p50 ms", "Result")
TERMINAL_WIDTH = 100
_TARGET_WIDTH = 13  # "android-arm64"; longer names are cut with "…" in the terminal
_WHERE = {"host": "", "emulator": " emu"}  # the terminal's abbreviation of LatencyReport.measured_on


def _f(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def clip(text: str, width: int) -> str:
    """`text` cut to `width` characters, ending in "…" when cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _ms(v: float) -> str:
    """Milliseconds in at most 5-6 characters: 0.123, 12.35, 123.5, 1235."""
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def _worst(r: ArtifactResult):
    stats = r.parity.outputs
    agrees = [s.top1_agreement for s in stats if s.top1_agreement is not None]
    return (
        max((s.max_abs for s in stats), default=None),
        min((s.min_cosine for s in stats), default=None),
        min((s.sqnr_db for s in stats), default=None),
        min(agrees) if agrees else None,
    )


def latency_text(r: ArtifactResult) -> str:
    lat = r.latency
    if lat is None:
        return f"not measured ({r.latency_skipped})" if r.latency_skipped else "–"
    return f"{lat.p50_ms:.3f} / {lat.p90_ms:.3f} ms ({lat.measured_on}, {lat.threads} thr)"


def row(r: ArtifactResult) -> tuple[str, ...]:
    worst_abs, worst_cos, worst_sqnr, agree = _worst(r)
    acc = r.parity.accuracy
    return (
        r.target,
        r.artifact.format,
        r.artifact.precision,
        human_size(r.size_bytes),
        _f(worst_abs, ".3g"),
        _f(worst_cos, ".6f"),
        _f(worst_sqnr, ".1f"),
        _f(agree, ".2%"),
        _f(acc, ".2%") + ("" if r.parity.reference_accuracy is None else f" (src {r.parity.reference_accuracy:.2%})"),
        latency_text(r),
        "PASS" if r.passed else "FAIL",
    )


def terminal_row(r: ArtifactResult) -> tuple[str, ...]:
    """The terminal's row: p50 only, in ms, "emu" for the Core ML emulator; SQNR, p90, threads and
    the source's accuracy are in report.md / report.html / report.json."""
    worst_abs, worst_cos, _, agree = _worst(r)
    lat = r.latency
    latency = ("not measured" if r.latency_skipped else "–") if lat is None else _ms(lat.p50_ms) + _WHERE.get(lat.measured_on, f" {lat.measured_on[:4]}")
    return (
        clip(r.target, _TARGET_WIDTH),
        r.artifact.format,
        r.artifact.precision,
        human_size(r.size_bytes),
        _f(worst_abs, ".3g"),
        _f(worst_cos, ".6f"),
        _f(agree, ".1%"),
        _f(r.parity.accuracy, ".1%"),
        latency,
        "PASS" if r.passed else "FAIL",
    )


def failed_row(f, columns: tuple[str, ...] = COLUMNS) -> tuple[str, ...]:
    """A cell that produced no artifact: its target, format, precision, then dashes, and
    "FAIL (stage)". The reason is in the failure lines and the reports' sections."""
    short = clip(f.target, _TARGET_WIDTH) if columns is TERMINAL_COLUMNS else f.target
    return (short, f.format, f.precision, *("–" for _ in columns[3:-1]), f"FAIL ({f.stage})")


def failures(r: ArtifactResult) -> list[str]:
    return [*r.parity.failures, *r.budget_failures]


def notes(r: ArtifactResult) -> list[str]:
    return [*r.artifact.details.get("notes", []), *r.parity.notes, *r.notes]
