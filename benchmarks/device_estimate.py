"""How good the device latency estimates are: leave-one-out error against every published point,
and the int8/fp32 ratio of the estimates for MobileNet-class nets.

    python benchmarks/device_estimate.py [--out benchmarks/results/device_estimate.json]

It reads the shipped fit (edgepack/estimate/fitted/tflite-cpu-cortex-a76.json, made by
benchmarks/device_model_fit.py with the counts inside it) and runs the estimate that a build
runs, for the android-arm64 profile (Pixel-4-class), on each calibration net's counts. Goals
(issue #12): every leave-one-out error within 25%; the int8/fp32 ratio of a MobileNet-class net
about 0.35-0.7 on a Pixel-4-class core. No emulation runs here (a second or two).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgepack.estimate.coreml_check import coreml_summary  # noqa: E402
from edgepack.estimate.device_model import fitted  # noqa: E402
from edgepack.estimate.estimate import estimate_latency  # noqa: E402
from edgepack.profiles import resolve_profile  # noqa: E402

GOAL_PCT = 25.0
RATIO_GOAL = (0.35, 0.7)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "device_estimate.json")
    ap.add_argument("--target", default="android-arm64")
    args = ap.parse_args(argv)
    profile = resolve_profile(args.target)
    fit = fitted(profile.device_model.fit)
    rows, est = [], {}
    print(f"device model {profile.device_model.fit} ({fit['grouping']}), target {profile.name}: {profile.device_model.core} "
          f"{profile.device_model.clock_ghz} GHz, {profile.threads} threads")
    print(f"{'net':<20} {'prec':<5} {'device':<8} {'published':>9} {'estimate':>9} {'error':>7}")
    for role, pts in (("fitted (leave-one-out)", fit["points"]), ("held out (predicted)", fit.get("held_out", []))):
        for p in pts:
            e, _ = estimate_latency(profile, p["counts"], counted_on=fit["count_cpu"])
            est[(p["net"], p["precision"])] = e["ms"]
            pred, err = (p["loo_ms"], p["loo_error_pct"]) if "loo_ms" in p else (p["predicted_ms"], p["error_pct"])
            rows.append({"net": p["net"], "precision": p["precision"], "device": p["device"], "core": p["core"], "role": role,
                         "published_ms": p["ms"], "predicted_ms": pred, "error_pct": err, "estimate_ms_on_target": e["ms"],
                         "instructions_total": p["counts"]["total"], "source": p["source"]})
            print(f"{p['net']:<20} {p['precision']:<5} {p['device']:<8} {p['ms']:>7.2f}ms {pred:>7.2f}ms {err:>+6.1f}%  {role}")
    worst = max(abs(r["error_pct"]) for r in rows if r["role"].startswith("fitted"))
    ratios = {}
    for net in sorted({r["net"] for r in rows}):
        if (net, "int8") in est and (net, "fp32") in est:
            pub = {r["precision"]: r["published_ms"] for r in rows if r["net"] == net}
            ratios[net] = {"estimated": round(est[(net, "int8")] / est[(net, "fp32")], 3), "published": round(pub["int8"] / pub["fp32"], 3)}
    print(f"largest leave-one-out error over the {len(fit['points'])} fitted points: {worst:.1f}% (goal within {GOAL_PCT:g}%: {'met' if worst <= GOAL_PCT else 'NOT met'})")
    if fit.get("held_out"):
        print(f"held out: {fit['held_out_reason']}")
    for net, r in ratios.items():
        inside = RATIO_GOAL[0] <= r["estimated"] <= RATIO_GOAL[1]
        print(f"int8/fp32 on {profile.name}, {net}: estimated {r['estimated']:.2f}, published {r['published']:.2f} "
              f"(goal {RATIO_GOAL[0]}-{RATIO_GOAL[1]}: {'inside' if inside else 'outside'})")
    coreml = coreml_summary()
    print(f"Core ML FLOP/byte model: largest leave-one-out error {coreml['max_abs_error_pct']:.0f}% over {coreml['points']} points: {coreml['verdict']}")
    result = {
        "benchmark": "device_estimate",
        "label": "estimated-device",
        "target": profile.name,
        "fit": profile.device_model.fit,
        "grouping": fit["grouping"],
        "cycles_per_instruction": fit["cpi"],
        "points": rows,
        "largest_loo_error_pct": worst,
        "mean_loo_error_pct": fit["loo"]["mean_abs_error_pct"],
        "goal_pct": GOAL_PCT,
        "goal_met": worst <= GOAL_PCT,
        "int8_fp32_ratio": ratios,
        "ratio_goal": list(RATIO_GOAL),
        "held_out_reason": fit.get("held_out_reason"),
        "candidates": fit.get("candidates", {}),
        "coreml": coreml,
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "versions": fit.get("versions", {}),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
