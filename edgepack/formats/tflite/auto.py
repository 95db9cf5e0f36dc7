"""int8_auto for .tflite: the search's Backend over ai-edge-quantizer.

Layers: the float .tflite's float inputs and the ops ai-edge-quantizer quantises (its op table),
in graph order, each named by its output tensor names (';'-joined): the op's scope, which the
quantiser's recipe regexes match, and unique in a .tflite (the quantiser refuses duplicate names).

A layer's precision is that of the activation it produces, so the op AND every op that reads the
tensor get the layer's config; an op read by several layers takes the best of their precisions.
With the op alone, the quantiser requantises its output to int8 for its int8 consumers and the
fallback buys nothing (measured on tests' outlier_net: conv1 alone at 16x8, cosine 0.9817 as in
full int8; conv1 with its reader conv2 at 16x8, 0.9931).

Options, next better first: ("int16", "float").
- int16: a per-op 16x8 config (int16 activations, int8 weights) mixed into the 8-bit model works:
  ai-edge-quantizer 0.10 inserts a QUANTIZE (requantize) at each a8/a16 boundary, and ai_edge_litert
  2.3 runs the model with XNNPACK on (XNNPACK takes the 8-bit ops; the 16x8 ops and requantizes stay
  on LiteRT's built-in kernels: 5 of 9 nodes delegated on outlier_net).
- float: float compute, the weights kept int8 behind a DEQUANTIZE (weight-only) where the op has
  weights, so the artifact stays small; the search's last resort (base "float_weights": "fp16";
  the .ort's is fp32) gives the fallen-back ops fp16 weights behind a DEQUANTIZE. An activation
  with outlier channels is read by weights with the inverse outliers (the tiny weights that tame
  it), which int8 crushes: on outlier_net, conv1 and its reader conv2 in float with int8 weights
  reached cosine 0.9922 and top-1 agreement 0.10, with fp32 weights 0.99997 and 0.975 (40
  samples); a 16x8 reader (int8 weights) is no better, so int16 cannot rescue such a layer. fp16
  rather than fp32 weights: outlier_net(32) 0.43x of the fp32 .tflite instead of 0.67x, cosine
  0.9999 either way.
The quantiser skips a config that an op does not support; variants.layer_config checks each, and
int16 falls to float compute, weight-only to no quantisation.

base(): {"method", "percentile", "per_channel", "range_margin", "float_weights"}. Ranges are edgepack's own
(calibrate.py) over the candidate's calibration samples; range_margin m widens each [lo, hi] to
[lo - m(hi-lo), hi + m(hi-lo)]. Fixes: per-channel weights (if off), a percentile range (if
min/max), a range margin of 0.1. The ops float_ops.py keeps in float32 stay float in every candidate.

Candidates run in ai_edge_litert with one thread and XNNPACK, through the runtime plug-in's own
session class. The per-layer error map is one run of the candidate on LiteRT's built-in kernels
with every tensor kept (a delegated graph hides its inner tensors), against the float .tflite's
same-named tensors.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...quantize_search.search import LastSession, standard_fixes, widened
from ...quantize_search.sensitivity import CAP_DB, added_db, channel_sqnr_db, default_axis
from ...runtimes.litert import LiteRtSession, new_interpreter
from . import build_steps, variants
from .flatbuf import read_graph, schema

# op-level precisions (variants.layer_config), worst first: "float_w8" float compute with int8
# weights (weight-only), "float" not quantised
RANK = {"int8": 0, "int16": 1, "float_w8": 2, "float_w16": 3, "float": 4}
FLOAT_OP = {"int8": "float_w8", "fp16": "float_w16", "float": "float"}  # base "float_weights" -> a float layer's op precision
# ops that only move or select values: between float layers, an int8 one adds a rounding and saves nothing
MOVERS = {
    "PAD", "PADV2", "MIRROR_PAD", "TRANSPOSE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "SLICE",
    "STRIDED_SLICE", "SPLIT", "SPLIT_V", "GATHER", "MAX_POOL_2D", "RESIZE_NEAREST_NEIGHBOR", "DEPTH_TO_SPACE",
    "SPACE_TO_DEPTH", "PACK", "UNPACK", "TILE", "BROADCAST_TO",
}


def quantiser_ops() -> dict[str, str]:
    """{builtin op name: ai-edge-quantizer's op key} for the ops the quantiser quantises."""
    from ai_edge_quantizer.utils.tfl_flatbuffer_utils import TFL_OP_CODE_TO_NAME

    codes = {k: v for k, v in vars(schema().BuiltinOperator).items() if not k.startswith("_")}
    return {name: TFL_OP_CODE_TO_NAME[code].value for name, code in codes.items() if code in TFL_OP_CODE_TO_NAME}


def scope_of(graph, op) -> str:
    """The quantiser's scope of an op: its output tensor names, ';'-joined and ended."""
    names = [graph.tensors[t].name for t in op.outputs if t >= 0 and graph.tensors[t].name]
    return ";".join(names) + ";" if names else ""


class TfliteBackend:
    fallback_options = ("int16", "float")

    def __init__(self, job, fm, layout: str):
        self.job, self.fm, self.layout = job, fm, layout
        self.graph = read_graph(fm.content)
        self.meta = {"inputs": fm.inputs, "outputs": fm.outputs}
        self._layers: list[dict[str, Any]] | None = None
        self._keys: dict[int, str] = {}  # op index -> quantiser op key, for quantisable ops
        self._readers: dict[int, list[int]] = {}  # tensor index -> quantisable ops that read it
        self._last = LastSession()  # the search runs a candidate in two goes
        self._quantizer: dict = {}  # variants.make's one quantiser for every candidate

    # -- the model -------------------------------------------------------------------------
    def layers(self) -> list[dict[str, Any]]:
        if self._layers is None:
            g, known = self.graph, quantiser_ops()
            for op in g.ops:
                if op.name in known and scope_of(g, op):
                    self._keys[op.index] = known[op.name]
                    for t in op.inputs:
                        if t >= 0 and not g.tensors[t].constant:
                            self._readers.setdefault(t, []).append(op.index)
            out = []
            for i in g.inputs:  # an input's own rounding (its readers quantise it) is a layer too
                t = g.tensors[i]
                if t.dtype == "float32" and self._readers.get(i) and t.name:
                    out.append({"name": t.name, "op_type": "input", "op": None, "tensors": [i]})
            seen: dict[str, int] = {}
            for op in g.ops:
                outs = [t for t in op.outputs if t >= 0]
                if op.index not in self._keys or not outs or any(g.tensors[t].dtype != "float32" for t in outs):
                    continue
                # litert-torch names tensors after edgepack's wrapper module, which says nothing: the
                # label is the op type, its count and its output shape ("conv_2d_0 1x16x16x8")
                k = seen[op.name] = seen.get(op.name, -1) + 1
                label = f"{op.name.lower()}_{k} {'x'.join(str(d) for d in g.tensors[outs[0]].shape)}"
                out.append({"name": scope_of(g, op)[:-1], "op_type": op.name, "label": label, "op": op.index, "tensors": outs})
            self._layers = out
        return [{"name": la["name"], "op_type": la["op_type"], **({"label": la["label"]} if "label" in la else {})} for la in self._layers]

    def movers(self) -> dict[str, list[str]]:
        """{layer: [the layers whose tensors it reads]} for the layers of MOVERS ops whose every
        non-constant input some layer produces."""
        self.layers()
        g = self.graph
        made_by = {t: la["name"] for la in self._layers for t in la["tensors"]}
        out = {}
        for la in self._layers:
            if la["op"] is None or la["op_type"] not in MOVERS:
                continue
            ins = [t for t in g.ops[la["op"]].inputs if t >= 0 and not g.tensors[t].constant]
            if ins and all(t in made_by for t in ins):
                out[la["name"]] = list(dict.fromkeys(made_by[t] for t in ins))
        return out

    def base(self) -> dict[str, Any]:
        q = self.job.quantization
        return {"method": q.method, "percentile": float(q.percentile), "per_channel": bool(q.per_channel), "range_margin": 0.0, "float_weights": "int8"}

    def fixes(self, base: dict[str, Any], sensitive: Callable[[], tuple[str, ...]] = tuple) -> list[tuple[str, dict[str, Any]]]:
        return standard_fixes(base)

    def last_resort(self, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """When no count of float layers meets the budget with their weights int8: fp16 weights."""
        if base.get("float_weights", "int8") != "int8":
            return []
        return [("float layers keep fp16 weights", {**base, "float_weights": "fp16"})]

    # -- candidates ------------------------------------------------------------------------
    def op_precisions(self, precisions: dict[str, str], float_weights: str = "int8") -> dict[int, str]:
        """The precision of each op that is not int8: its own layer's, or a better one of a layer it
        reads; a float layer's ops keep int8 weights unless `float_weights` is "float"."""
        self.layers()
        eff: dict[int, str] = {}
        for la in self._layers:
            p = precisions.get(la["name"], "int8")
            if p == "int8":
                continue
            q = FLOAT_OP[float_weights] if p == "float" else p
            ops = ([la["op"]] if la["op"] is not None else []) + [r for t in la["tensors"] for r in self._readers.get(t, [])]
            for o in ops:
                if RANK[q] > RANK[eff.get(o, "int8")]:
                    eff[o] = q
        return eff

    def qsvs(self, base: dict[str, Any], eff: dict[int, str], samples: list) -> dict[str, dict[str, np.ndarray]]:
        """The quantiser's activation ranges: 8-bit ones, 16-bit ones for the tensors that int16
        ops produce (and int16-read inputs), each widened by the base's range_margin."""
        g = self.graph
        stats = build_steps.cached_calibration(self.job, self.fm, self.layout, base["method"], samples)
        out = stats.qsvs(base["method"], float(base["percentile"]), 8)
        sixteen = {t for o, p in eff.items() if p == "int16" for t in g.ops[o].outputs if t >= 0}
        sixteen |= {t for o, p in eff.items() if p == "int16" for t in g.ops[o].inputs if t in g.inputs}
        if sixteen:
            q16 = stats.qsvs(base["method"], float(base["percentile"]), 16)
            out.update({g.tensors[t].name: q16[g.tensors[t].name] for t in sixteen if g.tensors[t].name in q16})
        m = float(base.get("range_margin", 0.0))
        if m:
            out = {n: dict(zip(("min", "max"), widened(r["min"], r["max"], m))) for n, r in out.items()}
        return out

    def layer_configs(self, eff: dict[int, str]) -> tuple[tuple[str, str, str], ...]:
        g = self.graph
        return tuple((scope_of(g, g.ops[o]), self._keys[o], eff[o]) for o in sorted(eff))

    def build(self, base: dict[str, Any], precisions: dict[str, str], samples: list) -> bytes:
        v = variants.VARIANTS["int8_auto"]
        eff = self.op_precisions(precisions, base.get("float_weights", "int8"))
        qsvs = self.qsvs(base, eff, samples)
        kept = build_steps.kept_float(self.fm, v, qsvs, self.graph)
        scopes = tuple(kept.scopes(self.graph)) if kept is not None else ()
        return variants.make(
            self.fm.content, v, per_channel=bool(base["per_channel"]), qsvs=qsvs, where=self.job.source.spec,
            float_scopes=scopes, layer_configs=self.layer_configs(eff), reuse=self._quantizer,
        )

    def session(self, candidate: bytes, *, xnnpack: bool = True, keep: bool = False) -> LiteRtSession:
        interp = new_interpreter(candidate, threads=1, xnnpack=xnnpack, preserve_all_tensors=keep)
        return LiteRtSession(interp, read_graph(candidate, io_only=True), self.meta, self.job.source.inputs, self.job.source.outputs)

    def run(self, candidate: bytes, samples: list) -> list[list[np.ndarray]]:
        s = self._last.of(candidate, self.session)
        return [s.run(x) for x in samples]

    def size(self, candidate: bytes) -> int:
        return len(candidate)

    # -- sensitivity -----------------------------------------------------------------------
    def layer_errors(self, candidate: bytes, samples: list) -> dict[str, float] | None:
        """Each layer's own error, as the SQNR (dB) of the noise it adds (worst channel, NHWC: the
        last axis): its output's own rounding on its grid (the float model's tensor quantised with
        the candidate's scale), and, while its inputs are still sound, all it adds (weights too):
        its output's noise against the float model's same tensor less its inputs' worst."""
        self.layers()
        fg, cg = self.graph, read_graph(candidate)
        by_name = {t.name: t.index for t in cg.tensors if t.name}
        cprod = cg.producer()
        quantize_of = {op.inputs[0]: op.outputs[0] for op in cg.ops if op.name == "QUANTIZE" and op.inputs and op.outputs}
        plan = {}
        for la in self._layers:
            out_f = la["tensors"][0]
            out_c = by_name.get(fg.tensors[out_f].name)
            if out_c is None:
                continue
            if la["op"] is None:  # an input: its quantised copy
                plan[la["name"]] = (out_f, quantize_of.get(out_c, out_c), [])
                continue
            cop = cprod.get(out_c)
            fop = fg.ops[la["op"]]
            if cop is None or len(cop.inputs) != len(fop.inputs):
                continue
            ins = [(fi, ci) for fi, ci in zip(fop.inputs, cop.inputs) if fi >= 0 and ci >= 0 and not fg.tensors[fi].constant]
            plan[la["name"]] = (out_f, out_c, ins)
        if not plan:
            return None
        fs = self.session(self.fm.content, xnnpack=False, keep=True)
        cs = self.session(candidate, xnnpack=False, keep=True)

        def value(s, g, t):
            y = np.asarray(s.interp.get_tensor(t))
            info = g.tensors[t]
            if info.scale and len(info.scale) == 1:
                return (y.astype(np.float64) - info.zero_point[0]) * info.scale[0]
            return y.astype(np.float64)

        acc: dict[str, list[float]] = {}
        for smp in samples:
            fs.run(smp)
            cs.run(smp)
            for name, (tf, tc, ins) in plan.items():
                ref, q = value(fs, fg, tf), value(cs, cg, tc)
                if ref.shape != q.shape:
                    continue
                axis = default_axis(ref.shape, "nhwc")
                own = channel_sqnr_db(ref, _on_grid(ref, cg.tensors[tc]), axis)
                pairs = [(value(fs, fg, fi), value(cs, cg, ci)) for fi, ci in ins]
                added = added_db(ref, q, axis, pairs, "nhwc") if ins else CAP_DB  # an input adds only its own rounding
                acc.setdefault(name, []).append(min(own, added))
        return {k: float(min(v)) for k, v in acc.items()} or None


def _on_grid(ref: np.ndarray, t) -> np.ndarray:
    """`ref` rounded to tensor `t`'s quantisation grid (itself when `t` is float)."""
    if not t.scale or len(t.scale) != 1 or t.dtype not in ("int8", "uint8", "int16"):
        return ref
    info = np.iinfo(t.dtype)
    zp = t.zero_point[0] if t.zero_point else 0
    q = np.clip(np.round(ref / t.scale[0]) + zp, info.min, info.max)
    return (q - zp) * t.scale[0]
