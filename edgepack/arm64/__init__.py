"""An emulated arm64 runtime: .tflite and .ort artifacts run in the real arm64 builds of
ai-edge-litert and onnxruntime under qemu-aarch64 (QEMU user mode), with instruction counts.

The runner API (runner.py):

    run_arm64(artifact, raw_feeds_list, cpu="cortex-a76", count=False, *, output_names=None,
              timeout_s=None, home=None) -> Arm64Run

    Arm64Run(outputs: list[list[np.ndarray]],   # per sample, the artifact's raw outputs
             counts: dict[str, int] | None,     # count=True: guest instructions of ONE inference
             seconds: float,                    # host wall time of the emulation (not a device time)
             output_names, cpu, cpu_seconds, versions, sample_cpu_seconds)

`counts` keys: sdot, udot, fmla, vector, fp_scalar, load, load_vector, store, store_vector,
scalar, total (classes decoded from the A64 encoding by plugin/count.c; disjoint, summing to
total). The counted inference is a repeat of sample 0 after all samples ran, single-threaded,
between the guest's syscall(0x7151, 1) and syscall(0x7151, 2).

Set-up (network, once): `edgepack setup arm64` / setup.setup_arm64(progress). Without it,
run_arm64 raises status.NotSetUp (exit 5): "arm64 runtime not set up: run `edgepack setup arm64`".
CPU models: cortex-a53, cortex-a57, cortex-a72, cortex-a76, neoverse-n1 (never `max`).
"""
from __future__ import annotations

from .runner import COUNT_CLASSES, Arm64Run, run_arm64
from .status import NotSetUp, Unavailable

__all__ = ["COUNT_CLASSES", "Arm64Run", "NotSetUp", "Unavailable", "run_arm64"]
