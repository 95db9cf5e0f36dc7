"""Whether Core ML gets a device estimate: the FLOP/byte model's leave-one-out error, in words."""
from __future__ import annotations

from typing import Any

from .device_model import fitted

FIT = "coreml-iphone-flop-byte"
MAX_ERROR_PCT = 50.0  # the shipped iphone profile's device_model.max_error_pct default


def coreml_summary(max_error_pct: float = MAX_ERROR_PCT) -> dict[str, Any]:
    fit = fitted(FIT)
    err = fit["loo"]["max_abs_error_pct"]
    return {
        "fit": FIT,
        "max_abs_error_pct": err,
        "points": fit["loo"]["points"],
        "loo": [{k: p[k] for k in ("net", "device", "ms", "loo_ms", "loo_error_pct")} for p in fit["points"]],
        "reported": err <= max_error_pct,
        "verdict": "estimates reported" if err <= max_error_pct else f"no estimate (above {max_error_pct:g}%)",
    }
