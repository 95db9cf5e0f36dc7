"""FLEET.toml: which models (each with its calibration set) to build for which targets.

    [defaults]
    targets = ["android-arm64", "profiles/kiosk.toml"]   # shipped names or profile paths
    out = "build/fleet"                                  # --out overrides it

    [resources]          # what one task asks of its worker (Ray schedules by it); optional
    num_cpus = 1
    memory_mb = 2048
    max_retries = 2      # a task whose worker is lost is run again this many times

    [[models]]
    name = "digits"                                 # its folder in the output: OUT/digits/
    model = "examples/digits/digits_cnn.onnx"
    calibration = "calibration_data/digits"
    targets = ["android-arm64"]                     # optional: instead of [defaults] targets

Relative paths are taken from the folder of FLEET.toml. An unknown key is a ConfigError naming it.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, InputError
from ..outdir import RESERVED_NAMES
from ..profiles import _positive, _Table

FLEET_FILES = ("fleet.json", "fleet.md", "fleet.html", ".fleet")  # what the fleet writes beside the model folders
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Resources:
    """What one task declares to the executor: CPUs, memory, and retries of a lost worker."""

    num_cpus: float = 1.0
    memory_mb: int = 2048
    max_retries: int = 2


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model: str  # a path (absolute) or package.module:function
    calibration: str  # absolute path
    targets: tuple[str, ...]  # shipped names or absolute profile paths


@dataclass(frozen=True)
class FleetSpec:
    path: Path
    models: tuple[ModelEntry, ...]
    out: Path | None
    resources: Resources


def _where(base: Path, value: str) -> str:
    return str((base / value).resolve()) if not Path(value).is_absolute() else value


def _target(base: Path, value: str) -> str:
    """A shipped name stays a name; anything that looks like a path is taken from FLEET.toml's folder."""
    return _where(base, value) if value.endswith(".toml") or "/" in value or "\\" in value else value


def _targets(table: _Table, file: Path, key: str, base: Path) -> tuple[str, ...] | None:
    got = table.get(key, list)
    if got is None:
        return None
    for t in got:
        if not isinstance(t, str) or not t.strip():
            raise ConfigError(f"{file}: key '{table._key(key)}' must be a list of target names or profile paths, got {t!r}")
    if not got:
        raise ConfigError(f"{file}: key '{table._key(key)}' is empty; name at least one target (see `edgepack targets`)")
    return tuple(_target(base, t) for t in got)


def load_fleet(path: str | Path) -> FleetSpec:
    """Read and check FLEET.toml (every model file and calibration set must exist)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: fleet file not found; give the path to a FLEET.toml") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a folder; give the path to a FLEET.toml") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte offset {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc}); fix the syntax") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the fleet file ({exc.strerror or exc})") from None
    base = file.resolve().parent
    top = _Table(data, "", file, ("defaults", "resources", "models"))
    defaults = top.table("defaults", ("targets", "out"))
    default_targets = _targets(defaults, file, "targets", base)
    out = defaults.get("out", str)
    res = top.table("resources", ("num_cpus", "memory_mb", "max_retries"))
    resources = Resources(
        num_cpus=_positive(file, "resources.num_cpus", res.get("num_cpus", float, 1.0)),
        memory_mb=_positive(file, "resources.memory_mb", res.get("memory_mb", int, 2048)),
        max_retries=_positive(file, "resources.max_retries", res.get("max_retries", int, 2), allow_zero=True, most=10),
    )
    raw = top.get("models", list, [])
    if not raw:
        raise ConfigError(f"{file}: no [[models]]; add one per model: name, model, calibration (targets optional)")
    models, seen = [], set()
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise ConfigError(f"{file}: models[{i}] must be a table ([[models]]), got {m!r}")
        t = _Table(m, f"models[{i}]", file, ("name", "model", "calibration", "targets"))
        name = t.get("name", str, required=True)
        if not _NAME.match(name) or name in RESERVED_NAMES or name in FLEET_FILES:
            raise ConfigError(f"{file}: models[{i}].name {name!r} is not usable as a folder name; use letters, digits, '.', '_', '-' (not a name edgepack writes)")
        if name in seen:
            raise ConfigError(f"{file}: two [[models]] are named {name!r}; each needs its own name")
        seen.add(name)
        model = t.get("model", str, required=True)
        model = model if ":" in model and not Path(_where(base, model)).exists() else _where(base, model)
        calibration = _where(base, t.get("calibration", str, required=True))
        targets = _targets(t, file, "targets", base) or default_targets
        if not targets:
            raise ConfigError(f"{file}: model {name!r} has no targets; set [defaults] targets or its own targets")
        if ":" not in model and not Path(model).exists():
            raise InputError(f"{file}: model {name!r}: {model} not found; check its 'model' path (relative to {base})")
        if not Path(calibration).exists():
            raise InputError(f"{file}: model {name!r}: calibration {calibration} not found; check its 'calibration' path")
        models.append(ModelEntry(name, model, calibration, targets))
    return FleetSpec(file, tuple(models), (base / out) if out else None, resources)
