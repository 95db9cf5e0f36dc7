"""Target profiles: one TOML file per device class, loaded strictly.

An unknown key anywhere is a ConfigError that names the key, the file and the allowed keys.
Every field is documented in README.md ("Target profiles").
"""
from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .toml_table import _CONTROL, _Table, _os_text, _positive, _single_line  # noqa: F401  (_Table, _positive: imported from here too)

SHIPPED_DIR_NAME = "targets"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # used with fullmatch: "$" would accept a trailing newline

# Documented maximums (README, "Target profiles").
MAX_THREADS = 64  # no phone or board has more cores
MAX_LATENCY_RUNS = 10_000
MAX_LATENCY_WARMUP = 1_000
MAX_SAMPLES = 100_000  # validation.max_samples, quantization.calibration_samples
MAX_CALIBRATION_MB = 1_000_000
MAX_CELL_TIMEOUT_S = 86_400.0  # limits.cell_timeout_s: one day
HOST_THREADS_PER_CORE = 4  # host runs use at most this many threads per core of this machine

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
TOLERANCE_KEYS = (
    "max_abs",
    "mean_abs",
    "min_cosine",
    "min_sqnr_db",
    "min_top1_agreement",
    "min_top5_agreement",  # class outputs with more than 5 classes: the source's top-1 in the artifact's top-5
    "min_exact_match",  # integer outputs: share of values equal to the source's
    "max_accuracy_drop",
)
DIAGNOSE_MODES = ("on-failure", "never", "always")  # validation.diagnose
MIN_VALIDATION_SAMPLES = 8  # validation.min_samples default: fewer held-out samples refuse parity
# Used for a precision whose tolerances the profile does not give.
DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-4, "min_cosine": 0.99999},
    "fp16": {"max_abs": 5e-2, "min_cosine": 0.999},
    "int8": {"min_cosine": 0.99, "min_top1_agreement": 0.95, "max_accuracy_drop": 0.01},
    # int8_auto's budget (edgepack/quantize_search): int8's defaults unless [tolerances.int8_auto] says
    "int8_auto": {"min_cosine": 0.99, "min_top1_agreement": 0.95, "max_accuracy_drop": 0.01},
}


@dataclass(frozen=True)
class QuantSettings:
    method: str = "minmax"
    per_channel: bool = True
    calibration_samples: int = 200
    percentile: float = 99.999


@dataclass(frozen=True)
class ValidationSettings:
    split: float = 0.4  # share of the calibration folder held out for parity
    max_samples: int = 200
    max_calibration_mb: int = 4096  # decompressed calibration data, checked from the array headers before reading
    min_samples: int = MIN_VALIDATION_SAMPLES  # fewer held-out samples than this: InputError before parity
    diagnose: str = "on-failure"  # first-divergent-layer diagnosis of a cell: on-failure | never | always

    @property
    def max_calibration_bytes(self) -> int:
        return self.max_calibration_mb * 1_000_000


@dataclass(frozen=True)
class LatencySettings:
    warmup: int = 5
    runs: int = 50


@dataclass(frozen=True)
class Budgets:
    max_size_mb: float | None = None
    max_latency_ms: float | None = None  # host p50
    latency_figure: str = "measured-host"  # or "estimated-device" (the default when the profile has a [device_model])


@dataclass(frozen=True)
class Limits:
    cell_timeout_s: float = 1800.0  # one cell's conversion; past it the converter is stopped and the cell fails


ARM64_CPUS = ("cortex-a53", "cortex-a57", "cortex-a72", "cortex-a76", "neoverse-n1")  # QEMU 7.2's models; never "max"


@dataclass(frozen=True)
class EmulationSettings:
    """[emulation]: run .tflite/.ort artifacts in the real arm64 runtimes under QEMU (edgepack/arm64)."""

    arm64: bool = False  # the shipped arm64 targets set it true
    cpu: str = "cortex-a76"
    samples: int = 3  # validation samples run emulated (each costs seconds of CPU under QEMU)


