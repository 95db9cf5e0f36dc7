"""report.md: tables fit for a CI job summary: the cells, every output with its thresholds and
margins, and the cross-format parity matrix."""
from __future__ import annotations

from ..types import BuildReport
from .matrix import column_label, parity_matrix, several_targets
from .emulated import EMULATED_COLUMNS, emulated_row
from .int8_auto import markdown_section as int8_auto_section
from .outputs import diagnosis_text, label, metric_columns, number, output_rows
from .summary import COLUMNS, failed_row, failures, notes, row

FAILED = "❌"


def _md(text: str) -> str:
    """A table cell's text: pipes escaped, no line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def outputs_table(report: BuildReport) -> list[str]:
    """One row per output per artifact: kind, each figure as "value (≥ threshold, margin m)", ❌ on a
    failing figure, and the output's verdict."""
    rows = [o for r in report.artifacts for o in output_rows(r)]
    if not rows:
        return []
    metrics = metric_columns(rows)
    head = ["Target", "Format", "Precision", "Output", "Kind", *(label(m) for m in metrics), "Result"]
    lines = ["## Outputs", "", "Each judged figure: value (threshold, margin; positive = inside).", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in rows:
        cells = []
        for m in metrics:
            c = o.cells.get(m)
            cells.append("–" if c is None else c.full() + (f" {FAILED}" if c.failed else ""))
        verdict = "PASS" if o.passed else f"FAIL {FAILED}"
        lines.append("| " + " | ".join(_md(x) for x in (o.target, o.format, o.precision, o.output, o.kind, *cells, verdict)) + " |")
    return [*lines, ""]


def matrix_table(m: dict) -> list[str]:
    """report.json's "parity_matrix" as a table: outputs × target/format/precision, each cell
    "SQNR dB / cosine" (and top-1 for class outputs), ❌ where the output failed in that cell."""
    if not m["rows"] or not m["columns"]:
        return []
    many = several_targets(m)
    head = ["Output", *(column_label(c, many) for c in m["columns"])]
    lines = ["## Parity matrix", "", "SQNR dB / min cosine (/ top-1 agreement) of each output against the source.", ""]
    lines += ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
    for r in m["rows"]:
        cells = []
        for c, cell in zip(m["columns"], r["cells"], strict=True):
            if cell is None:
                cells.append("no artifact" if c["status"] == "failed" else "–")
                continue
            text = f"{number(cell['sqnr_db'], 'sqnr_db')} / {number(cell['min_cosine'], 'min_cosine')}"
            if cell["nonfinite"] and cell["sqnr_db"] is None:
                text = "non-finite"
            if cell["top1_agreement"] is not None:
                text += f" / {number(cell['top1_agreement'], 'top1_agreement')}"
            if not cell["passed"]:
                text += f" {FAILED}" + (f" ({', '.join(cell['failing'])})" if cell["failing"] else "")
            cells.append(text)
        name = r["output"] + (f" ({r['kind']})" if r["kind"] else "")
        lines.append("| " + " | ".join(_md(x) for x in (name, *cells)) + " |")
    return [*lines, ""]


def emulated_table(report: BuildReport) -> list[str]:
    """The arm64 run of each emulated artifact (edgepack/arm64): parity against the source with the
    worst cosine, arm64 against the host run, instructions of one inference and the top classes."""
    rows = [x for x in (emulated_row(r) for r in report.artifacts) if x is not None]
    if not rows:
        return []
    lines = ["## Emulated arm64", "", "The real arm64 runtime under QEMU (`emulated-arm64`): parity against the source, the same "
             "raw feeds against the host run, and the guest instructions of one single-threaded inference (counts, not a time).", ""]
    lines += ["| " + " | ".join(EMULATED_COLUMNS) + " |", "|" + "---|" * len(EMULATED_COLUMNS)]
    lines += ["| " + " | ".join(_md(x) + (f" {FAILED}" if x == "FAIL" or str(x).startswith("FAIL:") else "") for x in rw) + " |" for rw in rows]
    return [*lines, ""]


def report_markdown(report: BuildReport, matrix: dict | None = None) -> str:
    m = report.model
    verdict = "✅ all artifacts passed" if report.passed else "❌ some artifacts failed"
    lines = [
        f"# edgepack build: {m['name']}",
        "",
        f"{verdict} · source `{m['source']}` ({m['kind']}) · edgepack {report.edgepack_version} · {report.duration_s:.1f} s",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row(r)) + " |" for r in report.artifacts]
    lines += ["| " + " | ".join(failed_row(f)) + " |" for f in report.failed_cells]
    lines += ["", "Latency is measured on the build machine in each artifact's own runtime (`host`, or edgepack's Core ML `emulator`); it is not a device measurement.", ""]
    lines += [f"- {x}" for x in report.notes] + ([""] if report.notes else [])
    lines += outputs_table(report)
    lines += matrix_table(matrix if matrix is not None else parity_matrix(report))
    lines += emulated_table(report)
    lines += int8_auto_section(report.artifacts)
    for r in report.artifacts:
        f, n, d = failures(r), notes(r), r.parity.diagnosis
        if f or n or d:
            lines.append(f"**{r.target} · {r.artifact.format} · {r.artifact.precision}** (`{r.file}`)")
            lines += [f"- ❌ {x}" for x in f] + [f"- {x}" for x in n]
            if d:
                lines.append(f"- diagnosis against {d.get('against', 'source')}: {diagnosis_text(d)}")
            lines.append("")
    for f in report.failed_cells:
        lines.append(f"**{f.target} · {f.format} · {f.precision}**: no artifact")
        lines += [f"- ❌ failed at {f.stage} ({f.error}, exit {f.exit_code}): {f.reason}", ""]
    return "\n".join(lines)
