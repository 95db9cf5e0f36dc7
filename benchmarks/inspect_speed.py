"""Benchmark: how long `edgepack inspect` takes per format, in a fresh process each time.

    python benchmarks/inspect_speed.py [--out benchmarks/results/inspect_speed.json] [--runs 5]
                                       [--files FILE ...]

Without --files it builds the digits example once (.ort, .tflite, .mlpackage in one profile) and
writes a small .keras (when Keras is installed), then times `edgepack inspect --json FILE` as a
new interpreter per run (what a user waits for: interpreter start, imports, reading), for those
files plus the bundled .onnx and .pt2. Each entry records the median and min wall time, whether
the median is under the 2 s target, and which heavy libraries the reader imported (none expected:
the readers parse flatbuffers, protobuf and zip/JSON themselves).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 2.0
HEAVY = ("torch", "tensorflow", "keras", "coremltools", "onnxruntime", "jax", "litert_torch")
PROBE = (
    "import json, sys\nfrom edgepack.cli import main\nimport contextlib, io\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n    rc = main(['inspect', '--json', sys.argv[1]])\n"
    "print(json.dumps({'rc': rc, 'heavy': [m for m in %r if m in sys.modules]}))\n" % (HEAVY,)
)
PROFILE = """
name = "inspect-bench"
threads = 1
[formats.ort]
precisions = ["fp32", "int8"]
mobile_eps = []
[formats.tflite]
precisions = ["fp32", "int8"]
[formats.coreml]
precisions = ["fp16", "int8_weights"]
[latency]
warmup = 1
runs = 1
[validation]
max_samples = 30
"""
KERAS = """
import sys, keras
inp = keras.Input(shape=(16, 16, 3), name="image")
x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
x = keras.layers.GlobalAveragePooling2D()(x)
keras.Model(inp, keras.layers.Dense(5, name="logits")(x)).save(sys.argv[1])
"""


def build_files(work: Path) -> list[Path]:
    prof = work / "p.toml"
    prof.write_text(PROFILE, encoding="utf-8")
    out = work / "out"
    cli = "import sys; from edgepack.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", cli, "build", "examples/digits/digits_cnn.pt2", "-c", "calibration_data/digits", "-t", str(prof), "-o", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"building the digits example failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    report = json.loads((out / "report.json").read_text())
    files = [out / a["file"] for a in report["artifacts"]]
    keras_file = work / "tiny.keras"
    if subprocess.run([sys.executable, "-c", KERAS, str(keras_file)], capture_output=True).returncode == 0:
        files.append(keras_file)
    return [ROOT / "examples/digits/digits_cnn.onnx", ROOT / "examples/digits/digits_cnn.pt2", *files]


def time_inspect(path: Path, runs: int) -> dict:
    times, heavy, rc = [], [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", PROBE, str(path)], cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        res = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {"rc": proc.returncode, "heavy": []}
        rc, heavy = res["rc"], res["heavy"]
    med = statistics.median(times)
    return {
        "file": path.name,
        "suffix": path.suffix,
        "exit_code": rc,
        "median_s": round(med, 3),
        "min_s": round(min(times), 3),
        "runs": runs,
        "under_target": med < TARGET_S,
        "heavy_imports": heavy,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "inspect_speed.json")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--files", type=Path, nargs="*", help="time these files instead of building the digits example")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="inspect-bench-") as tmp:
        files = [f.resolve() for f in args.files] if args.files else build_files(Path(tmp))
        entries = [time_inspect(f, args.runs) for f in files]
    # interpreter start alone, for scale
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    result = {
        "benchmark": "inspect_speed",
        "target_s": TARGET_S,
        "python_startup_s": round(time.perf_counter() - t0, 3),
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "entries": entries,
        "all_under_target": all(e["under_target"] and e["exit_code"] == 0 for e in entries),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for e in entries:
        flag = "ok" if e["under_target"] and e["exit_code"] == 0 else "SLOW" if e["exit_code"] == 0 else f"exit {e['exit_code']}"
        print(f"{e['file']:<40} {e['median_s']:6.2f} s  {flag}  heavy: {', '.join(e['heavy_imports']) or 'none'}")
    print(f"wrote {args.out}")
    return 0 if result["all_under_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
