"""One row per artifact, as plain strings: the full row for the Markdown and HTML tables, and a
narrow one for the terminal (which must fit 100 columns; the reports carry the rest)."""
from __future__ import annotations

import math

from ..types import ArtifactResult
from .emulated import TERMINAL_COLUMNS as ARM64_COLUMNS
from .emulated import emulated_failures, emulated_terminal_row
from .outputs import failing_output_text, output_rows, worst_output

COLUMNS = ("Target", "Format", "Precision", "Size", "Max abs", "Min cosine", "SQNR dB", "Top-1 agree", "Accuracy", "Latency p50 / p90", "Result")
# The terminal shows each artifact's worst output (a failing one first, else the lowest cosine) and its figures.
TERMINAL_COLUMNS = ("Target", "Format", "Precision", "Size", "Worst output", "Cosine", "Top-1", "Acc", "p50 ms", "Result")
TERMINAL_WIDTH = 100
_TARGET_WIDTH = 13  # "android-arm64"; longer names are cut with "…" in the terminal
_OUTPUT_WIDTH = 12  # the worst output's name; cut further when a line would pass TERMINAL_WIDTH
_WHERE = {"host": "", "emulator": " emu"}  # the terminal's abbreviation of LatencyReport.measured_on


def _f(v: float | None, fmt: str) -> str:
    if v is None:
        return "–"
    return format(v, fmt) if math.isfinite(v) else "non-finite"


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if round(n, 1) < 1000 or unit == "GB":  # 999.99 KB is "1.0 MB", not "1000.0 KB"
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
    """The worst figure over the outputs: (max abs, min cosine, min SQNR, min top-1 agreement); NaN
    (printed "non-finite") when an output's figure is undefined because its values were not finite."""
    stats = r.parity.outputs

    def pick(name, best):
        values = [getattr(s, name) for s in stats]
        if any(v is None or not math.isfinite(v) for v in values):
            return math.nan
        return best(values, default=None)

    agrees = [s.top1_agreement for s in stats if s.top1_agreement is not None]
    return pick("max_abs", max), pick("min_cosine", min), pick("sqnr_db", min), min(agrees) if agrees else None


def latency_text(r: ArtifactResult) -> str:
    """p50 / p90 where it was measured, and the device estimate (labelled so) where there is one."""
    lat = r.latency
    if lat is None:
        text = f"not measured ({r.latency_skipped})" if r.latency_skipped else "–"
    else:
        text = f"{lat.p50_ms:.3f} / {lat.p90_ms:.3f} ms ({lat.measured_on}, {lat.threads} thr)"
    est = r.latency_estimate
    if est and est.get("ms") is not None:
        err = est.get("error_pct")
        text += f"; estimated {est['ms']:.3g} ms" + (f" ±{err:.0f}%" if err is not None else "") + (f" on {est['device']}" if est.get("device") else "")
    return text


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
    """The terminal's row: the worst output with its cosine and top-1 agreement, p50 only, in ms,
    "emu" for the Core ML emulator; every output, SQNR, p90, threads and the source's accuracy are in
    report.md / report.html / report.json."""
    worst = worst_output(r)
    lat = r.latency
    latency = ("not measured" if r.latency_skipped else "–") if lat is None else _ms(lat.p50_ms) + _WHERE.get(lat.measured_on, f" {lat.measured_on[:4]}")
    cos = None if worst is None else worst.min_cosine
    if cos is None and worst is not None and worst.nonfinite:
        cos = math.nan  # undefined: the artifact's values were not finite
    return (
        clip(r.target, _TARGET_WIDTH),
        r.artifact.format,
        r.artifact.precision,
        human_size(r.size_bytes),
        "–" if worst is None else clip(worst.output, _OUTPUT_WIDTH),
        _f(cos, ".6f"),
        _f(None if worst is None else worst.top1_agreement, ".1%"),
        _f(r.parity.accuracy, ".1%"),
        latency,
        "PASS" if r.passed else "FAIL",
    )


