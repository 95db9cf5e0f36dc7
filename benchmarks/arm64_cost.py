"""What emulating arm64 costs: CPU time per sample under qemu-aarch64 against the native host run.

    python benchmarks/arm64_cost.py [--samples 8] [--cpu cortex-a76] [--out benchmarks/results/arm64.json]

Builds the digits example for linux-arm64 (.ort and .tflite, fp32 and int8; no latency, no
emulation inside the build), then for each artifact: the host's CPU time per inference (1 thread,
median of 50), and the emulator's CPU time per inference (median over samples 2..N+1, timed inside the guest with
process_time, which under qemu-user is host CPU time), and start-up (the run's CPU time minus its
inferences: QEMU, Python, imports, loading). The ratio per sample / native is the emulation's cost factor. Also the instruction count
of one inference. Needs `edgepack setup arm64`. QEMU's times say nothing about a device.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _native_cpu_s(session, raw, runs: int = 50) -> float:
    session.run_raw(raw)
    times = []
    for _ in range(runs):
        t = time.process_time()
        session.run_raw(raw)
        times.append(time.process_time() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--cpu", default="cortex-a76")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "arm64.json"))
    args = ap.parse_args()
    os.environ["EDGEPACK_ARM64"] = "off"  # the build itself does not emulate; this script does
    import edgepack
    from edgepack.arm64 import run_arm64
    from edgepack.arm64.emulate import source_order_names
    from edgepack.arm64.home import ready
    from edgepack.runtimes.base import get_runtime

    if not ready():
        print("edgepack: error: arm64 runtime not set up: run `edgepack setup arm64`", file=sys.stderr)
        return 5
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rep = edgepack.build(str(ROOT / "examples/digits/digits_cnn.onnx"), ROOT / "calibration_data/digits", ["linux-arm64"], Path(tmp) / "out", latency=False)
        from edgepack.sources.base import load_source

        source = load_source(str(ROOT / "examples/digits/digits_cnn.onnx"))
        import numpy as np

        data = np.load(ROOT / "calibration_data/digits/digits.npz")
        x = data[list(data.keys())[0]]
        feeds = [{source.inputs[0].name: x[i : i + 1].astype(np.float32)} for i in range(args.samples + 1)]
        for r in rep.artifacts:
            session = get_runtime(r.artifact.runtime).open(r.artifact.path, threads=1, source_inputs=source.inputs, source_outputs=source.outputs)
            raw = [session.raw_feeds(f) for f in feeds]
            native = _native_cpu_s(session, raw[0])
            names = source_order_names(session)
            many = run_arm64(r.artifact, raw, args.cpu, output_names=names)
            counted = run_arm64(r.artifact, raw[:1], args.cpu, count=True, output_names=names)
            per = statistics.median(many.sample_cpu_seconds[1:])  # the first run does one-time work
            rows.append({
                "artifact": Path(r.file).name, "precision": r.precision,
                "native_cpu_ms": round(native * 1e3, 4),
                "emulated_cpu_ms_per_sample": round(per * 1e3, 2),
                "cost_factor": round(per / native, 1) if native > 0 else None,
                "startup_cpu_s": round(many.cpu_seconds - sum(many.sample_cpu_seconds), 2),
                "wall_s": round(many.seconds, 2),
                "instructions_per_inference": counted.counts["total"],
                "counts": counted.counts,
            })
            print(json.dumps(rows[-1]), flush=True)
    out = {
        "what": "arm64 emulation cost: host CPU time per sample under qemu-aarch64 against the native host run (digits example)",
        "cpu_model": args.cpu,
        "samples": args.samples,
        "host": {"machine": platform.machine(), "processor": platform.processor(), "cores": os.cpu_count(), "load_1min": os.getloadavg()[0]},
        "versions": many.versions,
        "artifacts": rows,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
