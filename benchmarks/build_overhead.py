"""What edgepack adds around the converters: a cold MobileNet-sized build against the same converter
calls made directly.

    python benchmarks/build_overhead.py [--repeat 1] [--samples 34] [--out benchmarks/results/build_overhead.json]

The model is MobileNetV2 1.0/224 built in code (edgepack/estimate/calibration_nets.py, seeded
random weights), saved with torch.export.save; the calibration set is --samples random 224x224
RGB images (the android-arm64 profile's 40% validation split leaves 20 of 34 to calibrate).

- edgepack: `python -m edgepack build net.pt2 -c calib -t android-arm64 --no-cache --no-latency
  --quiet` in a fresh process, EDGEPACK_ARM64=off: 7 cells (ort fp32/fp16/int8, tflite
  fp32/fp16/dynamic_int8/int8), converted, quantised and validated.
- direct: one fresh Python process (this file with --direct), no edgepack imported, making the same
  seven files with the calls edgepack makes (edgepack/formats/ort_mobile/, edgepack/formats/tflite/):
  torch.export.load of the .pt2; torch.onnx.export(dynamo=True); onnxruntime's float16 converter
  (keep_io_types); quant_pre_process + quantize_static (QDQ, per-channel, int8/int8, MinMax) on the
  same 20 calibration samples; an .ort save of each (the same session options); litert-torch with an
  NHWC input; ai-edge-quantizer float casting (fp16), dynamic int8 and static int8 (its own
  calibrator over the same samples, in NHWC). It validates nothing.

Both are timed from the parent, interpreter start and imports included. The result: each side's wall
time, their ratio (goal, issue #13: at most 1.2x), edgepack's per-stage sums from report.json
(stage_seconds: load, convert, quantise, validate, time), and the direct side's own step times, so
that convert+quantise can be compared alone. Builds alternate (edgepack, direct, direct, edgepack,
...) so both see the same load; the load average before each is kept. No timing is asserted in tests.
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
NET = "mobilenet_v2"
VALIDATION_SHARE, MAX_VALIDATION, MAX_CALIBRATION = 0.4, 200, 200  # targets/android-arm64.toml


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def calibration_indices(n: int) -> list[int]:
    """The calibration part of edgepack's split (CalibrationSet.split) for the android-arm64 profile."""
    import numpy as np

    order = np.random.default_rng(0).permutation(n)
    n_val = min(max(1, round(n * VALIDATION_SHARE)), MAX_VALIDATION, n - 1)
    return sorted(order[n_val:][:MAX_CALIBRATION].tolist())


# -- set-up (a child process: the parent never imports torch) -------------------------------------
def setup(work: Path, samples: int) -> None:
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from edgepack.estimate.calibration_nets import INPUT_SHAPE, build_net

    model = build_net(NET)
    torch.export.save(torch.export.export(model, (torch.zeros(INPUT_SHAPE),)), str(work / f"{NET}.pt2"))
    calib = work / "calib"
    calib.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    np.savez(calib / "samples.npz", image=rng.uniform(-1, 1, (samples, *INPUT_SHAPE[1:])).astype(np.float32))