@dataclass(frozen=True)
class FormatSpec:
    name: str
    precisions: tuple[str, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    device: str
    threads: int
    formats: tuple[FormatSpec, ...]
    quantization: QuantSettings
    validation: ValidationSettings
    latency: LatencySettings
    budgets: Budgets
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    path: Path | None = None
    limits: Limits = field(default_factory=Limits)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # static shapes for dynamic inputs
    # [tolerances.<precision>.<format>], [tolerances.<precision>[.<format>].outputs.<NAME>], keyed by the
    # dotted path after "tolerances." ("int8.tflite", "int8.outputs.boxes", ...); see validate/tolerances.py
    tolerance_overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    output_kinds: dict[str, str] = field(default_factory=dict)  # [outputs.NAME] kind = "boxes"
    device_model: Any = None  # estimate.device_model.DeviceModel from [device_model], or None
    emulation: EmulationSettings = field(default_factory=EmulationSettings)

    @property
    def host_threads(self) -> int:
        """Threads for runs on this machine: the profile's, capped at HOST_THREADS_PER_CORE x its cores."""
        return min(self.threads, HOST_THREADS_PER_CORE * host_cores())

    @property
    def threads_capped(self) -> bool:
        return self.host_threads < self.threads

    def host_threads_note(self) -> str | None:
        """A report note when the profile asks for more threads than this machine has cores."""
        cores = host_cores()
        if self.threads <= cores:
            return None
        note = f"profile asks {self.threads} threads; this host has {cores} core{'s' if cores != 1 else ''}"
        if self.threads_capped:
            return f"{note}, so host runs use {self.host_threads} threads ({HOST_THREADS_PER_CORE} per core)"
        return f"{note}; host latency with {self.threads} threads is not what the device measures"

    def tolerance_for(self, precision: str, format: str | None = None, output: str | None = None) -> dict[str, float]:
        """The thresholds for one cell (and one output of it); the most specific level wins per key."""
        from .validate.tolerances import resolve, values

        return values(resolve(self, precision, format, output))

    def tolerance_sources(self, precision: str, format: str | None = None, output: str | None = None):
        """Like tolerance_for, with where each value came from: {key: Threshold(value, source)}."""
        from .validate.tolerances import resolve

        return resolve(self, precision, format, output)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "device": self.device,
            "threads": self.threads,
            "path": str(self.path) if self.path else None,
            "formats": {f.name: {"precisions": list(f.precisions), **f.options} for f in self.formats},
            "quantization": vars(self.quantization),
            "validation": vars(self.validation),
            "latency": vars(self.latency),
            "budgets": vars(self.budgets),
            "limits": vars(self.limits),
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "tolerances": {p: self.tolerance_for(p) for f in self.formats for p in f.precisions},
            "tolerance_overrides": {k: dict(v) for k, v in self.tolerance_overrides.items()},
            "output_kinds": dict(self.output_kinds),
            "device_model": self.device_model.to_json() if self.device_model else None,
            "emulation": vars(self.emulation),
        }


def host_cores() -> int:
    """Cores this process may run on (CPU affinity and cgroup-free count; at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def shipped_dir() -> Path:
    """The folder of shipped profiles: the repo's targets/, or the copy inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / SHIPPED_DIR_NAME, here / "_targets"):
        if cand.is_dir():
            return cand
    return here.parent / SHIPPED_DIR_NAME


def shipped_profiles() -> list[TargetProfile]:
    return [load_profile(p) for p in sorted(shipped_dir().glob("*.toml"))]


