"""Run coremltools' own numpy implementation of an op on runtime values.

coremltools ops compute `value_inference()` (and, for constexpr ops, `materialized_val_inference()`)
from the compile-time values of their input Vars (`self.x.val`). To run them on runtime values
without touching the loaded program, we make a shallow copy of the op whose input attributes are
`BoundVar`s: stand-ins that answer `.val`/`.sym_val`/`.shape`/`.rank` from a numpy value and
forward everything else (`.dtype`, `.name`, `.op`, ...) to the real Var. The loaded program itself
is never mutated.

These are coremltools internals (checked against coremltools 9.0); tests/coreml_emulator checks
every op that uses them against an independent reference.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ....errors import InternalError
from . import OpCall, register


class BoundVar:
    """A pymil Var stand-in that carries a runtime value."""

    __slots__ = ("_var", "_value")

    def __init__(self, var: Any, value: Any):
        self._var = var
        self._value = value

    @property
    def val(self) -> Any:
        return self._value

    @property
    def sym_val(self) -> Any:
        return self._value

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self._value))

    @property
    def rank(self) -> int:
        return int(np.ndim(self._value))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._var, name)


def bind(call: OpCall) -> Any:
    """A shallow copy of `call.op` whose inputs hold the call's runtime values."""
    op = call.op
    view = object.__new__(type(op))
    view.__dict__.update(op.__dict__)
    bound: dict[str, Any] = {}
    for name, var in op._input_vars.items():
        if var is None:
            bound[name] = None
        elif isinstance(var, (list, tuple)):
            bound[name] = type(var)(BoundVar(v, x) for v, x in zip(var, call.inputs[name]))
        else:
            bound[name] = BoundVar(var, call.inputs[name])
        setattr(view, name, bound[name])
    view._input_vars = bound
    return view


def _check(call: OpCall, value: Any, method: str) -> Any:
    if value is None or (isinstance(value, tuple) and any(v is None for v in value)):
        raise InternalError(
            f"coremltools' {method} for op '{call.op.name}' ({call.op.op_type}) gave no value on runtime inputs"
        )
    return value


def value_inference(call: OpCall) -> Any:
    """Run the op's own `value_inference()` on the call's values."""
    return _check(call, bind(call).value_inference(), "value_inference")


def materialized_val_inference(call: OpCall) -> Any:
    """Run the op's own `materialized_val_inference()` (constexpr ops, dequantize)."""
    return _check(call, bind(call).materialized_val_inference(), "materialized_val_inference")


def use_value_inference(*op_types: str) -> None:
    """Back each of `op_types` with coremltools' value_inference."""
    register(*op_types, source="value_inference")(value_inference)


def use_materialized_val_inference(*op_types: str) -> None:
    register(*op_types, source="materialized_val_inference")(materialized_val_inference)
