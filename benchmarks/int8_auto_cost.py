"""What int8_auto's search costs against one plain int8 cell (issue #11), per format.

    python benchmarks/int8_auto_cost.py [--repeat 2] [--formats ort tflite coreml] [--live]
                                        [--out benchmarks/results/int8_auto.json]

For every format whose plug-in lists int8_auto among its precisions (the format registry says; the
others are skipped with a printed line), on each model of tests/int8_auto_models.py that plain int8
fails (outlier_net with the default budget, and detector_head with the budget that file declares
for it, where it has them): one cold build of the format's plain
int8 cell and one of its int8_auto cell, each a fresh

    python -m edgepack build MODEL.pt2 -c CALIB -t PROFILE -o OUT -f FMT -p P --no-cache --no-latency -q

process timed from outside (wall and the process tree's CPU seconds; interpreter start, imports,
source loading and validation included, as a user waits for them), repeats interleaved (int8, int8_auto, int8, int8_auto, ...). Each build's
report.json gives its cell's stage seconds (load, convert, quantise, validate); the quantise stage
holds the whole search, so its ratio is the search's own cost. The int8_auto cell's recipe gives
candidates, fallbacks and the search's seconds. Diagnosis is off in the profile (plain int8 fails
its gate and would otherwise pay for a per-layer diagnosis that int8_auto does not).

The builds run a frozen, byte-compiled copy of edgepack/ and targets/ (others edit the checkout
while this runs); `--live` runs the checkout.
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
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
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# tests/int8_auto_models.py factories: (input shape without batch, the function there that gives the
# budget a user of that model declares as profile TOML (precision, output name), or None: the defaults)
MODELS = {
    "outlier_net": ((3, 16, 16), None),
    "outlier_split_net": ((3, 16, 16), None),
    "detector_head": ((3, 32, 32), "detector_tolerances_toml"),
}
# output kinds a user of the model declares ([outputs.NAME] kind): outlier_split_net's output is a
# feature vector (tests/test_int8_auto_formats.py names it "features"; a .pt2's output is "output")
OUTPUT_KINDS = {"outlier_split_net": "embedding"}
PT2_OUTPUT = "output"  # the name edgepack gives a .pt2's single output
CALIBRATION_SAMPLES = 40  # as tests/test_int8_auto_ort.py: 24 calibrate (16 fit + 8 check), 16 held out
GOAL_RATIO = 3.0  # "not more than a few times one plain int8 cell": the build's wall time, taken as 3x
PACKAGES = ("torch", "onnx", "onnxruntime", "ai-edge-litert", "ai-edge-quantizer", "litert-torch", "coremltools", "numpy")

PROFILE = """
name = "bench"
[formats.{fmt}]
precisions = ["{plain}", "int8_auto"]
[latency]
runs = 0
[validation]
diagnose = "never"
"""


def auto_formats() -> tuple[dict[str, str], list[dict]]:
    """({format to measure: the plain int8 precision int8_auto is measured against, its plug-in's
    int8_auto_from}, skipped formats with the reason), from the format registry."""
    from edgepack.formats.base import formats

    chosen, skipped = {}, []
    for name, cls in sorted(formats().items()):
        if "int8_auto" not in cls.precisions:
            skipped.append({"format": name, "why": f"its plug-in's precisions {list(cls.precisions)} do not list int8_auto"})
        elif cls.int8_auto_from is None:
            skipped.append({"format": name, "why": "its plug-in names no int8_auto_from (the plain int8 precision)"})
        elif cls.int8_auto_from not in cls.precisions:
            skipped.append({"format": name, "why": f"its plug-in has no precision '{cls.int8_auto_from}' (its int8_auto_from)"})
        else:
            chosen[name] = cls.int8_auto_from
    return chosen, skipped


def make_models(work: Path) -> dict[str, tuple[Path, Path, str]]:
    """Each available test model as .pt2, with CALIBRATION_SAMPLES random samples (.npz) and the
    extra profile TOML of its declared budget (a function of the precision)."""
    import numpy as np
    import torch

    import int8_auto_models

    out = {}
    for name, (shape, budget) in MODELS.items():
        factory = getattr(int8_auto_models, name, None)
        if factory is None:
            print(f"skip model {name}: tests/int8_auto_models.py has no {name}()", file=sys.stderr)
            continue
        model = work / f"{name}.pt2"
        torch.export.save(torch.export.export(factory(), (torch.randn(1, *shape),)), str(model))
        calib = work / f"{name}-calib"
        calib.mkdir()
        rng = np.random.default_rng(0)
        np.savez(calib / "samples.npz", image=rng.standard_normal((CALIBRATION_SAMPLES, *shape)).astype(np.float32))
        toml = getattr(int8_auto_models, budget) if budget and hasattr(int8_auto_models, budget) else (lambda _p, _o: "")
        out[name] = (model, calib, toml)
    return out


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def one_build(model: Path, calib: Path, profile: Path, fmt: str, precision: str, out: Path, env: dict, cwd: Path) -> dict:
    cmd = [sys.executable, "-m", "edgepack", "build", str(model), "-c", str(calib), "-t", str(profile), "-o", str(out),
           "-f", fmt, "-p", precision, "--no-cache", "--no-latency", "-q"]
    load = round(os.getloadavg()[0], 2)
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd, timeout=1800)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    row = {"precision": precision, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "exit_code": proc.returncode, "load_before": load}
    if proc.returncode not in (0, 1) or not (out / "report.json").is_file():
        row["error"] = (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:400]
        return row
    from edgepack.report.int8_auto import shown  # a layer as the reports name it

    report = json.loads((out / "report.json").read_text())
    cells = [a for a in report["artifacts"] if a["format"] == fmt and a["precision"] == precision]
    if not cells:
        failed = [c for c in report.get("failed_cells", []) if c.get("precision") == precision]
        row["error"] = f"no artifact: {failed[0].get('reason', '')[:300]}" if failed else "no artifact"
        return row
    a = cells[0]
    st = {k: round(v, 3) for k, v in (a.get("stage_seconds") or {}).items()}
    row.update({
        "stage_seconds": st,
        "cell_s": round(sum(st.values()), 3),
        "passed": a["passed"],
        "size_bytes": a["size_bytes"],
        "int8_weight_share": (a.get("details") or {}).get("int8_weight_share"),
        "report_duration_s": report.get("duration_s"),
    })
    rec = (a.get("details") or {}).get("recipe")
    if rec:
        row.update({
            "candidates": rec["search"].get("candidates"),
            "search_s": rec["search"].get("seconds"),
            "fallbacks": [{"name": shown(la), "precision": la["precision"]} for la in rec["layers"] if la["precision"] != "int8"],
            "counts": rec.get("counts"),
        })
    else:
        row["tool_versions"] = a.get("tool_versions")
    return row


def _median(rows: list[dict], key: str, stage: str | None = None) -> float | None:
    vals = [(r["stage_seconds"].get(stage) if stage else r.get(key)) for r in rows if "error" not in r]
    vals = [v for v in vals if v is not None]
    return round(statistics.median(vals), 3) if vals else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def run_case(model_name: str, fmt: str, plain: str, model: Path, calib: Path, budget, repeat: int, env: dict, work: Path) -> dict:
    profile = work / f"{model_name}-{fmt}.toml"
    declared = budget(plain, PT2_OUTPUT) + budget("int8_auto", PT2_OUTPUT)
    if model_name in OUTPUT_KINDS:
        declared += f'[outputs.{PT2_OUTPUT}]\nkind = "{OUTPUT_KINDS[model_name]}"\n'

    profile.write_text(PROFILE.format(fmt=fmt, plain=plain) + declared, encoding="utf-8")
    runs = []
    for i in range(repeat):
        for precision in (plain, "int8_auto"):
            r = one_build(model, calib, profile, fmt, precision, work / f"out-{model_name}-{fmt}-{precision}-{i}", env, work)
            r["repeat"] = i + 1
            runs.append(r)
            extra = f", {r.get('candidates')} candidates, {len(r.get('fallbacks') or [])} fallbacks" if precision == "int8_auto" else ""
            print(f"{model_name} {fmt} {precision} #{i + 1}: {r['wall_s']} s wall, quantise {r.get('stage_seconds', {}).get('quantise')} s, "
                  f"passed {r.get('passed')}{extra}{' ERROR ' + r['error'] if 'error' in r else ''} (load {r['load_before']})", file=sys.stderr)
    p = [r for r in runs if r["precision"] == plain]
    a = [r for r in runs if r["precision"] == "int8_auto"]

    def side(rows):
        ok = [r for r in rows if "error" not in r]
        return {
            "wall_median_s": _median(rows, "wall_s"),
            "cpu_median_s": _median(rows, "cpu_s"),
            "cell_median_s": _median(rows, "cell_s"),
            **{f"{s}_median_s": _median(rows, "", s) for s in ("load", "convert", "quantise", "validate")},
            "passed": [r.get("passed") for r in ok],
            "size_bytes": ok[-1]["size_bytes"] if ok else None,
            "int8_weight_share": ok[-1].get("int8_weight_share") if ok else None,
            "errors": [r["error"] for r in rows if "error" in r],
        }

    ps, as_ = side(p), side(a)
    last = next((r for r in reversed(a) if "error" not in r), {})
    return {
        "model": model_name,
        "format": fmt,
        "plain_precision": plain,
        "declared_budget": declared or None,
        "plain": ps,
        "int8_auto": as_,
        "ratio_wall": _ratio(as_["wall_median_s"], ps["wall_median_s"]),
        "ratio_cpu": _ratio(as_["cpu_median_s"], ps["cpu_median_s"]),
        "ratio_cell": _ratio(as_["cell_median_s"], ps["cell_median_s"]),
        "ratio_quantise": _ratio(as_["quantise_median_s"], ps["quantise_median_s"]),
        "candidates": last.get("candidates"),
        "search_median_s": _median(a, "search_s"),
        "fallbacks": last.get("fallbacks"),
        "counts": last.get("counts"),
        "goal_met": (_ratio(as_["wall_median_s"], ps["wall_median_s"]) or 1e9) <= GOAL_RATIO,
        "runs": runs,
    }


def _versions() -> dict[str, str | None]:
    out = {}
    for p in ("edgepack", *PACKAGES):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def _commit() -> str | None:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() or None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--formats", nargs="*", help="only these of the formats that list int8_auto")
    ap.add_argument("--live", action="store_true", help="run the checkout itself, not a frozen copy")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/int8_auto.json"))
    args = ap.parse_args()
    fmts, skipped = auto_formats()
    for s in skipped:
        print(f"skip format {s['format']}: {s['why']}", file=sys.stderr)
    if args.formats:
        for f in fmts:
            if f not in args.formats:
                print(f"skip format {f}: not in --formats", file=sys.stderr)
        fmts = {f: p for f, p in fmts.items() if f in args.formats}
    load_start = [round(x, 2) for x in os.getloadavg()]
    cases = {}
    with tempfile.TemporaryDirectory(prefix="edgepack-int8auto-bench-") as d:
        work = Path(d)
        env = {k: v for k, v in os.environ.items() if k not in ("EDGEPACK_CACHE", "PYTHONDONTWRITEBYTECODE")}
        env["EDGEPACK_ARM64"] = "off"
        if not args.live:
            from cache_warm import snapshot

            code = snapshot(work / "code")
            env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [os.environ.get("PYTHONPATH")])])
        models = make_models(work)
        for name, (model, calib, budget) in models.items():
            for fmt, plain in fmts.items():
                cases[f"{name}/{fmt}"] = run_case(name, fmt, plain, model, calib, budget, args.repeat, env, work)
    result = {
        "method": (
            f"per model and format, {args.repeat} cold builds of the plain int8 cell and of the int8_auto cell, interleaved; each a "
            "fresh `python -m edgepack build MODEL.pt2 -f FMT -p P --no-cache --no-latency -q` process timed from outside "
            f"(EDGEPACK_ARM64=off, diagnose = never, {CALIBRATION_SAMPLES} random calibration samples); medians; stage seconds "
            "from report.json (quantise holds the whole search); "
            + ("the checkout itself (--live)" if args.live else "a frozen byte-compiled copy of edgepack/ and targets/")
        ),
        "goal": f"the int8_auto build's wall time at most {GOAL_RATIO:g}x the plain int8 build's (issue #11: 'a few times one plain int8 cell')",
        "plain_int8": fmts,  # each plug-in's int8_auto_from
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": _versions(),
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "skipped_formats": skipped,
        "summary": {
            k: {"ratio_wall": c["ratio_wall"], "ratio_cpu": c["ratio_cpu"], "ratio_cell": c["ratio_cell"], "ratio_quantise": c["ratio_quantise"],
                "plain_wall_s": c["plain"]["wall_median_s"], "int8_auto_wall_s": c["int8_auto"]["wall_median_s"],
                "plain_quantise_s": c["plain"]["quantise_median_s"], "int8_auto_quantise_s": c["int8_auto"]["quantise_median_s"],
                "search_s": c["search_median_s"],
                "candidates": c["candidates"], "fallbacks": len(c["fallbacks"] or []), "int8_auto_passed": c["int8_auto"]["passed"],
                "plain_passed": c["plain"]["passed"], "goal_met": c["goal_met"]}
            for k, c in cases.items()
        },
        "cases": cases,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
