"""What running converters in a child process costs: the same build with and without isolation.

    python benchmarks/isolation_cost.py [--repeat 3] [--case demo|bench] [--out benchmarks/results/isolation.json]

Each build runs in a fresh subprocess (`edgepack build`, quiet), with EDGEPACK_ISOLATE=1 (the
default: one converter process, started at the beginning of the build) and EDGEPACK_ISOLATE=0
(converters in the build's own process), interleaved (isolated, in-process, isolated, ...) so that
both see the same load on a shared machine. One build of each comes first and is not counted
(the warm path: files in the OS cache). The result is the ratio of the medians; the CPU seconds of
each build (user + sys of the build and its children) and the load average before it are kept too.

Cases: `demo` is `make demo` (the digits example for the three shipped targets, 14 cells), with
EDGEPACK_ARM64=off: the arm64 runs under QEMU are validation in the build's own process, the same
with and without isolation, and would only dilute the ratio. `bench` is one target with 7 cells.
The goal (issue #9): the isolation must not slow a build noticeably (at most ~1.15x). Builds run
with `--no-cache` where the CLI has a cell cache.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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

CASES = {
    "demo": "digits_cnn.pt2, `make demo`: targets android-arm64, linux-arm64, iphone (14 cells), EDGEPACK_ARM64=off",
    "bench": "digits_cnn.pt2, ort fp32/fp16/int8 + tflite fp32/int8 + coreml fp32/fp16, one target",
}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _no_cache() -> list[str]:
    """`--no-cache` where the CLI has a cell cache: every build here must convert and validate."""
    help_text = subprocess.run([sys.executable, "-m", "edgepack", "build", "--help"], capture_output=True, text=True).stdout
    return ["--no-cache"] if "--no-cache" in help_text else []


def one_build(case: str, isolate: bool, work: Path, i: int, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one build."""
    if case == "bench":
        profile = work / "bench.toml"
        profile.write_text(PROFILE)
        targets = ["-t", str(profile)]
    else:
        targets = ["-t", "android-arm64", "-t", "linux-arm64", "-t", "iphone"]
    out = work / f"out-{int(isolate)}-{i}"
    env = {**os.environ, "EDGEPACK_ISOLATE": "1" if isolate else "0", "EDGEPACK_ARM64": "off"}
    cmd = [
        sys.executable, "-m", "edgepack", "build", str(ROOT / "examples/digits/digits_cnn.pt2"),
        "-c", str(ROOT / "calibration_data/digits"), *targets, "-o", str(out), "--quiet", "--force", *extra,
    ]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)
    took, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"build failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    return took, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--case", choices=sorted(CASES), default="demo")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/isolation.json"))
    args = ap.parse_args()
    keys = {True: "isolated", False: "in_process"}
    times: dict[str, list[float]] = {k: [] for k in keys.values()}
    cpu: dict[str, list[float]] = {k: [] for k in keys.values()}
    load: dict[str, list[float]] = {k: [] for k in keys.values()}
    extra = _no_cache()
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-") as d:
        for isolate in (True, False):  # the warm-up pair, not counted
            one_build(args.case, isolate, Path(d), -1, extra)
        for i in range(args.repeat):
            for isolate in (True, False) if i % 2 == 0 else (False, True):
                key = keys[isolate]
                load[key].append(round(os.getloadavg()[0], 2))
                wall, c = one_build(args.case, isolate, Path(d), i, extra)
                times[key].append(round(wall, 2))
                cpu[key].append(round(c, 2))
                print(f"{key} #{i + 1}: {wall:.1f} s wall, {c:.1f} s CPU (load {load[key][-1]})", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    result = {
        "case": CASES[args.case],
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "method": f"{args.repeat} interleaved pairs after one warm-up pair; fresh `edgepack build` process each",
        "build_seconds": times,
        "cpu_seconds": cpu,
        "load_average_before": load,
        "median_seconds": med,
        "median_cpu_seconds": med_cpu,
        "isolation_overhead_ratio": round(med["isolated"] / med["in_process"], 3),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
