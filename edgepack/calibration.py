"""CalibrationSet: named numpy samples for calibration and validation, checked against the model.

A calibration path is one of:
- a folder of .npz files, one sample each, keys = input names;
- one .npz (keys = input names) or .npy (single-input models), samples stacked on axis 0,
  given directly or as the only data file in a folder;
- a folder of PNG/JPEG images with a preprocess.toml.
A folder may also hold labels.txt (class names, one a line) and targets.npy (the class id of
each sample, in sample order; for folders of files, sorted by file name). preprocess.toml beside
.npz data is metadata for the manifest: it says how apps make the tensor from a picture.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .preprocess import PREPROCESS_FILE, load_image_pixels, load_preprocess, pixels_to_tensor
from .types import Preprocess, Sample, TensorSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LABELS_FILE = "labels.txt"
TARGETS_FILE = "targets.npy"


@dataclass
class CalibrationSet:
    path: Path
    samples: list[Sample]
    origins: list[str]  # where each sample came from, for messages
    labels: list[str] | None
    targets: np.ndarray | None
    preprocess: Preprocess | None
    kind: str  # "npz-folder" | "stacked" | "images"

    def __len__(self) -> int:
        return len(self.samples)

    def split(self, validation_share: float, max_validation: int, max_calibration: int) -> tuple[list[int], list[int]]:
        """Deterministic split into (calibration, validation) indices that never overlap."""
        n = len(self.samples)
        if n < 2:
            raise InputError(f"{self.path}: needs at least 2 samples (one to calibrate, one to validate), found {n}")
        order = np.random.default_rng(0).permutation(n)
        n_val = min(max(1, round(n * validation_share)), max_validation, n - 1)
        val = sorted(order[:n_val].tolist())
        cal = sorted(order[n_val:][:max_calibration].tolist())
        return cal, val

    def describe(self) -> dict:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "samples": len(self.samples),
            "labels": len(self.labels) if self.labels else 0,
            "has_targets": self.targets is not None,
            "preprocess": self.preprocess.to_json() if self.preprocess else None,
        }


def _load_array_file(path: Path, allow_pickle: bool) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
            return {"": np.load(path, allow_pickle=allow_pickle)}
        with np.load(path, allow_pickle=allow_pickle) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(f"{path}: holds pickled objects; save plain numeric arrays, or pass --allow-pickle if you trust it") from None
        raise InputError(f"{path}: cannot read ({exc}); save it with numpy.save/savez") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read ({exc}); save it with numpy.save/savez") from None


def _batch(spec: TensorSpec) -> int:
    d = spec.shape[0] if spec.shape else None
    return d if isinstance(d, int) and d > 0 else 1


def _check_sample(sample: Sample, inputs: tuple[TensorSpec, ...], origin: str) -> None:
    for spec in inputs:
        arr = sample[spec.name]
        if arr.dtype.name != spec.dtype:
            raise InputError(
                f"{origin}: input '{spec.name}' has dtype {arr.dtype.name}, the model expects {spec.dtype}; convert it with .astype('{spec.dtype}')"
            )
        want = spec.shape
        ok = len(arr.shape) == len(want) and all(not isinstance(w, int) or w < 0 or w == a for a, w in zip(arr.shape, want))
        if not ok:
            shown = tuple(w if isinstance(w, int) else "?" for w in want)
            raise InputError(f"{origin}: input '{spec.name}' has shape {tuple(arr.shape)}, the model expects {shown}; fix the data")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            what = "NaN" if np.isnan(arr).any() else "Inf"
            raise InputError(f"{origin}: input '{spec.name}' contains {what}; remove or fix that sample")


def _map_keys(arrays: dict[str, np.ndarray], inputs: tuple[TensorSpec, ...], origin: str) -> dict[str, np.ndarray]:
    if "" in arrays:  # a bare .npy: only for single-input models
        if len(inputs) != 1:
            raise InputError(f"{origin}: a .npy file holds one array, but the model has {len(inputs)} inputs; use .npz with keys {', '.join(t.name for t in inputs)}")
        return {inputs[0].name: arrays[""]}
    want = [t.name for t in inputs]
    missing = [n for n in want if n not in arrays]
    extra = [k for k in arrays if k not in want]
    if missing or extra:
        raise InputError(
            f"{origin}: keys {sorted(arrays)} do not match the model's inputs {want}; name the arrays after the inputs"
        )
    return arrays


def _stacked(arrays: dict[str, np.ndarray], inputs: tuple[TensorSpec, ...], origin: Path) -> tuple[list[Sample], list[str]]:
    arrays = _map_keys(arrays, inputs, str(origin))
    counts = set()
    for spec in inputs:
        arr = arrays[spec.name]
        if arr.ndim != len(spec.shape):
            shown = tuple(w if isinstance(w, int) else "?" for w in spec.shape)
            raise InputError(
                f"{origin}: input '{spec.name}' is stacked as {tuple(arr.shape)}, but each sample must have shape {shown} with samples on axis 0; fix the data"
            )
        b = _batch(spec)
        if arr.shape[0] % b:
            raise InputError(f"{origin}: input '{spec.name}' has {arr.shape[0]} rows, not a multiple of the model's batch {b}")
        counts.add(arr.shape[0] // b)
    if len(counts) != 1:
        raise InputError(f"{origin}: the inputs hold different numbers of samples ({sorted(counts)}); stack the same number for each")
    n = counts.pop()
    samples, origins = [], []
    for i in range(n):
        s = {spec.name: np.ascontiguousarray(arrays[spec.name][i * _batch(spec) : (i + 1) * _batch(spec)]) for spec in inputs}
        where = f"{origin} (sample {i})"
        _check_sample(s, inputs, where)
        samples.append(s)
        origins.append(where)
    return samples, origins


def _images(folder: Path, files: list[Path], inputs: tuple[TensorSpec, ...], pp: Preprocess) -> tuple[list[Sample], list[str]]:
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise InputError(f"{folder}: image folders calibrate models with one 4-D image input; this model has inputs {[t.name for t in inputs]}")
    spec = inputs[0]
    samples, origins = [], []
    for f in files:
        tensor = pixels_to_tensor(load_image_pixels(f, pp), pp)
        s = {spec.name: tensor}
        _check_sample(s, inputs, f"{f} (after {PREPROCESS_FILE})")
        samples.append(s)
        origins.append(str(f))
    return samples, origins


def load_calibration(path: str | Path, inputs: tuple[TensorSpec, ...], *, allow_pickle: bool = False) -> CalibrationSet:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: calibration data not found; give a folder or a .npz/.npy file")
    preprocess = labels = targets = None
    if path.is_file():
        if path.suffix not in (".npz", ".npy"):
            raise InputError(f"{path}: calibration files must be .npz or .npy (or give a folder)")
        samples, origins = _stacked(_load_array_file(path, allow_pickle), inputs, path)
        kind = "stacked"
    else:
        files = sorted(p for p in path.iterdir() if p.is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        arrays = [p for p in files if p.suffix in (".npz", ".npy") and p.name != TARGETS_FILE]
        if (path / PREPROCESS_FILE).is_file():
            preprocess = load_preprocess(path / PREPROCESS_FILE)
        if images:
            if preprocess is None:
                raise InputError(f"{path}: an image folder needs a {PREPROCESS_FILE} (size, layout, channels, scale, mean, std); see README")
            samples, origins = _images(path, images, inputs, preprocess)
            kind = "images"
        elif len(arrays) == 1:
            samples, origins = _stacked(_load_array_file(arrays[0], allow_pickle), inputs, arrays[0])
            kind = "stacked"
        elif arrays:
            if any(p.suffix == ".npy" for p in arrays):
                raise InputError(f"{path}: mixes several .npy/.npz files; use one stacked file, or one .npz per sample")
            samples, origins = [], []
            for f in arrays:
                s = _map_keys(_load_array_file(f, allow_pickle), inputs, str(f))
                for spec in inputs:
                    arr = s[spec.name]
                    if arr.ndim == len(spec.shape) and arr.ndim and arr.shape[0] > _batch(spec):
                        raise InputError(
                            f"{f}: holds {arr.shape[0]} samples stacked on axis 0, but a folder of several .npz files is read as "
                            "one sample per file; keep a single stacked .npz in the folder, or save one sample per file"
                        )
                _check_sample(s, inputs, str(f))
                samples.append(s)
                origins.append(str(f))
            kind = "npz-folder"
        else:
            raise InputError(f"{path}: no calibration data (.npz, .npy, .png, .jpg) in this folder")
        if (path / LABELS_FILE).is_file():
            labels = [ln.strip() for ln in (path / LABELS_FILE).read_text(encoding="utf-8").splitlines() if ln.strip()]
        if (path / TARGETS_FILE).is_file():
            targets = _load_array_file(path / TARGETS_FILE, False)[""]
            if targets.ndim != 1 or targets.dtype.kind not in "iu" or len(targets) != len(samples):
                raise InputError(
                    f"{path / TARGETS_FILE}: must be a 1-D integer array with one class id per sample ({len(samples)}), got shape {targets.shape} {targets.dtype}"
                )
            if labels and (targets.min() < 0 or targets.max() >= len(labels)):
                raise InputError(f"{path / TARGETS_FILE}: class ids must be in 0..{len(labels) - 1} ({LABELS_FILE} has {len(labels)} names)")
    if not samples:
        raise InputError(f"{path}: holds no samples")
    return CalibrationSet(path, samples, origins, labels, targets, preprocess, kind)
