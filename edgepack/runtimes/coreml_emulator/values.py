"""How the emulator stores values, rounds them to their declared dtype, and flags fp16 overflow.

Every op output is cast to the dtype its MIL Var declares. fp16 values are stored as float32
arrays that hold exactly the fp16-rounded numbers, so that kernels always compute in at least
float32; rounding after every op models what a device stores between ops, not how it
accumulates inside one (GPU and Neural Engine kernels may keep more or less precision within an
op than the emulator does).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

FP16_MAX = 65504.0  # the largest finite float16


@dataclass(frozen=True)
class Fp16Overflow:
    """An fp16 op whose result does not fit in fp16: on a device it would be inf (or NaN later)."""

    op_name: str
    op_type: str
    output: str  # the output Var's name
    max_abs: float  # largest |x| before rounding to fp16; inf when the op made inf from finite inputs
    count: int  # out-of-range elements, in the worst run
    runs: int  # in how many runs it happened

    def message(self) -> str:
        return (
            f"op '{self.op_name}' ({self.op_type}) output '{self.output}' reaches |x| = {self.max_abs:.6g}, "
            f"beyond fp16's {FP16_MAX:g}: it would overflow to inf on device ({self.count} elements, {self.runs} run(s))"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"max_abs": self.max_abs if np.isfinite(self.max_abs) else "inf"}


def numpy_dtype(var: Any) -> np.dtype | None:
    """The numpy dtype a pymil Var declares, or None for non-numeric values (strings, lists)."""
    from coremltools.converters.mil.mil import types

    sym_type = var.sym_type
    builtin = var.dtype if types.is_tensor(sym_type) else sym_type
    if types.is_str(builtin) or not types.is_scalar(builtin):
        return None
    try:
        return np.dtype(types.nptype_from_builtin(builtin))
    except (KeyError, TypeError):
        return None


def expected_shape(var: Any) -> tuple[int | None, ...] | None:
    """The Var's shape with None for symbolic dims; () for scalars; None when not a tensor."""
    from coremltools.converters.mil.mil import types

    if types.is_tensor(var.sym_type):
        return tuple(int(d) if isinstance(d, (int, np.integer)) else None for d in var.shape)
    if types.is_scalar(var.sym_type) and not types.is_str(var.sym_type):
        return ()
    return None


def frozen(value: Any) -> Any:
    """A read-only view of an array (scalars and strings pass through)."""
    if isinstance(value, np.ndarray) and value.flags.writeable:
        value = value.view()
        value.flags.writeable = False
    return value


def compute_form(value: Any) -> Any:
    """The form kernels see: fp16 arrays and scalars become float32 (same numbers), read-only."""
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        value = value.astype(np.float32)
    elif isinstance(value, np.float16):
        value = np.float32(value)
    elif isinstance(value, np.bool_):
        # Loaded programs hold bool attributes as numpy bools, which numpy 2.4 refuses as
        # `keepdims=` (coremltools' reduce_* value_inference passes them straight through).
        value = bool(value)
    return frozen(value)


def declared_form(value: Any, dtype: np.dtype | None) -> Any:
    """A stored value in the dtype its Var declares (fp16 back to float16)."""
    if dtype is None:
        return value
    arr = np.asarray(value)
    return frozen(arr if arr.dtype == dtype else arr.astype(dtype))


class OverflowTracker:
    """Collects fp16 overflow findings, one per output Var, over any number of runs."""

    def __init__(self) -> None:
        self._found: dict[str, Fp16Overflow] = {}

    def check(self, op: Any, var_name: str, result: np.ndarray, inputs_nonfinite) -> None:
        """`result` is the kernel's value before rounding to fp16. `inputs_nonfinite` is a
        callable telling whether any float input already held inf/NaN (asked only when the
        result has an inf). NaN alone is not an overflow finding."""
        with np.errstate(invalid="ignore"):
            peak = float(np.max(np.abs(result), initial=0.0))
        if peak <= FP16_MAX:  # also False for NaN, which needs a closer look
            return
        finite = np.isfinite(result)
        big = finite & (np.abs(np.where(finite, result, 0)) > FP16_MAX)
        count = int(big.sum())
        max_abs = float(np.max(np.abs(result[big]), initial=0.0)) if count else 0.0
        infinite = np.isinf(result)
        if infinite.any() and not inputs_nonfinite():  # the kernel overflowed by itself
            count += int(infinite.sum())
            max_abs = float("inf")
        if count == 0:
            return
        old = self._found.get(var_name)
        if old is None:
            self._found[var_name] = Fp16Overflow(op.name, op.op_type, var_name, max_abs, count, 1)
        else:
            self._found[var_name] = Fp16Overflow(
                op.name, op.op_type, var_name, max(old.max_abs, max_abs), max(old.count, count), old.runs + 1
            )

    @property
    def findings(self) -> list[Fp16Overflow]:
        return list(self._found.values())

    def reset(self) -> None:
        self._found.clear()
