"""What running converters in child processes costs: the same build with and without isolation.

    python benchmarks/isolation_cost.py [--repeat 2] [--out benchmarks/results/isolation.json]

Each build runs in a fresh subprocess (`edgepack build`, quiet), once with EDGEPACK_ISOLATE=1 (the
default: one spawned converter process per format) and once with EDGEPACK_ISOLATE=0 (converters in
the build's own process), alternating, `--repeat` times each. The result is the ratio of the
medians. The goal (issue #9): the isolation must not slow a build noticeably.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROFILE = """
name = "bench"
threads = 1
[formats.ort]
precisions = ["fp32", "fp16", "int8"]
mobile_eps = []
[formats.tflite]
precisions = ["fp32", "int8"]
[formats.coreml]
precisions = ["fp32", "fp16"]
[latency]
warmup = 1
runs = 5
[validation]
max_samples = 16
[quantization]
calibration_samples = 16
"""


def one_build(isolate: bool, work: Path, i: int) -> float:
    profile = work / "bench.toml"
    profile.write_text(PROFILE)
    out = work / f"out-{int(isolate)}-{i}"
    env = {**os.environ, "EDGEPACK_ISOLATE": "1" if isolate else "0"}
    cmd = [
        sys.executable, "-m", "edgepack", "build", str(ROOT / "examples/digits/digits_cnn.pt2"),
        "-c", str(ROOT / "calibration_data/digits"), "-t", str(profile), "-o", str(out), "--quiet", "--force",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)
    took = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"build failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/isolation.json"))
    args = ap.parse_args()
    times: dict[str, list[float]] = {"isolated": [], "in_process": []}
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-") as d:
        for i in range(args.repeat):
            for isolate in (True, False):
                key = "isolated" if isolate else "in_process"
                times[key].append(round(one_build(isolate, Path(d), i), 2))
                print(f"{key} #{i + 1}: {times[key][-1]:.1f} s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "case": "digits_cnn, ort fp32/fp16/int8 + tflite fp32/int8 + coreml fp32/fp16, one target",
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "build_seconds": times,
        "median_seconds": med,
        "isolation_overhead_ratio": round(med["isolated"] / med["in_process"], 3),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