# -- the direct path (a fresh process; nothing of edgepack) ----------------------------------------
def direct(work: Path, steps_out: Path) -> None:
    t_start = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name, t0):
        steps[name] = round(steps.get(name, 0.0) + time.perf_counter() - t0, 3)

    import contextlib
    import io
    import logging
    import warnings

    import numpy as np

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    t = time.perf_counter()
    import torch

    step("import_torch", t)
    out = work / "direct"
    out.mkdir(exist_ok=True)
    data = np.load(work / "calib" / "samples.npz")["image"]
    cal = [data[i : i + 1] for i in calibration_indices(len(data))]

    t = time.perf_counter()
    ep = torch.export.load(str(work / f"{NET}.pt2"))
    step("load", t)

    # ONNX Runtime: export, fp16, int8 QDQ, .ort of each
    t = time.perf_counter()
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    step("import_ort", t)
    t = time.perf_counter()
    fp32 = out / "net.fp32.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        prog = torch.onnx.export(ep, (torch.zeros(1, 3, 224, 224),), dynamo=True, input_names=["image"], external_data=False, verbose=False)
        prog.save(str(fp32), external_data=False)
    step("ort_convert", t)

    t = time.perf_counter()
    half = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    OnnxModel(half).topological_sort()
    fp16 = out / "net.fp16.onnx"
    onnx.save(half, str(fp16))
    step("ort_quantise", t)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(cal)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"image": x}

    t = time.perf_counter()
    pre, int8 = out / "net.int8.pre.onnx", out / "net.int8.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=False)
        quantize_static(
            str(pre), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    step("ort_quantise", t)

    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    for onnx_path, level in ((fp32, "all"), (fp16, "basic"), (int8, "all")):
        t = time.perf_counter()
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[level]
        so.optimized_model_filepath = str(onnx_path.with_suffix(".ort"))
        so.log_severity_level = 3
        so.add_session_config_entry("session.save_model_format", "ORT")
        so.add_session_config_entry("session.qdqisint8allowed", "1")
        ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"], disabled_optimizers=["NchwcTransformer"] if level == "all" else None)
        step("ort_convert", t)

    # LiteRT: litert-torch (NHWC input), then ai-edge-quantizer
    t = time.perf_counter()
    import litert_torch
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe_manager

    litert_torch.config.show_progress = False
    step("import_litert", t)

    class Nhwc(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **feeds):
            return {"output": self.inner(feeds["image"].permute(0, 3, 1, 2).contiguous())}

    t = time.perf_counter()
    wrapped = Nhwc(ep.module())
    wrapped.training = False
    with contextlib.redirect_stdout(io.StringIO()):
        float_model = bytes(litert_torch.convert(wrapped, sample_kwargs={"image": torch.zeros(1, 224, 224, 3)}).model_content())
    (out / "net.fp32.tflite").write_bytes(float_model)
    step("tflite_convert", t)

    ops = qtyping.TFLOperationName
    channelwise = qtyping.QuantGranularity.CHANNELWISE

    def recipe(kind):
        rm = recipe_manager.RecipeManager()
        if kind == "fp16":
            rm.add_quantization_config(
                ".*", ops.ALL_SUPPORTED,
                op_config=qtyping.OpQuantizationConfig(
                    weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
                    compute_precision=qtyping.ComputePrecision.FLOAT, explicit_dequantize=True,
                ),
                algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
            )
        elif kind == "dynamic_int8":
            rm.add_dynamic_config(".*", ops.ALL_SUPPORTED, num_bits=8, granularity=channelwise)
        else:
            rm.add_static_config(".*", ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8, weight_granularity=channelwise)
            for op in (ops.INPUT, ops.OUTPUT):
                rm.add_quantization_config(".*", op, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
        return rm.get_quantization_recipe()

    for kind in ("fp16", "dynamic_int8", "int8"):
        t = time.perf_counter()
        q = quantizer.Quantizer(bytearray(float_model), recipe(kind))
        qsvs = None
        if kind == "int8":
            qsvs = q.calibrate({"serving_default": [{"image": np.ascontiguousarray(x.transpose(0, 2, 3, 1))} for x in cal]})
        with contextlib.redirect_stdout(io.StringIO()):
            result = q.quantize(qsvs, enable_progress_bar=False, enable_progress_report=False)
        (out / f"net.{kind}.tflite").write_bytes(bytes(result.quantized_model))
        step("tflite_quantise", t)
    steps["total_in_process"] = round(time.perf_counter() - t_start, 3)
    steps_out.write_text(json.dumps(steps))


# -- the parent --------------------------------------------------------------------------------------
def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float, subprocess.CompletedProcess]:
    load = round(os.getloadavg()[0], 2)
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd)
    return round(time.perf_counter() - t0, 2), round(_children_cpu() - cpu0, 2), load, proc


def run_edgepack(work: Path, i: int, env: dict[str, str]) -> dict:
    out = work / f"edgepack-{i}"
    cmd = [sys.executable, "-m", "edgepack", "build", str(work / f"{NET}.pt2"), "-c", str(work / "calib"),
           "-t", "android-arm64", "-o", str(out), "--no-cache", "--no-latency", "--quiet", "--force"]
    wall, cpu, load, proc = _timed(cmd, env, work)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"edgepack build failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    report = json.loads((out / "report.json").read_text())
    sums: dict[str, float] = {}
    for a in report["artifacts"]:
        for k, v in (a.get("stage_seconds") or {}).items():
            sums[k] = round(sums.get(k, 0.0) + v, 2)
    return {
        "wall_s": wall, "cpu_s": cpu, "load_before": load, "exit_code": proc.returncode,
        "report_duration_s": report.get("duration_s"),
        "cells": [f"{a['format']} {a['precision']}" for a in report["artifacts"]],
        "failed_cells": len(report.get("failed_cells") or []),
        "parity_failed": [f"{a['format']} {a['precision']}" for a in report["artifacts"] if not a.get("passed")],
        "stage_seconds_sum": sums,
        "stage_seconds_per_cell": {f"{a['format']} {a['precision']}": a.get("stage_seconds") for a in report["artifacts"]},
        "convert_plus_quantise_s": round(sums.get("convert", 0.0) + sums.get("quantise", 0.0), 2),
    }


