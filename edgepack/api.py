"""The library entry point: build() runs the whole pipeline for every target profile.

    model -> Source -> reference outputs
    calibration -> CalibrationSet -> (calibration part, held-out validation part)
    profile -> formats: convert + quantise -> Artifact -> runtime: run + time -> parity, latency
    -> BuildReport -> report.json, report.md, report.html, manifest.json

The pipeline talks to formats and runtimes only through their registries. Each artifact is
judged by pipeline.validation.validate_artifact; check() (check_artifact.py, re-exported here) judges one
that already exists the same way.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path

from . import REPORT_SCHEMA_VERSION, __version__
from .android_assets import export_android_assets
from .calibration import load_calibration, precheck_calibration
from .errors import ConfigError, ConversionError, InputError
from .formats.base import get_format
from .formats.base import formats as known_formats
from .outdir import StagedOutput
from .workdirs import work_folder
from .profiles import TargetProfile, resolve_profile
from .progress import Progress, as_progress
from .report.writers import write_reports
from .runtimes.base import get_runtime
from .sources.base import load_source
from .types import ArtifactResult, BuildReport
from .validate.parity import require_validation_samples
from .validate.tolerances import check_output_names
from .pipeline.cells import CellFailure
from .pipeline.validation import ReferenceCache, validate_artifact
from .check_artifact import check  # noqa: F401  (edgepack.api.check: the library's second entry point)
from .pipeline.driver import build_grid, restore_cached, start_converters
from .cache import CellCache, resolve_location
from .cache.keys import rebuild_record
from .shapes import parse_input_shapes, profile_input_shapes, resolve_input_shapes


__all__ = ["build", "check", "narrow_profiles"]

Target = str | Path | TargetProfile


def build(
    model: str | Path,
    calibration: str | Path,
    targets: Target | Sequence[Target],
    out: str | Path,
    *,
    formats: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    latency: bool = True,
    progress: Progress | bool | None = None,
    allow_pickle: bool = False,
    android_assets: str | Path | None = None,
    android_target: str | None = None,
    force: bool = False,
    fail_fast: bool = False,
    input_shapes: dict[str, Sequence[int]] | Sequence[str] | None = None,
    diagnose: bool = False,
    cache: str | Path | None = None,
    use_cache: bool = True,
    recipes: Sequence[str | Path] | None = None,
) -> BuildReport:
    """Build, validate and report every target. Returns the BuildReport; `report.passed` is
    False when a parity tolerance or budget failed (every file is still written).

    `formats`, `precisions`: build only these cells of the profiles (`--format`, `--precision`).
    `latency=False`: do not time the artifacts (`--no-latency`); latency budgets are then not checked.
    `progress`: True prints progress lines on stderr; or pass a Progress object.
    `android_assets`: also write one target's artifacts (`android_target`, default the first),
    its manifest and golden vectors into that folder, for the Android demo app.
    `force`: replace an --out (or --android-assets) folder that edgepack did not write; its content
    is moved aside to OUT.kept-<time>, never deleted (warnings say what moved where).
    `fail_fast`: stop at the first cell that fails (raises its error); by default a failed cell is
    recorded in the report (`report.failed_cells`) and every other cell still builds.
    `input_shapes`: static shapes for dynamic inputs, {"images": (1, 3, 320, 320)} or
    ["images=1,3,320,320"] (`--input-shape`); by default they come from the profiles' `input_shapes`,
    else from the calibration data.
    `diagnose`: name the first divergent layer of every cell that fails parity (`--diagnose`), even
    where a profile says `[validation] diagnose = "never"` (edgepack.diagnose).
    `cache`: the cell cache's location, a folder or an fsspec URL such as s3://bucket/prefix
    (`--cache`; default $EDGEPACK_CACHE, else the user's cache folder); `use_cache=False` turns it off
    (`--no-cache`). A cell found there is restored, artifact and validation results, instead of built;
    when every cell is there the model is not even loaded (edgepack.cache).
    `recipes`: int8_auto recipe files (`--recipe`) that the int8_auto cells of their format apply
    instead of searching (edgepack.quantize_search)."""
    progress = as_progress(progress)
    started = time.perf_counter()
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if isinstance(targets, (str, Path, TargetProfile)):
        targets = [targets]
    profiles = [t if isinstance(t, TargetProfile) else resolve_profile(str(t)) for t in targets]
    if not profiles:
        raise ConfigError("no --target given; pick one or more from `edgepack targets`")
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two --target profiles are both named {dup!r}; each target needs its own name (the `name` key)")
    profiles, build_notes = narrow_profiles(profiles, formats, precisions)
    if recipes:
        from .quantize_search.recipe import with_recipes

        profiles = with_recipes(profiles, recipes)
    for n in build_notes:
        progress.warn(n)
    if android_target is not None and android_target not in [p.name for p in profiles]:
        if android_target in names:
            raise ConfigError(f"--android-target {android_target!r} has none of the cells asked for (--format/--precision); pick another or widen them")
        raise ConfigError(f"--android-target {android_target!r} is not one of this build's targets: {', '.join(p.name for p in profiles)}")
    _check_folders(Path(out), Path(android_assets) if android_assets is not None else None)
    _check_inputs(model, calibration, allow_pickle, min(p.validation.max_calibration_bytes for p in profiles))
    staged = StagedOutput(Path(out), force=force)  # checks --out before any slow work
    if android_assets is not None:  # a folder edgepack did not write is refused now, not after the build
        StagedOutput(Path(android_assets), option="--android-assets", force=force).check()
    overrides = {**profile_input_shapes(profiles), **_shape_overrides(input_shapes)}
    location = resolve_location(cache, use_cache)
    from .arm64.emulate import run_state

    cache_options = {"latency": bool(latency), "diagnose": bool(diagnose), "arm64": run_state()}
    cells_cache = CellCache.open(location, model=str(model), calibration=calibration, overrides=overrides, options=cache_options)
    if cells_cache is not None and android_assets is None:  # golden vectors need the model: no shortcut then
        cached = _build_from_cache(cells_cache, calibration, profiles, Path(out), force, allow_pickle, progress, started, started_at, build_notes)
        if cached is not None:
            return cached
    # the converter worker starts now: it loads the model and imports the converters while this process does the same
    with staged as staging, work_folder() as work, start_converters(profiles, str(model), allow_pickle, progress) as converters:
        progress.step(f"loading {model}")
        source = load_source(str(model), allow_pickle=allow_pickle)
        progress.step(f"reading calibration data {calibration}")
        calib = load_calibration(
            calibration, source.inputs, allow_pickle=allow_pickle, outputs=source.outputs,
            max_bytes=min(p.validation.max_calibration_bytes for p in profiles),
        )
        check_output_names(profiles, [t.name for t in source.outputs], source.spec)
        shapes = resolve_input_shapes(source.declared_inputs, calib.samples, calib.origins, overrides, source.spec)
        loaded_inputs = source.inputs
        for p in profiles:  # too few held-out samples: refused before any conversion (after the data's own errors)
            require_validation_samples(p, calib)
        if shapes:
            source = source.with_static_shapes(shapes)
            progress.step("static input shapes: " + ", ".join(f"{k} {list(v)}" for k, v in shapes.items()))
        refused = _preflight(profiles, source, calib, android_assets, android_target)
        reference = ReferenceCache(source, calib, progress)
        if cells_cache is not None:  # what a later, fully cached build needs from the model
            cells_cache.save_model_info(loaded_inputs, source.outputs, shapes, source.describe())

        diagnosis = {"force": diagnose, "trace_cache": {}}  # the work folder keeps the files artifacts were made from

        def validate(profile, artifact, val_idx, refs):
            return validate_artifact(
                profile, artifact, source, calib, val_idx, refs, staging, progress, latency,
                diagnosis={**diagnosis, "companions": (Path(work) / profile.name / artifact.format,)},
            )

        cells = build_grid(
            profiles, source, calib, reference, staging, Path(work), progress,
            validate=validate, allow_pickle=allow_pickle, fail_fast=fail_fast, input_shapes=shapes or None, refused=refused,
            converters=converters, cache=cells_cache,
        )
        results = [c for c in cells if isinstance(c, ArtifactResult)]
        failed = [c for c in cells if isinstance(c, CellFailure)]
        _add_size_findings(results, progress)
        report = BuildReport(
            schema_version=REPORT_SCHEMA_VERSION,
            edgepack_version=__version__,
            model=source.describe(),
            targets=[p.to_json() for p in profiles],
            calibration=calib.describe(),
            artifacts=results,
            out_dir=Path(out),
            started_at=started_at,
            duration_s=round(time.perf_counter() - started, 2),
            notes=tuple(build_notes),
            failed_cells=failed,
            cache=_cache_json(cells_cache),
            reproducibility=rebuild_record(str(model), calibration, profiles, cells_cache.base if cells_cache else None),
        )
        _cache_progress(cells_cache, progress)
        progress.step("writing reports")
        write_reports(report, calib, staging)
        if android_assets is None:
            for message in staged.commit():  # files of the old output that were kept, and where
                progress.warn(message)
        else:
            assets = StagedOutput(Path(android_assets), option="--android-assets", force=force)
            with assets as assets_staging:
                progress.step(f"writing Android assets to {android_assets}")
                export_android_assets(report, calib, source, profiles, staging, assets_staging, android_target)
                for message in staged.commit() + assets.commit():
                    progress.warn(message)
    _rebase(results, Path(out))
    return report


class _NotCached(Exception):
    """A cell went missing between the check and the restore: build normally."""


def _build_from_cache(cells_cache, calibration, profiles, out: Path, force, allow_pickle, progress, started, started_at, notes) -> BuildReport | None:
    """The whole build from the cell cache, without loading the model, when every cell is there;
    else None, with nothing written."""
    info = cells_cache.model_info()
    if info is None:
        return None
    calib = load_calibration(
        calibration, info.inputs, allow_pickle=allow_pickle, outputs=info.outputs,
        max_bytes=min(p.validation.max_calibration_bytes for p in profiles),
    )
    staged = StagedOutput(out, force=force)
    try:
        with staged as staging:
            results = restore_cached(profiles, calib, cells_cache, staging, progress)
            if results is None:
                raise _NotCached
            _add_size_findings(results, progress)
            report = BuildReport(
                schema_version=REPORT_SCHEMA_VERSION,
                edgepack_version=__version__,
                model=info.describe,
                targets=[p.to_json() for p in profiles],
                calibration=calib.describe(),
                artifacts=results,
                out_dir=out,
                started_at=started_at,
                duration_s=round(time.perf_counter() - started, 2),
                notes=tuple(notes),
                cache=_cache_json(cells_cache),
                reproducibility=rebuild_record(str(cells_cache.model_spec), calibration, profiles, cells_cache.base),
            )
            progress.step("writing reports")
            write_reports(report, calib, staging)
            for message in staged.commit():
                progress.warn(message)
    except _NotCached:
        return None
    _rebase(results, out)
    return report


def _cache_json(cells_cache) -> dict | None:
    return None if cells_cache is None else {"location": cells_cache.location, **cells_cache.stats.to_json()}


def _cache_progress(cells_cache, progress) -> None:
    if cells_cache is None:
        return
    st = cells_cache.stats
    if st.hits or st.stored:
        progress.step(f"cell cache {cells_cache.location}: {st.hits} reused, {st.stored} stored")
    for c in st.corrupt:
        progress.warn(f"cell cache: a corrupt entry was rebuilt ({c})")
    for e in st.errors:
        progress.warn(f"cell cache: {e}")


def _shape_overrides(input_shapes) -> dict[str, tuple[int, ...]]:
    if not input_shapes:
        return {}
    if isinstance(input_shapes, dict):
        return parse_input_shapes([f"{k}={','.join(str(int(d)) for d in v)}" for k, v in input_shapes.items()], where="input_shapes")
    return parse_input_shapes([input_shapes] if isinstance(input_shapes, str) else list(input_shapes))


def _rebase(results: list[ArtifactResult], out: Path) -> None:
    """After the commit, every artifact path points into the final output folder, not the staging one."""
    for r in results:
        r.artifact.path = out / r.file
        r.artifact.extra_files = [out / f for f in r.extra_files]


def narrow_profiles(profiles: list[TargetProfile], formats: Sequence[str] | None, precisions: Sequence[str] | None) -> tuple[list[TargetProfile], list[str]]:
    """Keep only the profiles' cells (format, precision) that `formats` and `precisions` name (None: all).
    A name that matches no cell of any profile is a ConfigError listing the choices. Returns the narrowed
    profiles (a profile left with no cell is dropped) and notes saying what was dropped."""
    if not formats and not precisions:
        return profiles, []
    if isinstance(formats, str):
        formats = [formats]
    if isinstance(precisions, str):
        precisions = [precisions]
    have = sorted({f.name for p in profiles for f in p.formats})
    for f in formats or ():
        if f not in have:
            raise ConfigError(f"--format {f!r} is in none of this build's targets; choose from: {', '.join(have)}")
    kept_formats = [f for p in profiles for f in p.formats if not formats or f.name in formats]
    cells = {pr for f in kept_formats for pr in f.precisions}
    for pr in precisions or ():
        if pr not in cells:
            where = f" for --format {', '.join(formats)}" if formats else ""
            raise ConfigError(f"--precision {pr!r} is in none of this build's targets{where}; choose from: {', '.join(sorted(cells))}")
    narrowed, notes = [], []
    for p in profiles:
        specs = []
        for f in p.formats:
            if formats and f.name not in formats:
                continue
            keep = tuple(x for x in f.precisions if not precisions or x in precisions)
            if keep:
                specs.append(dataclasses.replace(f, precisions=keep))
        if specs:
            narrowed.append(dataclasses.replace(p, formats=tuple(specs)))
        else:
            notes.append(f"target {p.name!r} has none of the cells asked for (--format/--precision); it is not built")
    return narrowed, notes


def _check_inputs(model: str | Path, calibration: str | Path, allow_pickle: bool, max_bytes: int) -> None:
    """The model file exists and the calibration data passes its cheap checks, before any slow loading."""
    spec = str(model)
    if ":" not in spec and not Path(spec).exists():
        raise InputError(f"{spec}: model file not found; check the path")
    precheck_calibration(Path(calibration), max_bytes=max_bytes, allow_pickle=allow_pickle)


def _add_size_findings(results: list[ArtifactResult], progress: Progress) -> None:
    from .report.findings import size_findings

    known = known_formats()

    def reason(fmt: str) -> str | None:
        return getattr(known.get(fmt), "uncompressed_reason", None)

    for i, note in size_findings(results, reason).items():
        r = results[i]
        r.notes = (*r.notes, note)
        progress.warn(f"[{r.target}] {r.format} {note.split('; ')[0]}; see the report")


def _check_folders(out: Path, assets: Path | None) -> None:
    out = out.resolve()
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise ConfigError(f"{out}: --out is the current folder or one of its parents; give a subfolder, e.g. --out build/out")
    if assets is not None:
        assets = assets.resolve()
        if assets == out or out in assets.parents or assets in out.parents:
            raise ConfigError(f"{assets}: --android-assets must be a folder apart from --out {out} (not it, inside it, or around it)")


def _preflight(profiles, source, calib, android_assets, android_target) -> dict[tuple[str, str], Exception]:
    """Every format checks, before any conversion, that it can build what the profiles ask. A profile
    mistake (ConfigError) stops the build; a model the format cannot take (a ConversionError, e.g. an
    op it lacks) fails that target's cells of the format only: returned as {(target, format): error}."""
    refused: dict[tuple[str, str], Exception] = {}
    for profile in profiles:
        for spec in profile.formats:
            try:
                get_format(spec.name).preflight(source, spec.precisions, spec.options, calib.preprocess)
            except ConfigError as exc:
                where = f"{profile.path}: " if profile.path else ""
                raise ConfigError(f"{where}{exc}") from None
            except ConversionError as exc:
                refused[(profile.name, spec.name)] = exc
    if android_assets is not None:
        target = android_target or profiles[0].name
        profile = next(p for p in profiles if p.name == target)
        if not any(get_runtime(get_format(s.name).runtime).android_library for s in profile.formats):
            raise ConfigError(f"target {target!r} has no format whose artifacts an Android app can run; add ort or tflite to it, or pick --android-target")
    return refused
