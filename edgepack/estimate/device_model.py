"""A target profile's [device_model] table, and the fitted coefficients it names.

    [device_model]
    core = "cortex-a76"            # the device's big core (text, for the report)
    clock_ghz = 2.42               # clock of the cores the runtime's threads run on
    cores = 4                      # big cores the threads can spread over
    parallel_fraction = 0.85       # Amdahl: share of one inference that spreads over threads
    count_cpu = "cortex-a76"       # the QEMU CPU model whose counts the fit used (must match [emulation])
    fit = "tflite-cpu-cortex-a76"  # edgepack/estimate/fitted/<fit>.json
    max_error_pct = 50             # no estimate when the fit's leave-one-out error is larger
    [device_model.ipc]             # optional: instructions per cycle per group, instead of the fit's
    mac = 2.0

Every key is checked at load; an unknown key, a wrong type or an unknown fit is a ConfigError.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError

FITTED_DIR = Path(__file__).resolve().parent / "fitted"
KEYS = ("core", "clock_ghz", "cores", "parallel_fraction", "count_cpu", "fit", "max_error_pct", "ipc")
COUNT_KIND = "instruction-counts"  # fitted from emulated instruction counts
FLOP_BYTE_KIND = "flop-byte"  # fitted from FLOPs and weight bytes (Core ML)


@dataclass(frozen=True)
class DeviceModel:
    fit: str
    core: str = ""
    clock_ghz: float | None = None
    cores: int = 1
    parallel_fraction: float = 0.85
    count_cpu: str | None = None
    max_error_pct: float = 50.0
    ipc: dict[str, float] = field(default_factory=dict)

    @property
    def fitted(self) -> dict[str, Any]:
        return fitted(self.fit)

    @property
    def kind(self) -> str:
        return self.fitted["kind"]

    def to_json(self) -> dict[str, Any]:
        return {
            "core": self.core,
            "clock_ghz": self.clock_ghz,
            "cores": self.cores,
            "parallel_fraction": self.parallel_fraction,
            "count_cpu": self.count_cpu,
            "fit": self.fit,
            "max_error_pct": self.max_error_pct,
            "ipc": dict(self.ipc),
        }


def fitted_names() -> list[str]:
    return sorted(p.stem for p in FITTED_DIR.glob("*.json"))


@lru_cache(maxsize=None)
def fitted(name: str) -> dict[str, Any]:
    """The fitted coefficients `name` (edgepack/estimate/fitted/<name>.json), read once."""
    path = FITTED_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def parse_device_model(table, path: Path) -> DeviceModel | None:
    """Read [device_model] from a profile (`table` is profiles._Table over it); None when absent."""
    if not table.data:
        return None
    fit = table.get("fit", str, required=True)
    if fit not in fitted_names():
        raise ConfigError(f"{path}: key 'device_model.fit' is {fit!r}; fitted device models are: {', '.join(fitted_names()) or 'none'}")
    kind = fitted(fit)["kind"]
    counts = kind == COUNT_KIND
    clock = table.get("clock_ghz", float, required=counts)
    if clock is not None and not 0.1 <= clock <= 10.0:
        raise ConfigError(f"{path}: key 'device_model.clock_ghz' is {clock:g}; a CPU clock is 0.1..10 GHz")
    cores = table.get("cores", int, 1)
    if not 1 <= cores <= 64:
        raise ConfigError(f"{path}: key 'device_model.cores' is {cores}; it must be 1..64")
    pf = table.get("parallel_fraction", float, 0.85)
    if not 0.0 <= pf <= 1.0:
        raise ConfigError(f"{path}: key 'device_model.parallel_fraction' is {pf:g}; it must be between 0 and 1")
    max_err = table.get("max_error_pct", float, 50.0)
    if max_err <= 0:
        raise ConfigError(f"{path}: key 'device_model.max_error_pct' must be > 0, got {max_err:g}")
    count_cpu = table.get("count_cpu", str, fitted(fit).get("count_cpu"))
    if counts and count_cpu != fitted(fit).get("count_cpu"):
        raise ConfigError(
            f"{path}: key 'device_model.count_cpu' is {count_cpu!r}, but fit {fit!r} was calibrated on counts from "
            f"{fitted(fit).get('count_cpu')!r}; use that CPU model or another fit"
        )
    groups = list(fitted(fit).get("groups", {}))
    ipc_table = table.table("ipc", tuple(groups))
    ipc = {}
    for g in ipc_table.data:
        v = ipc_table.get(g, float)
        if not 0.0 < v <= 64.0:
            raise ConfigError(f"{path}: key 'device_model.ipc.{g}' is {v:g}; instructions per cycle must be in (0, 64]")
        ipc[g] = v
    return DeviceModel(
        fit=fit,
        core=table.get("core", str, ""),
        clock_ghz=clock,
        cores=cores,
        parallel_fraction=pf,
        count_cpu=count_cpu,
        max_error_pct=max_err,
        ipc=ipc,
    )


def default_latency_figure(dm: DeviceModel | None) -> str:
    """What [budgets] max_latency_ms gates on when latency_figure is not set: the device estimate
    for a profile with an instruction-count device model (arm targets), else the host figure."""
    return "estimated-device" if dm is not None and dm.kind == COUNT_KIND else "measured-host"
