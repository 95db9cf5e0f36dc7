"""Helpers for the Core ML emulator tests: build tiny MIL programs in code and run them.

`Mil.run(build, feeds)` builds a one-function pymil program whose inputs are `feeds` (name ->
array), calls `build(**input_vars)` inside it to add ops, and runs it in the emulator.
`Mil.folded(build, feeds)` builds the same ops on constants instead, so that coremltools' own
value_inference computes the result at build time: the reference for value_inference-backed ops.

Every op type the tests run is recorded in EXERCISED, which test_zz_coverage.py compares with
the emulator's kernel list.

The `mil` and `rng` fixtures live here, not in a conftest.py: the repository's tests import
helpers with `from conftest import ...`, which a second conftest module would shadow. Test
modules import them by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

EXERCISED: set[str] = set()



def close(out, ref, tol: float = 1e-6) -> float:
    """Assert max |out - ref| <= tol * max(1, max |ref|); returns the error."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    scale = max(1.0, float(np.max(np.abs(ref), initial=0.0)))
    err = float(np.max(np.abs(out - ref), initial=0.0))
    assert err <= tol * scale, f"max abs error {err:.3g} > {tol:g} * {scale:.3g}"
    return err


def cosine(a, b) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class Mil:
    def __init__(self):
        import coremltools as ct
        from coremltools.converters.mil import Builder as mb
        from coremltools.converters.mil.mil import Function, Program, types

        self.ct, self.mb, self.types = ct, mb, types
        self._Function, self._Program = Function, Program
        self._builtin = {
            np.dtype(np.float32): types.fp32,
            np.dtype(np.float16): types.fp16,
            np.dtype(np.int32): types.int32,
            np.dtype(np.bool_): types.bool,
            np.dtype(np.int8): types.int8,
            np.dtype(np.uint8): types.uint8,
        }

    def program(self, build, feeds: dict, opset=None):
        """Feeds named c_* become constants (for inputs MIL wants const, e.g. weights). ML program
        inputs and outputs can only be fp32, fp16 or int32, so other feeds come in as int32 and
        are cast, and other outputs are cast to int32."""
        mb = self.mb
        io_types = (self.types.fp32, self.types.fp16, self.types.int32)
        specs, casts = {}, {}
        for n, a in feeds.items():
            if n.startswith("c_"):
                continue
            dtype = self._builtin[np.asarray(a).dtype]
            specs[n] = mb.TensorSpec(shape=np.shape(a), dtype=dtype if dtype in io_types else self.types.int32)
            if dtype not in io_types:
                casts[n] = np.asarray(a).dtype
        with self._Function(specs, opset_version=opset or self.ct.target.iOS17) as fn:
            names = {np.dtype(np.bool_): "bool", np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8"}
            inputs = {n: (mb.cast(x=v, dtype=names[casts[n]]) if n in casts else v) for n, v in fn.inputs.items()}
            consts = {n: mb.const(val=np.asarray(a)) for n, a in feeds.items() if n.startswith("c_")}
            outs = build(**inputs, **consts)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            # ML program outputs can only be fp32, fp16 or int32
            outs = [o if o.dtype in (self.types.fp32, self.types.fp16, self.types.int32) else mb.cast(x=o, dtype="int32") for o in outs]
            fn.set_outputs(outs)
        prog = self._Program()
        prog.add_function("main", fn)
        return prog

    def roundtrip(self, prog, opset=None):
        """The program as it comes back from a saved model: serialised to the MIL protobuf
        (weights to a weight.bin) and rebuilt by coremltools' MIL-proto loader, no passes run."""
        import tempfile

        from coremltools.converters.mil.backend.mil.load import load as to_proto
        from coremltools.converters.mil.frontend.milproto.load import load as from_proto

        version = (opset or self.ct.target.iOS17).value
        with tempfile.TemporaryDirectory() as weights:
            spec = to_proto(prog, weights_dir=weights, specification_version=version)
            return from_proto(spec, version, weights)

    def model(self, build, feeds: dict, opset=None, roundtrip: bool = True):
        from edgepack.runtimes.coreml_emulator import EmulatedModel

        prog = self.program(build, feeds, opset)
        if roundtrip:
            prog = self.roundtrip(prog, opset)
        model = EmulatedModel(prog, source="test-program")
        EXERCISED.update(model.op_types)
        return model

    def run(self, build, feeds: dict, opset=None, observe=None) -> list[np.ndarray]:
        model = self.model(build, feeds, opset)
        outs = model.run({n: a for n, a in feeds.items() if not n.startswith("c_")}, observe=observe)
        return [outs[b.name] for b in model.outputs]

    def folded(self, build, feeds: dict, opset=None) -> list:
        """The op's outputs as coremltools' value_inference computes them on constants."""
        mb = self.mb
        with self._Function({}, opset_version=opset or self.ct.target.iOS17) as fn:
            outs = build(**{n: mb.const(val=np.asarray(a)) for n, a in feeds.items()})
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            vals = [o.val if o.val is not None else o.op.materialized_val_inference() for o in outs]
            fn.set_outputs(outs)
        return vals


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable  # build(mb, **vars) -> var(s)
    feeds: Callable  # feeds(rng) -> {name: array}
    ref: Callable  # ref(**float64 arrays) -> array or list of arrays
    opset: str | None = None  # "iOS18" etc.; iOS17 when unset


def u(rng, *shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def x_only(*shape, lo=-2.0, hi=2.0):
    return lambda r: {"x": u(r, *shape, lo=lo, hi=hi)}


def t(a):
    import torch

    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def check_case(mil, rng, case: Case, folded: bool, tol: float = 1e-6) -> None:
    """Run a case in the emulator; compare with its float64 reference (and, with folded=True,
    with coremltools' compile-time value_inference, which must agree exactly)."""
    feeds = case.feeds(rng)
    opset = getattr(mil.ct.target, case.opset) if case.opset else None
    outs = mil.run(lambda **v: case.build(mil.mb, **v), feeds, opset)
    refs = case.ref(**{k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in feeds.items()})
    refs = refs if isinstance(refs, (list, tuple)) else [refs]
    assert len(outs) == len(refs)
    for out, ref in zip(outs, refs):
        close(out, ref.numpy() if hasattr(ref, "numpy") else ref, tol)
    if folded:
        vals = mil.folded(lambda **v: case.build(mil.mb, **v), feeds, opset)
        for out, f in zip(outs, vals):
            np.testing.assert_array_equal(out, np.asarray(f).astype(out.dtype))


@pytest.fixture(scope="session")
def mil() -> Mil:
    pytest.importorskip("coremltools")
    return Mil()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
