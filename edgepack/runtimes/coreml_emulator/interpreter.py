"""The interpreter: runs one function of a Core ML ML program over numpy values.

`EmulatedModel` walks the function's ops in program order over a dict of numpy values:

- `const` ops and every `constexpr_*` op (compressed weights) are materialised once, at load;
- every other op runs its kernel (see kernels/), and its result is cast to the dtype its Var
  declares. For fp16 Vars that means rounding to float16 after every op; values beyond fp16's
  range are recorded as `Fp16Overflow` findings ("would overflow on device");
- an op with no kernel stops the load with UnsupportedOpError naming it (and every other op
  type without one): nothing is ever skipped.

What it is not: Core ML. Kernels follow the MIL op definitions (and coremltools' own numpy code
where that is right); they do not reproduce a device's kernels, its op fusion, or its fp16
accumulation inside an op. Timing a run measures numpy on this host, never device latency.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConversionError, EdgepackError, InputError, InternalError, UnsupportedOpError
from ...types import IOBinding
from . import kernels
from .kernels import Kernel, OpCall, UnsupportedVariant
from .loader import TESTED_COREMLTOOLS, coremltools_version
from .values import Fp16Overflow, OverflowTracker, compute_form, declared_form, expected_shape, frozen, numpy_dtype

Observer = Callable[[str, str, np.ndarray], None]
"""observe(var_name, op_type, value): called with each function input (op_type "input") and every
op output, in the Var's declared dtype."""


@dataclass(frozen=True)
class _Out:
    name: str
    dtype: np.dtype | None
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class _Step:
    op: Any
    kernel: Kernel
    inputs: tuple[tuple[str, str | tuple[str, ...]], ...]  # (parameter, Var name or names)
    outputs: tuple[_Out, ...]


def _binding(var: Any) -> IOBinding:
    shape = expected_shape(var) or ()
    dtype = numpy_dtype(var)
    return IOBinding(var.name, tuple(-1 if d is None else d for d in shape), dtype.name if dtype is not None else "unknown")


