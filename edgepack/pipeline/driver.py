"""The pipeline drives the grid: for each cell, convert + quantise (in the format's converter worker),
then validate and time (here, in the artifact's runtime). A cell that fails is recorded with its
stage and reason; every other cell still builds, validates and is written.

Cells are built format by format (one converter worker, with its imports and caches, serves them
all) and reported target by target, in the profiles' order. The worker is started at the beginning
of the build (start_converters), so that its start-up overlaps the parent's own work.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EdgepackError
from ..formats.base import FormatJob, get_format
from ..quantize_search.budget import cell_budget
from .cells import Cell, CellFailure, StageClock, failure_from
from .isolation import ConverterWorker, WorkerSpec, run_warm_imports

class CellFailed(EdgepackError):
    """--fail-fast: the first failed cell stops the build with that cell's own exit code."""

    def __init__(self, failure: CellFailure):
        super().__init__(f"{failure.label} failed at {failure.stage}: {failure.reason}")
        self.failure = failure
        self.exit_code = failure.exit_code


@dataclass
class GridPlan:
    """Per target: its calibration/validation split and the source's outputs on the validation part
    (run on first use: a target whose cells all come from the cell cache never runs the source)."""

    profile: Any
    cal_idx: list[int]
    val_idx: list[int]
    reference: Any  # pipeline.validation.ReferenceCache: .outputs(indices)
    calibration: list  # the samples at cal_idx: one list per target, shared by its formats' cells

    @property
    def refs(self) -> list:
        return self.reference.outputs(self.val_idx)


def split_for(profile, calib) -> tuple[list[int], list[int]]:
    """A target's (calibration, validation) indices: the one place the split is made."""
    return calib.split(profile.validation.split, profile.validation.max_samples, profile.quantization.calibration_samples)


def cell_keys(profiles, calib, cache) -> dict[Cell, str]:
    """Every cell's cache key, in report order."""
    keys = {}
    for p in profiles:
        split = split_for(p, calib)
        for fspec in p.formats:
            for precision in fspec.precisions:
                keys[Cell(p.name, fspec.name, precision)] = cache.key(p, fspec.name, precision, split)
    return keys


def restore_cached(profiles, calib, cache, staging: Path, progress) -> list[Any] | None:
    """The whole grid from the cell cache, or None (and nothing restored) unless every cell is there."""
    keys = cell_keys(profiles, calib, cache)
    if not keys or not all(cache.store.has(k) for k in keys.values()):
        return None
    ordered = []
    for cell, key in keys.items():
        hit = cache.load(key, staging)
        if hit is None:  # corrupt or gone since: the caller builds normally (restored files are overwritten)
            return None
        ordered += hit
    progress.step(f"every cell ({len(keys)}) reused from the cell cache {cache.location}; the model was not loaded")
    return ordered


class Converters:
    """Where the build's converters run: one ConverterWorker (isolated) or this process. A context
    manager: leaving it stops the worker."""

    def __init__(self, formats: list[str], source_spec: str, allow_pickle: bool, progress, isolate: bool | None = None):
        if isolate is None:
            isolate = os.environ.get("EDGEPACK_ISOLATE", "1") != "0"
        self.formats = formats
        self.worker: ConverterWorker | None = None
        if isolate:
            classes = [type(get_format(f)) for f in formats]
            warm = tuple((c.name, tuple(getattr(c, "warm_imports", ()))) for c in classes)
            checks = [e for c in classes for e in getattr(c, "check_imports", ())]
            self.worker = ConverterWorker(
                WorkerSpec(source_spec, allow_pickle, warm_imports=warm), progress,
                on_wait=(lambda: run_warm_imports(checks)) if checks else None,
            )

    def start(self) -> Converters:
        if self.worker is not None:
            self.worker.start()
        return self

    def __enter__(self) -> Converters:
        return self

    def __exit__(self, *exc) -> None:
        if self.worker is not None:
            self.worker.close()


