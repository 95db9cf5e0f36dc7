"""The cross-format parity matrix: the source against every target × format × precision, per output.

report.json's "parity_matrix":
    {"metrics": ["sqnr_db", "min_cosine", "top1_agreement"],
     "columns": [{"target", "format", "precision", "file" | null, "status"}],   # the grid's order
     "rows": [{"output", "kind" | null,
               "cells": [null | {"sqnr_db", "min_cosine", "top1_agreement", "passed",
                                 "failing": [tolerance key], "nonfinite": bool}]}]}
`cells[i]` belongs to `columns[i]`; null where that cell has no artifact (status "failed") or no such
output. Values are null when absent or non-finite (report.json is strict JSON; "nonfinite" says
which)."""
from __future__ import annotations

from typing import Any

from ..types import BuildReport
from .json_report import cells_json
from .outputs import checks_of, finite, kind_of, output_passed

MATRIX_METRICS = ("sqnr_db", "min_cosine", "top1_agreement")


def parity_matrix(report: BuildReport) -> dict[str, Any]:
    by_cell = {(r.target, r.artifact.format, r.artifact.precision): r for r in report.artifacts}
    grid = cells_json(report)
    columns = [
        {"target": c["target"], "format": c["format"], "precision": c["precision"], "file": c.get("file"), "status": c["status"]}
        for c in grid
    ]
    names = [o["name"] for o in report.model.get("outputs", [])]
    for r in report.artifacts:  # an output the model description lacks still gets its row
        names += [s.output for s in r.parity.outputs if s.output not in names]
    rows = []
    for name in names:
        kind, cells = None, []
        for c in columns:
            r = by_cell.get((c["target"], c["format"], c["precision"]))
            s = None if r is None else next((s for s in r.parity.outputs if s.output == name), None)
            if s is None:
                cells.append(None)
                continue
            kind = kind or kind_of(s)
            entry: dict[str, Any] = {m: finite(getattr(s, m, None)) for m in MATRIX_METRICS}
            entry["passed"] = output_passed(s)
            entry["failing"] = [k.metric for k in checks_of(s) if not k.passed]
            entry["nonfinite"] = s.nonfinite
            cells.append(entry)
        rows.append({"output": name, "kind": kind, "cells": cells})
    return {"metrics": list(MATRIX_METRICS), "columns": columns, "rows": rows}


def column_label(c: dict[str, Any], several_targets: bool = True) -> str:
    """"android-arm64/ort/int8", or "ort/int8" when the build has one target."""
    head = f"{c['target']}/" if several_targets else ""
    return f"{head}{c['format']}/{c['precision']}"


def several_targets(matrix: dict[str, Any]) -> bool:
    return len({c["target"] for c in matrix["columns"]}) > 1
