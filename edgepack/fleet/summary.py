"""The fleet summary: fleet.json (the contract), fleet.md and fleet.html, with the cell grid of
every model (model × target × format × precision: status, exit code, sha256) and the fleet's exit
code, the worst cell's."""
from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__

FLEET_SCHEMA_VERSION = "1"


@dataclass
class FleetReport:
    out: Path
    plan: dict[str, Any]  # digest, tasks_total, models (FLEET.toml order), shard [I, N] or None, tasks (ids here)
    executor: str  # local | ray | merged
    models: list[dict[str, Any]]  # name, model, calibration, report (relative path or None), exit_code, passed
    cells: list[dict[str, Any]]  # model, target, format, precision, status, exit_code (+ file, sha256, size_bytes | stage, reason)
    tasks: list[dict[str, Any]]  # id, status, attempts, duration_s, exit_code, shard, cache_hits (cells the cache had)

    @property
    def exit_code(self) -> int:
        return max((int(c["exit_code"]) for c in self.cells), default=0)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": FLEET_SCHEMA_VERSION,
            "edgepack_version": __version__,
            "executor": self.executor,
            "exit_code": self.exit_code,
            "passed": self.passed,
            "plan": self.plan,
            "models": self.models,
            "cells": self.cells,
            "tasks": self.tasks,
        }


def _counts(report: FleetReport) -> str:
    by: dict[str, int] = {}
    for c in report.cells:
        by[c["status"]] = by.get(c["status"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(by.items())) or "no cells"


def fleet_markdown(report: FleetReport) -> str:
    shard = report.plan.get("shard")
    lines = [
        "# edgepack fleet" + (f" (shard {shard[0]}/{shard[1]})" if shard else ""),
        "",
        f"Exit code {report.exit_code} (the worst cell's). {len(report.cells)} cells: {_counts(report)}. "
        f"{len(report.plan['tasks'])} of {report.plan['tasks_total']} tasks, executor {report.executor}.",
        "",
        "| Model | Target | Format | Precision | Status | Exit | sha256 / reason |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report.cells:
        what = c.get("sha256", "")[:16] if c["status"] != "failed" else f"{c.get('stage')}: {c.get('reason', '')}".replace("|", "\\|")
        lines.append(f"| {c['model']} | {c['target']} | {c['format']} | {c['precision']} | {c['status']} | {c['exit_code']} | {what} |")
    lines += ["", "Reports per model: " + ", ".join(f"[{m['name']}]({m['report']})" if m["report"] else f"{m['name']} (none: no cell built)" for m in report.models)]
    return "\n".join(lines) + "\n"


def fleet_html(report: FleetReport) -> str:
    e = html.escape
    rows = []
    for c in report.cells:
        css = "PASS" if c["exit_code"] == 0 else "FAIL"
        what = e(c.get("sha256", "")[:16]) if c["status"] != "failed" else e(f"{c.get('stage')}: {c.get('reason', '')}")
        rows.append(
            f"<tr class='{css}'><td>{e(c['model'])}</td><td>{e(c['target'])}</td><td>{e(c['format'])}</td>"
            f"<td>{e(c['precision'])}</td><td>{e(c['status'])}</td><td>{c['exit_code']}</td><td><code>{what}</code></td></tr>"
        )
    links = "".join(
        f"<li><a href='{e(m['report'].replace('.json', '.html'))}'>{e(m['name'])}</a> (exit {m['exit_code']})</li>" if m["report"]
        else f"<li>{e(m['name'])}: no cell built (exit {m['exit_code']})</li>"
        for m in report.models
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>edgepack fleet</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
        "tr.FAIL td{background:#fde8e8}tr.PASS td{background:#e8f6e8}</style></head><body>"
        f"<h1>edgepack fleet</h1><p>Exit code {report.exit_code} (the worst cell's). {e(_counts(report))}; executor {e(report.executor)}.</p>"
        "<table><tr><th>Model</th><th>Target</th><th>Format</th><th>Precision</th><th>Status</th><th>Exit</th><th>sha256 / reason</th></tr>"
        + "".join(rows) + f"</table><h2>Reports</h2><ul>{links}</ul></body></html>\n"
    )


def write_summary(report: FleetReport, folder: Path) -> None:
    (folder / "fleet.json").write_text(json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (folder / "fleet.md").write_text(fleet_markdown(report), encoding="utf-8")
    (folder / "fleet.html").write_text(fleet_html(report), encoding="utf-8")
