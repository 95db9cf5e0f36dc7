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

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from ..errors import ConversionError, InputError
from ..types import Check, ErrorStats, ParityReport
from .output_kinds import CLASS_KINDS, KIND_KEYS, classify
from .tolerances import Threshold

SQNR_CAP_DB = 200.0  # reported when the outputs are bit-exact
UNDEFINED = float("nan")  # a statistic that non-finite artifact outputs leave undefined (null in JSON)


OutputStats = ErrorStats  # former subclass; ErrorStats now carries the non-finite counts itself


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


def is_class_scores(ref: np.ndarray) -> bool:
    """(batch, classes) with more than one class."""
    return np.ndim(ref) == 2 and np.shape(ref)[1] > 1


def _agreement(refs: list[np.ndarray], outs: list[np.ndarray], k: int) -> float | None:
    """Share of rows whose source top-1 class is among the artifact's top-k (None: too few classes)."""
    r = np.concatenate([np.asarray(x).reshape(np.shape(x)[0], -1) for x in refs])
    o = np.concatenate([np.asarray(x).reshape(np.shape(x)[0], -1) for x in outs])
    if k > 1 and r.shape[1] <= k:
        return None
    top = np.argsort(-o, axis=1, kind="stable")[:, :k]
    return float((top == r.argmax(1)[:, None]).any(axis=1).mean())


