"""report.json: the machine-readable contract (schema_version guards changes)."""
from __future__ import annotations

import math
from typing import Any

from ..types import ArtifactResult, BuildReport


def finite_json(value: Any) -> Any:
    """`value` with every NaN/Inf float replaced by None: report.json stays strict JSON. A parity
    statistic that the artifact's non-finite outputs leave undefined is null, and its output's
    `nonfinite_values` (> 0) says why."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def artifact_json(r: ArtifactResult) -> dict[str, Any]:
    a = r.artifact
    return {
        "target": r.target,
        "file": r.file,
        "format": a.format,
        "precision": a.precision,
        "runtime": a.runtime,
        "route": a.route,
        "size_bytes": r.size_bytes,
        "sha256": r.sha256,
        "extra_files": list(r.extra_files),
        "inputs": [b.to_json() for b in r.inputs],
        "outputs": [b.to_json() for b in r.outputs],
        "passed": r.passed,
        "parity": finite_json(r.parity.to_json()),
        "latency": finite_json(r.latency.to_json()) if r.latency else None,
        "latency_estimate": latency_estimate_json(r),
        "emulated": finite_json(r.emulated) if r.emulated else None,  # edgepack.arm64
        "budget_failures": list(r.budget_failures),
        "notes": list(r.notes),
        "latency_skipped": r.latency_skipped,
        "details": finite_json(a.details),
        "tool_versions": a.tool_versions,
        "cache": r.cache,  # {"hit": true, "key": ...} when this cell was reused from the cell cache
        "stage_seconds": dict(r.stage_seconds),  # load, convert, quantise, validate, time: wall seconds of its cell
    }


def latency_estimate_json(r: ArtifactResult) -> dict[str, Any] | None:
    """The estimated device latency (ArtifactResult.latency_estimate, where a device model applies),
    as JSON; None when there is none. It is an estimate, never a measurement: its "label" says so."""
    return finite_json(dict(r.latency_estimate)) if r.latency_estimate else None


def report_json(report: BuildReport) -> dict[str, Any]:
    from .matrix import parity_matrix  # it reads cells_json below

    return {
        "schema_version": report.schema_version,
        "edgepack_version": report.edgepack_version,
        "started_at": report.started_at,
        "duration_s": report.duration_s,
        "passed": report.passed,
        "model": report.model,
        "calibration": report.calibration,
        "targets": report.targets,
        "notes": list(report.notes),
        "exit_code": report.exit_code,
        "artifacts": [artifact_json(r) for r in report.artifacts],
        "failed_cells": [f.to_json() for f in report.failed_cells],
        "cells": cells_json(report),
        "parity_matrix": parity_matrix(report),
        "cache": report.cache,  # location, hits, misses, stored, corrupt entries rebuilt; null with --no-cache
        "reproducibility": report.reproducibility,  # what a byte-identical rebuild needs: digests, versions, seeds
    }


def cells_json(report: BuildReport) -> list[dict[str, Any]]:
    """The grid, one entry per target × format × precision: passed, failed its gate (the artifact
    is written), or failed (no artifact; the stage and reason say why)."""
    out = [
        {"target": r.target, "format": r.format, "precision": r.precision, "status": "passed" if r.passed else "gate_failed", "file": r.file}
        for r in report.artifacts
    ]
    out += [{"target": f.target, "format": f.format, "precision": f.precision, "status": "failed", "stage": f.stage, "reason": f.reason} for f in report.failed_cells]
    grid = [(t["name"], fmt, p) for t in report.targets for fmt, spec in t["formats"].items() for p in spec["precisions"]]
    order = {cell: i for i, cell in reversed(list(enumerate(grid)))}  # a cell's first place in the profiles
    return sorted(out, key=lambda c: order.get((c["target"], c["format"], c["precision"]), len(order)))
