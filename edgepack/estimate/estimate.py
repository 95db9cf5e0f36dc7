"""An artifact's device latency estimate, from its emulated instruction counts.

The figure is labelled "estimated-device": it is a model fitted to published phone latencies,
not a measurement. It knows nothing of caches, thermal limits or big.LITTLE scheduling beyond
what the calibration points happened to contain; `error_pct` is the largest leave-one-out error
of the fit over the published points it rests on.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .device_model import COUNT_KIND, DeviceModel
from .model import estimate_ms

LABEL = "estimated-device"


def _points(fit: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("net", "precision", "ms", "device", "core", "clock_ghz", "threads", "runtime", "source", "loo_ms", "loo_error_pct")
    return [{k: p[k] for k in keep if k in p} for p in fit.get("points", [])]


def _refusal(fit: dict[str, Any], dm: DeviceModel) -> str | None:
    err = fit["loo"]["max_abs_error_pct"]
    if err > dm.max_error_pct:
        pts = ", ".join(f"{p['net']} {p['precision']} {p['ms']:g} ms ({p['device']})" for p in fit.get("points", []))
        return (
            f"no {LABEL} latency: the '{dm.fit}' model's leave-one-out error is {err:.0f}% over its {len(fit.get('points', []))} "
            f"published points ({pts}), above device_model.max_error_pct {dm.max_error_pct:g}%"
        )
    return None


def estimate_latency(profile, counts: Mapping[str, float] | None, *, counted_on: str | None = None, device: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(estimate, note) for one artifact on `profile`'s device. `counts`: instructions per class
    of one single-threaded inference (edgepack.arm64's counting plugin), `counted_on`: the QEMU
    CPU model they were counted on. The estimate is None (and the note says why) when the profile
    has a device model but it cannot give an honest figure; both are None without a device model."""
    dm: DeviceModel | None = getattr(profile, "device_model", None)
    if dm is None:
        return None, None
    fit = dm.fitted
    if dm.kind != COUNT_KIND:  # e.g. the Core ML FLOP/byte model: reported only if its error is small
        return None, _refusal(fit, dm) or f"no {LABEL} latency: the '{dm.fit}' model needs FLOP counts, which the build does not take"
    if not counts:
        return None, f"no {LABEL} latency: no arm64 instruction counts for this artifact"
    if counted_on is not None and counted_on != dm.count_cpu:
        return None, f"no {LABEL} latency: counts are from {counted_on}, but the device model was calibrated on {dm.count_cpu} counts"
    groups = fit["groups"]
    if dm.ipc:
        cpi = {g: 1.0 / dm.ipc[g] if g in dm.ipc else fit["cpi"][g] for g in groups}
        error_pct, points, basis = None, [], "profile's device_model.ipc (not calibrated: no error known)"
    else:
        refused = _refusal(fit, dm)
        if refused:
            return None, refused
        cpi = dict(fit["cpi"])
        error_pct, points, basis = fit["loo"]["max_abs_error_pct"], _points(fit), f"fit '{dm.fit}'"
    threads = profile.threads
    ms = estimate_ms(counts, groups, cpi, clock_ghz=dm.clock_ghz, threads=threads, cores=dm.cores, parallel_fraction=dm.parallel_fraction)
    return {
        "label": LABEL,
        "device": device or profile.device or dm.core,
        "core": dm.core,
        "clock_ghz": dm.clock_ghz,
        "threads": threads,
        "ms": round(ms, 4),
        "error_pct": None if error_pct is None else round(error_pct, 1),
        "error_kind": "largest leave-one-out error over the published points" if error_pct is not None else None,
        "basis": basis,
        "points": points,
        "instructions": {k: int(v) for k, v in counts.items()},
        "counted_on": f"qemu-aarch64 -cpu {dm.count_cpu}, 1 thread",
        "cycles_per_instruction": {g: round(v, 4) for g, v in cpi.items()},
        "parallel_fraction": dm.parallel_fraction,
    }, None


def latency_figure(profile, latency, estimate: dict[str, Any] | None) -> tuple[str, float | None]:
    """The figure a latency budget gates on: (label, ms or None when it is not available)."""
    which = profile.budgets.latency_figure
    if which == LABEL:
        return LABEL, None if estimate is None else float(estimate["ms"])
    return "measured-host", None if latency is None else float(latency.p50_ms)
