"""Mapping artifact tensors to source layers, the error of each pair, and the first divergent layer."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .layers import Layer, op_class

CAP_DB = 200.0  # bit-exact: the same cap as parity's SQNR
DROP_DB = 10.0  # a layer diverges when its SQNR falls this much below the previous mapped layer's ...
DEFAULT_BAND_DB = 20.0  # ... and below the band the final output must meet (this, when no tolerance says)
_NCHW = (0, 3, 1, 2)  # an NHWC artifact tensor, back in the source's NCHW order


@dataclass
class Pair:
    layer: Layer
    tensor: str  # the artifact's tensor name
    how: str  # "name" | "shape+order"
    perm: tuple[int, ...] | None = None  # axes that put the artifact tensor in the source's layout
    reshape: bool = False


def _fit(src: tuple[int, ...], art: tuple[int, ...], layout: str | None) -> tuple[bool, tuple[int, ...] | None, bool]:
    """(compatible, perm, reshape): how an artifact tensor of shape `art` can stand for `src`."""
    direct = tuple(art) == tuple(src)
    transposed = len(art) == 4 and tuple(art[i] for i in _NCHW) == tuple(src)
    if transposed and (layout == "nhwc" or not direct):
        return True, _NCHW, False
    if direct:
        return True, None, False
    squeezed = tuple(d for d in art if d != 1) == tuple(d for d in src if d != 1)
    return squeezed, None, squeezed


def _candidates(hint: str | None) -> list[str]:
    if not hint:
        return []
    out = [hint]
    stripped = re.sub(r"_\d+$", "", hint)
    if stripped != hint:
        out.append(stripped)
    return out


def _compatible(layer: Layer, art_op: str) -> bool:
    cls = op_class(art_op)
    if layer.is_input:
        return cls == "plumbing"
    return cls == layer.op_class or (cls in ("conv", "linear") and layer.op_class == cls)


def map_tensors(layers: list[Layer], prov: dict[str, dict], shapes: dict[str, tuple[int, ...]], aliases: dict[str, str]) -> list[Pair]:
    """Pairs (source layer, artifact tensor) in graph order.

    1. By name: an artifact tensor whose kept name (provenance source_name, or it without a `_N`
       suffix) is a layer's output tensor, or a source output's name. A layer takes the LAST such
       tensor in artifact order: after Q/DQ, the value the next layer reads.
    2. By shape and order, between the name-matched pairs: the longest in-order alignment of the
       remaining layers and tensors whose op family (conv, linear, pooling, ...) and shape (or its
       NHWC transpose) agree; layout ops (transpose, pad, quantize) stand only for inputs.
    """
    by_key = {la.key: la for la in layers}
    order = list(prov)
    pos = {name: i for i, name in enumerate(order)}
    named: dict[int, Pair] = {}
    used: set[str] = set()
    internal = {m for la in layers for m in la.members[:-1]}
    for name in order:
        if name not in shapes:
            continue
        p = prov[name]
        for cand in _candidates(p.get("source_name")):
            cand = aliases.get(cand, cand)
            if cand in by_key:
                la = by_key[cand]
                ok, perm, reshape = _fit(la.shape, shapes[name], p.get("layout"))
                if ok:
                    named[la.index] = Pair(la, name, "name", perm, reshape)
                break
            if cand in internal:
                used.add(name)  # a tensor inside a fused layer: not compared on its own
                break
    used |= {pr.tensor for pr in named.values()}
    anchors = sorted(named.values(), key=lambda pr: pr.layer.index)
    pairs = list(anchors)
    bounds = [(-1, -1), *[(pr.layer.index, pos[pr.tensor]) for pr in anchors], (len(layers), len(order))]
    for (l0, t0), (l1, t1) in zip(bounds, bounds[1:]):
        if t1 <= t0:
            continue
        segment_layers = [la for la in layers[l0 + 1 : l1] if la.index not in named]
        segment_tensors = [n for n in order[t0 + 1 : t1] if n not in used and n in shapes]
        pairs += _align(segment_layers, segment_tensors, prov, shapes)
    return sorted(pairs, key=lambda pr: pr.layer.index)


def _align(layers: list[Layer], tensors: list[str], prov: dict[str, dict], shapes) -> list[Pair]:
    if not layers or not tensors:
        return []
    n, m = len(layers), len(tensors)
    fit = [[None] * m for _ in range(n)]
    for i, la in enumerate(layers):
        for j, t in enumerate(tensors):
            if _compatible(la, prov[t]["op_type"]):
                ok, perm, reshape = _fit(la.shape, shapes[t], prov[t].get("layout"))
                if ok:
                    fit[i][j] = (perm, reshape)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            take = 1 + best[i + 1][j + 1] if fit[i][j] is not None else -1
            best[i][j] = max(take, best[i + 1][j], best[i][j + 1])
    out, i, j = [], 0, 0
    while i < n and j < m:
        if fit[i][j] is not None and best[i][j] == 1 + best[i + 1][j + 1]:
            # a layer's last fitting tensor before the next layer's: what the next layer reads
            while j + 1 < m and fit[i][j + 1] is not None and best[i][j + 1] == best[i][j]:
                j += 1
            perm, reshape = fit[i][j]
            out.append(Pair(layers[i], tensors[j], "shape+order", perm, reshape))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return out


@dataclass
class Accumulator:
    """Sums over the samples of one pair: the whole tensor's and each channel's signal and noise."""

    signal: float = 0.0
    noise: float = 0.0
    dot: float = 0.0
    ref_sq: float = 0.0
    art_sq: float = 0.0
    nonfinite: int = 0
    ch_signal: np.ndarray | None = None
    ch_noise: np.ndarray | None = None
    values: int = 0
    extra: dict = field(default_factory=dict)

    def add(self, ref: np.ndarray, art: np.ndarray) -> None:
        ref = np.asarray(ref, np.float64)
        art = np.asarray(art, np.float64).reshape(ref.shape)
        bad = ~np.isfinite(art)
        self.nonfinite += int(bad.sum())
        art = np.where(bad, 0.0, art)
        err = ref - art
        self.signal += float((ref * ref).sum())
        self.noise += float((err * err).sum())
        self.dot += float((ref * art).sum())
        self.ref_sq += float((ref * ref).sum())
        self.art_sq += float((art * art).sum())
        self.values += ref.size
        if ref.ndim >= 3:
            axes = tuple(a for a in range(ref.ndim) if a != 1)
            s, e = (ref * ref).sum(axis=axes), (err * err).sum(axis=axes)
            self.ch_signal = s if self.ch_signal is None else self.ch_signal + s
            self.ch_noise = e if self.ch_noise is None else self.ch_noise + e

    def result(self) -> dict:
        tensor = _sqnr(self.signal, self.noise)
        channel = None
        if self.ch_signal is not None:
            live = self.ch_signal > 0
            if live.any():
                channel = float(np.median([_sqnr(s, e) for s, e in zip(self.ch_signal[live], self.ch_noise[live])]))
        worst = [v for v in (tensor, channel) if v is not None]
        cos = None
        if self.ref_sq > 0 and self.art_sq > 0:
            cos = float(np.clip(self.dot / math.sqrt(self.ref_sq * self.art_sq), -1.0, 1.0))
        elif self.ref_sq == 0 and self.art_sq == 0:
            cos = 1.0
        return {
            "sqnr_db": None if self.nonfinite else (min(worst) if worst else None),
            "tensor_sqnr_db": tensor,
            "channel_sqnr_db": channel,
            "cosine": None if self.nonfinite else cos,
            "nonfinite_values": self.nonfinite,
        }


def _sqnr(signal: float, noise: float) -> float | None:
    if noise <= 0:
        return CAP_DB
    if signal <= 0:
        return None
    return float(min(CAP_DB, 10.0 * math.log10(signal / noise)))


def band_db(tolerance: dict) -> float:
    """The SQNR the final output must reach, from the precision's tolerances: min_sqnr_db, or the
    SQNR a min_cosine c implies for an error orthogonal to the signal, c^2 / (1 - c^2); the stricter."""
    bands = []
    if tolerance.get("min_sqnr_db") is not None:
        bands.append(float(tolerance["min_sqnr_db"]))
    c = tolerance.get("min_cosine")
    if c is not None and 0 < c < 1:
        bands.append(10.0 * math.log10(c * c / (1.0 - c * c)))
    return max(bands) if bands else DEFAULT_BAND_DB


def first_divergent(rows: list[dict], band: float, drop: float = DROP_DB) -> dict | None:
    """The first layer where the error jumps, in graph order.

    A layer's SQNR is the lower of its whole tensor's and its median channel's (per-channel SQNR
    over axis 1 of the source's layout, for tensors of rank >= 3): a per-tensor int8 scale that
    one outlier channel stretches keeps the whole tensor's SQNR high (the outlier dominates it)
    while it rounds every other channel to zero, which the median channel shows.
    Rule: the first mapped layer whose SQNR is below `band` (what the final output must reach) AND
    more than `drop` dB below the previous mapped layer's (CAP_DB before the first). Requiring both
    keeps a layer that merely continues a slow decline, or dips but stays inside the band, from
    being named. When no layer jumps but some fall below the band (error accumulating slowly),
    the first of those is named, with `"rule": "below band"`. A non-finite value is a divergence."""
    prev = CAP_DB
    fallback = None
    for row in rows:
        s = row["sqnr_db"]
        if row.get("nonfinite_values"):
            return _divergent(row, prev, "non-finite values")
        if s is None:
            continue
        if s < band and prev - s > drop:
            return _divergent(row, prev, f"SQNR fell {prev - s:.1f} dB (> {drop:g}) to below the band {band:.1f} dB")
        if s < band and fallback is None:
            fallback = _divergent(row, prev, f"first layer below the band {band:.1f} dB (no jump > {drop:g} dB)")
        prev = s
    return fallback


def _divergent(row: dict, before: float, rule: str) -> dict:
    keys = ("index", "source_name", "op_type", "artifact_tensor", "artifact_op", "scale", "range")
    return {**{k: row.get(k) for k in keys}, "sqnr_before": before, "sqnr_after": row["sqnr_db"], "rule": rule}
