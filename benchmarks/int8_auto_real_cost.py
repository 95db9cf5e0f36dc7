"""int8_auto's cost on the real-model tier's slowest cells, as the median of repeated runs (#11).

    python benchmarks/int8_auto_real_cost.py [--cells layout/ort minilm_onnx/ort minilm/tflite]
                                             [--repeat 3] [--out benchmarks/results/int8_auto_worst_cells.json]

Each run of a cell MODEL/FMT is one fresh process,

    python -m edgepack build MODEL -c CALIB -t tests/real_models/int8_auto.toml -f FMT -o OUT
                             --no-latency --quiet --force --no-cache

(tests/real_models/build_real.py's `build`, with the tier's own inputs from models.prepare): the
format's plain int8 cell (Core ML: w8a8) and its int8_auto cell, built one after the other in the
same process. The cell's ratio is the int8_auto cell's stage seconds (load, convert, quantise,
validate) over the plain cell's, with load left out of both: a one-format build gives the source's
load to whichever cell comes first. One run's ratio moves by about 30% on a shared 2-core machine
(the plain cell's own time does), so the figure to hold against the 3x goal is the median over
`--repeat` runs; the min and max are kept beside it. Every run also records the int8_auto cell's
status, worst cosine, fallbacks and candidates, so a cheaper search that changed the answer shows.

The models come from the wheels the real-model tier fetches into edgepack's cache (build_real
names the set-up step when one is missing). The builds run the checkout.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "real_models"))
sys.path.insert(0, str(ROOT))

DEFAULT_CELLS = ("layout/ort", "minilm_onnx/ort", "minilm/tflite")  # the three that missed 3x at 67dfab4
GOAL_RATIO = 3.0
PLAIN = {"coreml": "w8a8"}  # the plain int8 precision of a format, where it is not "int8"


def run_ratio(cells: list[dict], fmt: str) -> dict:
    """One run's figures from build_real.cells() rows of a one-format build."""
    by = {c["precision"]: c for c in cells if c["format"] == fmt}
    plain, auto = by.get(PLAIN.get(fmt, "int8")), by.get("int8_auto")
    if not plain or not auto or not plain.get("stage_seconds") or not auto.get("stage_seconds"):
        raise SystemExit(f"int8_auto_real_cost: the build gave no plain int8 and int8_auto cells for {fmt} ({sorted(by)})")
    own = {k: round(sum(v for s, v in c["stage_seconds"].items() if s != "load"), 2) for k, c in (("plain", plain), ("auto", auto))}
    fb = auto.get("fallbacks") or {}
    return {
        "ratio": round(own["auto"] / own["plain"], 2) if own["plain"] else None,
        "plain_seconds": own["plain"], "int8_auto_seconds": own["auto"],
        "stage_seconds": {"plain": plain["stage_seconds"], "int8_auto": auto["stage_seconds"]},
        "int8_auto_status": auto["status"], "cosine": {"plain": plain["cosine"], "int8_auto": auto["cosine"]},
        "counts": fb.get("counts"), "candidates": fb.get("candidates"), "search_seconds": fb.get("seconds"),
        "size_bytes": auto["size_bytes"],
    }


def summary(runs: list[dict]) -> dict:
    ratios = [r["ratio"] for r in runs if r["ratio"] is not None]
    return {
        "median_ratio": round(statistics.median(ratios), 2) if ratios else None,
        "min_ratio": min(ratios, default=None), "max_ratio": max(ratios, default=None),
        "within_goal": bool(ratios) and statistics.median(ratios) <= GOAL_RATIO,
        "same_answer": len({json.dumps(r["counts"], sort_keys=True) for r in runs}) == 1,
        "all_passed": all(r["int8_auto_status"] == "passed" for r in runs),
    }


def commit() -> str | None:
    p = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return p.stdout.strip() or None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", nargs="+", default=list(DEFAULT_CELLS), help="MODEL/FMT cells (models: tests/real_models/models.py MODELS)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_auto_worst_cells.json"))
    args = ap.parse_args()
    import build_real

    bad = [c for c in args.cells if "/" not in c]
    if bad:
        raise SystemExit(f"int8_auto_real_cost: give cells as MODEL/FMT, e.g. layout/ort (got {' '.join(bad)})")
    wanted = [tuple(c.split("/", 1)) for c in args.cells]
    results = {f"{m}/{f}": [] for m, f in wanted}
    with tempfile.TemporaryDirectory(prefix="ep_auto_cost_") as tmp:
        work = Path(tmp)
        for i in range(args.repeat):  # cells interleaved, so a slow spell of the machine hits them alike
            for model, fmt in wanted:
                t0 = time.perf_counter()
                got = build_real.build(model, work, (build_real.INT8_AUTO,), ("-f", fmt, "--no-cache"))
                if "cells" not in got:
                    raise SystemExit(f"int8_auto_real_cost: {model}/{fmt} wrote no report (exit {got['exit_code']}): {' '.join(got['stderr_tail'])}")
                run = run_ratio(got["cells"], fmt)
                results[f"{model}/{fmt}"].append(run)
                print(f"run {i + 1}/{args.repeat} {model}/{fmt}: {run['ratio']}x ({run['int8_auto_seconds']} s over {run['plain_seconds']} s), "
                      f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    out = {
        "command": "python benchmarks/int8_auto_real_cost.py --cells " + " ".join(args.cells) + f" --repeat {args.repeat}",
        "commit": commit(), "date": time.strftime("%Y-%m-%d"), "goal_ratio": GOAL_RATIO,
        "note": "ratio: the int8_auto cell's stage seconds over the plain int8 (Core ML: w8a8) cell's in one one-format build, "
                "the source's load left out of both; median over the runs (one run moves about 30%)",
        "cells": [{"cell": k, **summary(v), "runs": v} for k, v in results.items()],
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for c in out["cells"]:
        print(f"{c['cell']}: median {c['median_ratio']}x (runs {c['min_ratio']}-{c['max_ratio']}x), goal {GOAL_RATIO}x: "
              f"{'met' if c['within_goal'] else 'MISSED'}; every int8_auto cell passed: {c['all_passed']}; same recipe counts: {c['same_answer']}")


if __name__ == "__main__":
    main()
