"""edgepack's emulated Core ML runtime: a numpy interpreter of a saved .mlpackage's ML program.

Core ML itself runs only on Apple platforms: on Linux coremltools converts and saves models, but
`MLModel.predict` raises. To check a Core ML artifact's parity anyway, this package reads the
.mlpackage that ships (spec and weight.bin), rebuilds its ML program with coremltools' MIL-proto
loader, and runs the `main` function op by op in numpy:

- weights: `const` ops, and every compressed-weight `constexpr_*` op (int8/int4 quantised,
  palettised, sparse; iOS16 and iOS18 forms), decompressed once by coremltools' own code;
- ops: a kernel per MIL op type (`kernels/`), either coremltools' own numpy `value_inference`
  where that was checked to be right, or our own (conv, pooling, normalisation, resizing, ...);
  an op without a kernel raises UnsupportedOpError naming it, never a silent skip;
- fp16: a program that computes in fp16 is rounded to float16 after every op, and results beyond
  fp16's range are reported as `Fp16Overflow` findings ("would overflow on device").

What the emulator is NOT: Core ML. It follows the MIL op definitions, not a device's kernels; it
does not model the Neural Engine's or GPU's arithmetic inside an op, op fusion, or compute-unit
placement. Its parity numbers say the artifact computes what the source computes, within fp16
storage rounding; its timings are numpy on the build host and never device latency.

Public API (the Core ML format plug-in builds on this):

    load_mlpackage(path, function="main") -> EmulatedModel
        # a saved .mlpackage; for an unsaved ct.models.MLModel pass its `package_path`
    run_mlpackage(path, feeds, observe=None) -> (outputs, findings)
    EmulatedModel(program, source=..., function="main")
        # an in-memory pymil Program, e.g. ct.convert(..., convert_to="milinternal")
    EmulatedModel.run(feeds, observe=None) -> {output name: array in its declared dtype}
        # observe(var_name, op_type, value) for each input ("input") and after every op:
        # activation ranges for W8A8 calibration
    EmulatedModel.findings / reset_findings()   # fp16 overflows seen so far (Fp16Overflow)
    EmulatedModel.inputs / outputs              # IOBinding of the program's own I/O
    EmulatedModel.op_types / computes_in_fp16 / notes
    covered_ops() -> {op type: "value_inference" | "materialized_val_inference" | "emulator"}
    real_coreml_available() -> (bool, reason)
    CoreMLEmulatorRuntime                       # the "coreml_emulator" runtime plug-in;
                                                # its sessions expose `.findings` and `.model`

These rely on coremltools internals (the MIL-proto loader, op classes); they were checked against
coremltools 9.0 (`TESTED_COREMLTOOLS`), and tests/coreml_emulator pins that behaviour.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .interpreter import EmulatedModel, Observer
from .kernels import covered_ops
from .loader import TESTED_COREMLTOOLS, load_program
from .macos import real_coreml_available
from .runtime import CoreMLEmulatorRuntime, CoreMLEmulatorSession
from .values import FP16_MAX, Fp16Overflow

__all__ = [
    "FP16_MAX",
    "TESTED_COREMLTOOLS",
    "CoreMLEmulatorRuntime",
    "CoreMLEmulatorSession",
    "EmulatedModel",
    "Fp16Overflow",
    "Observer",
    "covered_ops",
    "load_mlpackage",
    "real_coreml_available",
    "run_mlpackage",
]


def load_mlpackage(path: str | Path, function: str = "main") -> EmulatedModel:
    """Load a saved .mlpackage (or .mlmodel) ML program for emulation.

    Raises InputError for a missing or unreadable file, ConversionError for a model that is not
    an ML program, UnsupportedOpError for an op the emulator has no kernel for, and
    MissingDependencyError when coremltools is not installed."""
    program, _spec = load_program(Path(path))
    return EmulatedModel(program, source=str(path), function=function)


def run_mlpackage(
    path: str | Path, feeds: Mapping[str, np.ndarray], observe: Observer | None = None
) -> tuple[dict[str, np.ndarray], list[Fp16Overflow]]:
    """Load and run once: (outputs by name in their declared dtypes, fp16 overflow findings)."""
    model = load_mlpackage(path)
    outputs = model.run(feeds, observe=observe)
    return outputs, model.findings
