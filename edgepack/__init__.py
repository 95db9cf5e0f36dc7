"""edgepack: package a trained model for phones and edge boxes, with parity and latency checked.

    import edgepack
    report = edgepack.build("model.pt2", "calibration_data/digits", "android-arm64", "build/out")
    report.passed                     # every artifact met its tolerances and budgets
    for a in report.artifacts:        # as report.json's "artifacts"
        print(a.target, a.format, a.precision, a.path, a.size_bytes)

Heavy libraries (torch, onnxruntime, ...) are imported only when a build needs them: these
functions have the real signatures of edgepack.api's and import it when called.
"""
from __future__ import annotations

import sys as _sys
import types as _types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .inspect import Inspection
    from .profiles import TargetProfile
    from .progress import Progress
    from .types import ArtifactResult, BuildReport

__version__ = "0.1.0"
REPORT_SCHEMA_VERSION = "2"  # 2: per-output kind/checks/margins, parity_matrix, latency_estimate (#10)

__all__ = ["__version__", "build", "check", "inspect"]


def build(
    model: str | Path,
    calibration: str | Path,
    targets: str | Path | TargetProfile | Sequence[str | Path | TargetProfile],
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
    """Convert, quantise, check parity and time `model` for each target; write `out` whole.

    model: a .pt2, .onnx or .keras file, or "package.module:function" returning a model.
    calibration: a folder (images with preprocess.toml, or .npz/.npy files) or one .npz/.npy file;
        part of it is held out for the parity check.
    targets: a shipped target name ("android-arm64"; see `edgepack targets`), a profile .toml
        path, a TargetProfile, or a list of these.
    out: the output folder, written whole at the end (a failed cell is recorded in it; an error
        that stops the build leaves it untouched); a folder edgepack did not write is refused.
    formats, precisions: build only these formats / precisions of the profiles' cells
        (like `--format` / `--precision`); a name that matches nothing raises ConfigError.
    latency: False skips timing (like `--no-latency`); latency budgets are then not checked.
    progress: True prints progress lines on stderr; or an edgepack.progress.Progress object.
    allow_pickle: allow pickled data in the model or calibration files (only for files you trust).
    android_assets, android_target: also write one target's artifacts, manifest and golden
        vectors into that folder, for the Android demo app.
    force: replace an `out` folder that edgepack did not write (its content is moved aside to
        OUT.kept-<time>, never deleted).
    fail_fast: raise at the first cell (target × format × precision) that fails, instead of
        recording it in `report.failed_cells` and building every other cell.
    input_shapes: static shapes for dynamic inputs, {"images": (1, 3, 320, 320)} or
        ["images=1,3,320,320"] (like `--input-shape`); default: the profiles' `input_shapes`,
        else the calibration data's shape.
    diagnose: name the first divergent layer of every cell that fails parity (like `--diagnose`).
    cache: the cell cache, a folder or an fsspec URL ("s3://bucket/prefix"; like `--cache`);
        default $EDGEPACK_CACHE, else ~/.cache/edgepack/cells. use_cache=False: no cache (`--no-cache`).
        A cached cell is restored with its validation results; `.artifacts[i].cache` says so.
    recipes: int8_auto recipe files (like `--recipe`): their format's int8_auto cells apply them
        with no search, which makes a release build reproducible and fast.

    Returns a BuildReport: `.passed`, `.exit_code`, `.artifacts` (ArtifactResult: `.target`,
    `.format`, `.precision`, `.path`, `.size_bytes`, `.parity`, `.latency`, `.notes`),
    `.failed_cells` (CellFailure: `.target`, `.format`, `.precision`, `.stage`, `.reason`,
    `.error`), `.out_dir`. `.passed` is False when a tolerance or budget failed or a cell failed;
    every other file is still written.
    Raises edgepack.errors.ConfigError, InputError, ConversionError or MissingDependencyError.
    """
    from .api import build as _build

    return _build(
        model,
        calibration,
        targets,
        out,
        formats=formats,
        precisions=precisions,
        latency=latency,
        progress=progress,
        allow_pickle=allow_pickle,
        android_assets=android_assets,
        android_target=android_target,
        force=force,
        fail_fast=fail_fast,
        input_shapes=input_shapes,
        diagnose=diagnose,
        cache=cache,
        use_cache=use_cache,
        recipes=recipes,
    )


def check(
    artifact: str | Path,
    model: str | Path,
    calibration: str | Path,
    *,
    target: str | Path | TargetProfile | None = None,
    precision: str = "fp32",
    latency: bool = True,
    progress: Progress | bool | None = None,
    allow_pickle: bool = False,
) -> ArtifactResult:
    """Check an existing .ort, .tflite or .mlpackage `artifact` against its source `model`.

    The artifact runs in its own runtime on the held-out part of `calibration`, with the
    `target` profile's threads, latency settings and budgets, and the tolerances for
    `precision` (edgepack's defaults without a target). latency=False checks parity only;
    progress=True prints progress lines on stderr.

    Returns an ArtifactResult: `.passed`, `.parity`, `.latency`, `.size_bytes`, `.notes`.
    """
    from .check_artifact import check as _check

    return _check(
        artifact,
        model,
        calibration,
        target=target,
        precision=precision,
        latency=latency,
        progress=progress,
        allow_pickle=allow_pickle,
    )


def inspect(path: str | Path) -> Inspection:
    """Describe a model or artifact file: inputs, outputs, op histogram, size, quantisation."""
    from .inspect import inspect_file

    return inspect_file(path)


class _Package(_types.ModuleType):
    """Importing the submodule edgepack.inspect sets the attribute `inspect` of this package to that
    module, which would hide the function above (its second call failed: 'module' object is not
    callable). The submodule stays reachable as sys.modules["edgepack.inspect"] and by `from
    edgepack.inspect import ...`; `edgepack.inspect` stays the function."""

    def __setattr__(self, name: str, value) -> None:
        if name == "inspect" and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
