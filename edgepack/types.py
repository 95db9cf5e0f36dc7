"""Typed values that flow through a build, from source to report."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Dim = int | str | None  # an int, or a symbolic/unknown dimension


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: str  # numpy dtype name: float32, int8, ...

    def static_shape(self, batch: int = 1) -> tuple[int, ...]:
        """The concrete shape, with unknown dimensions set to `batch` on axis 0."""
        out = []
        for i, d in enumerate(self.shape):
            if isinstance(d, int) and d >= 0:
                out.append(d)
            elif i == 0:
                out.append(batch)
            else:
                raise ValueError(f"input '{self.name}' has an unknown dimension {i}: {self.shape}")
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": [d if isinstance(d, int) else None for d in self.shape], "dtype": self.dtype}


@dataclass(frozen=True)
class Preprocess:
    """How a raw picture becomes an input tensor: tensor = (pixel * scale - mean) / std."""

    size: tuple[int, int]  # height, width
    layout: str  # nchw | nhwc
    channels: str  # gray | rgb | bgr
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"size": list(self.size), "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class IOBinding:
    """How an artifact's own input/output tensor relates to the source's tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    layout: str | None = None  # for 4-D image tensors: nchw | nhwc
    quantization: dict[str, Any] | None = None  # {"scale": [...], "zero_point": [...]} for integer I/O

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
            "quantization": self.quantization,
        }


@dataclass
class Artifact:
    """A file that a format plug-in wrote, and what it takes to run it."""

    path: Path  # in the work folder while building; in the output folder once the build is done
    format: str
    precision: str
    runtime: str  # name of the runtime plug-in that runs it
    route: str  # which converter chain built it
    extra_files: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # format-specific facts for the report
    tool_versions: dict[str, str] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage of its cell (pipeline.cells.StageClock)


def _finite_or_none(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


@dataclass(frozen=True)
class Check:
    """One tolerance check of one output: `value op threshold` (op ">=" or "<="). `margin` is
    value - threshold for ">=", threshold - value for "<=" (positive = inside); `source` names
    the profile key (or default) the threshold came from, e.g. "tolerances.int8.outputs.boxes"."""

    metric: str  # the tolerance key: min_cosine, max_abs, min_sqnr_db, ...
    value: float | None  # None when undefined (non-finite artifact outputs)
    threshold: float
    op: str
    margin: float | None
    passed: bool
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"value": _finite_or_none(self.value), "margin": _finite_or_none(self.margin)}


@dataclass(frozen=True)
class ErrorStats:
    output: str
    max_abs: float
    mean_abs: float
    min_cosine: float
    sqnr_db: float
    top1_agreement: float | None  # class kinds only (class_scores, probabilities), else None
    samples: int
    kind: str = "other"  # class_scores | probabilities | boxes | regression | feature_map | embedding | integer
    top5_agreement: float | None = None  # class kinds with more than 5 classes, else None
    checks: tuple[Check, ...] = ()
    passed: bool = True  # every check passed and every value was finite
    nonfinite_values: int = 0  # NaN or Inf values from the artifact, over all samples
    nonfinite_samples: int = 0  # how many samples had at least one
    exact_match: float | None = None  # integer outputs: share of values equal to the source's

    @property
    def nonfinite(self) -> bool:
        return self.nonfinite_values > 0

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "checks"}
        d = {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in d.items()}
        return d | {"nonfinite": self.nonfinite, "checks": [c.to_json() for c in self.checks]}


@dataclass(frozen=True)
class ParityReport:
    passed: bool
    outputs: tuple[ErrorStats, ...]
    failures: tuple[str, ...]
    accuracy: float | None  # of the artifact, where labels exist
    reference_accuracy: float | None
    tolerances: dict[str, float]
    samples: int
    notes: tuple[str, ...] = ()
    min_samples: int = 0  # the profile's validation.min_samples that this parity was held to
    diagnosis: dict[str, Any] | None = None  # edgepack/diagnose: the first divergent layer (contract in its docstring)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "samples": self.samples,
            "min_samples": self.min_samples,
            "tolerances": self.tolerances,
            "failures": list(self.failures),
            "accuracy": self.accuracy,
            "reference_accuracy": self.reference_accuracy,
            "outputs": [o.to_json() for o in self.outputs],
            "notes": list(self.notes),
            "diagnosis": self.diagnosis,
        }


