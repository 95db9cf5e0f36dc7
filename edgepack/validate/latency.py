"""Latency: p50/p90 over timed runs after warm-up, in the artifact's own runtime.

The figure is what this machine measured (the host, or an emulator); it is never called
device latency.
"""
from __future__ import annotations

import time

import numpy as np

from ..runtimes.base import Session
from ..types import LatencyReport, Sample


def measure_latency(session: Session, sample: Sample, *, warmup: int, runs: int, threads: int, measured_on: str, runtime: str) -> LatencyReport | None:
    if runs <= 0:
        return None
    raw = session.raw_feeds(sample)
    for _ in range(warmup):
        session.run_raw(raw)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        session.run_raw(raw)
        times[i] = time.perf_counter() - t0
    ms = times * 1e3
    return LatencyReport(
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        mean_ms=float(ms.mean()),
        runs=runs,
        warmup=warmup,
        threads=threads,
        measured_on=measured_on,
        runtime=runtime,
    )
