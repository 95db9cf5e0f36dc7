"""Validating one artifact: it runs in its own runtime on the held-out samples against the source
model's outputs (parity), is timed with the profile's threads (latency, and the device estimate
from its emulated arm64 run), and is held to the profile's budgets. `build` and `check` both end
here, and `diagnose` shares the source outputs (ReferenceCache).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..calibration import CalibrationSet
from ..errors import ConversionError, EdgepackError
from ..estimate import estimate_from_emulated, latency_figure
from ..files import artifact_sha256, artifact_size
from ..formats.base import formats
from ..profiles import TargetProfile
from ..progress import Progress
from ..runtimes.base import get_runtime
from ..sources.base import Source
from ..types import Artifact, ArtifactResult
from ..validate.latency import measure_latency
from ..validate.parity import check_parity, check_reference_finite


def threads_note(profile: TargetProfile) -> str | None:
    """"threads: ..." when the profile asks for more threads than this machine has cores (the
    profile is not changed: the device has those cores)."""
    note = profile.host_threads_note()
    return f"threads: {note} (the profile keeps {profile.threads}: the device has those cores)" if note else None



class ReferenceCache:
    """Source outputs per sample, computed once across all targets."""

    def __init__(self, source: Source, calib: CalibrationSet, progress: Progress):
        self.source, self.calib, self.progress = source, calib, progress
        self._cache: dict[int, list[np.ndarray]] = {}

    def outputs(self, indices: list[int]) -> list[list[np.ndarray]]:
        todo = [i for i in indices if i not in self._cache]
        if todo:
            for i in self.progress.track(todo, len(todo), "running the source model"):
                try:
                    self._cache[i] = self.source.run(self.calib.samples[i])
                except EdgepackError:
                    raise
                except Exception as exc:
                    raise ConversionError(
                        f"{self.source.spec}: the source model failed on {self.calib.origins[i]} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                    ) from exc
                check_reference_finite(self.source.spec, [t.name for t in self.source.outputs], self._cache[i], self.calib.origins[i])
        return [self._cache[i] for i in indices]


def int8_auto_hint(profile, fmt: str, precision: str, passed: bool) -> str | None:
    """For a failed cell of the precision the format's int8_auto starts from, when the profile does
    not build int8_auto for that format: how to ask for it."""
    plugin = formats().get(fmt)
    if passed or plugin is None or plugin.int8_auto_from != precision or "int8_auto" not in plugin.precisions:
        return None
    if any(f.name == fmt and "int8_auto" in f.precisions for f in profile.formats):
        return None
    return (f'{precision} misses its budget: add "int8_auto" to [formats.{fmt}] precisions and edgepack searches for '
            "the fewest layers to keep in int16 or float that meet the same budget (README: int8_auto)")


def validate_artifact(profile, artifact: Artifact, source, calib, val_idx, refs, root: Path, progress, time_it: bool = True, diagnosis: dict | None = None) -> ArtifactResult:
    """Run the artifact in its runtime on the held-out samples: parity, latency, budgets.
    Paths in the result are relative to `root`. `time_it=False`: latency is not measured (--no-latency).
    `diagnosis`: {"force", "companions", "trace_cache"} for edgepack.diagnose (profile key validation.diagnose)."""
    label = f"[{profile.name}] {artifact.format} {artifact.precision}"
    runtime = get_runtime(artifact.runtime)
    threads = profile.host_threads  # capped at a multiple of this machine's cores
    notes = [n for n in (threads_note(profile),) if n]
    session = runtime.open(artifact.path, threads=threads, source_inputs=source.inputs, source_outputs=source.outputs)
    outs = []
    for i in progress.track(val_idx, len(val_idx), f"{label}: parity on held-out samples"):
        try:
            outs.append(session.run(calib.samples[i]))
        except EdgepackError:
            raise
        except Exception as exc:
            raise ConversionError(f"{artifact.path.name}: {artifact.runtime} failed on {calib.origins[i]} ({str(exc).splitlines()[0]})") from exc
    targets = calib.targets[val_idx] if calib.targets is not None else None
    names = [t.name for t in source.outputs]
    fmt, prec = artifact.format, artifact.precision
    parity = check_parity(
        names, refs, outs, profile.tolerance_for(prec, format=fmt), targets, origins=[calib.origins[i] for i in val_idx], source=source.spec,
        per_output={n: profile.tolerance_sources(prec, format=fmt, output=n) for n in names}, kinds=profile.output_kinds,
        runtime_failures=session.parity_failures(),  # e.g. fp16 overflow the Core ML emulator found
        min_samples=profile.validation.min_samples,
    )
    parity = dataclasses.replace(parity, notes=(*parity.notes, *session.notes()))
    hint = int8_auto_hint(profile, fmt, prec, parity.passed)
    notes += [hint] if hint else []
    from ..diagnose import attach_diagnosis, wanted

    d = diagnosis or {}
    if wanted(profile, parity.passed, d.get("force", False)):
        parity = attach_diagnosis(
            parity, artifact=artifact, source=source, calib=calib, val_idx=val_idx, refs=refs, outs=outs,
            tolerance=dict(parity.tolerances), companions=d.get("companions", ()), progress=progress,
            trace_cache=d.get("trace_cache"),
        )
    latency = skipped = None
    if not time_it:
        skipped = "--no-latency"
    elif profile.latency.runs <= 0:
        skipped = "latency.runs = 0"
    else:
        progress.step(f"{label}: timing {profile.latency.runs} runs on {threads} thread(s)")
        timing_started = time.perf_counter()
        try:
            latency = measure_latency(
                session,
                calib.samples[val_idx[0]],
                warmup=profile.latency.warmup,
                runs=profile.latency.runs,
                threads=threads,
                measured_on=runtime.measured_on,
                runtime=f"{runtime.name} {runtime.version()}",
            )
        except Exception as exc:
            exc.edgepack_stage = "time"  # the pipeline records the failed cell's stage
            raise
        timing_s = round(time.perf_counter() - timing_started, 4)
    layout = calib.preprocess.layout if calib.preprocess else source.layout
    inputs = tuple(  # an artifact that keeps the source's 4-D inputs keeps their layout too
        dataclasses.replace(b, layout=layout) if b.layout is None and len(b.shape) == 4 else b for b in session.inputs
    )
    size = artifact_size(artifact.path)
    from ..arm64.emulate import emulate_artifact  # the arm64 run under QEMU: parity, vs host, instruction counts

    emulated = emulate_artifact(profile, artifact, session, source, calib, val_idx, refs, progress)
    latency_estimate, estimate_note = estimate_from_emulated(profile, emulated)
    notes += [estimate_note] if estimate_note else []
    budget_failures = []
    b = profile.budgets
    if b.max_size_mb is not None and size > b.max_size_mb * 1e6:
        budget_failures.append(f"size {size / 1e6:.3f} MB > budget {b.max_size_mb:g} MB")
    figure, figure_ms = latency_figure(profile, latency, latency_estimate)
    if b.max_latency_ms is not None and figure_ms is not None and figure_ms > b.max_latency_ms:
        what = f"{latency.measured_on} p50" if figure == "measured-host" else f"{figure} (error ±{latency_estimate['error_pct']}%)"
        budget_failures.append(f"{what} {figure_ms:.3f} ms > budget {b.max_latency_ms:g} ms")
    if b.max_latency_ms is not None and figure_ms is None:
        why = f"latency not measured ({skipped})" if figure == "measured-host" else f"no {figure} latency for this artifact"
        notes.append(f"latency budget ({b.max_latency_ms:g} ms) not checked: {why}")
    versions = {"edgepack": __version__, **artifact.tool_versions, runtime.name: runtime.version()}
    artifact.tool_versions = versions
    return ArtifactResult(
        target=profile.name,
        artifact=artifact,
        file=str(artifact.path.relative_to(root)),
        extra_files=tuple(str(p.relative_to(root)) for p in artifact.extra_files),
        size_bytes=size,
        sha256=artifact_sha256(artifact.path),
        inputs=inputs,
        outputs=session.outputs,
        parity=parity,
        latency=latency,
        budget_failures=tuple(budget_failures),
        notes=tuple(notes),
        latency_skipped=skipped,
        latency_estimate=latency_estimate,
        emulated=emulated,
        stage_seconds={"time": timing_s} if latency is not None else {},
    )
