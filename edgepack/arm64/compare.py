"""arm64 against host: the same artifact, the same raw feeds, two CPUs' kernels.

Per output: how many values differ; for integer outputs by how many LSBs (steps of the output's
integer type), for float outputs the largest absolute and relative difference (relative to the
host output's largest magnitude) and the largest distance in ULPs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _ulps(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in units in the last place between two float arrays of the same dtype."""
    if a.dtype not in (np.float16, np.float32, np.float64) or not a.size:
        return 0
    ints = {np.dtype(np.float16): np.int16, np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}[a.dtype]

    def ordered(x):
        i = x.view(ints).astype(np.int64)
        return np.where(i < 0, np.iinfo(ints).min - i, i)  # monotonic in the float's value

    ok = np.isfinite(a) & np.isfinite(b)
    return int(np.abs(ordered(a[ok]) - ordered(b[ok])).max()) if ok.any() else 0


def compare_outputs(names: Sequence[str], host: list[list[np.ndarray]], arm: list[list[np.ndarray]]) -> dict[str, Any]:
    """host/arm: per sample, the raw outputs in `names` order. Returns report.json's `vs_host`."""
    outputs = []
    for j, name in enumerate(names):
        h = [np.asarray(s[j]) for s in host]
        a = [np.asarray(s[j]) for s in arm]
        entry: dict[str, Any] = {"output": name, "dtype": str(h[0].dtype), "values": int(sum(x.size for x in h))}
        if any(x.shape != y.shape for x, y in zip(h, a)) or any(x.dtype != y.dtype for x, y in zip(h, a)):
            entry.update(shape_mismatch=True, differing=entry["values"])
            outputs.append(entry)
            continue
        hc = np.concatenate([x.reshape(-1) for x in h]) if h else np.zeros(0)
        ac = np.concatenate([x.reshape(-1) for x in a]) if a else np.zeros(0)
        same = (hc == ac) | (np.isnan(hc) & np.isnan(ac)) if hc.dtype.kind == "f" else hc == ac
        entry["differing"] = int((~same).sum())
        if hc.dtype.kind in "iub":
            d = np.abs(hc.astype(np.int64) - ac.astype(np.int64))
            entry["max_lsb"] = int(d.max()) if d.size else 0
            entry["lsb_histogram"] = {str(k): int(v) for k, v in zip(*np.unique(d[d > 0], return_counts=True))}
        else:
            d = np.abs(hc.astype(np.float64) - ac.astype(np.float64))
            d = d[np.isfinite(d)]
            scale = float(np.abs(hc[np.isfinite(hc)]).max()) if np.isfinite(hc).any() else 0.0
            entry["max_abs"] = float(d.max()) if d.size else 0.0
            entry["max_rel"] = float(d.max() / scale) if d.size and scale > 0 else 0.0
            entry["max_ulp"] = _ulps(hc, ac)
        outputs.append(entry)
    return {
        "bit_identical": all(o["differing"] == 0 for o in outputs),
        "samples": len(host),
        "outputs": outputs,
    }


def summary(vs_host: dict[str, Any]) -> str:
    """One line for the report's notes."""
    if vs_host["bit_identical"]:
        return f"arm64 and host outputs are bit-identical ({vs_host['samples']} sample(s))"
    parts = []
    for o in vs_host["outputs"]:
        if not o["differing"]:
            continue
        if "max_lsb" in o:
            parts.append(f"'{o['output']}': {o['differing']} of {o['values']} values differ, by up to {o['max_lsb']} LSB")
        elif o.get("shape_mismatch"):
            parts.append(f"'{o['output']}': shapes or dtypes differ")
        else:
            parts.append(f"'{o['output']}': {o['differing']} of {o['values']} values differ, by up to {o['max_abs']:.3g} (relative {o['max_rel']:.2g})")
    return "arm64 differs from host: " + "; ".join(parts)
