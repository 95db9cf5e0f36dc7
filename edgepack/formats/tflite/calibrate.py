"""Activation ranges from edgepack's calibration samples, computed here and handed to the quantiser.

ai-edge-quantizer's own calibrator keeps a moving average of per-sample min/max, which clips
ranges (FIELD_NOTES: 6 points of top-1 on a small MLP). edgepack runs the float .tflite on the
CalibrationSet itself (LiteRT interpreter, every intermediate tensor kept) and computes:

- minmax: the true minimum and maximum over all samples;
- percentile: the `percentile` and `100 - percentile` quantiles (histogram of 2048 bins);
- entropy: the KL-divergence-optimal symmetric threshold (TensorRT's method, 128 levels) on a
  histogram of |x|, intersected with the true range. For 16-bit activations entropy falls back
  to min/max: 65536 levels make clipping cost more than resolution gains.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ...types import Sample
from .flatbuf import Graph

BINS = 2048


@dataclass
class _Acc:
    ndim: int
    lo: float = np.inf
    hi: float = -np.inf
    hist: np.ndarray | None = None
    edges: np.ndarray | None = None


@dataclass
class ActivationStats:
    tensors: dict[str, _Acc] = field(default_factory=dict)
    samples: int = 0
    method: str = "minmax"

    def ranges(self, method: str, percentile: float, bits: int) -> dict[str, tuple[float, float]]:
        out = {}
        for name, a in self.tensors.items():
            lo, hi = a.lo, a.hi
            if method == "percentile" and a.hist is not None:
                lo, hi = _quantiles(a, percentile)
            elif method == "entropy" and a.hist is not None and bits == 8:
                t = _entropy_threshold(a.hist, a.edges)
                lo, hi = max(a.lo, -t), min(a.hi, t)
            out[name] = (float(lo), float(hi))
        return out

    def qsvs(self, method: str, percentile: float, bits: int) -> dict[str, dict[str, np.ndarray]]:
        """ai-edge-quantizer's calibration result: {tensor name: {"min", "max"}}, arrays of shape (1,)*rank."""
        res = {}
        for name, (lo, hi) in self.ranges(method, percentile, bits).items():
            shape = (1,) * self.tensors[name].ndim
            res[name] = {"min": np.full(shape, lo, np.float32), "max": np.full(shape, hi, np.float32)}
        return res


def activation_tensors(graph: Graph) -> list[int]:
    """Float tensors that carry activations: graph inputs and op outputs that are not constants."""
    produced = {t for o in graph.ops for t in o.outputs} | set(graph.inputs)
    return [t.index for t in graph.tensors if t.index in produced and not t.constant and t.dtype == "float32"]


def collect(
    session,
    graph: Graph,
    samples: list[Sample],
    method: str,
    track: Callable[[Iterable, int, str], Iterable] | None = None,
) -> ActivationStats:
    """Run `samples` through `session` (a LiteRtSession over an interpreter that preserves all
    tensors, no delegate) and gather each activation tensor's statistics."""
    interp = session.interp
    idx = activation_tensors(graph)
    stats = ActivationStats(method=method)
    accs = {}
    for i in idx:
        t = graph.tensors[i]
        accs[i] = stats.tensors.setdefault(t.name, _Acc(ndim=len(t.shape)))
    track = track or (lambda items, total, label: items)

    def values(sample):
        session.run(sample)
        for i in idx:
            v = interp.get_tensor(i)
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                # e.g. the -inf that tf2onnx pads a "same" max-pool with: a range must be finite, or
                # its scale is inf and XNNPACK refuses the model ("unsupported scale value (inf)")
                v = v[np.isfinite(v)]
            yield accs[i], v

    for s in track(samples, len(samples), f"calibrating ({method}): true ranges"):
        for a, v in values(s):
            if v.size:
                a.lo = min(a.lo, float(v.min()))
                a.hi = max(a.hi, float(v.max()))
    stats.samples = len(samples)
    if method in ("percentile", "entropy"):
        for a in stats.tensors.values():
            if not np.isfinite(a.lo):
                a.lo = a.hi = 0.0
            top = max(abs(a.lo), abs(a.hi), 1e-12)
            a.edges = np.linspace(a.lo, a.hi if a.hi > a.lo else a.lo + 1e-12, BINS + 1) if method == "percentile" else np.linspace(0.0, top, BINS + 1)
            a.hist = np.zeros(BINS, np.int64)
        for s in track(samples, len(samples), f"calibrating ({method}): histograms"):
            for a, v in values(s):
                x = v.ravel() if method == "percentile" else np.abs(v.ravel())
                a.hist += np.histogram(x, bins=a.edges)[0]
    return stats


def _quantiles(a: _Acc, percentile: float) -> tuple[float, float]:
    cdf = np.cumsum(a.hist, dtype=np.float64)
    if cdf[-1] <= 0:
        return a.lo, a.hi
    cdf /= cdf[-1]
    low = float(a.edges[int(np.searchsorted(cdf, 1.0 - percentile / 100.0, side="left"))])
    high = float(a.edges[min(int(np.searchsorted(cdf, percentile / 100.0, side="left")) + 1, BINS)])
    return max(a.lo, low), min(a.hi, high)


def _entropy_threshold(hist: np.ndarray, edges: np.ndarray, levels: int = 128, stride: int = 16) -> float:
    """The |x| threshold whose clipped-and-quantised distribution is closest (KL) to the original."""
    hist = hist.astype(np.float64)
    total = hist.sum()
    if total <= 0:
        return float(edges[-1])
    best_kl, best_i = np.inf, len(hist)
    for i in list(range(levels, len(hist), stride)) + [len(hist)]:
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()  # clipped mass lands in the last kept bin
        group = (np.arange(i) * levels) // i
        kept = hist[:i]
        nz = kept > 0
        sums = np.bincount(group, weights=kept, minlength=levels)
        counts = np.bincount(group, weights=nz.astype(np.float64), minlength=levels)
        q = np.where(nz, sums[group] / np.maximum(counts[group], 1), 0.0)
        pm = p > 0
        if q.sum() <= 0:
            continue
        pp, qq = p / p.sum(), q / q.sum()
        kl = float(np.sum(pp[pm] * np.log(pp[pm] / np.maximum(qq[pm], 1e-12))))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(edges[best_i])
