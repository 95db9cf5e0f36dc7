"""Parity: compare an artifact's outputs with the source model's, output by output.

Every statistic is computed over all validation samples, every tolerance is checked, and all
failures are collected before the verdict (nothing stops at the first miss).

Non-finite values are classified, never averaged in: NaN or Inf from the *source* on finite input
is bad input (InputError, naming the sample); NaN or Inf from the *artifact* only (e.g. fp16
overflow) fails parity, with the count, the output and the samples, and leaves the statistics
undefined (NaN here, null in report.json) rather than passing a gate by accident. An output whose
shape changes from sample to sample (NonMaxSuppression and the like) cannot be compared element
by element: that is a ConversionError naming the output.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import ConversionError, InputError
from ..types import ErrorStats, ParityReport

SQNR_CAP_DB = 200.0  # reported when the outputs are bit-exact
UNDEFINED = float("nan")  # a statistic that non-finite artifact outputs leave undefined (null in JSON)


OutputStats = ErrorStats  # former subclass; ErrorStats now carries the non-finite counts itself


def is_class_scores(ref: np.ndarray) -> bool:
    """(batch, classes) with more than one class."""
    return ref.ndim == 2 and ref.shape[1] > 1


def _sample_name(i: int, origins: Sequence[str] | None) -> str:
    return origins[i] if origins is not None and i < len(origins) else f"held-out sample #{i + 1}"


def _sample_list(indices: Sequence[int], origins: Sequence[str] | None, limit: int = 3) -> str:
    names = [_sample_name(i, origins) for i in indices[:limit]]
    more = len(indices) - limit
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _count_text(values: np.ndarray) -> str:
    nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    return " and ".join(t for t in (f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else "") if t)


def check_reference_finite(
    source: str | None, output_names: Sequence[str], outputs: Sequence[np.ndarray], origin: str
) -> None:
    """Raise InputError when the source model's outputs for one sample hold NaN or Inf.

    Call it right after running the source on a sample (its inputs are finite: the calibration
    reader refuses non-finite data), so the error names that sample."""
    for name, y in zip(output_names, outputs):
        y = np.asarray(y)
        if y.dtype.kind in "fc" and not np.isfinite(y).all():
            bad = y[~np.isfinite(y)]
            where = f"{source}: the source model" if source else "the source model"
            raise InputError(
                f"{where} gives {_count_text(bad)} of {y.size} values in output '{name}' on {origin} "
                "(finite input); fix the model (e.g. a log(0), x/0 or exp overflow) or drop that sample"
            )


def _shape_check(name: str, refs: list[np.ndarray], outs: list[np.ndarray]) -> None:
    ref_shapes = {tuple(np.shape(r)) for r in refs}
    if len(ref_shapes) > 1:
        shown = ", ".join(str(s) for s in sorted(ref_shapes)[:3])
        raise ConversionError(
            f"output '{name}' has a data-dependent shape (the source gives {shown} on different samples, e.g. after "
            "NonMaxSuppression or NonZero); edgepack checks fixed-shape outputs only: end the model before that op and run it in the app"
        )
    for i, (r, o) in enumerate(zip(refs, outs)):
        if np.size(r) != np.size(o):
            raise ConversionError(
                f"output '{name}': the artifact gives {np.size(o)} values per sample (shape {tuple(np.shape(o))}), "
                f"the source {np.size(r)} (shape {tuple(np.shape(r))}); they are not the same model's outputs"
            )


def error_stats(name: str, refs: list[np.ndarray], outs: list[np.ndarray]) -> OutputStats:
    _shape_check(name, refs, outs)
    ref = np.concatenate([np.asarray(r).astype(np.float64).reshape(1, -1) for r in refs])
    out = np.concatenate([np.asarray(o).astype(np.float64).reshape(1, -1) for o in outs])
    if ref.shape[1] == 0:  # an empty output: nothing can differ
        return OutputStats(name, 0.0, 0.0, 1.0, SQNR_CAP_DB, None, len(refs))
    bad = ~np.isfinite(out)
    if bad.any():
        return OutputStats(
            output=name,
            max_abs=UNDEFINED,
            mean_abs=UNDEFINED,
            min_cosine=UNDEFINED,
            sqnr_db=UNDEFINED,
            top1_agreement=UNDEFINED if is_class_scores(np.asarray(refs[0])) else None,
            samples=len(refs),
            nonfinite_values=int(bad.sum()),
            nonfinite_samples=int(bad.any(axis=1).sum()),
        )
    err = out - ref
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    dots = (ref * out).sum(axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    cos = np.where(norms > 0, dots / safe, np.where(np.abs(err).max(axis=1) == 0, 1.0, 0.0))
    signal, noise = float((ref**2).sum()), float((err**2).sum())
    if noise == 0:
        sqnr = SQNR_CAP_DB
    elif signal > 0 and math.isfinite(signal / noise) and signal / noise > 0:
        sqnr = min(SQNR_CAP_DB, 10 * math.log10(signal / noise))
    else:
        sqnr = -SQNR_CAP_DB
    top1 = None
    if is_class_scores(np.asarray(refs[0])):
        r = np.concatenate([np.asarray(x).reshape(np.shape(x)[0], -1) for x in refs])
        o = np.concatenate([np.asarray(x).reshape(np.shape(x)[0], -1) for x in outs])
        top1 = float((r.argmax(1) == o.argmax(1)).mean())
    return OutputStats(
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
    if any(not np.isfinite(o).all() for o in outs):
        return None  # undefined: the artifact's own parity failure says why
    preds = np.concatenate([o.reshape(o.shape[0], -1).argmax(1) for o in outs])
    if len(preds) != len(targets):
        return None
    return float((preds == targets).mean())


def _nonfinite_failure(name: str, refs: list[np.ndarray], outs: list[np.ndarray], origins) -> str:
    per_sample = [np.asarray(o)[~np.isfinite(np.asarray(o, dtype=np.float64))] for o in outs]
    samples = [i for i, b in enumerate(per_sample) if b.size]
    values = np.concatenate([b.astype(np.float64) for b in per_sample if b.size])
    return (
        f"output '{name}': the artifact gives {values.size} non-finite values ({_count_text(values)}) on "
        f"{len(samples)} of {len(outs)} samples ({_sample_list(samples, origins)}) where the source's are finite"
        " (fp16 overflow above 65504, or a division or log that the artifact computes differently)"
    )


def check_parity(
    output_names: list[str],
    refs: list[list[np.ndarray]],
    outs: list[list[np.ndarray]],
    tolerances: dict[str, float],
    targets: np.ndarray | None,
    *,
    origins: Sequence[str] | None = None,
    source: str | None = None,
) -> ParityReport:
    """refs/outs: per sample, the list of outputs in source order. `origins`: each sample's name
    (e.g. "calib.npz (sample 3)") for messages; `source`: the model, for messages."""
    for k, sample in enumerate(refs):
        check_reference_finite(source, output_names, sample, _sample_name(k, origins))
    stats = tuple(error_stats(name, [r[i] for r in refs], [o[i] for o in outs]) for i, name in enumerate(output_names))
    failures: list[str] = []
    for i, s in enumerate(stats):
        if s.nonfinite_values:
            failures.append(_nonfinite_failure(s.output, [r[i] for r in refs], [o[i] for o in outs], origins))
            continue  # every statistic is undefined; the failure above says why
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
