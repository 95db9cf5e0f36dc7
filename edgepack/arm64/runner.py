"""Run an artifact in the real arm64 builds of its runtime, under qemu-aarch64 (host side).

    run_arm64(artifact, raw_feeds_list, cpu="cortex-a76", count=False, *, output_names=None,
              timeout_s=None) -> Arm64Run(outputs, counts, seconds, ...)

`artifact` is an edgepack Artifact (its `.runtime` picks the guest runtime) or a path to a
.tflite / .ort / .onnx file. `raw_feeds_list` is a list of samples, each the artifact's raw feeds
(`Session.raw_feeds(sample)`: names and dtypes of the artifact's own inputs), so quantised I/O is
the same bytes as on the host. Outputs come back raw too, per sample, in the order
`output_names` gives (default: the artifact's own order; `Arm64Run.output_names` says which).
With `count=True`, sample 0 runs once more inside a marked region and `counts` holds the guest
instructions of that one single-threaded inference by class (see plugin/count.c):
  {"sdot", "udot", "fmla", "vector", "fp_scalar", "load", "load_vector", "store", "store_vector",
   "scalar", "total"}
QEMU's timing says nothing about a device: `seconds` is the host's wall time of the emulation.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ConversionError, first_line
from ..types import Artifact
from .cpuinfo import MODELS, cpu_prefix
from .home import Home, current_home, qemu_binary
from .status import NotSetUp

GUEST = Path(__file__).parent / "guest" / "run.py"
# the guest runtime for an artifact without an Artifact record, by file suffix
_BY_SUFFIX = {".tflite": "litert", ".ort": "onnxruntime", ".onnx": "onnxruntime"}
GUEST_RUNTIMES = ("litert", "onnxruntime")
COUNT_CLASSES = ("sdot", "udot", "fmla", "vector", "fp_scalar", "load", "load_vector", "store", "store_vector", "scalar")


@dataclass
class Arm64Run:
    outputs: list[list[np.ndarray]]  # per sample, the artifact's raw outputs
    counts: dict[str, int] | None  # guest instructions of one inference, by class, plus "total"
    seconds: float  # host wall time of the whole emulated run (start-up included)
    output_names: tuple[str, ...] = ()
    cpu: str = ""
    cpu_seconds: float = 0.0  # host CPU time of the emulation (user + sys)
    versions: dict[str, str] = field(default_factory=dict)  # of the guest's runtime and numpy, and qemu
    sample_cpu_seconds: tuple[float, ...] = ()  # host CPU time of each sample's inference under QEMU (emulation cost)

    def to_json(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "counts": self.counts, "seconds": round(self.seconds, 3), "versions": self.versions}


def _runtime_of(artifact: Artifact | Path | str) -> tuple[Path, str]:
    if isinstance(artifact, Artifact):
        path, runtime = Path(artifact.path), artifact.runtime
    else:
        path = Path(artifact)
        runtime = _BY_SUFFIX.get(path.suffix.lower(), "")
    if runtime not in GUEST_RUNTIMES:
        raise ConversionError(f"{path.name}: no arm64 build of its runtime ({runtime or path.suffix}); arm64 emulation runs .tflite and .ort")
    return path, runtime


def _env() -> dict[str, str]:
    """A clean environment: nothing of the host's (LD_PRELOAD, PYTHONHOME, QEMU_*) leaks into the guest."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def qemu_command(home: Home, cpu: str, script_args: Sequence[str], plugin_out: Path | None = None) -> list[str]:
    """The qemu-aarch64 command line that runs the guest Python on `script_args` on the `cpu` model."""
    if cpu not in MODELS:
        raise ConfigError(f"arm64 cpu {cpu!r} is not one edgepack emulates; choose from: {', '.join(MODELS)} (never 'max': SME gives wrong XNNPACK results)")
    qemu = qemu_binary()
    if qemu is None or home.read_stamp() is None:
        raise NotSetUp()
    prefix = cpu_prefix(home.root, home.sysroot, cpu)
    cmd = [qemu, "-cpu", cpu, "-L", str(prefix)]
    if plugin_out is not None:
        if not home.plugin.exists():
            raise NotSetUp("the instruction-counting plugin is missing")
        cmd += ["-plugin", f"{home.plugin},out={plugin_out}"]
    python = home.python()
    return [*cmd, str(prefix / python.relative_to(home.sysroot)), *script_args]


