"""What each model output holds, so that parity judges it with the right metrics.

A kind comes from the profile (`[outputs.NAME] kind = "boxes"`) or, failing that, from the
output's dtype, name, shape and the source's own values on the held-out samples:

- integer:       an integer (or bool) dtype: exact-match rate, max/mean abs
- boxes:         a name like box/bbox/loc, or (batch, N, 4..7) whose columns 2 and 3 are widths
                 and heights (>= 0) or far corners (>= columns 0 and 1)
- feature_map:   rank >= 3 (any other)
- regression:    (batch, dims > 1) named like landmarks/keypoints/kpts/coords/offsets/pose/angle/depth
- embedding:     (batch, dims > 1) named like embedding/embed/feature/feat/pooled/pooler, or whose
                 rows all have L2 norm 1 (within 1e-3) and values of both signs (a normalised
                 sentence or image embedding): cosine, SQNR, max/mean abs
- probabilities: (batch, classes > 1) in [0, 1] with rows summing to 1
- class_scores:  (batch, classes > 1), any other values (logits)
- regression:    the rest (a (batch, 1) score, a 1-D output, ...)

Class kinds get top-1 / top-5 agreement and accuracy; no other kind ever gets a top-1. A 2-D
(batch, 4) output counts as 4 class scores unless its name or the profile says boxes, and a
(batch, 10) one as 10 class scores unless its name (`landmarks`) or the profile says regression.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

KINDS = ("class_scores", "probabilities", "boxes", "regression", "feature_map", "embedding", "integer")
CLASS_KINDS = ("class_scores", "probabilities")
# Which tolerance keys apply to which kind (a key the kind lacks is never checked for it).
_FLOAT_KEYS = ("max_abs", "mean_abs", "min_cosine", "min_sqnr_db")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "class_scores": (*_FLOAT_KEYS, "min_top1_agreement", "min_top5_agreement", "max_accuracy_drop"),
    "probabilities": (*_FLOAT_KEYS, "min_top1_agreement", "min_top5_agreement", "max_accuracy_drop"),
    "boxes": _FLOAT_KEYS,
    "regression": _FLOAT_KEYS,
    "feature_map": _FLOAT_KEYS,
    "embedding": _FLOAT_KEYS,
    "integer": ("max_abs", "mean_abs", "min_exact_match"),
}
_EMBEDDING_NAME = re.compile(r"(?:^|[^a-z])(?:embed(?:ding)?s?|feat(?:ure)?s?|pool(?:ed|er)(?:_?output)?)(?:[^a-z]|$)", re.IGNORECASE)
UNIT_NORM_TOL = 1e-3  # rows whose L2 norm is within this of 1 count as normalised
_BOX_NAME = re.compile(r"(?:^|[^a-z])(?:b?box(?:es)?|bboxes|locs?|locations?)(?:[^a-z]|$)", re.IGNORECASE)
# coordinates or measurements, never classes: top-1 of a face's 10 landmark coordinates means nothing
_REGRESSION_NAME = re.compile(
    r"(?:^|[^a-z])(?:landmarks?|lmks?|keypoints?|kpts?|coords?|coordinates|offsets?|poses?|angles?|depths?|regression)(?:[^a-z]|$)",
    re.IGNORECASE,
)


def _box_like(values: np.ndarray) -> bool:
    """Rows of (..., 4..7): columns 2, 3 are sizes (>= 0) or far corners (>= columns 0, 1)."""
    rows = values.reshape(-1, values.shape[-1]).astype(np.float64)
    if rows.shape[0] == 0 or not np.isfinite(rows).all():
        return False
    far, near = rows[:, 2:4], rows[:, 0:2]
    return bool((far >= 0).all() or (far >= near).all())


def _unit_rows(rows: np.ndarray) -> bool:
    """Every row L2-normalised, with values of both signs (probabilities and one-hot rows are >= 0)."""
    if rows.size == 0 or not np.isfinite(rows).all() or not (rows.min() < 0 < rows.max()):
        return False
    return bool(np.all(np.abs(np.linalg.norm(rows, axis=1) - 1.0) <= UNIT_NORM_TOL))


def classify(name: str, refs: Sequence[np.ndarray], dtype: str | None = None, declared: str | None = None) -> str:
    """The kind of output `name`, from the source's values on every held-out sample (`refs`),
    its dtype and the profile's `declared` kind (which wins)."""
    if declared:
        return declared
    first = np.asarray(refs[0]) if len(refs) else np.zeros((1, 0), np.float32)
    kind = np.dtype(dtype).kind if dtype else first.dtype.kind
    if kind in "iub":
        return "integer"
    if _BOX_NAME.search(name):
        return "boxes"
    if first.ndim == 3 and 4 <= first.shape[-1] <= 7 and all(_box_like(np.asarray(r)) for r in refs):
        return "boxes"
    if first.ndim >= 3:
        return "feature_map"
    if first.ndim == 2 and first.shape[1] > 1:
        if _REGRESSION_NAME.search(name):
            return "regression"
        vals = np.concatenate([np.asarray(r, np.float64).reshape(-1, first.shape[1]) for r in refs])
        if _EMBEDDING_NAME.search(name) or _unit_rows(vals):
            return "embedding"
        if vals.min() >= -1e-6 and vals.max() <= 1 + 1e-6 and np.allclose(vals.sum(axis=1), 1.0, atol=1e-3):
            return "probabilities"
        return "class_scores"
    return "regression"
