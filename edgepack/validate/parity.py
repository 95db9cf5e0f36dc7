"""Parity: compare an artifact's outputs with the source model's, output by output.

Every statistic is computed over all validation samples, every tolerance is checked, and all
failures are collected before the verdict (nothing stops at the first miss).
"""
from __future__ import annotations

import math

import numpy as np

from ..types import ErrorStats, ParityReport

SQNR_CAP_DB = 200.0  # reported when the outputs are bit-exact


def is_class_scores(ref: np.ndarray) -> bool:
    """(batch, classes) with more than one class."""
    return ref.ndim == 2 and ref.shape[1] > 1


def error_stats(name: str, refs: list[np.ndarray], outs: list[np.ndarray]) -> ErrorStats:
    ref = np.concatenate([r.astype(np.float64).reshape(1, -1) for r in refs])
    out = np.concatenate([o.astype(np.float64).reshape(1, -1) for o in outs])
    if ref.shape != out.shape:
        raise ValueError(f"output '{name}': artifact gives {out.shape[1]} values per sample, the source {ref.shape[1]}")
    err = out - ref
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    dots = (ref * out).sum(axis=1)
    cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.where(np.abs(err).max(axis=1) == 0, 1.0, 0.0))
    signal, noise = float((ref**2).sum()), float((err**2).sum())
    sqnr = SQNR_CAP_DB if noise == 0 else min(SQNR_CAP_DB, 10 * math.log10(signal / noise)) if signal > 0 else -SQNR_CAP_DB
    top1 = None
    if is_class_scores(refs[0]):
        r = np.concatenate([x.reshape(x.shape[0], -1) for x in refs])
        o = np.concatenate([x.reshape(x.shape[0], -1) for x in outs])
        top1 = float((r.argmax(1) == o.argmax(1)).mean())
    return ErrorStats(
        output=name,
        max_abs=float(np.abs(err).max()),
        mean_abs=float(np.abs(err).mean()),
        min_cosine=float(cos.min()),
        sqnr_db=float(sqnr),
        top1_agreement=top1,
        samples=len(refs),
    )


def accuracy(outs: list[np.ndarray], targets: np.ndarray | None) -> float | None:
    """Top-1 accuracy of a class-score output against the labelled targets."""
    if targets is None or not outs or not is_class_scores(outs[0]):
        return None
    preds = np.concatenate([o.reshape(o.shape[0], -1).argmax(1) for o in outs])
    if len(preds) != len(targets):
        return None
    return float((preds == targets).mean())


def check_parity(
    output_names: list[str],
    refs: list[list[np.ndarray]],
    outs: list[list[np.ndarray]],
    tolerances: dict[str, float],
    targets: np.ndarray | None,
) -> ParityReport:
    """refs/outs: per sample, the list of outputs in source order."""
    stats = tuple(error_stats(name, [r[i] for r in refs], [o[i] for o in outs]) for i, name in enumerate(output_names))
    failures: list[str] = []
    for s in stats:
        checks = (
            ("max_abs", s.max_abs, lambda v, t: v <= t, ">"),
            ("mean_abs", s.mean_abs, lambda v, t: v <= t, ">"),
            ("min_cosine", s.min_cosine, lambda v, t: v >= t, "<"),
            ("min_sqnr_db", s.sqnr_db, lambda v, t: v >= t, "<"),
            ("min_top1_agreement", s.top1_agreement, lambda v, t: v >= t, "<"),
        )
        for key, value, ok, op in checks:
            if key in tolerances and value is not None and not ok(value, tolerances[key]):
                failures.append(f"output '{s.output}': {key.removeprefix('min_').removeprefix('max_')} {value:.6g} {op} {tolerances[key]:g}")
    ref_acc = accuracy([r[0] for r in refs], targets)
    art_acc = accuracy([o[0] for o in outs], targets)
    if "max_accuracy_drop" in tolerances and ref_acc is not None and art_acc is not None:
        drop = ref_acc - art_acc
        if drop > tolerances["max_accuracy_drop"] + 1e-12:
            failures.append(f"accuracy {art_acc:.4f} is {drop:.4f} below the source's {ref_acc:.4f} (> {tolerances['max_accuracy_drop']:g})")
    return ParityReport(
        passed=not failures,
        outputs=stats,
        failures=tuple(failures),
        accuracy=art_acc,
        reference_accuracy=ref_acc,
        tolerances=dict(tolerances),
        samples=len(refs),
    )
