"""The ops that a static-integer .tflite (int8, int16x8) keeps in float32, and why.

Measured on RapidOCR's PP-OCRv6 recogniser (FIELD_NOTES): its LayerNorms, exported to ONNX
opset 11 as ReduceMean -> Sub -> Pow -> ReduceMean -> Add eps -> Sqrt -> Div, became int8 ops
whose variance (MEAN of the squares) had one scale for values from 1e-5 to 1e3. Small
variances rounded to zero, so the divisor sqrt(var + eps) equalled its zero point and LiteRT's
int8 DIV aborted the run ("div.cc: data[i] != zero_point was not true"); where it did not abort,
the output's cosine was 0.35..0.96. The same holds for RMSNorm and L2 normalisation and for the
RSQRT form that torch's layer_norm lowers to.

So two kinds of op stay float (ai-edge-quantizer puts DEQUANTIZE/QUANTIZE around them):
- a normalisation's statistic: from a DIV's divisor (or an RSQRT) back through SQRT/RSQRT,
  `+ eps`, reshapes and the reduction to the squaring op, together with the DIV, or the MUL
  that applies the RSQRT;
- any other DIV whose calibrated divisor comes within half a quantisation step of zero: its
  integer kernel would abort on such a divisor.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .flatbuf import Graph, OpInfo

_PASS = {"SQRT", "RSQRT", "RESHAPE", "SQUEEZE", "EXPAND_DIMS"}  # follow input 0
_WITH_CONSTANT = {"ADD", "MAXIMUM"}  # `+ eps`, `max(x, eps)`: follow the non-constant operand
_REDUCE = {"MEAN", "SUM"}
_SQUARE = {"SQUARED_DIFFERENCE", "SQUARE", "POW"}


@dataclass(frozen=True)
class FloatOps:
    ops: tuple[OpInfo, ...]
    normalisations: int  # statistic chains kept in float
    zero_divisors: int  # other DIVs kept in float because their divisor reaches zero

    def scopes(self, graph: Graph) -> list[str]:
        """ai-edge-quantizer recipe regexes that match exactly these ops (an op's scope is its
        output tensor names joined and ended by ';')."""
        out = []
        for op in self.ops:
            names = [graph.tensors[t].name for t in op.outputs if t >= 0 and graph.tensors[t].name]
            if names:
                out.append("^" + re.escape(";".join(names) + ";") + "$")
        return out

    def summary(self) -> str:
        if not self.ops:
            return ""
        parts = []
        if self.normalisations:
            parts.append(f"{self.normalisations} normalisation statistic(s)")
        if self.zero_divisors:
            parts.append(f"{self.zero_divisors} DIV(s) whose divisor reaches zero")
        kinds = sorted({o.name for o in self.ops})
        return f"{len(self.ops)} ops kept in float32 ({', '.join(parts)}: {', '.join(kinds)})"


def _statistic(graph: Graph, prod: dict[int, OpInfo], tensor: int) -> list[OpInfo] | None:
    """The ops that compute `tensor` from a reduction of squares, or None if it is not such a statistic."""
    chain: list[OpInfo] = []
    reduced = False
    t = tensor
    for _ in range(16):
        op = prod.get(t)
        if op is None:
            return None
        ins = [i for i in op.inputs if i >= 0]
        if op.name in _PASS and ins:
            chain.append(op)
            t = ins[0]
        elif op.name in _WITH_CONSTANT and len(ins) == 2 and sum(graph.tensors[i].constant for i in ins) == 1:
            chain.append(op)
            t = ins[0] if not graph.tensors[ins[0]].constant else ins[1]
        elif op.name in _REDUCE and ins:
            chain.append(op)
            reduced = True
            t = ins[0]
        elif reduced and (op.name in _SQUARE or (op.name == "MUL" and len(ins) == 2 and ins[0] == ins[1])):
            chain.append(op)
            return chain
        else:
            return None
    return None


def find(graph: Graph, ranges: dict[str, tuple[float, float]], bits: int = 8) -> FloatOps:
    """The ops of the float `graph` to keep in float32, given calibrated activation `ranges`."""
    prod = graph.producer()
    consumers: dict[int, list[OpInfo]] = {}
    for op in graph.ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    keep: dict[int, OpInfo] = {}
    norms = zeros = 0
    for op in graph.ops:
        if op.index in keep:
            continue
        if op.name == "DIV" and len(op.inputs) == 2:
            chain = _statistic(graph, prod, op.inputs[1])
            if chain is not None:
                norms += 1
                keep.update({o.index: o for o in (*chain, op)})
                continue
            divisor = graph.tensors[op.inputs[1]]
            if divisor.constant or divisor.name not in ranges:
                continue
            lo, hi = ranges[divisor.name]
            if _reaches_zero(lo, hi, bits):
                zeros += 1
                keep[op.index] = op
        elif op.name == "RSQRT" and op.inputs:
            chain = _statistic(graph, prod, op.outputs[0]) if op.outputs else None
            if chain is not None:
                norms += 1
                appliers = [c for c in consumers.get(op.outputs[0], []) if c.name == "MUL"]
                keep.update({o.index: o for o in (*chain, *appliers)})
    ops = tuple(keep[i] for i in sorted(keep))
    return FloatOps(ops, norms, zeros)


def _reaches_zero(lo: float, hi: float, bits: int) -> bool:
    """Can a divisor calibrated to [lo, hi] equal its integer zero point, i.e. come within half a
    quantisation step of zero (or cross it)?"""
    if lo <= 0.0 <= hi:
        return True
    near = min(abs(lo), abs(hi))
    span = max(hi, 0.0) - min(lo, 0.0)
    step = span / 255.0 if bits == 8 else max(abs(lo), abs(hi)) / 32767.0  # int16 activations are symmetric
    return near < step / 2
