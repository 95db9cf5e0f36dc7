"""Fit the device models that edgepack ships (edgepack/estimate/fitted/*.json).

    python benchmarks/device_model_fit.py [--work DIR] [--cpu cortex-a76] [--recount]

1. builds MobileNetV1, MobileNetV2 and EfficientNet-Lite0 (edgepack/estimate/calibration_nets.py)
   into fp32 and int8 .tflite with edgepack's own pipeline (kept in --work, reused);
2. counts the instructions of one single-threaded inference of each under qemu-aarch64 on --cpu
   (edgepack.arm64; run `edgepack setup arm64` first) - cached in --work/counts-<cpu>.json;
3. fits cycles per instruction to the published latencies, with leave-one-out errors, and writes
   edgepack/estimate/fitted/tflite-cpu-<cpu>.json (with the counts that produced it), plus the
   Core ML FLOP/byte model (edgepack/estimate/fitted/coreml-iphone-flop-byte.json).
A build never re-fits; tests/test_estimate_recount.py (slow) checks that re-counting gives the
same counts within 1%.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgepack.estimate.calibration_nets import NETS, PUBLISHED, build_calibration_artifacts  # noqa: E402
from edgepack.estimate.device_model import FITTED_DIR  # noqa: E402
from edgepack.estimate.fit import coreml_flop_byte_fit, count_artifact, fit_device_model, write_json  # noqa: E402


def versions() -> dict[str, str]:
    from edgepack.arm64.home import current_home

    stamp = current_home().read_stamp() or {}
    return {k: str(v) for k, v in stamp.items() if isinstance(v, (str, int, float))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "edgepack" / "device-model")
    ap.add_argument("--cpu", default="cortex-a76")
    ap.add_argument("--recount", action="store_true", help="count again even where --work holds counts")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    cache = args.work / f"counts-{args.cpu}.json"
    counts = {} if args.recount or not cache.exists() else json.loads(cache.read_text())
    for net in NETS:
        precisions = [p.precision for p in PUBLISHED if p.net == net]
        files = {p: args.work / net / f"calibration-{net}" / f"{net}.{p}.tflite" for p in precisions}
        if not all(f.exists() for f in files.values()):
            t0 = time.perf_counter()
            files = build_calibration_artifacts(net, args.work, precisions=tuple(precisions))
            print(f"built {net} {precisions} in {time.perf_counter() - t0:.0f} s", flush=True)
        for prec, path in files.items():
            key = f"{net}/{prec}"
            if key in counts:
                continue
            t0 = time.perf_counter()
            counts[key] = count_artifact(path, args.cpu)
            print(f"counted {key}: {counts[key]['total'] / 1e6:.1f} M instructions in {time.perf_counter() - t0:.0f} s", flush=True)
            cache.write_text(json.dumps(counts, indent=1))
    name = f"tflite-cpu-{args.cpu}"
    fit = fit_device_model(counts, name=name, count_cpu=args.cpu, versions=versions())
    write_json(fit, FITTED_DIR / f"{name}.json")
    write_json(coreml_flop_byte_fit(), FITTED_DIR / "coreml-iphone-flop-byte.json")
    print(f"wrote {FITTED_DIR / (name + '.json')}: grouping {fit['grouping']}, cpi {fit['cpi']}")
    for p in fit["points"]:
        print(f"  {p['net']:<20} {p['precision']:<5} published {p['ms']:6.2f} ms  fit {p['fit_ms']:6.2f}  leave-one-out {p['loo_ms']:6.2f} ({p['loo_error_pct']:+.1f}%)")
    print(f"largest leave-one-out error {fit['loo']['max_abs_error_pct']:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
