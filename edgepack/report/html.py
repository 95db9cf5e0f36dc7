"""report.html: one self-contained page for people."""
from __future__ import annotations

import html
import json

from ..types import BuildReport
from .summary import COLUMNS, failed_row, failures, notes, row

_STYLE = """
body{font:14px/1.5 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f4f4f4}.PASS{color:#0a0;font-weight:bold}.FAIL{color:#c00;font-weight:bold}
details{margin:.5em 0}h3{font-size:15px;margin-top:1.5em}pre{background:#f8f8f8;padding:.5em;overflow:auto}
"""


def report_html(report: BuildReport, report_json: dict) -> str:
    e = html.escape
    m = report.model
    rows = []
    for r in report.artifacts:
        cells = row(r)
        rows.append("<tr>" + "".join(f"<td class='{e(c)}'>{e(c)}</td>" for c in cells) + "</tr>")
    for f in report.failed_cells:
        rows.append("<tr>" + "".join(f"<td class='{'FAIL' if c.startswith('FAIL') else ''}'>{e(c)}</td>" for c in failed_row(f)) + "</tr>")
    sections = []
    for f in report.failed_cells:
        sections.append(
            f"<h3>{e(f.target)} · {e(f.format)} · {e(f.precision)} — no artifact</h3>"
            f"<ul><li class='FAIL'>failed at {e(f.stage)} ({e(f.error)}, exit {f.exit_code}): {e(f.reason)}</li></ul>"
        )
    for r, j in zip(report.artifacts, report_json["artifacts"], strict=True):
        items = [f"<li class='FAIL'>{e(x)}</li>" for x in failures(r)] + [f"<li>{e(x)}</li>" for x in notes(r)]
        sections.append(
            f"<h3>{e(r.target)} · {e(r.artifact.format)} · {e(r.artifact.precision)} — <code>{e(r.file)}</code></h3>"
            f"<p>Route: {e(r.artifact.route)}</p><ul>{''.join(items)}</ul>"
            f"<details><summary>all figures (JSON)</summary><pre>{e(json.dumps(j, indent=2))}</pre></details>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgepack: {e(m['name'])}</title><style>{_STYLE}</style></head>
<body>
<h1>edgepack build: {e(m['name'])}</h1>
<p class="{'PASS' if report.passed else 'FAIL'}">{'All artifacts passed' if report.passed else 'Some artifacts failed'}</p>
<p>Source <code>{e(m['source'])}</code> ({e(m['kind'])}, sha256 {e(m['sha256'][:12])}…) · edgepack {e(report.edgepack_version)} · {report.duration_s:.1f} s</p>
<table><tr>{''.join(f'<th>{e(c)}</th>' for c in COLUMNS)}</tr>
{''.join(rows)}
</table>
<p>Latency is measured on the build machine in each artifact's own runtime (host, or edgepack's Core ML emulator); it is not a device measurement.</p>
{''.join(f"<p>{e(n)}</p>" for n in report.notes)}
{''.join(sections)}
</body></html>
"""