class EmulatedModel:
    """One function of an ML program, loaded and ready to run in numpy.

    Build it with `load_mlpackage(path)` (a saved .mlpackage) or `EmulatedModel(program,
    source=...)` (an in-memory pymil Program, e.g. from `ct.convert(..., convert_to="milinternal")`).
    """

    def __init__(self, program: Any, *, source: str, function: str = "main"):
        if function not in program.functions:
            raise ConversionError(
                f"{source}: the ML program has no function '{function}' (it has: {', '.join(sorted(program.functions)) or 'none'})"
            )
        self.source = source
        self.program = program
        self.function_name = function
        fn = program.functions[function]
        self.op_types: Counter[str] = Counter()
        self._consts: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        steps: list[_Step] = []
        missing: list[Any] = []  # ops without a kernel, reported together
        for op in fn.operations:
            self.op_types[op.op_type] += 1
            kernel = kernels.lookup(op.op_type) if op.op_type != "const" else None
            if op.op_type == "const":
                value = op.outputs[0].val
                raw[op.outputs[0].name] = value
                self._consts[op.outputs[0].name] = compute_form(value)
            elif kernel is None:
                missing.append(op)
            elif op.op_type.startswith("constexpr_"):
                if not missing:  # after a failure, skip work: the load is going to fail
                    self._materialise(op, kernel, raw)
            else:
                steps.append(self._plan(op, kernel))
        if missing:
            self._refuse(missing)
        self._steps = tuple(steps)
        self._in_vars = tuple(fn.inputs.values())
        self._out_vars = tuple(fn.outputs)
        self.inputs: tuple[IOBinding, ...] = tuple(_binding(v) for v in self._in_vars)
        self.outputs: tuple[IOBinding, ...] = tuple(_binding(v) for v in self._out_vars)
        from coremltools.converters.mil.mil import types

        # A classifier's predicted label is a string output; its scores are the other one.
        self.label_outputs: frozenset[str] = frozenset(v.name for v in self._out_vars if types.is_str(v.sym_type))
        self._free = self._liveness()
        self._tracker = OverflowTracker()
        installed = coremltools_version()
        self.notes: tuple[str, ...] = (
            ()
            if installed == TESTED_COREMLTOOLS
            else (
                f"coremltools {installed} is installed; the Core ML emulator was checked against {TESTED_COREMLTOOLS} "
                "and relies on its internals (MIL-proto loader, op value_inference)",
            )
        )

    # -- loading ---------------------------------------------------------------------------

    def _refuse(self, ops: list[Any]) -> None:
        first = ops[0]
        others = sorted({op.op_type for op in ops} - {first.op_type})
        also = f", nor for {', '.join(repr(t) for t in others)}" if others else ""
        raise UnsupportedOpError(
            first.op_type,
            "coreml",
            f"{self.source}: the Core ML emulator has no kernel for op '{first.op_type}' (op '{first.name}'){also}; "
            "this artifact cannot be checked on Linux. Check it with Core ML on macOS, or add a kernel "
            "in edgepack/runtimes/coreml_emulator/kernels/",
        )

    def _materialise(self, op: Any, kernel: Kernel, raw: dict[str, Any]) -> None:
        """Decompress a constexpr op from the raw stored values of its inputs."""
        inputs = {
            p: ([raw[v.name] for v in var] if isinstance(var, (list, tuple)) else raw[var.name]) for p, var in op.inputs.items()
        }
        result = self._call(op, kernel, OpCall(op, inputs))
        results = tuple(result) if len(op.outputs) > 1 else (result,)
        for var, value in zip(op.outputs, results):
            raw[var.name] = value
            self._consts[var.name] = compute_form(declared_form(value, numpy_dtype(var)))

    def _plan(self, op: Any, kernel: Kernel) -> _Step:
        inputs = tuple(
            (p, tuple(v.name for v in var) if isinstance(var, (list, tuple)) else var.name) for p, var in op.inputs.items()
        )
        outputs = tuple(_Out(v.name, numpy_dtype(v), expected_shape(v)) for v in op.outputs)
        return _Step(op, kernel, inputs, outputs)

    def _liveness(self) -> tuple[tuple[str, ...], ...]:
        """For each step, the values no later step (nor the function's outputs) needs."""
        last: dict[str, int] = {}
        for i, step in enumerate(self._steps):
            for out in step.outputs:
                last[out.name] = i
            for _, names in step.inputs:
                for name in names if isinstance(names, tuple) else (names,):
                    last[name] = i
        keep = {v.name for v in self._out_vars}
        free: list[list[str]] = [[] for _ in self._steps]
        for name, i in last.items():
            if name not in keep:
                free[i].append(name)
        return tuple(tuple(f) for f in free)

    # -- running ---------------------------------------------------------------------------

    @property
    def computes_in_fp16(self) -> bool:
        """Whether any op of the program computes in fp16."""
        return any(out.dtype == np.float16 for step in self._steps for out in step.outputs)

    @property
    def findings(self) -> list[Fp16Overflow]:
        """fp16 overflows seen so far, one per op output, over every run since the last reset."""
        return self._tracker.findings

    def reset_findings(self) -> None:
        self._tracker.reset()

    def _feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
        names = [v.name for v in self._in_vars]
        unknown = sorted(set(feeds) - set(names))
        if unknown:
            raise InputError(f"{self.source}: unknown input(s) {unknown}; the model takes {names}")
        out: dict[str, Any] = {}
        for var in self._in_vars:
            if var.name not in feeds:
                raise InputError(f"{self.source}: input '{var.name}' is missing; the model takes {names}")
            arr = np.asarray(feeds[var.name])
            want = expected_shape(var)
            if want is not None and (arr.ndim != len(want) or any(w is not None and w != s for w, s in zip(want, arr.shape))):
                shown = tuple("?" if w is None else w for w in want)
                raise InputError(f"{self.source}: input '{var.name}' has shape {arr.shape}; the model takes {shown}")
            dtype = numpy_dtype(var)
            out[var.name] = compute_form(arr.astype(dtype) if dtype is not None else arr)
        return out

    def _call(self, op: Any, kernel: Kernel, call: OpCall) -> Any:
        try:
            return kernel(call)
        except UnsupportedVariant as exc:
            raise UnsupportedOpError(
                op.op_type,
                "coreml",
                f"{self.source}: the Core ML emulator's '{op.op_type}' kernel does not implement {exc} (op '{op.name}')",
            ) from exc
        except EdgepackError:
            raise
        except Exception as exc:
            raise InternalError(
                f"{self.source}: the Core ML emulator failed on op '{op.name}' ({op.op_type}): {type(exc).__name__}: {exc}"
            ) from exc

    def _store(self, step: _Step, out: _Out, value: Any, call: OpCall) -> Any:
        if out.dtype is None:
            return frozen(value)
        arr = np.asarray(value)
        if out.dtype == np.float16:
            if arr.dtype.kind == "f":
                self._tracker.check(step.op, out.name, arr, lambda: _nonfinite(call))
            stored = arr.astype(np.float16).astype(np.float32)
        else:
            stored = arr if arr.dtype == out.dtype else arr.astype(out.dtype)
        if out.shape is not None and (
            stored.ndim != len(out.shape) or any(w is not None and w != s for w, s in zip(out.shape, stored.shape))
        ):
            raise InternalError(
                f"{self.source}: the Core ML emulator's '{step.op.op_type}' kernel gave shape {stored.shape} for "
                f"'{out.name}' (op '{step.op.name}'), but the program declares {out.shape}"
            )
        return frozen(stored)

    def run(self, feeds: Mapping[str, np.ndarray], observe: Observer | None = None) -> dict[str, np.ndarray]:
        """Run the function on `feeds` (name -> array, cast to each input's declared dtype).

        Returns the function's outputs by name (fresh arrays, in their declared dtypes: fp16
        stays float16). `observe(var_name, op_type, value)` is called once for each function
        input (op_type "input"), then after every op that runs (not for const and constexpr
        weights), with the value in its declared dtype, read-only: e.g. to collect activation
        ranges for W8A8 calibration, where the first op's input is the model's input.
        """
        env = dict(self._consts)
        env.update(self._feeds(feeds))
        if observe is not None:
            for var in self._in_vars:
                observe(var.name, "input", declared_form(env[var.name], numpy_dtype(var)))
        with np.errstate(all="ignore"):
            for step, free in zip(self._steps, self._free):
                inputs = {
                    p: ([env[n] for n in names] if isinstance(names, tuple) else env[names]) for p, names in step.inputs
                }
                call = OpCall(step.op, inputs)
                result = self._call(step.op, step.kernel, call)
                results = tuple(result) if len(step.outputs) > 1 else (result,)
                if len(results) != len(step.outputs):
                    raise InternalError(
                        f"{self.source}: the '{step.op.op_type}' kernel gave {len(results)} outputs for op "
                        f"'{step.op.name}', which has {len(step.outputs)}"
                    )
                for out, value in zip(step.outputs, results):
                    env[out.name] = self._store(step, out, value, call)
                    if observe is not None:
                        observe(out.name, step.op.op_type, declared_form(env[out.name], out.dtype))
                for name in free:
                    env.pop(name, None)
        return {v.name: np.array(declared_form(env[v.name], numpy_dtype(v))) for v in self._out_vars}


def _nonfinite(call: OpCall) -> bool:
    """Whether any float input of the call already holds inf or NaN."""
    for value in call.inputs.values():
        for v in value if isinstance(value, list) else (value,):
            if isinstance(v, (np.ndarray, np.floating)) and np.asarray(v).dtype.kind == "f" and not np.isfinite(v).all():
                return True
    return False
