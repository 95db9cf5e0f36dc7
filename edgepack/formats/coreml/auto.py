"""int8_auto for Core ML: the search's Backend over W8A8 (compress.py), run in edgepack's emulator.

A layer is an activation that W8A8 quantises (coremltools' insert_prefix/suffix_quantize_dequantize
passes put a quantize/dequantize pair on it), named after the MIL op that computes it, without the
`_cast_fp16`-style suffix coremltools adds (so `conv2d`, `conv2d_1`: the torch graph's node names,
the same in every conversion of the model): a conv/linear/add followed by its activation is one
layer (`conv+relu`), the model's inputs are layers too (`input`). Core ML quantises activations to
int8 or uint8 only (MIL's quantize op; OpLinearQuantizerConfig's 4-bit dtypes are for weights), so
the one fallback is "float": the layer's quantize/dequantize pair is taken out again, and its
weights stay int8 like every other weight (base "weight_threshold" 0: however small; coremltools'
default 2048 leaves a small model's weights fp16). When no count of such layers meets the budget,
the last resort (base "float_weights" = the compute precision) keeps the weights of a float layer's
op and of the ops that read it in fp16 (as ORT's exclusion keeps a layer and its readers float),
still at most 0.5x the fp32 weights with fp16 compute. outlier_net needs it: conv2's per-output-
channel int8 weights crush its 1/100 weights that read the outlier channel, so with int8 weights
even every activation float misses (min_cosine 0.9695, top-1 agreement below 0.95).

Every candidate is made from one activation_stats pass per set of samples (the emulator's true
min/max), widened by base["range_margin"]. It is the pymil program that its conversion would save
(compress.conversion_passes), run in the emulator as it is: no model is written until the recipe is
chosen, then the artifact is converted once.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from ...quantize_search.search import LastSession, standard_fixes, widened
from ...quantize_search.sensitivity import CAP_DB, added_db, default_axis, own_rounding_db
from . import compress

_SUFFIXES = ("_cast_fp16", "_cast_fp32", "_cast")
_CORE_OPS = {"conv", "linear", "add", "avg_pool", "max_pool"}  # what the passes quantise around
_WEIGHTED = {"conv", "linear", "conv_transpose", "matmul"}  # ops whose const weights int8_weights quantises
# MIL ops that only move or select values: between float layers, an int8 one adds a rounding and saves nothing
_MOVERS = {
    "pad", "transpose", "reshape", "squeeze", "expand_dims", "concat", "slice_by_index", "slice_by_size", "split",
    "gather", "max_pool", "upsample_nearest_neighbor", "tile", "depth_to_space", "space_to_depth",
}
_ACTIVATIONS = {"leaky_relu", "tanh", "scaled_tanh", "sigmoid", "hard_sigmoid", "relu", "relu6"}  # fused by the suffix pass


def _short(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _quantised(program) -> dict[str, str]:
    """{var name: the dequantize output its users read} for every activation with a Q/DQ pair."""
    return _quantised_units(program)[0]


def _quantised_units(program) -> tuple[dict[str, str], dict[str, float]]:
    """({var name: its dequantize output}, {var or dequantize output: the factor that turns its
    values into real units}). The factors are 1 unless coremltools'
    distributive_quantized_binary_op_scale_normalization (run when a model is made from the
    program) moved an `add` into one input's units: the dequantizes feeding it are rescaled (their
    quantize keeps the real scale), and so is the add's own output, until its dequantize (which
    has the real scale again)."""
    dqs, units = {}, {}
    for fn in program.functions.values():
        for op in fn.operations:
            if op.op_type != "quantize":
                continue
            dq = [c for c in op.outputs[0].child_ops if c.op_type == "dequantize"]
            if not dq:
                continue
            var, out = op.inputs["input"].name, dq[0].outputs[0].name
            dqs[var] = out
            qs, ds = op.inputs["scale"].val, dq[0].inputs["scale"].val
            if np.size(qs) != 1 or np.size(ds) != 1 or float(qs) == float(ds) or float(qs) == 0 or float(ds) == 0:
                continue
            if any(c.op_type == "add" for c in dq[0].outputs[0].child_ops):
                units[out] = float(qs) / float(ds)  # an add's rescaled input
            else:
                units[var] = float(ds) / float(qs)  # an add's output, in its input's units
    return dqs, units


class CoreMLBackend:
    fallback_options = ("float",)

    def __init__(self, mlmodel, package: Path, source, track, compute: str = "fp16"):
        self.mlmodel = mlmodel  # the float (compute precision) model, converted once per build
        self.compute = compute
        self.package = Path(package)  # ... and saved: the emulator reads it
        self.source = source
        self.track = track
        self._n = 0
        self._last = LastSession()  # the search runs a candidate in two goes
        self._layers: list[dict[str, Any]] | None = None
        self._stats: dict[tuple, dict] = {}
        self._float_session = None

    # -- the model -------------------------------------------------------------------------
    def layers(self) -> list[dict[str, Any]]:
        if self._layers is None:
            prog = self.mlmodel._mil_program
            fn = prog.functions["main"]
            inputs = set(fn.inputs)
            dummy = {}
            for op in fn.operations:
                for v in op.outputs:
                    dummy[v.name] = {"rmin": -1.0, "rmax": 1.0}
            dummy.update({n: {"rmin": -1.0, "rmax": 1.0} for n in inputs})
            # which vars the passes quantise: the ranges do not matter for that
            marked = set(_quantised(compress.quantize_activations(self.mlmodel, dummy, program_only=True)))
            producer = {v.name: op for op in fn.operations for v in op.outputs}
            order = {v.name: i for i, op in enumerate(fn.operations) for v in op.outputs}
            layers, seen = [], set()
            for var in sorted(marked, key=lambda n: order.get(n, -1)):
                op = producer.get(var)
                if var in inputs or (op is not None and op.op_type == "cast" and op.inputs["x"].name in inputs):
                    la = {"name": var if var in inputs else op.inputs["x"].name, "op_type": "input", "var": var, "ins": [], "ops": []}
                elif op is None:
                    continue
                else:
                    core = op
                    x = op.inputs.get("x")
                    if op.op_type in _ACTIVATIONS and x is not None and x.op is not None and x.op.op_type in _CORE_OPS and len(x.child_ops) == 1:
                        core = x.op
                    kind = core.op_type if core is op else f"{core.op_type}+{op.op_type}"
                    ins = [v.name for k, v in core.inputs.items() if k in ("x", "y") and (v.op is None or v.op.op_type != "const")]
                    if core.op_type == "concat":
                        ins = [v.name for v in core.inputs["values"] if v.op is None or v.op.op_type != "const"]
                    la = {"name": _short(core.outputs[0].name), "op_type": kind, "var": var, "ins": ins, "ops": [core.name] if core.op_type in _WEIGHTED else []}
                # a float layer computes in float, and so do the ops that read it (as in ORT's exclusion)
                la["ops"] += [c.name for c in producer[var].outputs[0].child_ops if c.op_type in _WEIGHTED] if var in producer else []
                la["ops"] += [c.name for c in fn.inputs[var].child_ops if c.op_type in _WEIGHTED] if var in inputs else []
                if la["name"] in seen:  # two vars with one short name: keep the full one
                    la["name"] = var
                seen.add(la["name"])
                layers.append(la)
            self._layers = layers
        return [{"name": la["name"], "op_type": la["op_type"]} for la in self._layers]

    def movers(self) -> dict[str, list[str]]:
        """{layer: [the layers whose activations it reads]} for the layers of _MOVERS ops (an
        input var that no layer quantises leaves the mover out)."""
        self.layers()
        made_by = {la["var"]: la["name"] for la in self._layers}
        made_by.update({la["name"]: la["name"] for la in self._layers if la["op_type"] == "input"})
        out = {}
        for la in self._layers:
            if la["op_type"] in _MOVERS and la["ins"] and all(v in made_by for v in la["ins"]):
                out[la["name"]] = list(dict.fromkeys(made_by[v] for v in la["ins"]))
        return out

    def base(self) -> dict[str, Any]:
        # every weight in int8, however small (coremltools' default threshold would leave weights of
        # up to 2048 elements in float: no smaller than fp16 on a small model)
        return {"method": "minmax", "per_channel": True, "range_margin": 0.0, "weight_threshold": 0, "float_weights": "int8"}

    def last_resort(self, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if base.get("float_weights", "int8") != "int8":
            return []
        return [(f"{self.compute} weights in float layers and their readers", {**base, "float_weights": self.compute})]

    def fixes(self, base: dict[str, Any], sensitive: Callable[[], tuple[str, ...]] = tuple) -> list[tuple[str, dict[str, Any]]]:
        # no percentile range: the emulator's calibration keeps each activation's min and max only
        return standard_fixes(base, percentile=False)

    # -- candidates ------------------------------------------------------------------------
    def stats(self, samples: list) -> dict[str, dict[str, float]]:
        """Every activation's min/max over `samples`. Ranges merge exactly (a min of mins), so a set
        that holds one already calibrated (the artifact's samples hold the search's fit part) runs
        only its other samples: the same ranges as one pass over all of them."""
        key = tuple(id(s) for s in samples)
        if key not in self._stats:
            ids = set(key)
            known = max((k for k in self._stats if set(k) <= ids), key=len, default=())
            done = set(known)
            rest = [s for s in samples if id(s) not in done]
            fresh = compress.activation_stats(self.mlmodel, self.package, rest, self.track) if rest else {}
            self._stats[key] = compress.merged_stats(self._stats[known], fresh) if known else fresh
        return self._stats[key]

    def _configured(self, base: dict[str, Any], precisions: dict[str, str], samples: list):
        """(activation ranges, float activation vars, weight config) of `base` and `precisions`."""
        self.layers()
        base = {**self.base(), **base}  # a recipe from before a setting existed: its default
        m = float(base["range_margin"])
        stats = {}
        for k, s in self.stats(samples).items():
            stats[k] = dict(zip(("rmin", "rmax"), widened(s["rmin"], s["rmax"], m)))
        floats = [la for la in self._layers if precisions.get(la["name"], "int8") == "float"]
        keep = {o for la in floats for o in la["ops"]} if base["float_weights"] != "int8" else set()
        weights = compress.int8_weight_config(
            per_channel=bool(base["per_channel"]), weight_threshold=int(base["weight_threshold"]),
            keep_float=tuple(sorted(keep)),
        )
        return stats, tuple(la["var"] for la in floats), weights

    def quantise(self, base: dict[str, Any], precisions: dict[str, str], samples: list):
        """The int8_auto MLModel of `base` and `precisions`, calibrated on `samples`."""
        return compress.quantize_activations(self.mlmodel, *self._configured(base, precisions, samples))

    def build(self, base, precisions, samples):
        """A candidate: the pymil program that converting it would save (compress.conversion_passes),
        never written as a package; the emulator runs it as it is."""
        program = compress.quantize_activations(self.mlmodel, *self._configured(base, precisions, samples), program_only=True)
        compress.conversion_passes(program)
        return program

    def session(self, candidate):
        """An emulator session of a candidate program or a saved package (the float base, an artifact)."""
        from ...runtimes.coreml_emulator import load_mlpackage
        from ...runtimes.coreml_emulator.interpreter import EmulatedModel
        from ...runtimes.coreml_emulator.runtime import CoreMLEmulatorSession, _image_inputs

        saved = isinstance(candidate, (str, Path))
        self._n += 1
        model = load_mlpackage(candidate) if saved else EmulatedModel(candidate, source=f"int8_auto candidate {self._n}")
        s = CoreMLEmulatorSession(model, tuple(self.source.inputs), tuple(self.source.outputs))
        s._pixels = _image_inputs(Path(candidate) if saved else self.package, s._in_names)  # a candidate has the base's inputs
        return s

    def run(self, candidate, samples: list) -> list[list[np.ndarray]]:
        s = self._last.of(candidate, self.session)
        return [s.run(x) for x in samples]

    def size(self, candidate) -> int:
        """A saved package's bytes; a candidate program's: what saving it would write."""
        if isinstance(candidate, (str, Path)):
            return sum(f.stat().st_size for f in Path(candidate).rglob("*") if f.is_file())
        return compress.package_bytes(candidate, self.mlmodel)

    def _values(self, session, sample, names: set[str]) -> dict[str, np.ndarray]:
        seen: dict[str, np.ndarray] = {}

        def observe(name, _op_type, value):
            if name in names:
                seen[name] = np.array(value, np.float32)

        session.model.run(session.raw_feeds(sample), observe=observe)
        return seen

    def layer_errors(self, candidate: Path, samples: list) -> dict[str, float] | None:
        """Each layer's own error (dB, lower = more sensitive), from the emulator's observe hook: its
        output rounding in the candidate's own run, and the noise its output has beyond its inputs'
        (against the float model's same vars), whichever is worse."""
        self.layers()
        cand = self.session(candidate)
        dq, unit_of = _quantised_units(cand.model.program)
        plan = {la["name"]: la for la in self._layers if la["var"] in dq}
        if not plan:
            return None
        if self._float_session is None:
            self._float_session = self.session(self.package)
        ref_names = {n for la in plan.values() for n in (la["var"], *la["ins"])}
        art_names = {n for la in plan.values() for n in (la["var"], dq[la["var"]], *(dq.get(i, i) for i in la["ins"]))}
        acc: dict[str, list[float]] = {}
        for smp in samples:
            ref = self._values(self._float_session, smp, ref_names)
            art = {k: (a * unit_of[k] if unit_of.get(k, 1.0) != 1.0 else a) for k, a in self._values(cand, smp, art_names).items()}
            for name, la in plan.items():
                v, q = la["var"], art.get(dq[la["var"]])
                if q is None or v not in ref or v not in art:
                    continue
                axis = default_axis(ref[v].shape)
                own = own_rounding_db(art[v], q, axis)
                ins = [(ref[i], art[dq.get(i, i)]) for i in la["ins"] if i in ref and dq.get(i, i) in art]
                added = added_db(ref[v], q, axis, ins)
                # ties (two layers that both round a channel to nothing: 0 dB) go to the one with
                # more such channels: its median channel, at a weight too small to matter otherwise
                acc.setdefault(name, []).append(min(own, added) + 1e-3 * _median_channel_db(art[v], q, axis))
        return {k: float(min(v)) for k, v in acc.items()}


def _median_channel_db(ref: np.ndarray, q: np.ndarray, axis: int) -> float:
    """The median per-channel SQNR (dB, capped) of `q` against `ref` (channels with no signal left out)."""
    ref = np.asarray(ref, np.float64)
    q = np.asarray(q, np.float64).reshape(ref.shape)
    if ref.ndim == 0 or ref.size == 0:
        return CAP_DB
    axis %= ref.ndim
    r = np.moveaxis(ref, axis, 0).reshape(ref.shape[axis], -1)
    e = np.moveaxis(q - ref, axis, 0).reshape(r.shape)
    sig, noise = (r**2).mean(axis=1), (e**2).mean(axis=1)
    live = sig > 0
    if not live.any():
        return CAP_DB
    db = np.where(noise[live] > 0, 10 * np.log10(sig[live] / np.maximum(noise[live], 1e-300)), CAP_DB)
    return float(np.clip(np.median(db), -CAP_DB, CAP_DB))