@dataclass(frozen=True)
class LatencyReport:
    p50_ms: float
    p90_ms: float
    mean_ms: float
    runs: int
    warmup: int
    threads: int
    measured_on: str  # "host" or "emulator"; never the device
    runtime: str

    label = "measured-host"  # every LatencyReport is timed on this machine (the emulator's too)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, **asdict(self)}


@dataclass
class ArtifactResult:
    target: str
    artifact: Artifact
    file: str  # path relative to the output folder
    extra_files: tuple[str, ...]  # likewise
    size_bytes: int
    sha256: str
    inputs: tuple[IOBinding, ...]
    outputs: tuple[IOBinding, ...]
    parity: ParityReport
    latency: LatencyReport | None
    budget_failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # edgepack's own findings: threads, sizes, skipped checks
    latency_skipped: str | None = None  # why latency is None, e.g. "--no-latency"
    emulated: dict[str, Any] | None = None  # edgepack.arm64: the arm64 run under QEMU (parity, vs host, counts) or a note
    latency_estimate: dict[str, Any] | None = None  # "estimated-device" figure (edgepack.estimate), never a measurement
    cache: dict[str, Any] | None = None  # {"hit": bool, "key": str} when the cell cache was on
    stage_seconds: dict[str, float] = field(default_factory=dict)  # load, convert, quantise, validate, time (wall s)

    @property
    def passed(self) -> bool:
        arm64_failed = bool(self.emulated) and (self.emulated.get("parity") or {}).get("passed") is False
        return self.parity.passed and not self.budget_failures and not arm64_failed

    @property
    def format(self) -> str:
        """The format's name: ort, tflite, coreml."""
        return self.artifact.format

    @property
    def precision(self) -> str:
        """The precision variant, e.g. fp32, fp16, int8, dynamic_int8, palettize6."""
        return self.artifact.precision

    @property
    def path(self) -> Path:
        """The artifact file (or .mlpackage folder) in the output folder, once the build has finished."""
        return self.artifact.path


@dataclass
class BuildReport:
    schema_version: str
    edgepack_version: str
    model: dict[str, Any]
    targets: list[dict[str, Any]]
    calibration: dict[str, Any]
    artifacts: list[ArtifactResult]  # as report.json's "artifacts"
    out_dir: Path
    started_at: str
    duration_s: float
    notes: tuple[str, ...] = ()  # build-wide findings (also in each artifact's notes where they apply)
    failed_cells: list[Any] = field(default_factory=list)  # pipeline.cells.CellFailure: cells with no artifact
    cache: dict[str, Any] | None = None  # the cell cache: location, hits, misses, stored, corrupt entries rebuilt
    reproducibility: dict[str, Any] | None = None  # inputs' digests, tool versions, seeds (edgepack.cache.keys.rebuild_record)

    @property
    def passed(self) -> bool:
        return not self.failed_cells and all(r.passed for r in self.artifacts)

    @property
    def exit_code(self) -> int:
        """The worst cell's code: 0 when every cell passed, 1 when only gates failed, else the
        highest exit code of a failed cell (3 bad input, 4 conversion, 5 dependency, 70 bug)."""
        codes = [f.exit_code for f in self.failed_cells] + [1 for r in self.artifacts if not r.passed]
        return max(codes, default=0)

    @property
    def results(self) -> list[ArtifactResult]:
        """Deprecated alias of `artifacts` (the name report.json uses)."""
        return self.artifacts


Sample = dict[str, np.ndarray]