def resolve_profile(name_or_path: str) -> TargetProfile:
    """`--target` takes a shipped profile's name or a path to a .toml file."""
    if _CONTROL.search(name_or_path) or not name_or_path:
        raise ConfigError(f"--target {name_or_path!r}: not a target name or a path (empty, or holds control characters)")
    p = Path(name_or_path)
    try:
        is_file = p.is_file()  # a folder named like a shipped target does not hide it
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the target profile ({_os_text(exc)})") from None
    if p.suffix == ".toml" or is_file or "/" in name_or_path or os.sep in name_or_path:
        if not p.is_file():
            raise ConfigError(f"{p}: target profile not found; give a path to a .toml file or a shipped name (see `edgepack targets`)")
        return load_profile(p)
    shipped = {q.stem: q for q in sorted(shipped_dir().glob("*.toml"))}
    if name_or_path in shipped:
        return load_profile(shipped[name_or_path])
    folded = {k.casefold(): k for k in shipped}
    if name_or_path.casefold() in folded:
        return load_profile(shipped[folded[name_or_path.casefold()]])
    close = difflib.get_close_matches(name_or_path.casefold(), list(folded), n=1, cutoff=0.6)
    if close:
        raise ConfigError(
            f"unknown target '{name_or_path}'; did you mean '{folded[close[0]]}'? (`edgepack targets` lists them, or give a path to a .toml file)"
        )
    names = ", ".join(shipped) or "none"
    raise ConfigError(f"unknown target '{name_or_path}'; shipped targets are: {names} (`edgepack targets` lists them, or give a path to a .toml file)")


