"""Join the BuildReports of one model's tasks (one per target × format) into the model's report."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..pipeline.cells import CellFailure
from ..types import ArtifactResult, BuildReport, Preprocess


def decode_report(data: dict[str, Any]) -> BuildReport:
    """The BuildReport that task.encode_report gave `data` for (failed cells as CellFailure)."""
    from ..cache.codec import decode

    report = decode(BuildReport, {k: v for k, v in data.items() if k != "failed_cells"})
    report.failed_cells = [decode(CellFailure, f) for f in data.get("failed_cells", [])]
    return report


def decode_calibration(data: dict[str, Any]) -> CalibrationFacts:
    from ..cache.codec import decode

    pp = data.get("preprocess")
    return CalibrationFacts(labels=data.get("labels"), preprocess=decode(Preprocess, pp) if pp else None)


@dataclasses.dataclass(frozen=True)
class CalibrationFacts:
    """What manifest.json reads from a CalibrationSet, kept by the tasks (report/manifest.py)."""

    labels: list[str] | None
    preprocess: Preprocess | None


def _merge_targets(reports: Sequence[BuildReport]) -> list[dict[str, Any]]:
    """One entry per target name, its formats joined in the order the reports come."""
    merged: dict[str, dict[str, Any]] = {}
    for r in reports:
        for t in r.targets:
            have = merged.get(t["name"])
            if have is None:
                merged[t["name"]] = {**t, "formats": dict(t["formats"])}
            else:
                have["formats"].update(t["formats"])
    return list(merged.values())


def merge_reports(reports: Sequence[BuildReport], out_dir: Path | None = None) -> BuildReport:
    """One BuildReport of the same model from several (each built some of its cells): artifacts and
    failed cells joined in the order given, targets joined by name, notes without repeats,
    `duration_s` the sum of the builds' (the time the work took, wherever it ran), `started_at` the
    earliest, the cell cache's counts added up. Reports of different models or edgepack versions are refused (ConfigError)."""
    if not reports:
        raise ValueError("merge_reports needs at least one report")
    first = reports[0]
    for r in reports[1:]:
        if r.model.get("sha256") != first.model.get("sha256"):
            raise ConfigError(f"cannot merge reports of two models: {first.model.get('name')} and {r.model.get('name')}")
        if (r.edgepack_version, r.schema_version) != (first.edgepack_version, first.schema_version):
            raise ConfigError(
                f"cannot merge reports of edgepack {first.edgepack_version} (schema {first.schema_version}) and "
                f"{r.edgepack_version} (schema {r.schema_version}); build every part with one edgepack version"
            )
    notes: list[str] = []
    for r in reports:
        notes += [n for n in r.notes if n not in notes]
    artifacts: list[ArtifactResult] = [a for r in reports for a in r.artifacts]
    return BuildReport(
        schema_version=first.schema_version,
        edgepack_version=first.edgepack_version,
        model=first.model,
        targets=_merge_targets(reports),
        calibration=first.calibration,
        artifacts=artifacts,
        out_dir=Path(out_dir) if out_dir is not None else first.out_dir,
        started_at=min(r.started_at for r in reports),
        duration_s=round(sum(r.duration_s for r in reports), 2),
        notes=tuple(notes),
        failed_cells=[f for r in reports for f in r.failed_cells],
        cache=_merge_cache([r.cache for r in reports]),
    )


def _merge_cache(stats: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The builds' cell-cache figures added up (None when none used a cache)."""
    used = [s for s in stats if s]
    if not used:
        return None
    out: dict[str, Any] = {"location": used[0].get("location")}
    for s in used:
        for k, v in s.items():
            if isinstance(v, int) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, list):
                out[k] = [*out.get(k, []), *v]
    return out


def rebase(report: BuildReport, root: Path) -> None:
    """Point every artifact's path into `root` (its file names are relative to it)."""
    for a in report.artifacts:
        a.artifact.path = root / a.file
        a.artifact.extra_files = [root / f for f in a.extra_files]
