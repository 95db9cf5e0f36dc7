"""Build the real-model tier for every shipped target and summarise each cell.

    python tests/real_models/build_real.py [MODEL ...] [--out DIR] [--json FILE]

Each model is built with `edgepack build MODEL -c CALIB -t android-arm64 -t linux-arm64 -t iphone
--no-latency` in a subprocess (the command a user runs); the result per cell (target, format,
precision) is its status and, for built cells, the worst output's cosine and the size. The
README's real-model table comes from this script's Markdown.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from models import MODELS, prepare  # noqa: E402

TARGETS = ("android-arm64", "linux-arm64", "iphone")


def build(name: str, work: Path) -> dict:
    spec, calib = prepare(name, work / "inputs")
    out = work / f"out_{name}"
    cmd = [sys.executable, "-m", "edgepack", "build", spec, "-c", str(calib), *sum((["-t", t] for t in TARGETS), []), "-o", str(out), "--no-latency", "--quiet", "--force"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    result = {"model": name, "exit_code": proc.returncode, "seconds": round(took, 1), "stderr_tail": proc.stderr.strip().splitlines()[-3:]}
    report = out / "report.json"
    if report.is_file():
        result["cells"] = cells(report)
    return result


def cells(report: Path) -> list[dict]:
    """One row per cell of a report.json: its status, stage and reason, and for a built cell the
    worst output's cosine, the size and every failed check (parity, size budget, arm64 emulation)."""
    rep = json.loads(Path(report).read_text())
    arts = {(a["target"], a["format"], a["precision"]): a for a in rep["artifacts"]}
    rows = []
    for c in rep["cells"]:
        a = arts.get((c["target"], c["format"], c["precision"]))
        cos = min((o["min_cosine"] for o in a["parity"]["outputs"] if o["min_cosine"] is not None), default=None) if a else None
        rows.append({**c, "cosine": cos, "size_bytes": a["size_bytes"] if a else None, "failures": _failures(a) if a else []})
    return rows


def _failures(node, where: str = "") -> list[str]:
    """Every failed check an artifact records: its parity's, a size budget's, and those of nested
    checks such as the arm64 emulation's parity (named by where they sit)."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, val in node.items():
            if key in ("failures", "budget_failures") and isinstance(val, list):
                out += [f"{where}: {f}" if where else str(f) for f in val]
            elif isinstance(val, (dict, list)):
                out += _failures(val, f"{where}.{key}".strip(".") if key != "parity" or where else "")
    elif isinstance(node, list):
        for val in node:
            out += _failures(val, where)
    return out


def markdown(results: list[dict]) -> str:
    lines = ["| model | target | format | precision | status | worst cosine | size |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for c in r.get("cells", []):
            status = {"passed": "✅ passed", "gate_failed": "⚠️ gate failed", "failed": f"❌ failed at {c.get('stage')}"}[c["status"]]
            cos = "–" if c["cosine"] is None else f"{c['cosine']:.5f}"
            size = "–" if c["size_bytes"] is None else f"{c['size_bytes'] / 1e6:.2f} MB"
            lines.append(f"| {r['model']} | {c['target']} | {c['format']} | {c['precision']} | {status} | {cos} | {size} |")
        if "cells" not in r:
            lines.append(f"| {r['model']} | – | – | – | exit {r['exit_code']}: {' '.join(r['stderr_tail'])[:120]} | – | – |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--out", default="build/real_models")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    work = Path(args.out).resolve()
    results = []
    for name in args.models:
        print(f"building {name} ...", file=sys.stderr, flush=True)
        results.append(build(name, work))
        print(f"  exit {results[-1]['exit_code']} in {results[-1]['seconds']} s", file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