def grid_formats(profiles) -> list[str]:
    """The formats of the profiles, in the order the grid builds them (first seen first)."""
    order: list[str] = []
    for p in profiles:
        for spec in p.formats:
            if spec.name not in order:
                order.append(spec.name)
    return order


def start_converters(profiles, source_spec: str, allow_pickle: bool, progress, isolate: bool | None = None) -> Converters:
    """Start the converter worker for the profiles' formats now (isolate: default on, unless
    EDGEPACK_ISOLATE=0); pass the result to build_grid(converters=...). Start it once the cheap
    checks have passed: it loads the model and imports the converters while the build goes on."""
    return Converters(grid_formats(profiles), source_spec, allow_pickle, progress, isolate).start()


def build_grid(
    profiles,
    source,
    calib,
    reference,
    staging: Path,
    work: Path,
    progress,
    *,
    validate: Callable[..., Any],
    allow_pickle: bool,
    fail_fast: bool = False,
    isolate: bool | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    refused: dict[tuple[str, str], Exception] | None = None,
    converters: Converters | None = None,
    cache=None,
) -> list[Any]:
    """Every cell of every profile; returns ArtifactResults and CellFailures in report order.

    `validate(profile, artifact, val_idx, refs)` runs one artifact in its runtime and returns its
    ArtifactResult. `isolate` (default: on, unless EDGEPACK_ISOLATE=0) runs converters in a child.
    `refused`: {(target, format): error} from the formats' preflight; those cells fail at "convert"
    without being tried. `converters`: from start_converters() (its worker already running), else
    one is made here; either way the grid stops it at the end. `cache`: an edgepack.cache.CellCache;
    a cell found there is restored instead of built, and every cell that passes validation is stored."""
    refused = refused or {}
    if converters is None:
        converters = Converters(grid_formats(profiles), str(source.spec), allow_pickle, progress, isolate)
    try:
        return _build_grid(profiles, source, calib, reference, staging, work, progress, validate, fail_fast, input_shapes, refused, converters, cache)
    finally:  # the worker is not needed past the grid: its memory goes back now (closing twice is harmless)
        converters.__exit__(None, None, None)


def _build_grid(profiles, source, calib, reference, staging, work, progress, validate, fail_fast, input_shapes, refused, converters, cache) -> list[Any]:
    plans = {}
    for p in profiles:
        cal_idx, val_idx = split_for(p, calib)
        plans[p.name] = GridPlan(p, cal_idx, val_idx, reference, [calib.samples[i] for i in cal_idx])
    keys = cell_keys(profiles, calib, cache) if cache is not None else {}
    results: dict[Cell, list[Any]] = {}
    runner = converters.worker or _InProcess(source, progress)
    if converters.worker is not None:
        converters.worker.set_input_shapes(input_shapes)
    for fmt_name in grid_formats(profiles):
        fmt = get_format(fmt_name)
        for p in profiles:
            fspec = next((f for f in p.formats if f.name == fmt_name), None)
            if fspec is None:
                continue
            plan = plans[p.name]
            runner.progress = _Prefixed(progress, p.name)
            workdir = work / p.name / fmt_name
            workdir.mkdir(parents=True, exist_ok=True)
            target_dir = staging / p.name
            target_dir.mkdir(parents=True, exist_ok=True)
            fields = dict(
                precisions=(),
                options=fspec.options,
                quantization=p.quantization,
                calibration=plan.calibration,
                workdir=workdir,
                stem=source.name,
                labels=calib.labels,
                preprocess=calib.preprocess,
            )
            for precision in fspec.precisions:
                cell = Cell(p.name, fmt_name, precision)
                key = keys.get(cell)
                hit = cache.load(key, staging) if key is not None and (p.name, fmt_name) not in refused else None
                if hit is not None:
                    runner.progress.step(f"{fmt_name} {precision}: reused from the cell cache")
                    results[cell] = hit
                    continue
                if (p.name, fmt_name) in refused:
                    built = failure_from(cell, "convert", refused[(p.name, fmt_name)])
                else:
                    budget = cell_budget(p, fmt_name, precision, [t.name for t in source.outputs])
                    built = runner.build(type(fmt), {**fields, "precisions": (precision,), "budget": budget}, cell, p.limits.cell_timeout_s)
                results[cell] = _validate_all(cell, built, plan, target_dir, validate, progress)
                if key is not None and results[cell] and not any(isinstance(r, CellFailure) for r in results[cell]):
                    cache.save(key, results[cell], staging)  # only cells that built and validated
                failed = [r for r in results[cell] if isinstance(r, CellFailure)]
                for f in failed:  # a progress line now; the summary and the reports have it too
                    progress.step(f"{f.label}: FAILED at {f.stage}: {f.reason}")
                if failed and fail_fast:
                    raise CellFailed(failed[0])
    ordered = []
    for p in profiles:
        for fspec in p.formats:
            for precision in fspec.precisions:
                ordered += results.get(Cell(p.name, fspec.name, precision), [])
    return ordered


