"""Device latency estimates ("estimated-device") from emulated arm64 instruction counts.

- device_model: a profile's [device_model] table and the fitted coefficients it names (fitted/*.json)
- model: the cost model (cycles per instruction per class group, clock, Amdahl threads) and its fit
- estimate: one artifact's estimate, with the leave-one-out error and the published points it rests on
- calibration_nets: MobileNetV1, MobileNetV2, EfficientNet-Lite0 built in code, and the published figures
- fit: counting the calibration nets under QEMU and fitting (benchmarks/device_model_fit.py runs it)
"""
from __future__ import annotations

from typing import Any

from .estimate import LABEL, estimate_latency, latency_figure

__all__ = ["LABEL", "estimate_latency", "estimate_from_emulated", "latency_figure"]


def estimate_from_emulated(profile, emulated: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str | None]:
    """(estimate, note) from an artifact's emulated arm64 result (edgepack.arm64: its per-class
    instruction counts of one single-threaded inference, and the CPU model they were counted on)."""
    if getattr(profile, "device_model", None) is None:
        return None, None
    emulated = emulated or {}
    counts = emulated.get("counts") or emulated.get("instructions")
    return estimate_latency(profile, counts, counted_on=emulated.get("cpu"))
