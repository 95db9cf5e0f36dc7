"""Per-layer sensitivity from one quantised run: the noise each layer's own quantisation adds.

For every quantised activation, its float value (computed from already-quantised inputs) and its
quantised-dequantised value come from the same run, so the figure is the error that layer alone
adds, whatever came before. It is measured per channel (one outlier channel that takes the whole
int8 range leaves the other channels at 0 dB while the tensor's overall SQNR still looks fine; the
same goes for a concat of boxes in 0..320 and scores in 0..1), and the layer's figure is its worst
channel among those that carry signal (a tensor with fewer than MIN_CHANNEL_VALUES values per
channel is judged whole) (a channel more than 80 dB below the
largest is dead, not judged).
"""
from __future__ import annotations

import math

import numpy as np

CAP_DB = 120.0
# Past a layer that has wrecked the signal, its successors' "added noise" means nothing: below this
# input SQNR only a layer's own output rounding is judged.
SOUND_INPUT_DB = 20.0
SIGNAL_SHARE = 1e-4  # channels whose rms is below this share of the largest channel's (dead ones) are not judged
# A channel with fewer values than this (a pooled (1, C) vector, a (1, C, 1, 1) squeeze-excite
# gate) is no distribution: one small value rounded to 0 reads as 0 dB. Such a tensor is judged
# whole.
MIN_CHANNEL_VALUES = 16


def channel_sqnr_db(ref: np.ndarray, quantised: np.ndarray, axis: int) -> float:
    """The worst per-channel SQNR (dB) of `quantised` against `ref` along `axis`."""
    # float32 values stay float32 (an activation map of millions of values: no float64 copies);
    # the sums run in float64
    ref, quantised = np.asarray(ref), np.asarray(quantised)
    dtype = np.float32 if ref.dtype == np.float32 and quantised.dtype == np.float32 else np.float64
    ref = ref.astype(dtype, copy=False)
    q = quantised.astype(dtype, copy=False).reshape(ref.shape)
    if ref.ndim == 0 or ref.size == 0:
        return CAP_DB
    axis = axis % ref.ndim
    r = np.moveaxis(ref, axis, 0).reshape(ref.shape[axis], -1)
    e = np.moveaxis(q - ref, axis, 0).reshape(ref.shape[axis], -1)
    if r.shape[1] < MIN_CHANNEL_VALUES:
        r, e = r.reshape(1, -1), e.reshape(1, -1)
    sig = np.einsum("ij,ij->i", r, r, dtype=np.float64) / r.shape[1]
    noise = np.einsum("ij,ij->i", e, e, dtype=np.float64) / e.shape[1]
    rms = np.sqrt(sig)
    top = float(rms.max())
    judged = (rms > 0) & (rms >= SIGNAL_SHARE * top) if top > 0 else np.zeros_like(rms, bool)
    if not judged.any():
        return CAP_DB
    worst = CAP_DB
    for s, n in zip(sig[judged], noise[judged]):
        db = CAP_DB if n == 0 else 10 * math.log10(s / n) if s > 0 else -CAP_DB
        worst = min(worst, db)
    return float(max(-CAP_DB, min(CAP_DB, worst)))


def default_axis(shape: tuple[int, ...], layout: str = "nchw") -> int:
    """The channel axis of an activation: 1 for 4-D NCHW maps, the last axis otherwise."""
    return 1 if len(shape) == 4 and layout == "nchw" else -1


def added_noise_db(out_db: float, in_db: float) -> float:
    """The SQNR of the noise a layer adds: its output's noise-to-signal less its input's (both
    worst-channel SQNRs in dB). Lower = more sensitive; CAP_DB when it adds none."""
    added = 10 ** (-out_db / 10) - 10 ** (-min(in_db, CAP_DB) / 10)
    return CAP_DB if added <= 10 ** (-CAP_DB / 10) else float(max(-CAP_DB, min(CAP_DB, -10 * math.log10(added))))


def own_rounding_db(pre: np.ndarray, quantised: np.ndarray, axis: int) -> float:
    """A layer's own output rounding, from one run: its float value `pre` (computed from inputs that
    are already quantised, so blind to what came before) against its quantised-dequantised value,
    within the range that quantisation kept."""
    return channel_sqnr_db(np.clip(pre, quantised.min(), quantised.max()), quantised, axis)


def added_db(ref: np.ndarray, quantised: np.ndarray, axis: int, inputs, layout: str = "nchw") -> float:
    """All a layer adds (weight rounding too), while its inputs are still sound: the noise of its
    quantised output against the float model's `ref` less its inputs' worst, `inputs` being
    (float model's, candidate's) pairs; CAP_DB once an input is below SOUND_INPUT_DB."""
    in_db = min((channel_sqnr_db(r, x, default_axis(r.shape, layout)) for r, x in inputs if r.shape == x.shape), default=CAP_DB)
    return added_noise_db(channel_sqnr_db(ref, quantised, axis), in_db) if in_db >= SOUND_INPUT_DB else CAP_DB
