"""Build the real-model tier for every shipped target and summarise each cell.

    python tests/real_models/build_real.py [MODEL ...] [--out DIR] [--json FILE]
    python tests/real_models/build_real.py --int8-auto [MODEL ...]     # int8 against int8_auto

Each model is built with `edgepack build MODEL -c CALIB -t android-arm64 -t linux-arm64 -t iphone
--no-latency` in a subprocess (the command a user runs); the result per cell (target, format,
precision) is its status and, for built cells, the worst output's cosine and the size. The
README's real-model table comes from this script's Markdown.

`--int8-auto` builds int8_auto.toml instead (each format's plain int8 beside its int8_auto) and
prints the README's int8 / int8_auto table: cosine, size, and the recipe's fallbacks.
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

from models import KINDS, MODELS, prepare  # noqa: E402

TARGETS = ("android-arm64", "linux-arm64", "iphone")
INT8_AUTO = str(HERE / "int8_auto.toml")


def with_kinds(name: str, targets: tuple[str, ...], folder: Path) -> list[str]:
    """The targets as profile files, with the model's declared output kinds (models.KINDS) added
    where it has any; the targets as given otherwise."""
    kinds = KINDS.get(name)
    if not kinds:
        return list(targets)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for t in targets:
        path = Path(t) if t.endswith(".toml") else HERE.parent.parent / "targets" / f"{t}.toml"
        text = path.read_text(encoding="utf-8") + "".join(f'\n[outputs.{o}]\nkind = "{k}"\n' for o, k in kinds.items())
        dest = folder / f"{name}.{path.name}"
        dest.write_text(text, encoding="utf-8")
        out.append(str(dest))
    return out


def build(name: str, work: Path, targets: tuple[str, ...] = TARGETS, extra: tuple[str, ...] = ()) -> dict:
    spec, calib = prepare(name, work / "inputs")
    out = work / (f"out_{name}" if targets == TARGETS else f"out_{name}.{Path(targets[0]).stem}")
    profiles = with_kinds(name, targets, work / "profiles")
    cmd = [sys.executable, "-m", "edgepack", "build", spec, "-c", str(calib), *sum((["-t", t] for t in profiles), []), "-o", str(out), "--no-latency", "--quiet", "--force", *extra]
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
        recipe = (a or {}).get("details", {}).get("recipe")
        acc = next((o.get("accuracy_drop") for o in (a or {}).get("parity", {}).get("outputs", []) if o.get("accuracy_drop") is not None), None)
        rows.append({
            **c, "cosine": cos, "size_bytes": a["size_bytes"] if a else None, "failures": _failures(a) if a else [],
            "accuracy_drop": acc, "int8_weight_share": (a or {}).get("details", {}).get("int8_weight_share"),
            "stage_seconds": (a or {}).get("stage_seconds"), "sqnr_db": min((o["sqnr_db"] for o in (a or {}).get("parity", {}).get("outputs", []) if o.get("sqnr_db") is not None), default=None),
            "fallbacks": None if recipe is None else {"names": _fallback_names(recipe), "counts": recipe["counts"],
                                                      "candidates": recipe["search"].get("candidates"), "seconds": recipe["search"].get("seconds")},
        })
    return rows


def _fallback_names(recipe: dict) -> list[str]:
    """The fallen-back layers as the reports show them (report.int8_auto.shown: LiteRT's label,
    since its tensor names are edgepack's wrapper module; else the name)."""
    from edgepack.report.int8_auto import shown

    label = {la["name"]: shown(la) for la in recipe.get("layers", [])}
    return [label.get(n, n) for n in recipe["fallbacks"]]


def _failures(node, where: str = "") -> list[str]:
    """Every failed check an artifact records: its parity's, a size budget's, and those of nested
    checks such as the arm64 emulation's parity (named by where they sit); not the int8_auto
    search's own steps, whose misses on the way are no failure of the artifact."""
    out: list[str] = []
    if isinstance(node, dict):
        for key, val in node.items():
            if key == "recipe":
                continue
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


def _cell_text(c: dict | None) -> str:
    if c is None:
        return "–"
    if c["status"] == "failed":
        return f"❌ {c.get('stage')}: {str(c.get('reason', ''))[:60]}"
    mark = "✅" if c["status"] == "passed" else "⚠️"
    cos = "–" if c["cosine"] is None else f"{c['cosine']:.4f}"
    size = "–" if c["size_bytes"] is None else f"{c['size_bytes'] / 1e6:.2f} MB"
    acc = "" if c.get("accuracy_drop") is None else f", acc −{c['accuracy_drop']:.3f}"
    sqnr = "" if c.get("sqnr_db") is None else f" ({c['sqnr_db']:.0f} dB)"
    return f"{mark} {cos}{sqnr}{acc}, {size}"


def cell_seconds(c: dict | None) -> float | None:
    """A cell's own time: the sum of its stage seconds (an int8_auto cell's convert is ~0, since
    the format's float conversion is made once and the plain cell carries it)."""
    st = (c or {}).get("stage_seconds")
    return sum(st.values()) if st else None


def cost_ratio(plain: dict | None, auto: dict | None) -> float | None:
    """The int8_auto cell's time over the plain int8 cell's (load, float conversion, quantisation
    and validation): what the search costs against one plain int8 cell."""
    a, p = cell_seconds(auto), cell_seconds(plain)
    return round(a / p, 2) if a is not None and p else None


def auto_markdown(results: list[dict]) -> str:
    """One row per model and format: plain int8 (Core ML: w8a8) beside int8_auto, with the recipe."""
    lines = ["| model | format | int8: cosine (SQNR), size | int8_auto: cosine (SQNR), size | fallbacks | search |", "|---|---|---|---|---|---|"]
    for r in results:
        by = {}
        for c in r.get("cells", []):
            by.setdefault(c["format"], {})[c["precision"]] = c
        for fmt, cells in by.items():
            plain = next((c for p, c in cells.items() if p != "int8_auto"), None)
            auto = cells.get("int8_auto")
            fb = (auto or {}).get("fallbacks")
            if fb:
                k = fb["counts"]
                moved = f"{k.get('int16', 0)} int16 + {k.get('float', 0)} float of {sum(k.values())}"
                n = fb.get("candidates")
                search = f"{n} candidate{'' if n == 1 else 's'}, {fb['seconds']:.0f} s" if n else "reused"
                ratio = cost_ratio(plain, auto)
                search += f" ({ratio:.1f}x the int8 cell)" if ratio is not None else ""
            else:
                moved = search = "–"
            lines.append(f"| {r['model']} | {fmt} | {_cell_text(plain)} | {_cell_text(auto)} | {moved} | {search} |")
        if "cells" not in r:
            lines.append(f"| {r['model']} | – | exit {r['exit_code']}: {' '.join(r['stderr_tail'])[:120]} | – | – | – |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--out", default="build/real_models")
    ap.add_argument("--json", default=None)
    ap.add_argument("--int8-auto", action="store_true", help="build int8_auto.toml: plain int8 beside int8_auto in every format")
    ap.add_argument("--profile", default=INT8_AUTO, help="the profile --int8-auto builds (default: int8_auto.toml)")
    ap.add_argument("--samples", type=int, default=None, help="calibration samples per model (default: models.N_SAMPLES)")
    ap.add_argument("-f", "--format", action="append", default=[], help="only these formats (passed to edgepack build)")
    ap.add_argument("--table", default=None, help="print the table of a --json FILE (or benchmarks/results/int8_auto_real.json) without building")
    args = ap.parse_args()
    if args.table:
        data = json.loads(Path(args.table).read_text())
        results = data["results"] if isinstance(data, dict) else data
        print(auto_markdown(results) if any(c.get("precision") == "int8_auto" for r in results for c in r.get("cells", [])) else markdown(results))
        return
    work = Path(args.out).resolve()
    if args.samples:
        import models

        models.N_SAMPLES = args.samples
    targets = (args.profile,) if args.int8_auto else TARGETS
    extra = tuple(sum((["-f", f] for f in args.format), []))
    results = []
    for name in args.models:
        print(f"building {name} ...", file=sys.stderr, flush=True)
        results.append(build(name, work, targets, extra))
        print(f"  exit {results[-1]['exit_code']} in {results[-1]['seconds']} s", file=sys.stderr, flush=True)
        if args.json:  # after each model, so a long run can be read while it goes
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(auto_markdown(results) if args.int8_auto else markdown(results))


if __name__ == "__main__":
    main()