def error_stats(name: str, refs: list[np.ndarray], outs: list[np.ndarray], kind: str | None = None) -> ErrorStats:
    """The statistics of one output over all samples; `kind` (output_kinds.KINDS) decides which
    exist: top-1/top-5 for class kinds only, exact match for integer outputs."""
    _shape_check(name, refs, outs)
    kind = kind or classify(name, refs)
    ref = np.concatenate([np.asarray(r).astype(np.float64).reshape(1, -1) for r in refs])
    out = np.concatenate([np.asarray(o).astype(np.float64).reshape(1, -1) for o in outs])
    classy = kind in CLASS_KINDS and is_class_scores(np.asarray(refs[0]))
    if ref.shape[1] == 0:  # an empty output: nothing can differ
        return ErrorStats(name, 0.0, 0.0, 1.0, SQNR_CAP_DB, None, len(refs), kind=kind)
    bad = ~np.isfinite(out)
    if bad.any():
        return ErrorStats(
            output=name,
            max_abs=UNDEFINED,
            mean_abs=UNDEFINED,
            min_cosine=UNDEFINED,
            sqnr_db=UNDEFINED,
            top1_agreement=UNDEFINED if classy else None,
            samples=len(refs),
            kind=kind,
            top5_agreement=UNDEFINED if classy and ref.shape[1] > 5 else None,
            nonfinite_values=int(bad.sum()),
            nonfinite_samples=int(bad.any(axis=1).sum()),
            exact_match=UNDEFINED if kind == "integer" else None,
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
    return ErrorStats(
        output=name,
        max_abs=float(np.abs(err).max()),
        mean_abs=float(np.abs(err).mean()),
        min_cosine=float(cos.min()),
        sqnr_db=float(sqnr),
        top1_agreement=_agreement(refs, outs, 1) if classy else None,
        samples=len(refs),
        kind=kind,
        top5_agreement=_agreement(refs, outs, 5) if classy else None,
        exact_match=float((err == 0).mean()) if kind == "integer" else None,
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


def _nonfinite_failure(name: str, outs: list[np.ndarray], origins) -> str:
    per_sample = [np.asarray(o)[~np.isfinite(np.asarray(o, dtype=np.float64))] for o in outs]
    samples = [i for i, b in enumerate(per_sample) if b.size]
    values = np.concatenate([b.astype(np.float64) for b in per_sample if b.size])
    return (
        f"output '{name}': the artifact gives {values.size} non-finite values ({_count_text(values)}) on "
        f"{len(samples)} of {len(outs)} samples ({_sample_list(samples, origins)}) where the source's are finite"
        " (fp16 overflow above 65504, or a division or log that the artifact computes differently)"
    )


# tolerance key -> (ErrorStats field, op): ">=" keys are lower bounds, "<=" keys upper bounds
METRICS = {
    "max_abs": ("max_abs", "<="),
    "mean_abs": ("mean_abs", "<="),
    "min_cosine": ("min_cosine", ">="),
    "min_sqnr_db": ("sqnr_db", ">="),
    "min_top1_agreement": ("top1_agreement", ">="),
    "min_top5_agreement": ("top5_agreement", ">="),
    "min_exact_match": ("exact_match", ">="),
}


def make_check(metric: str, value: float | None, threshold: Threshold, op: str) -> Check:
    """One check; an undefined (None or NaN) value fails with no margin."""
    if value is None or not math.isfinite(value):
        return Check(metric, None, threshold.value, op, None, False, threshold.source)
    margin = value - threshold.value if op == ">=" else threshold.value - value
    ok = value >= threshold.value if op == ">=" else value <= threshold.value
    return Check(metric, float(value), threshold.value, op, float(margin), bool(ok), threshold.source)


def check_text(output: str, c: Check) -> str:
    """The failure line of a failed check: "output 'x': cosine 0.98 < 0.99"."""
    short = c.metric.removeprefix("min_").removeprefix("max_")
    return f"output '{output}': {short} {c.value:.6g} {'<' if c.op == '>=' else '>'} {c.threshold:g}"


def judge(s: ErrorStats, thresholds: dict[str, Threshold]) -> ErrorStats:
    """`s` with a Check for every tolerance key that applies to its kind and has a value."""
    checks = []
    for key in KIND_KEYS.get(s.kind, KIND_KEYS["regression"]):
        if key in METRICS and key in thresholds:
            attr, op = METRICS[key]
            value = getattr(s, attr)
            if value is not None:
                checks.append(make_check(key, value, thresholds[key], op))
    return dataclasses.replace(s, checks=tuple(checks), passed=not s.nonfinite and all(c.passed for c in checks))


def require_min_samples(calibration: str, total: int, held_out: int, min_samples: int, profile: str) -> None:
    """InputError when fewer than `min_samples` held-out samples would judge parity."""
    if held_out < min_samples:
        raise InputError(
            f"{calibration}: {total} sample{'s' if total != 1 else ''} give {held_out} held-out sample{'s' if held_out != 1 else ''} "
            f"for parity; at least {min_samples} are needed: add samples or lower validation.min_samples in {profile}"
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
    per_output: dict[str, dict[str, Threshold]] | None = None,
    kinds: dict[str, str] | None = None,
    runtime_failures: Sequence[str] = (),
    min_samples: int = 0,
    tolerance_source: str = "tolerances",
) -> ParityReport:
    """refs/outs: per sample, the list of outputs in source order. `tolerances`: the cell's
    (report.json "tolerances"); `per_output`: {output: {key: Threshold}} where outputs differ
    (default: `tolerances`, sourced `tolerance_source`); `kinds`: {output: kind} the profile
    declares (the rest are classified); `runtime_failures`: what the runtime itself found
    (e.g. fp16 overflow in the Core ML emulator). `origins`: each sample's name (e.g.
    "calib.npz (sample 3)") for messages; `source`: the model, for messages."""
    for k, sample in enumerate(refs):
        check_reference_finite(source, output_names, sample, _sample_name(k, origins))
    cell = {k: Threshold(v, tolerance_source) for k, v in tolerances.items()}
    per_output = per_output or {}
    kinds = kinds or {}
    stats, failures = [], []
    for i, name in enumerate(output_names):
        r, o = [x[i] for x in refs], [x[i] for x in outs]
        s = judge(error_stats(name, r, o, classify(name, r, declared=kinds.get(name))), per_output.get(name, cell))
        if s.nonfinite:
            failures.append(_nonfinite_failure(name, o, origins))  # every statistic is undefined; this says why
        else:
            failures += [check_text(name, c) for c in s.checks if not c.passed]
        stats.append(s)
    # accuracy: of the first class output, against the labels
    first = next((i for i, s in enumerate(stats) if s.kind in CLASS_KINDS), None)
    ref_acc = art_acc = None
    if first is not None:
        ref_acc = accuracy([r[first] for r in refs], targets)
        art_acc = accuracy([o[first] for o in outs], targets)
        limit = per_output.get(output_names[first], cell).get("max_accuracy_drop")
        if limit is not None and ref_acc is not None and art_acc is not None:
            drop = ref_acc - art_acc
            c = make_check("max_accuracy_drop", drop, Threshold(limit.value + 1e-12, limit.source), "<=")
            c = dataclasses.replace(c, threshold=limit.value)
            s = stats[first]
            stats[first] = dataclasses.replace(s, checks=(*s.checks, c), passed=s.passed and c.passed)
            if not c.passed:
                failures.append(f"accuracy {art_acc:.4f} is {drop:.4f} below the source's {ref_acc:.4f} (> {limit.value:g})")
    failures += list(runtime_failures)
    return ParityReport(
        passed=not failures,
        outputs=tuple(stats),
        failures=tuple(failures),
        accuracy=art_acc,
        reference_accuracy=ref_acc,
        tolerances=dict(tolerances),
        samples=len(refs),
        min_samples=min_samples,
    )


def _profile_where(profile) -> str:
    """Where the user can change validation.min_samples (a shipped profile is copied, not edited)."""
    from ..profiles import shipped_dir

    if profile.path is None:
        return "a profile given to --target"
    if profile.path.resolve().parent == shipped_dir().resolve():
        return f"a copy of the shipped profile {profile.path} given to --target"
    return str(profile.path)


def require_validation_samples(profile, calib) -> list[int]:
    """The profile's held-out indices; InputError (before any parity) when they are fewer than
    its validation.min_samples."""
    _, val = calib.split(profile.validation.split, profile.validation.max_samples, profile.quantization.calibration_samples)
    require_min_samples(str(calib.path), len(calib.samples), len(val), profile.validation.min_samples, _profile_where(profile))
    return val
