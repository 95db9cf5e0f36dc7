"""CalibrationSet: named numpy samples for calibration and validation, checked against the model.

A calibration path is one of:
- a folder of .npz files, one sample each, keys = input names;
- one .npz (keys = input names) or .npy (single-input models), samples stacked on axis 0,
  given directly or as the only data file in a folder;
- a folder of PNG/JPEG images with a preprocess.toml.
A folder may also hold labels.txt (class names, one a line) and targets.npy (the class id of
each sample, in sample order; for folders of files, sorted by file name). preprocess.toml beside
.npz data is metadata for the manifest: it says how apps make the tensor from a picture.

Nothing is trusted: every array header is read before any data (calibration_files.py) and the
decompressed total is bounded (`max_bytes`, the profiles' validation.max_calibration_mb); images are
bounded from their header; only regular files are read; hidden files are skipped.
precheck_calibration does all of that before the model loads; check_labels compares labels.txt and
targets.npy with the model's class-score output.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .calibration_files import ArrayHeader, check_total, os_problem, path_kind, read_arrays, read_headers, read_text_file
from .errors import InputError
from .preprocess import PREPROCESS_FILE, check_image_header, load_image_pixels, load_preprocess, pixels_to_tensor
from .profiles import ValidationSettings
from .types import Preprocess, Sample, TensorSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npz", ".npy")
DEFAULT_MAX_BYTES = ValidationSettings().max_calibration_bytes
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


@dataclass
class _Plan:
    """What a calibration path holds, found from names and headers only (no array data read)."""

    path: Path
    kind: str  # "stacked" | "npz-folder" | "images"
    files: list[Path]
    headers: dict[Path, list[ArrayHeader]]
    preprocess: Preprocess | None = None
    labels: list[str] | None = None
    targets: tuple[Path, ArrayHeader] | None = None


def _data_entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images, arrays) in the folder, sorted; hidden files are skipped; any other data-named entry
    that is not a regular file (a folder, a FIFO, a symlink to a device) is refused."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise os_problem(folder, exc) from None
    images, arrays = [], []
    for name in names:
        if name.startswith("."):
            continue
        p = folder / name
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            bucket = images
        elif suffix in ARRAY_SUFFIXES and name != TARGETS_FILE:
            bucket = arrays
        else:
            continue
        if path_kind(p) == "dir":
            raise InputError(f"{p}: is a folder with a data file's name; rename or remove it")
        bucket.append(p)
    return images, arrays


def _scan(path: Path, max_bytes: int, allow_pickle: bool) -> _Plan:
    kind = path_kind(path)
    if kind == "missing":
        raise InputError(f"{path}: calibration data not found; give a folder or a .npz/.npy file")
    if kind == "file":
        if path.suffix.lower() not in ARRAY_SUFFIXES:
            raise InputError(f"{path}: calibration files must be .npz or .npy (or give a folder)")
        heads = read_headers(path, allow_pickle)
        check_total(heads, max_bytes, path)
        return _Plan(path, "stacked", [path], {path: heads})
    images, arrays = _data_entries(path)
    pp_file = path / PREPROCESS_FILE
    preprocess = load_preprocess(pp_file) if path_kind(pp_file) == "file" else None
    headers: dict[Path, list[ArrayHeader]] = {}
    if images:
        if preprocess is None:
            raise InputError(f"{path}: an image folder needs a {PREPROCESS_FILE} (size, layout, channels, scale, mean, std); see README")
        for f in images:
            check_image_header(f)
        h, w = preprocess.size
        per_image = h * w * (1 if preprocess.channels == "gray" else 3) * 4
        plan = _Plan(path, "images", images, headers, preprocess)
        extra, extra_what = per_image * len(images), f"{len(images)} images at {h}x{w} become"
    elif arrays:
        if len(arrays) > 1 and any(p.suffix.lower() == ".npy" for p in arrays):
            raise InputError(f"{path}: mixes several .npy/.npz files; use one stacked file, or one .npz per sample")
        for f in arrays:
            headers[f] = read_headers(f, allow_pickle)
        plan = _Plan(path, "stacked" if len(arrays) == 1 else "npz-folder", arrays, headers, preprocess)
        extra, extra_what = 0, ""
    else:
        raise InputError(f"{path}: no calibration data (.npz, .npy, .png, .jpg) in this folder")
    labels_file, targets_file = path / LABELS_FILE, path / TARGETS_FILE
    if path_kind(labels_file) == "file":
        text = read_text_file(labels_file, LABELS_FILE)
        plan.labels = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not plan.labels:
            raise InputError(f"{labels_file}: holds no class names; write one name a line, or remove it")
    all_heads = [h for hs in headers.values() for h in hs]
    if path_kind(targets_file) == "file":
        (th,) = _single(targets_file, read_headers(targets_file, False))
        if len(th.shape) != 1 or th.dtype.kind not in "iu":
            raise InputError(
                f"{targets_file}: must be a 1-D integer array with one class id per sample, got shape {th.shape} {th.dtype}; "
                "save class ids with numpy.save(..., ids.astype('int64'))"
            )
        plan.targets = (targets_file, th)
        all_heads.append(th)
    check_total(all_heads, max_bytes, path, extra, extra_what)
    return plan


def _single(path: Path, heads: list[ArrayHeader]) -> list[ArrayHeader]:
    if len(heads) != 1 or heads[0].member:
        raise InputError(f"{path}: must be a .npy file holding one array (numpy.save)")
    return heads


def precheck_calibration(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES, allow_pickle: bool | None = None) -> None:
    """The cheap checks, before any model loads: the path exists and is readable, is a folder or
    .npz/.npy, holds data, every array header and image header is sound and their decompressed
    total is within `max_bytes`; preprocess.toml and labels.txt are valid. Raises InputError/ConfigError.
    Nothing is unpickled here; `allow_pickle=False` refuses pickled arrays already, None leaves
    them to load_calibration."""
    _scan(Path(path), max_bytes, True if allow_pickle is None else allow_pickle)


def load_calibration(
    path: str | Path,
    inputs: tuple[TensorSpec, ...],
    *,
    allow_pickle: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    outputs: tuple[TensorSpec, ...] | None = None,
) -> CalibrationSet:
    """Read and check a calibration set against the model's inputs. Array headers are read and
    bounded (`max_bytes` of decompressed data in all) before any data. With `outputs`, labels
    and class ids are checked against the class-score output too (see check_labels)."""
    path = Path(path)
    plan = _scan(path, max_bytes, allow_pickle)
    if plan.kind == "images":
        samples, origins = _images(path, plan.files, inputs, plan.preprocess)
    elif plan.kind == "stacked":
        f = plan.files[0]
        samples, origins = _stacked(read_arrays(f, plan.headers[f], allow_pickle), inputs, f)
    else:
        samples, origins = [], []
        for f in plan.files:
            s = _map_keys(read_arrays(f, plan.headers[f], allow_pickle), inputs, str(f))
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
    if not samples:
        raise InputError(f"{path}: holds no samples")
    targets = None
    if plan.targets is not None:
        tfile, th = plan.targets
        targets = read_arrays(tfile, [th])[""]
        if len(targets) != len(samples):
            raise InputError(
                f"{tfile}: must be a 1-D integer array with one class id per sample ({len(samples)}), got shape {targets.shape} {targets.dtype}"
            )
        if len(targets) and targets.min() < 0:
            i = int(np.argmin(targets))
            raise InputError(f"{tfile}: class id {int(targets[i])} at position {i} is negative; class ids count from 0")
    calib = CalibrationSet(path, samples, origins, plan.labels, targets, plan.preprocess, plan.kind)
    if outputs is not None:
        check_labels(calib, outputs)
    labels = plan.labels
    if targets is not None and labels and targets.max() >= len(labels):
        raise InputError(f"{plan.targets[0]}: class ids must be in 0..{len(labels) - 1} ({LABELS_FILE} has {len(labels)} names), found {int(targets.max())}")
    return calib


def _classes(spec: TensorSpec) -> int | None:
    """N for a class-score output: 2-D (batch, N) float with N > 1 known; else None."""
    if len(spec.shape) != 2 or not spec.dtype.startswith(("float", "bfloat")):
        return None
    n = spec.shape[1]
    return n if isinstance(n, int) and n > 1 else None


def check_labels(calib: CalibrationSet, outputs: tuple[TensorSpec, ...]) -> None:
    """labels.txt must name every class of a class-score output (a 2-D (batch, N) float output),
    and targets.npy's ids must be < N. Accuracy is measured on the first output."""
    where = calib.path / LABELS_FILE
    two_d = [o for o in outputs if len(o.shape) == 2 and o.dtype.startswith(("float", "bfloat"))]
    unknown = [o for o in two_d if _classes(o) is None and not isinstance(o.shape[1], int)]
    if calib.labels:
        n = len(calib.labels)
        if not any(_classes(o) == n for o in outputs) and not unknown:
            found = [f"'{o.name}' {tuple(o.shape)}" for o in outputs if _classes(o) is not None]
            if found:
                raise InputError(
                    f"{where}: has {n} class names, but the model's class-score output {' / '.join(found)} has "
                    f"{_classes(next(o for o in outputs if _classes(o) is not None))} classes; write one name per class"
                )
            shown = ", ".join(f"'{o.name}' {tuple(o.shape)}" for o in outputs)
            raise InputError(
                f"{where}: has {n} class names, but the model has no class-score output (a 2-D (batch, classes) float output; "
                f"its outputs are {shown}); remove {LABELS_FILE}"
            )
    if calib.targets is not None and len(calib.targets) and outputs:
        n = len(calib.labels) if calib.labels else _classes(outputs[0])
        if n is not None and calib.targets.max() >= n:
            raise InputError(
                f"{calib.path / TARGETS_FILE}: class id {int(calib.targets.max())} is out of range; the model's output "
                f"'{outputs[0].name}' has {n} classes (ids 0..{n - 1})"
            )
