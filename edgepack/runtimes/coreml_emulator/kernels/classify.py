"""classify: the last op of a Core ML classifier (ct.ClassifierConfig).

Core ML returns the top class label and a {label: probability} dictionary built from the
`probabilities` tensor as it is (no softmax is applied). The emulator keeps the dictionary as a
float vector in the order of `classes`, so that parity compares it with the source's class scores.
Own kernel: coremltools has no numpy implementation of classify.
"""
from __future__ import annotations

import numpy as np

from . import OpCall, register


@register("classify")
def _classify(call: OpCall) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(call["probabilities"], dtype=np.float64).reshape(-1)
    classes = [c.decode() if isinstance(c, bytes) else c for c in np.asarray(call["classes"]).reshape(-1).tolist()]
    if len(classes) != probs.size:
        raise ValueError(f"classify has {len(classes)} classes but {probs.size} probabilities")
    label = classes[int(np.argmax(probs))]
    return np.array(str(label)), probs[None, :]
