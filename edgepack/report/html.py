"""report.html: one self-contained page for people (inline SVG charts, no network, no JavaScript).

Every string that reaches the page is escaped; a failing figure is marked in its own cell
(class 'fail' on the td), not only in the row's verdict."""
from __future__ import annotations

import html
import json

from ..types import ArtifactResult, BuildReport
from .json_report import latency_estimate_json
from .matrix import column_label, parity_matrix, several_targets
from .emulated import EMULATED_COLUMNS, emulated_row
from .int8_auto import html_section_all as int8_auto_section
from .outputs import Cell, diagnosis_text, label, metric_columns, number, output_rows, worst_sqnr
from .summary import COLUMNS, failed_row, failures, notes, row
from .svg import Bar, Point, heatmap, latency_chart, layer_curve, size_sqnr_chart

_STYLE = """
body{font:14px/1.5 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.PASS{color:#0a0;font-weight:bold}.FAIL{color:#c00;font-weight:bold}
td.fail{background:#fde2e2;color:#a00;font-weight:bold}td.pass small{color:#0a0}td small{display:block;font-weight:normal;color:#666}
td.none{color:#999}details{margin:.5em 0}h3{font-size:15px;margin-top:1.5em}pre{background:#f8f8f8;padding:.5em;overflow:auto}
svg{display:block;margin:.5em 0 1.5em}svg text{fill:#333}
"""
e = html.escape


def _label(r: ArtifactResult, targets: bool) -> str:
    return (f"{r.target} " if targets else "") + f"{r.artifact.format} {r.artifact.precision}"


def _metric_td(c: Cell | None) -> str:
    if c is None:
        return "<td class='none'>–</td>"
    if c.failed is None:
        return f"<td>{e(c.text)}</td>"
    cls = "fail" if c.failed else "pass"
    title = f" title='threshold from {e(c.source)}'" if c.source else ""
    return f"<td class='{cls}'{title}>{e(c.text)}<small>{e(c.threshold)} · margin {e(c.margin)}</small></td>"


def outputs_table(report: BuildReport) -> str:
    """One row per output per artifact: kind, every figure with its threshold and margin, verdict."""
    rows = [o for r in report.artifacts for o in output_rows(r)]
    if not rows:
        return ""
    metrics = metric_columns(rows)
    head = ["Target", "Format", "Precision", "Output", "Kind", *(label(m) for m in metrics), "Result"]
    body = []
    for o in rows:
        verdict = "PASS" if o.passed else "FAIL"
        body.append(
            "<tr>"
            + "".join(f"<td>{e(str(v))}</td>" for v in (o.target, o.format, o.precision, o.output, o.kind))
            + "".join(_metric_td(o.cells.get(m)) for m in metrics)
            + f"<td class='{verdict}'>{verdict}</td></tr>"
        )
    return (
        "<h2>Outputs</h2><p>Every output of every artifact, judged on its own. Under each judged figure: its "
        "threshold and margin (positive = inside the threshold); hover for where the threshold came from.</p>"
        f"<table class='outputs'><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{''.join(body)}</table>"
    )


def matrix_section(m: dict) -> str:
    """The parity matrix (report.json's "parity_matrix") as a heatmap and a table."""
    if not m["rows"] or not m["columns"]:
        return ""
    many = several_targets(m)
    cols = [column_label(c, many) for c in m["columns"]]
    head = "<tr><th>Output</th>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>"
    body = []
    for r in m["rows"]:
        tds = []
        for c, cell in zip(m["columns"], r["cells"], strict=True):
            if cell is None:
                tds.append(f"<td class='none'>{'no artifact' if c['status'] == 'failed' else '–'}</td>")
                continue
            lines = [f"SQNR {number(cell['sqnr_db'], 'sqnr_db')} dB", f"cos {number(cell['min_cosine'], 'min_cosine')}"]
            if cell["nonfinite"]:
                lines.insert(0, "non-finite values")
            if cell["top1_agreement"] is not None:
                lines.append(f"top-1 {number(cell['top1_agreement'], 'top1_agreement')}")
            failing = f"<small>failed: {e(', '.join(cell['failing']))}</small>" if cell["failing"] else ""
            cls = "pass" if cell["passed"] else "fail"
            tds.append(f"<td class='{cls}'>{'<br>'.join(e(x) for x in lines)}{failing}</td>")
        name = r["output"] + (f" ({r['kind']})" if r["kind"] else "")
        body.append(f"<tr><td>{e(name)}</td>{''.join(tds)}</tr>")
    chart = heatmap([r["output"] for r in m["rows"]], cols, [r["cells"] for r in m["rows"]])
    return (
        "<h2>Parity matrix</h2><p>The source against every format × precision, per output "
        "(SQNR, minimum cosine, top-1 agreement where the output is class scores).</p>"
        f"{chart}<table class='matrix'>{head}{''.join(body)}</table>"
    )