def load_profile(path: Path) -> TargetProfile:
    from .formats.base import formats

    path = Path(path)
    try:
        if path.stat().st_size > 1_000_000:
            raise ConfigError(f"{path}: is {path.stat().st_size:,} bytes; a target profile is a small TOML file (at most 1 MB)")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: target profile not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the target profile ({_os_text(exc)})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {exc.start}); save the profile as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None

    top = _Table(
        data,
        "",
        path,
        ("name", "description", "device", "threads", "formats", "quantization", "validation", "latency", "budgets", "tolerances", "limits", "input_shapes", "outputs", "device_model", "emulation"),
    )
    name = top.get("name", str, path.stem)
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{path}: 'name' is {name!r}; it names the target's output folder, so use 1 to 100 letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    from .outdir import RESERVED_NAMES  # the files edgepack itself writes in --out

    if name.casefold() in {n.casefold() for n in RESERVED_NAMES}:
        raise ConfigError(f"{path}: 'name' is {name!r}, a file edgepack writes in --out beside the target folders; choose another name")
    threads = _positive(path, "threads", top.get("threads", int, 1), most=MAX_THREADS)

    known = formats()
    fmt_table = top.get("formats", dict, required=True)
    if not fmt_table:
        raise ConfigError(f"{path}: [formats] is empty; add at least one of: {', '.join(known)}")
    specs = []
    for fname, fdata in fmt_table.items():
        if fname not in known:
            raise ConfigError(f"{path}: unknown key 'formats.{fname}'; allowed formats are: {', '.join(known)}")
        cls = known[fname]
        t = _Table(fdata if isinstance(fdata, dict) else {}, f"formats.{fname}", path, ("precisions", *cls.options))
        precisions = tuple(t.get("precisions", list, required=True))
        bad = [p for p in precisions if not isinstance(p, str)]
        if bad:
            raise ConfigError(f"{path}: formats.{fname}.precisions must be a list of names (strings), got {bad[0]!r}")
        for p in precisions:
            if p not in cls.precisions:
                raise ConfigError(
                    f"{path}: precision '{p}' in formats.{fname}.precisions is not supported; choose from: {', '.join(cls.precisions)}"
                )
        if not precisions:
            raise ConfigError(f"{path}: formats.{fname}.precisions is empty; choose from: {', '.join(cls.precisions)}")
        if len(set(precisions)) != len(precisions):
            raise ConfigError(f"{path}: formats.{fname}.precisions lists a precision twice: {list(precisions)}")
        options = {k: t.get(k, o.type, o.default, choices=o.choices) for k, o in cls.options.items()}
        if options.get("recipe"):  # an int8_auto recipe file, relative to the profile's folder
            rp = (path.parent / options["recipe"]).resolve()
            if not rp.is_file():
                raise ConfigError(f"{path}: key 'formats.{fname}.recipe' names {rp}, which does not exist; give the .recipe.json an int8_auto build wrote")
            options["recipe"] = str(rp)
        specs.append(FormatSpec(fname, precisions, options))

    q = top.table("quantization", ("method", "per_channel", "calibration_samples", "percentile"))
    quant = QuantSettings(
        method=q.get("method", str, "minmax", choices=CALIBRATION_METHODS),
        per_channel=q.get("per_channel", bool, True),
        calibration_samples=_positive(path, "quantization.calibration_samples", q.get("calibration_samples", int, 200), most=MAX_SAMPLES),
        percentile=q.get("percentile", float, 99.999),
    )
    if not 50.0 < quant.percentile <= 100.0:
        raise ConfigError(f"{path}: key 'quantization.percentile' must be in (50, 100], got {quant.percentile}")

    v = top.table("validation", ("split", "max_samples", "max_calibration_mb", "min_samples", "diagnose"))
    validation = ValidationSettings(
        split=v.get("split", float, 0.4),
        max_samples=_positive(path, "validation.max_samples", v.get("max_samples", int, 200), most=MAX_SAMPLES),
        max_calibration_mb=_positive(
            path, "validation.max_calibration_mb", v.get("max_calibration_mb", int, ValidationSettings.max_calibration_mb), most=MAX_CALIBRATION_MB
        ),
        min_samples=_positive(path, "validation.min_samples", v.get("min_samples", int, MIN_VALIDATION_SAMPLES), most=MAX_SAMPLES),
        diagnose=v.get("diagnose", str, "on-failure"),
    )
    if validation.diagnose not in DIAGNOSE_MODES:
        raise ConfigError(f"{path}: key 'validation.diagnose' must be one of {', '.join(DIAGNOSE_MODES)}, got {validation.diagnose!r}")
    if not 0.0 < validation.split < 1.0:
        raise ConfigError(f"{path}: key 'validation.split' must be between 0 and 1, got {validation.split}")

    lt = top.table("latency", ("warmup", "runs"))
    latency = LatencySettings(
        warmup=_positive(path, "latency.warmup", lt.get("warmup", int, 5), allow_zero=True, most=MAX_LATENCY_WARMUP),
        runs=_positive(path, "latency.runs", lt.get("runs", int, 50), allow_zero=True, most=MAX_LATENCY_RUNS),
    )

    from .estimate.device_model import KEYS as DEVICE_MODEL_KEYS, default_latency_figure, parse_device_model

    device_model = parse_device_model(top.table("device_model", DEVICE_MODEL_KEYS), path)
    b = top.table("budgets", ("max_size_mb", "max_latency_ms", "latency_figure"))
    latency_figure = b.get("latency_figure", str, default_latency_figure(device_model), choices=("estimated-device", "measured-host"))
    if "max_latency_ms" in b.data and latency.runs == 0 and latency_figure == "measured-host":
        raise ConfigError(f"{path}: budgets.max_latency_ms needs latency.runs > 0 (latency is not measured with runs = 0)")
    budgets = Budgets(
        max_size_mb=_positive(path, "budgets.max_size_mb", b.get("max_size_mb", float)),
        max_latency_ms=_positive(path, "budgets.max_latency_ms", b.get("max_latency_ms", float)),
        latency_figure=latency_figure,
    )

    em = top.table("emulation", ("arm64", "cpu", "samples"))
    emulation = EmulationSettings(
        arm64=em.get("arm64", bool, False),
        cpu=em.get("cpu", str, "cortex-a76", choices=ARM64_CPUS),
        samples=_positive(path, "emulation.samples", em.get("samples", int, 3), most=MAX_SAMPLES),
    )

    lim = top.table("limits", ("cell_timeout_s",))
    limits = Limits(cell_timeout_s=_positive(path, "limits.cell_timeout_s", lim.get("cell_timeout_s", float, Limits.cell_timeout_s), most=MAX_CELL_TIMEOUT_S))
    input_shapes = {}
    for iname, dims in top.get("input_shapes", dict, {}).items():
        if not (isinstance(dims, list) and dims and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 1_000_000 for d in dims)):
            raise ConfigError(f"{path}: key 'input_shapes.{iname}' must be a list of positive sizes, e.g. {iname} = [1, 3, 320, 320]; got {dims!r}")
        input_shapes[iname] = tuple(dims)

    all_precisions = sorted({p for cls in known.values() for p in cls.precisions})
    tolerances, tolerance_overrides = _tolerance_tables(top.table("tolerances", tuple(all_precisions)), known)
    from .validate.output_kinds import KINDS

    output_kinds = {}  # output names are checked against the model at build time
    for oname, body in top.get("outputs", dict, {}).items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: key 'outputs.{oname}' must be a table, e.g. [outputs.{oname}] kind = \"boxes\"")
        output_kinds[oname] = _Table(body, f"outputs.{oname}", path, ("kind",)).get("kind", str, required=True, choices=KINDS)

    return TargetProfile(
        name=name,
        description=_single_line(path, "description", top.get("description", str, "")),
        device=_single_line(path, "device", top.get("device", str, "")),
        threads=threads,
        formats=tuple(specs),
        quantization=quant,
        validation=validation,
        latency=latency,
        budgets=budgets,
        tolerances=tolerances,
        path=path,
        limits=limits,
        input_shapes=input_shapes,
        tolerance_overrides=tolerance_overrides,
        output_kinds=output_kinds,
        device_model=device_model,
        emulation=emulation,
    )


