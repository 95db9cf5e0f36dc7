"""What the cell cache saves: the digits example built cold into a fresh cache, then rebuilt warm.

    python benchmarks/cache_warm.py [--repeat 3] [--live] [--out benchmarks/results/cache_warm.json]

The case is `make demo` (examples/digits/digits_cnn.pt2, calibration_data/digits, targets
android-arm64 linux-arm64 iphone: 14 cells). Every build is a fresh `python -m edgepack build ...
--cache DIR --quiet` process with its own --out folder, timed from the parent (interpreter start and
imports included, as a user waits for them).

Two runs, each with its own fresh cache folder:
  - `arm64_off`: EDGEPACK_ARM64=off (no QEMU runs), one cold build, then --repeat warm builds;
  - `arm64_default`: the profiles' default (arm64 emulation on where `edgepack setup arm64` was
    done), one cold build, then --repeat warm builds.
Each warm build's report.json must say that every cell was a hit (`cache.hits` = cells, no miss).
The goal (issue #13): the warm median under 2 s, or at most 5% of the cold build.

The cache key holds a digest of edgepack's own code, so an edit to any edgepack/*.py file between
the cold and the warm build makes the warm build a miss. Other people edit this checkout while the
benchmark runs, so by default the builds run a frozen copy of edgepack/ and targets/ taken at the
start (PYTHONPATH; byte-compiled first, as an installed package is); `--live` runs the checkout.
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["android-arm64", "linux-arm64", "iphone"]
GOAL_SECONDS = 2.0
GOAL_FRACTION = 0.05


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def snapshot(into: Path) -> Path:
    """A frozen, byte-compiled copy of edgepack/ and targets/ (what the builds import)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "edgepack", into / "edgepack", ignore=ignore)
    shutil.copytree(ROOT / "targets", into / "targets", ignore=ignore)
    compileall.compile_dir(str(into / "edgepack"), quiet=1)
    return into


def _env(code: Path | None, arm64_off: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEPACK_ARM64", "EDGEPACK_CACHE", "PYTHONDONTWRITEBYTECODE")}
    if arm64_off:
        env["EDGEPACK_ARM64"] = "off"
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def one_build(out: Path, cache: Path, env: dict[str, str], cwd: Path) -> dict:
    cmd = [
        sys.executable, "-m", "edgepack", "build", str(ROOT / "examples/digits/digits_cnn.pt2"),
        "-c", str(ROOT / "calibration_data/digits"), *[a for t in TARGETS for a in ("-t", t)],
        "-o", str(out), "--cache", str(cache), "--quiet",
    ]
    load = round(os.getloadavg()[0], 2)
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"build failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    report = json.loads((out / "report.json").read_text())
    arts = report["artifacts"]
    stats = report.get("cache") or {}
    emulated = [a.get("emulated") or {} for a in arts]
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "load_before": load,
        "exit_code": proc.returncode,
        "report_duration_s": report.get("duration_s"),
        "cells": len(arts),
        "hits": stats.get("hits"),
        "misses": stats.get("misses"),
        "stored": stats.get("stored"),
        "all_hits": bool(arts) and stats.get("misses") == 0 and all((a.get("cache") or {}).get("hit") for a in arts),
        "arm64_runs": sum(1 for e in emulated if e.get("ran")),
    }


def run_case(name: str, arm64_off: bool, repeat: int, code: Path | None, work: Path) -> dict:
    cache = work / f"cache-{name}"
    env = _env(code, arm64_off)
    cold = one_build(work / f"{name}-cold", cache, env, work)
    print(f"{name} cold: {cold['wall_s']} s (load {cold['load_before']}, {cold['stored']} cells stored, {cold['arm64_runs']} arm64 runs)", file=sys.stderr)
    warm = []
    for i in range(repeat):
        w = one_build(work / f"{name}-warm-{i}", cache, env, work)
        warm.append(w)
        print(f"{name} warm #{i + 1}: {w['wall_s']} s (load {w['load_before']}, all hits: {w['all_hits']})", file=sys.stderr)
    med = statistics.median(w["wall_s"] for w in warm)
    return {
        "env": {"EDGEPACK_ARM64": "off"} if arm64_off else {"EDGEPACK_ARM64": "(unset: the profiles' default)"},
        "cold": cold,
        "warm": warm,
        "cold_s": cold["wall_s"],
        "warm_s": [w["wall_s"] for w in warm],
        "warm_median_s": med,
        "warm_over_cold": round(med / cold["wall_s"], 4),
        "every_warm_build_all_hits": all(w["all_hits"] for w in warm),
        "goal_met": med < GOAL_SECONDS or med <= GOAL_FRACTION * cold["wall_s"],
    }


def _start_seconds(code: Path | None, what: str, n: int = 3) -> float:
    """Median wall seconds of a fresh interpreter running `what` (start-up and imports only)."""
    env = _env(code, True)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", what], env=env, check=True)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--live", action="store_true", help="run the checkout itself, not a frozen copy")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/cache_warm.json"))
    args = ap.parse_args()
    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="edgepack-cache-bench-") as d:
        work = Path(d)
        code = None if args.live else snapshot(work / "code")
        cases = {
            "arm64_off": run_case("arm64_off", True, args.repeat, code, work),
            "arm64_default": run_case("arm64_default", False, args.repeat, code, work),
        }
        # the same cache, built with arm64 off, asked for by a build with arm64 on: if every cell
        # is a hit, the key does not hold the EDGEPACK_ARM64 switch (the reused cells say "off")
        cross = one_build(work / "cross", work / "cache-arm64_off", _env(code, False), work)
        startup = {
            "python_only_s": _start_seconds(code, "pass"),
            "import_edgepack_cli_api_s": _start_seconds(code, "import edgepack.cli, edgepack.api"),
        }
    off = cases["arm64_off"]
    result = {
        "case": "make demo: digits_cnn.pt2, calibration_data/digits, targets " + " ".join(TARGETS),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "method": (
            f"per case a fresh cache folder, 1 cold build then {args.repeat} warm builds, each a fresh "
            "`python -m edgepack build --cache DIR --quiet` process with a new --out; "
            + ("the checkout itself (--live)" if args.live else "a frozen byte-compiled copy of edgepack/ and targets/")
        ),
        "goal": f"warm median < {GOAL_SECONDS} s or <= {GOAL_FRACTION:.0%} of cold",
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "cases": cases,
        "cold_s": {k: v["cold_s"] for k, v in cases.items()},
        "warm_median_s": off["warm_median_s"],
        "warm_over_cold": off["warm_over_cold"],
        "goal_met": all(v["goal_met"] and v["every_warm_build_all_hits"] for v in cases.values()),
        "warm_startup": startup,
        "arm64_on_build_from_arm64_off_cache": {
            "all_hits": cross["all_hits"], "arm64_runs": cross["arm64_runs"], "wall_s": cross["wall_s"],
            "meaning": "all_hits true: the cell key does not include the EDGEPACK_ARM64 switch, so cells "
                       "validated without arm64 runs are reused by a build that would run them",
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("cold_s", "warm_median_s", "warm_over_cold", "goal_met", "warm_startup")}, indent=2))
    verdict = "met" if result["goal_met"] else "NOT met"
    print(f"goal ({result['goal']}): {verdict}; warm median {off['warm_median_s']} s vs cold {off['cold_s']} s "
          f"({off['warm_over_cold']:.1%}); arm64 on: cold {cases['arm64_default']['cold_s']} s, warm {cases['arm64_default']['warm_median_s']} s")


if __name__ == "__main__":
    main()