def emulated_section(report: BuildReport) -> str:
    """A small table of each emulated artifact's arm64 run, beside the host figures above it."""
    rows = [x for x in (emulated_row(r) for r in report.artifacts) if x is not None]
    if not rows:
        return ""
    k = EMULATED_COLUMNS.index("arm64 parity")

    def td(i, v):
        cls = " class='fail'" if i == k and (v == "FAIL" or v.startswith("FAIL:")) else " class='PASS'" if i == k and v == "PASS" else ""
        return f"<td{cls}>{e(v)}</td>"

    body = "".join("<tr>" + "".join(td(i, v) for i, v in enumerate(rw)) + "</tr>" for rw in rows)
    return (
        "<h2>Emulated arm64</h2><p>The real arm64 runtime under QEMU (emulated-arm64): parity against the source, "
        "the same raw feeds against the host run, and the guest instructions of one single-threaded inference "
        "(counts, not a time).</p>"
        f"<table class='emulated'><tr>{''.join(f'<th>{e(h)}</th>' for h in EMULATED_COLUMNS)}</tr>{body}</table>"
    )


def charts_section(report: BuildReport) -> str:
    many = len({r.target for r in report.artifacts}) > 1
    points, bars = [], []
    for r in report.artifacts:
        sq, undefined = worst_sqnr(r)
        points.append(Point(_label(r, many), r.size_bytes, None if undefined else sq, r.artifact.format, not r.passed))
        if r.latency is not None:
            bars.append(Bar(_label(r, many), r.latency.p50_ms, r.latency.measured_on, detail=f"{r.latency.threads} thr"))
        est = latency_estimate_json(r)
        if est and est.get("ms") is not None:
            err = est.get("error_pct")
            detail = ", ".join(x for x in (str(est.get("device") or ""), f"±{err:.0f}%" if err is not None else "") if x)
            bars.append(Bar(_label(r, many), float(est["ms"]), str(est.get("label") or "estimated-device"), estimated=True, detail=detail))
    out = ""
    if points:
        out += "<h2>Size against error</h2>" + size_sqnr_chart(points)
    if bars:
        out += (
            "<h2>Latency</h2><p>p50. Solid bars are measured on the build machine (host runtime, or the Core ML "
            "emulator), never on the device; hatched bars, labelled estimated, are device estimates from "
            "instruction counts.</p>" + latency_chart(bars)
        )
    return out


def diagnosis_section(report: BuildReport) -> str:
    many = len({r.target for r in report.artifacts}) > 1
    parts = []
    for r in report.artifacts:
        d = r.parity.diagnosis
        if not d or not d.get("layers"):
            continue
        title = f"{_label(r, many)} against {d.get('against', 'source')}"
        text = diagnosis_text(d)
        parts.append(f"<h3>{e(title)}</h3><p>{e(text)}</p>{layer_curve(d['layers'], d.get('first_divergent'), title, band_db=d.get('band_db'), other=d.get('against') if d.get('other') is not None else None)}")
    return "<h2>Diagnosis</h2>" + "".join(parts) if parts else ""


STAGE_ORDER = ("load", "convert", "quantise", "validate", "time")


def timings_section(report: BuildReport) -> str:
    """Where the time went, per cell and stage (wall seconds); cached cells say so instead."""
    rows = []
    for r in report.artifacts:
        label = f"{e(r.target)} · {e(r.artifact.format)} · {e(r.artifact.precision)}"
        if r.cache and r.cache.get("hit"):
            rows.append(f"<tr><td>{label}</td><td colspan='{len(STAGE_ORDER) + 1}'>reused from the cell cache</td></tr>")
            continue
        st = r.stage_seconds or {}
        cells = "".join(f"<td>{st[k]:.2f}</td>" if k in st else "<td>–</td>" for k in STAGE_ORDER)
        rows.append(f"<tr><td>{label}</td>{cells}<td>{sum(st.values()):.2f}</td></tr>")
    if not rows:
        return ""
    head = "".join(f"<th>{k}</th>" for k in ("cell", *STAGE_ORDER, "total"))
    cache = report.cache
    where = (
        f"<p>Cell cache <code>{e(cache['location'])}</code>: {cache['hits']} reused, {cache['stored']} stored"
        + (f", {len(cache['corrupt'])} corrupt entries rebuilt" if cache.get("corrupt") else "") + ".</p>"
        if cache else "<p>Cell cache off (--no-cache).</p>"
    )
    return f"<h2>Where the time goes</h2><p>Wall seconds per stage of each cell; load is the cell's wait for its converter (model and imports).</p><table><tr>{head}</tr>{''.join(rows)}</table>{where}"


def report_html(report: BuildReport, report_json: dict) -> str:
    m = report.model
    rows = []
    for r in report.artifacts:
        rows.append("<tr>" + "".join(f"<td class='{e(c)}'>{e(c)}</td>" for c in row(r)) + "</tr>")
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
{outputs_table(report)}
{matrix_section(report_json.get('parity_matrix') or parity_matrix(report))}
{emulated_section(report)}
{charts_section(report)}
{diagnosis_section(report)}
{int8_auto_section(report.artifacts)}
{timings_section(report)}
<h2>Artifacts</h2>
{''.join(sections)}
</body></html>
"""