def table_lines(columns: tuple[str, ...], rows: list[tuple[str, ...]], width: int = TERMINAL_WIDTH) -> list[str]:
    """A left-aligned table, two spaces between columns, no line longer than `width`: the worst-output
    column is cut first, then any line that is still too long."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    last = max((len(r[-1]) for r in rows), default=0)
    if "Worst output" in columns:
        k = columns.index("Worst output")
        over = sum(widths[:-1]) + 2 * (len(columns) - 1) + max(last, len(columns[-1])) - width
        if over > 0:
            widths[k] = max(widths[k] - over, 5)
            rows = [r[:k] + (clip(r[k], widths[k]),) + r[k + 1 :] for r in rows]
            columns = columns[:k] + ("Worst",) + columns[k + 1 :]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*columns), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    return [clip(ln.rstrip(), width) for ln in lines]


def failing_output_lines(r: ArtifactResult, width: int = TERMINAL_WIDTH) -> list[str]:
    """One line per failing output: "FAIL target format precision output (kind): metric value
    (threshold, margin m); ...", cut to `width`."""
    head = f"FAIL {clip(r.target, _TARGET_WIDTH)} {r.artifact.format} {r.artifact.precision} "
    return [clip(head + failing_output_text(o), width) for o in output_rows(r) if not o.passed]


def arm64_lines(results: list[ArtifactResult], width: int = TERMINAL_WIDTH) -> list[str]:
    """A table of the artifacts that ran emulated (arm64 parity, worst cosine, vs host, instructions
    of one inference, top classes); artifacts that did not run share one line per reason."""
    with_target = len({r.target for r in results}) > 1
    rows = [x for x in (emulated_terminal_row(r, with_target) for r in results) if x is not None]
    if with_target:
        rows = [(clip(x[0], _TARGET_WIDTH + 20),) + x[1:] for x in rows]
    skipped: dict[str, int] = {}
    for r in results:
        em = r.emulated
        if em and not em.get("ran") and (em.get("parity") or {}).get("passed") is not False:
            why = str(em.get("note") or "–")
            skipped[why] = skipped.get(why, 0) + 1
    lines = table_lines(ARM64_COLUMNS, rows, width) if rows else []
    return lines + [clip(f"arm64 not run for {n} artifact{'s' if n != 1 else ''}: {why}", width) for why, n in skipped.items()]


def terminal_lines(results: list[ArtifactResult], failed_cells=(), width: int = TERMINAL_WIDTH) -> list[str]:
    """The terminal summary: one row per cell (each artifact's worst output), a line per int8_auto
    cell (its fallbacks and search cost), the arm64 run of each emulated artifact, then a line per
    failing output. Every line fits `width` columns."""
    rows = [terminal_row(r) for r in results] + [failed_row(f, TERMINAL_COLUMNS) for f in failed_cells]
    lines = table_lines(TERMINAL_COLUMNS, rows, width)
    from .int8_auto import terminal_lines as int8_auto_lines  # it imports this module

    auto = int8_auto_lines(results, width)
    arm = arm64_lines(results, width)
    fails = [ln for r in results for ln in failing_output_lines(r, width)]
    return lines + ([""] + auto if auto else []) + ([""] + arm if arm else []) + ([""] + fails if fails else [])


def failed_row(f, columns: tuple[str, ...] = COLUMNS) -> tuple[str, ...]:
    """A cell that produced no artifact: its target, format, precision, then dashes, and
    "FAIL (stage)". The reason is in the failure lines and the reports' sections."""
    short = clip(f.target, _TARGET_WIDTH) if columns is TERMINAL_COLUMNS else f.target
    return (short, f.format, f.precision, *("–" for _ in columns[3:-1]), f"FAIL ({f.stage})")


def failures(r: ArtifactResult) -> list[str]:
    """Every reason the cell failed: host parity, the arm64 run's parity ("arm64 (cpu): ..."), budgets."""
    return [*r.parity.failures, *emulated_failures(r), *r.budget_failures]


def notes(r: ArtifactResult) -> list[str]:
    return [*r.artifact.details.get("notes", []), *r.parity.notes, *r.notes]
