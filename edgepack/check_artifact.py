"""`edgepack check`: an existing artifact (built by edgepack or not) judged against its source
model, as a build judges the artifacts it makes (pipeline.validation)."""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, ConversionError, EdgepackError, InputError
from .files import artifact_sha256
from .formats.base import format_for_file
from .formats.base import formats as known_formats
from .profiles import TargetProfile, default_profile, resolve_profile
from .progress import Progress, as_progress
from .types import ArtifactResult


def check(
    artifact: str | Path,
    model: str | Path,
    calibration: str | Path,
    *,
    target: str | Path | TargetProfile | None = None,
    precision: str | None = None,
    latency: bool = True,
    progress: Progress | bool | None = None,
    allow_pickle: bool = False,
) -> ArtifactResult:
    """Check an existing artifact (built by edgepack or not) against its source model: run it in
    its own runtime on the held-out calibration samples, with the target's threads, tolerances
    for `precision`, latency settings and budgets (edgepack's defaults without a target).
    `precision=None`: the precision edgepack stored in the artifact's metadata, else fp32 (a
    note says which applied). `latency=False`: parity only. `progress=True` prints progress lines on stderr."""
    from .api import _check_inputs
    from .calibration import load_calibration
    from .pipeline.validation import ReferenceCache, validate_artifact
    from .sources.base import load_source
    from .types import Artifact
    from .validate.parity import require_validation_samples
    from .validate.tolerances import check_output_names

    progress = as_progress(progress)
    path = Path(artifact)
    if not path.exists():
        raise InputError(f"{path}: artifact not found; check the path")
    fmt = format_for_file(path)
    if fmt is None:
        known = ", ".join(sorted(c.suffix for c in known_formats().values()))
        raise InputError(f"{path}: not an artifact edgepack can run; it checks: {known}")
    precision, precision_note = _check_precision(path, fmt, precision)
    if precision not in fmt.precisions:
        raise ConfigError(f"--precision {precision!r} is not a {fmt.name} precision; choose from: {', '.join(fmt.precisions)}")
    if target is None:
        profile = default_profile()
    else:
        profile = target if isinstance(target, TargetProfile) else resolve_profile(str(target))
    _check_inputs(model, calibration, allow_pickle, profile.validation.max_calibration_bytes)
    progress.step(f"loading {model}")
    source = load_source(str(model), allow_pickle=allow_pickle)
    progress.step(f"reading calibration data {calibration}")
    calib = load_calibration(
        calibration, source.inputs, allow_pickle=allow_pickle, outputs=source.outputs, max_bytes=profile.validation.max_calibration_bytes
    )
    check_output_names([profile], [t.name for t in source.outputs], source.spec)
    val_idx = require_validation_samples(profile, calib)
    refs = ReferenceCache(source, calib, progress).outputs(val_idx)
    art = Artifact(path=path, format=fmt.name, precision=precision, runtime=fmt.runtime, route="checked as given")
    try:
        result = validate_artifact(profile, art, source, calib, val_idx, refs, path.parent, progress, latency)
        result.notes = (precision_note, *result.notes) if precision_note else result.notes
        return result
    except ConversionError as exc:  # the artifact is this command's input: corrupt, or not from this model
        raise InputError(f"{exc}; is {path.name} a valid artifact made from {model}?") from exc


def _check_precision(path: Path, fmt, precision: str | None) -> tuple[str, str | None]:
    """The precision `check` judges with, and a note saying where it came from: --precision, else
    the precision edgepack stored in the artifact's metadata, else fp32."""
    if precision is not None:
        return precision, None
    from .inspect import inspect_file

    try:
        stored = (inspect_file(path).details.get("edgepack_metadata") or {}).get("precision")
    except (OSError, EdgepackError):  # unreadable or damaged: opening it in its runtime says why
        stored = None
    if isinstance(stored, str) and stored in fmt.precisions:
        return stored, f"tolerances of {stored}, the precision edgepack stored in {path.name} (--precision overrides it)"
    listed, manifest = _manifest_precision(path)
    if listed in fmt.precisions:
        return listed, f"tolerances of {listed}, the precision {manifest} records for {path.name} (--precision overrides it)"
    return "fp32", f"{path.name} records no edgepack precision; checked with fp32 tolerances, the default (--precision sets another)"


def _manifest_precision(path: Path) -> tuple[str | None, Path | None]:
    """The precision an edgepack output folder's manifest.json lists for this very file (same
    sha256), looked up beside the artifact and one folder up; (None, None) when there is none."""
    import json

    digest = None
    for manifest in (path.parent / "manifest.json", path.parent.parent / "manifest.json"):
        try:
            entries = json.loads(manifest.read_text(encoding="utf-8")).get("artifacts") or []
        except (OSError, ValueError, AttributeError):
            continue
        digest = digest or artifact_sha256(path)
        for e in entries:
            if isinstance(e, dict) and e.get("sha256") == digest and isinstance(e.get("precision"), str):
                return e["precision"], manifest
    return None, None