def _validate_all(cell: Cell, built, plan: GridPlan, target_dir: Path, validate, progress) -> list[Any]:
    if isinstance(built, CellFailure):
        return [built]
    if not built:
        return [CellFailure(cell.target, cell.format, cell.precision, "convert", "the format produced no artifact for this precision", "InternalError", 70)]
    out = []
    for artifact in built:
        artifact.path = _move(artifact.path, target_dir)
        artifact.extra_files = [_move(x, target_dir) for x in artifact.extra_files]
        try:
            started = time.perf_counter()
            result = validate(plan.profile, artifact, plan.val_idx, plan.refs)
            timed = result.stage_seconds.get("time", 0.0)  # validate_artifact times its latency runs itself
            result.stage_seconds = {**artifact.stage_seconds, "validate": round(time.perf_counter() - started - timed, 4), **({"time": timed} if timed else {})}
            out.append(result)
        except Exception as exc:  # noqa: BLE001 - recorded as this cell's failure
            import traceback

            out.append(failure_from(cell, getattr(exc, "edgepack_stage", "validate"), exc, traceback.format_exc()))
            for p in (artifact.path, *artifact.extra_files):  # an artifact that could not be validated is not shipped
                shutil.rmtree(p, ignore_errors=True) if Path(p).is_dir() else Path(p).unlink(missing_ok=True)
    return out


def _move(path: Path, dest_dir: Path) -> Path:
    dest = dest_dir / Path(path).name
    if dest.exists():
        shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
    shutil.move(str(path), dest)
    return dest


class _Prefixed:
    """Progress lines of one target's cells, prefixed with its name."""

    def __init__(self, inner, prefix: str):
        self.inner, self.prefix = inner, prefix

    def step(self, message: str) -> None:
        self.inner.step(f"[{self.prefix}] {message}")

    def track(self, items, total, label):
        return self.inner.track(items, total, f"[{self.prefix}] {label}")

    def warn(self, message: str) -> None:
        self.inner.warn(f"[{self.prefix}] {message}")


class _InProcess:
    """The same interface as ConverterWorker, without a child process (EDGEPACK_ISOLATE=0): for
    debugging a converter with --debug, and on platforms without a usable 'spawn'."""

    def __init__(self, source, progress):
        self.source, self.progress = source, progress
        self.shared: dict[str, dict[str, Any]] = {}  # per format, as in the worker

    def build(self, fmt_cls: type, fields: dict[str, Any], cell: Cell, timeout_s: float):
        import traceback

        stage = ["convert"]
        clock = StageClock("convert")
        shared = self.shared.setdefault(fmt_cls.name, {})

        def enter(name: str) -> None:
            stage[0] = name
            clock.enter(name)

        job = FormatJob(source=self.source, progress=self.progress, shared=shared, on_stage=enter, **fields)
        try:
            artifacts = list(fmt_cls().build(job))
            seconds = clock.stop()
            for a in artifacts:
                a.stage_seconds = dict(seconds)
            return artifacts
        except Exception as exc:  # noqa: BLE001
            return failure_from(cell, stage[0], exc, traceback.format_exc())
