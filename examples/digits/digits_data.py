"""The fixed train / held-out split of scikit-learn's bundled digits.

Shared by ``examples/digits/train.py`` (which trains on the first part) and
``calibration_data/digits/make_digits.py`` (which ships the held-out part as
calibration and evaluation data), so both always agree on the split.
"""

import numpy as np

N_SAMPLES = 1797
N_TRAIN = 1297
SPLIT_SEED = 0


def load_split():
    """Return ``(x_train, y_train, x_heldout, y_heldout)``.

    x arrays are float32 of shape (N, 1, 8, 8) with values in [0, 1]
    (the raw 0..16 pixel counts divided by 16); y arrays are int64 class ids.
    The split is ``numpy.random.default_rng(0).permutation(1797)``: the first
    1297 indices are training data, the remaining 500 are held out.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float64)
    targets = np.asarray(digits.target, dtype=np.int64)
    if images.shape != (N_SAMPLES, 8, 8):
        raise RuntimeError(f"unexpected digits shape {images.shape}")

    x = (images / 16.0).astype(np.float32).reshape(N_SAMPLES, 1, 8, 8)
    order = np.random.default_rng(SPLIT_SEED).permutation(N_SAMPLES)
    train_idx, heldout_idx = order[:N_TRAIN], order[N_TRAIN:]
    return (
        np.ascontiguousarray(x[train_idx]),
        np.ascontiguousarray(targets[train_idx]),
        np.ascontiguousarray(x[heldout_idx]),
        np.ascontiguousarray(targets[heldout_idx]),
    )
