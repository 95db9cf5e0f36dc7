"""Write every report file into the (staging) output folder."""
from __future__ import annotations

import json
from pathlib import Path

from ..calibration import CalibrationSet
from ..types import BuildReport
from .html import report_html
from .json_report import report_json
from .manifest import manifest_json
from .markdown import report_markdown


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_reports(report: BuildReport, calib: CalibrationSet, out: Path) -> None:
    rj = report_json(report)
    _dump(out / "report.json", rj)
    _dump(out / "manifest.json", manifest_json(report, calib))
    (out / "report.md").write_text(report_markdown(report, rj["parity_matrix"]) + "\n", encoding="utf-8")
    (out / "report.html").write_text(report_html(report, rj), encoding="utf-8")
