"""manifest.json: what an app needs to embed the artifacts (I/O, layout, normalisation, labels)."""
from __future__ import annotations

from typing import Any

from ..calibration import CalibrationSet
from ..types import BuildReport
from .int8_auto import manifest_entry


# The app-facing files (manifest.json, golden.json) version on their own: apps check the major number,
# and additive keys (1.1: golden artifacts' "computed_on", an int8_auto artifact's "int8_auto") keep it.
# report.json's schema is separate.
MANIFEST_SCHEMA_VERSION = "1.1"


def manifest_json(report: BuildReport, calib: CalibrationSet) -> dict[str, Any]:
    pp = calib.preprocess
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "edgepack_version": report.edgepack_version,
        "model": {"name": report.model["name"], "sha256": report.model["sha256"]},
        "labels": calib.labels,
        "preprocess": pp.to_json() if pp else None,
        "inputs": report.model["inputs"],
        "outputs": report.model["outputs"],
        "artifacts": [
            {
                "target": r.target,
                "format": r.artifact.format,
                "precision": r.artifact.precision,
                "file": r.file,
                "runtime": r.artifact.runtime,
                "size_bytes": r.size_bytes,
                "sha256": r.sha256,
                "inputs": [b.to_json() for b in r.inputs],  # 4-D layouts are set by the pipeline
                "outputs": [b.to_json() for b in r.outputs],
                "parity_passed": r.parity.passed,
                "accuracy": r.parity.accuracy,
                **({"int8_auto": auto} if (auto := manifest_entry(r)) else {}),  # 1.1, additive: the recipe's layers
            }
            for r in report.artifacts
        ],
    }