def run_arm64(
    artifact: Artifact | Path | str,
    raw_feeds_list: Sequence[dict[str, np.ndarray]],
    cpu: str = "cortex-a76",
    count: bool = False,
    *,
    output_names: Sequence[str] | None = None,
    timeout_s: float | None = None,
    home: Home | None = None,
) -> Arm64Run:
    """Run `artifact` under qemu-aarch64 on each sample of `raw_feeds_list` (see the module docstring)."""
    path, runtime = _runtime_of(artifact)
    home = home or current_home()
    if count and not raw_feeds_list:
        raise ValueError("count=True needs at least one sample")
    input_names = list(raw_feeds_list[0]) if raw_feeds_list else []
    with tempfile.TemporaryDirectory(prefix="edgepack-arm64-") as tmp:
        job = Path(tmp)
        (job / "in").mkdir()
        for s, feeds in enumerate(raw_feeds_list):
            if list(feeds) != input_names:
                raise ValueError(f"sample {s} has inputs {list(feeds)}, sample 0 has {input_names}")
            for k, name in enumerate(input_names):
                np.save(job / "in" / f"{s}_{k}.npy", np.ascontiguousarray(feeds[name]))
        spec = {
            "artifact": str(path.resolve()),
            "runtime": runtime,
            "inputs": input_names,
            "outputs": list(output_names) if output_names is not None else None,
            "samples": len(raw_feeds_list),
            "count": bool(count),
        }
        (job / "job.json").write_text(json.dumps(spec))
        plugin_out = job / "counts.json" if count else None
        cmd = qemu_command(home, cpu, [str(GUEST), str(job)], plugin_out)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, env=_env() | {"PYTHONPATH": str(home.site)}, capture_output=True, text=True,
                timeout=timeout_s or 600 + 60 * len(raw_feeds_list),
            )
        except subprocess.TimeoutExpired as exc:
            raise ConversionError(f"{path.name}: the arm64 run under qemu-aarch64 ({cpu}) took longer than {exc.timeout:.0f} s") from exc
        seconds = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 or not (job / "result.json").exists():
            raise ConversionError(f"{path.name}: the arm64 {runtime} under qemu-aarch64 ({cpu}) failed: {_guest_error(proc)}")
        result = json.loads((job / "result.json").read_text())
        names = tuple(result["outputs"])
        outputs = [[np.load(job / "out" / f"{s}_{j}.npy") for j in range(len(names))] for s in range(len(raw_feeds_list))]
        counts = _read_counts(plugin_out, path) if count else None
    stamp = home.read_stamp() or {}
    versions = {**result.get("versions", {}), "qemu": stamp.get("qemu", "?")}
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Arm64Run(outputs, counts, seconds, names, cpu, cpu_s, versions, tuple(result.get("sample_cpu_s", ())))


def _guest_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
    if proc.returncode < 0:
        return f"killed by signal {-proc.returncode}" + (f" ({lines[-1]})" if lines else "")
    return lines[-1] if lines else f"exit code {proc.returncode}"


def _read_counts(plugin_out: Path | None, path: Path) -> dict[str, int]:
    try:
        data = json.loads(plugin_out.read_text())  # type: ignore[union-attr]
    except (OSError, ValueError, AttributeError) as exc:
        raise ConversionError(f"{path.name}: the counting plugin wrote no counts ({first_line(exc)})") from exc
    if data.get("regions") != 1:
        raise ConversionError(f"{path.name}: the counting plugin saw {data.get('regions')} marked regions, expected 1")
    counts = {k: int(data["counts"].get(k, 0)) for k in COUNT_CLASSES}
    counts["total"] = sum(counts.values())
    return counts
