"""report.md: a table fit for a CI job summary."""
from __future__ import annotations

from ..types import BuildReport
from .summary import COLUMNS, failed_row, failures, notes, row


def report_markdown(report: BuildReport) -> str:
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
    for r in report.artifacts:
        f, n = failures(r), notes(r)
        if f or n:
            lines.append(f"**{r.target} · {r.artifact.format} · {r.artifact.precision}** (`{r.file}`)")
            lines += [f"- ❌ {x}" for x in f] + [f"- {x}" for x in n]
            lines.append("")
    for f in report.failed_cells:
        lines.append(f"**{f.target} · {f.format} · {f.precision}**: no artifact")
        lines += [f"- ❌ failed at {f.stage} ({f.error}, exit {f.exit_code}): {f.reason}", ""]
    return "\n".join(lines)
