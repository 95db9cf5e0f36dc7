"""The kernel registry: one numpy function per MIL op type.

A kernel takes an `OpCall` (the pymil op plus the numpy values of its inputs) and returns the
op's output value, or a tuple of values for an op with several outputs. Kernels never see fp16
arrays: the interpreter hands them fp16 tensors as float32 arrays that hold exactly the fp16
values, and rounds whatever a kernel returns to the op's declared output dtype (see
`interpreter.py`). Kernels must not write into their inputs (the interpreter passes read-only
arrays, so a kernel that tries fails loudly).

Each op type is backed by one of three sources, reported by `covered_ops()`:

- "value_inference": coremltools' own numpy implementation (`Operation.value_inference`), run on
  the runtime values (see `_bound.py`). Used only for ops whose implementation was checked
  against an independent reference in tests/coreml_emulator.
- "materialized_val_inference": coremltools' own decompression for constexpr ops (and
  `dequantize`), run the same way.
- "emulator": a kernel written here, for ops that have no numpy implementation in coremltools or
  whose implementation is wrong, slow or incomplete for runtime use (listed in each module).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_MODULES = (
    "elementwise",
    "activation",
    "linear",
    "reduction",
    "tensor_ops",
    "shape_ops",
    "conv",
    "pool",
    "norm",
    "resize",
    "quantization",
    "constexpr",
    "classify",
)


@dataclass(frozen=True)
class OpCall:
    """What a kernel sees: the op (for its declared types and names) and its input values."""

    op: Any  # a coremltools pymil Operation
    inputs: dict[str, Any]  # input name -> value; a list of values for tuple inputs; absent if optional and unset

    def __getitem__(self, name: str) -> Any:
        return self.inputs[name]

    def get(self, name: str, default: Any = None) -> Any:
        value = self.inputs.get(name)
        return default if value is None else value


Kernel = Callable[[OpCall], Any]


class UnsupportedVariant(Exception):
    """Raised by a kernel for a parameter combination it does not implement; the interpreter
    turns it into an UnsupportedOpError that names the file and the op."""

_KERNELS: dict[str, Kernel] = {}
_SOURCES: dict[str, str] = {}
_loaded = False


def register(*op_types: str, source: str = "emulator") -> Callable[[Kernel], Kernel]:
    """Register `fn` as the kernel for each op type in `op_types`."""

    def deco(fn: Kernel) -> Kernel:
        for op_type in op_types:
            if op_type in _KERNELS:
                raise RuntimeError(f"Core ML emulator: op '{op_type}' has two kernels")
            _KERNELS[op_type] = fn
            _SOURCES[op_type] = source
        return fn

    return deco


def _load() -> None:
    global _loaded
    if not _loaded:
        for mod in _MODULES:
            importlib.import_module(f"{__name__}.{mod}")
        _loaded = True


def lookup(op_type: str) -> Kernel | None:
    """The kernel for `op_type`, or None when the emulator has none."""
    _load()
    return _KERNELS.get(op_type)


def covered_ops() -> dict[str, str]:
    """Every op type the emulator can run, mapped to where its numbers come from
    ("value_inference", "materialized_val_inference" or "emulator")."""
    _load()
    return dict(sorted(_SOURCES.items()))