def _tolerance_values(t: _Table) -> dict[str, float]:
    """The metric keys of one [tolerances...] table, typed and range-checked."""
    out = {k: t.get(k, float) for k in TOLERANCE_KEYS if k in t.data}
    for k, v in out.items():
        unit = k.startswith("min_") and k != "min_sqnr_db"
        if v < 0 or (unit and v > 1):
            raise ConfigError(f"{t.file}: key '{t.where}.{k}' is {v:g}; it must be {'between 0 and 1' if unit else '>= 0'}")
    return out


def _output_tables(parent: _Table, prefix: str, into: dict[str, dict[str, float]]) -> None:
    outs = parent.get("outputs", dict, {})
    for oname, body in outs.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{parent.file}: key '{parent.where}.outputs.{oname}' must be a table of tolerances, e.g. [{parent.where}.outputs.{oname}] min_cosine = 0.99")
        into[f"{prefix}.outputs.{oname}"] = _tolerance_values(_Table(body, f"{parent.where}.outputs.{oname}", parent.file, TOLERANCE_KEYS))


def _tolerance_tables(tol_top: _Table, known: dict) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """[tolerances.<precision>] (metric keys) and its nested format / outputs tables."""
    tolerances, overrides = {}, {}
    for prec in tol_top.data:
        fmts = tuple(f for f, cls in known.items() if prec in cls.precisions)
        t = tol_top.table(prec, (*TOLERANCE_KEYS, *fmts, "outputs"))
        values = _tolerance_values(t)
        if values:
            tolerances[prec] = values
        _output_tables(t, prec, overrides)
        for fname in fmts:
            if fname in t.data:
                ft = t.table(fname, (*TOLERANCE_KEYS, "outputs"))
                overrides[f"{prec}.{fname}"] = _tolerance_values(ft)
                _output_tables(ft, f"{prec}.{fname}", overrides)
    return tolerances, overrides


def default_profile(name: str = "default") -> TargetProfile:
    """Every setting at its documented default: one thread, no formats (for `edgepack check`)."""
    return TargetProfile(
        name=name,
        description="edgepack defaults",
        device="",
        threads=1,
        formats=(),
        quantization=QuantSettings(),
        validation=ValidationSettings(),
        latency=LatencySettings(),
        budgets=Budgets(),
    )