def run_direct(work: Path, i: int, env: dict[str, str]) -> dict:
    steps = work / f"direct-steps-{i}.json"
    wall, cpu, load, proc = _timed([sys.executable, str(Path(__file__).resolve()), "--direct", str(work), str(steps)], env, work)
    if proc.returncode != 0:
        raise SystemExit(f"direct conversion failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-3:]}")
    s = json.loads(steps.read_text())
    files = sorted(p.name for p in (work / "direct").iterdir() if p.suffix in (".ort", ".tflite"))
    cq = sum(v for k, v in s.items() if k.endswith(("_convert", "_quantise")))
    return {"wall_s": wall, "cpu_s": cpu, "load_before": load, "steps_s": s, "files": files,
            "convert_plus_quantise_s": round(cq, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1, help="pairs of builds (alternating order)")
    ap.add_argument("--samples", type=int, default=34, help="calibration images (40%% held out for validation)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/build_overhead.json"))
    ap.add_argument("--direct", nargs=2, metavar=("WORK", "STEPS_JSON"), help=argparse.SUPPRESS)
    ap.add_argument("--setup", metavar="WORK", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.direct:
        return direct(Path(args.direct[0]), Path(args.direct[1]))
    if args.setup:
        return setup(Path(args.setup), args.samples)
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEPACK_CACHE",)}
    env["EDGEPACK_ARM64"] = "off"
    load_start = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[dict]] = {"edgepack": [], "direct": []}
    with tempfile.TemporaryDirectory(prefix="edgepack-overhead-") as d:
        work = Path(d)
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--setup", str(work), "--samples", str(args.samples)], env=env, check=True)
        for i in range(args.repeat):
            for side in ("edgepack", "direct") if i % 2 == 0 else ("direct", "edgepack"):
                r = (run_edgepack if side == "edgepack" else run_direct)(work, i, env)
                runs[side].append(r)
                print(f"{side} #{i + 1}: {r['wall_s']} s wall, {r['cpu_s']} s CPU (load {r['load_before']})", file=sys.stderr)
    load_end = [round(x, 2) for x in os.getloadavg()]
    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
    cq = {k: statistics.median(r["convert_plus_quantise_s"] for r in v) for k, v in runs.items()}
    last = runs["edgepack"][-1]
    loads = [r["load_before"] for v in runs.values() for r in v] + [load_start[0], load_end[0]]
    result = {
        "case": f"{NET} 1.0/224 built in code (random weights), {args.samples} random 224x224 images, target android-arm64 (7 cells), EDGEPACK_ARM64=off",
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "method": f"{args.repeat} alternating pair(s), each side a fresh process timed from outside (interpreter start and imports included)",
        "load_average_start": load_start,
        "load_average_end": load_end,
        "busy": max(loads) > 2,
        "busy_note": "load average above 2 on 2 cores at some point: other work shared the CPUs; ratios within a run are the figures to compare" if max(loads) > 2 else None,
        "runs": runs,
        "edgepack_wall_s": med["edgepack"],
        "direct_wall_s": med["direct"],
        "ratio": round(med["edgepack"] / med["direct"], 3),
        "goal": "ratio <= 1.2",
        "goal_met": med["edgepack"] / med["direct"] <= 1.2,
        "edgepack_stage_seconds_sum": last["stage_seconds_sum"],
        "convert_plus_quantise_s": cq,
        "convert_plus_quantise_ratio": round(cq["edgepack"] / cq["direct"], 3) if cq["direct"] else None,
        # validation runs in the build's own process beside the converter worker, so this is a bound, not a measurement
        "ratio_without_validation_approx": round((med["edgepack"] - statistics.median(r["stage_seconds_sum"].get("validate", 0.0) for r in runs["edgepack"])) / med["direct"], 3),
        "cpu_ratio": round(statistics.median(r["cpu_s"] for r in runs["edgepack"]) / statistics.median(r["cpu_s"] for r in runs["direct"]), 3),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("edgepack_wall_s", "direct_wall_s", "ratio", "cpu_ratio", "edgepack_stage_seconds_sum", "convert_plus_quantise_s", "convert_plus_quantise_ratio", "ratio_without_validation_approx", "busy")}, indent=2))
    print(f"goal (edgepack / direct <= 1.2): {'met' if result['goal_met'] else 'NOT met'} ({result['ratio']}x)")


if __name__ == "__main__":
    main()
