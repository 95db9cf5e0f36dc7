"""Benchmarks: build time, peak memory and host latency per artifact, written as JSON.

    python benchmarks/run.py [--out benchmarks/results/latest.json]

Each case runs `edgepack.build` in a fresh subprocess so that peak RSS (ru_maxrss) belongs to
that build alone. Latency figures come from the build's own report (host, profile threads).
Targets live here, not in unit tests: compare ratios (int8 vs fp32) within one run, since
absolute times on a shared 2-core machine move by tens of percent.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FORMATS_ALL = """
[formats.ort]
precisions = ["fp32", "fp16", "int8"]
mobile_eps = []
[formats.tflite]
precisions = ["fp32", "fp16", "int8"]
[formats.coreml]
precisions = ["fp32", "fp16", "w8a8"]
"""
# The Core ML emulator is numpy (about 0.5 s a run at 224x224): the big case leaves it out.
FORMATS_HOST = """
[formats.ort]
precisions = ["fp32", "fp16", "int8"]
mobile_eps = []
[formats.tflite]
precisions = ["fp32", "fp16", "int8"]
"""

CASES = {
    "digits_cnn": {"model": "examples/digits/digits_cnn.pt2", "calibration": "calibration_data/digits", "make": None, "formats": FORMATS_ALL},
    "convnet_224": {"model": None, "calibration": None, "make": "convnet_224", "formats": FORMATS_HOST},
}

PROFILE = """
name = "bench"
threads = {threads}
{formats}
[latency]
warmup = 10
runs = 50
[validation]
max_samples = 16
[quantization]
calibration_samples = 16
"""


def make_convnet_224(work: Path) -> tuple[Path, Path]:
    """A MobileNet-sized plain CNN on 224x224 RGB, with random calibration images."""
    import numpy as np
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers, c = [], 3
    for out_c, stride in ((32, 2), (64, 2), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)):
        layers += [nn.Conv2d(c, out_c, 3, stride, 1), nn.BatchNorm2d(out_c), nn.ReLU()]
        c = out_c
    m = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)).eval()
    model = work / "convnet_224.pt2"
    torch.export.save(torch.export.export(m, (torch.randn(1, 3, 224, 224),)), str(model))
    calib = work / "calib.npz"
    np.savez(calib, input=np.random.default_rng(0).standard_normal((32, 3, 224, 224)).astype(np.float32))
    return model, calib


def _child(model: str, calibration: str, profile: str, out: str) -> None:
    import edgepack

    t0 = time.perf_counter()
    report = edgepack.build(model, calibration, [profile], out)
    wall = time.perf_counter() - t0
    rows = [
        {
            "precision": r.artifact.precision,
            "format": r.artifact.format,
            "size_bytes": r.size_bytes,
            "measured_on": r.latency.measured_on,
            "p50_ms": r.latency.p50_ms,
            "p90_ms": r.latency.p90_ms,
            "min_cosine": min(s.min_cosine for s in r.parity.outputs),
            "accuracy": r.parity.accuracy,
        }
        for r in report.results
    ]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"build_s": round(wall, 2), "peak_rss_mb": round(peak_mb, 1), "artifacts": rows}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, case in CASES.items():
            profile = work / f"bench-{name}.toml"
            profile.write_text(PROFILE.format(threads=args.threads, formats=case["formats"]))
            if case["make"]:
                model, calib = make_convnet_224(work)
            else:
                model, calib = ROOT / case["model"], ROOT / case["calibration"]
            out = work / f"out-{name}"
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(model), str(calib), str(profile), str(out)],
                capture_output=True, text=True, cwd=ROOT,
            )
            if proc.returncode != 0:
                raise SystemExit(f"benchmark {name} failed:\n{proc.stderr[-2000:]}")
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            for fmt in sorted({a["format"] for a in results[name]["artifacts"]}):
                arts = {a["precision"]: a for a in results[name]["artifacts"] if a["format"] == fmt}
                small = "int8" if "int8" in arts else "w8a8"
                results[name][f"{fmt}_{small}_vs_fp32"] = {
                    "latency": round(arts[small]["p50_ms"] / arts["fp32"]["p50_ms"], 3),
                    "size": round(arts[small]["size_bytes"] / arts["fp32"]["size_bytes"], 3),
                }
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    doc = {
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(), "platform": platform.platform()},
        "threads": args.threads,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
