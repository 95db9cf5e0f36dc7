"""Assets for the Android demo app: the artifacts of one target, its manifest and golden vectors.

Golden vectors let the app prove on the device that it computes what edgepack validated: for a
few held-out samples they hold the picture, the tensor edgepack's own preprocessing makes of it,
the buffer each artifact consumed (its dtype and layout), and what the artifact's runtime gave.
"""
from __future__ import annotations

import dataclasses

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import CalibrationSet
from .errors import ConfigError
from .preprocess import load_image_pixels, pixels_to_tensor
from .report.manifest import MANIFEST_SCHEMA_VERSION
from .profiles import TargetProfile
from .report.manifest import manifest_json
from .runtimes.base import get_runtime
from .sources.base import Source
from .types import BuildReport, Preprocess

GOLDEN_FILE = "golden.json"
GOLDEN_CASES = 3


def tensor_to_pixels(x: np.ndarray, pp: Preprocess) -> np.ndarray:
    """Invert the preprocessing: a (1, ...) float tensor -> uint8 pixels (H, W, C)."""
    hwc = x[0].transpose(1, 2, 0) if pp.layout == "nchw" else x[0]
    raw = (hwc * np.asarray(pp.std, np.float32) + np.asarray(pp.mean, np.float32)) / np.float32(pp.scale)
    return np.clip(np.rint(raw), 0, 255).astype(np.uint8)


def _tensor_json(name: str, arr: np.ndarray) -> dict[str, Any]:
    flat = arr.reshape(-1)
    data = flat.tolist() if arr.dtype.kind in "iub" else [float(v) for v in flat.astype(np.float64)]
    return {"name": name, "shape": list(arr.shape), "dtype": arr.dtype.name, "data": data}


def _save_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    img = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    Image.fromarray(img).save(path)


def _golden_inputs(source: Source, calib: CalibrationSet, indices: list[int], dest: Path) -> list[dict[str, Any]]:
    """Per case: the image file (if the model takes pictures) and the source-side feeds."""
    pp = calib.preprocess
    image_model = pp is not None and len(source.inputs) == 1 and len(source.inputs[0].shape) == 4
    cases = []
    for n, i in enumerate(indices):
        feeds = dict(calib.samples[i])
        image = None
        if image_model:
            name = source.inputs[0].name
            if calib.kind == "images":
                pixels = load_image_pixels(Path(calib.origins[i]), pp)
            else:
                pixels = tensor_to_pixels(feeds[name], pp)
            if pp.channels == "bgr":
                pixels = pixels[:, :, ::-1]  # PNGs are stored RGB
            image = f"golden_{n}.png"
            _save_png(pixels, dest / image)
            if pp.channels == "bgr":
                pixels = pixels[:, :, ::-1]
            feeds[name] = pixels_to_tensor(pixels, pp)  # exactly what the app must reproduce
        label = int(calib.targets[i]) if calib.targets is not None else None
        cases.append({"image": image, "label": label, "feeds": feeds})
    return cases


def _tolerance(scores: list[np.ndarray], quant: dict | None, host_error: float) -> float:
    """What a device's run of the same artifact may differ by from the host's: float rounding, one
    output quantum, or, for artifacts that quantise inside, half the error the host run showed
    against the source model (arm and x86 integer kernels may round requantisation differently).
    Preprocessing and layout mistakes are caught exactly at the input buffer, before this."""
    absmax = max(float(np.abs(s).max()) for s in scores)
    tol = max(1e-4, 1e-3 * max(1.0, absmax))
    if quant and quant.get("scale"):
        tol = max(tol, 1.01 * max(quant["scale"]))
    return max(tol, 0.5 * host_error)


def export_android_assets(
    report: BuildReport,
    calib: CalibrationSet,
    source: Source,
    profiles: list[TargetProfile],
    built: Path,
    dest: Path,
    target: str | None,
) -> dict[str, Any]:
    """Write the assets into `dest` (a staging folder). `built` is the build's own output folder."""
    target = target or profiles[0].name
    profile = next((p for p in profiles if p.name == target), None)
    if profile is None:
        raise ConfigError(f"--android-target {target!r} is not one of this build's targets: {', '.join(p.name for p in profiles)}")
    results = [r for r in report.artifacts if r.target == target and get_runtime(r.artifact.runtime).android_library]
    if not results:
        raise ConfigError(f"target {target!r} has no artifact that an Android app can run; add an ort or tflite format to it")
    _, val_idx = calib.split(profile.validation.split, profile.validation.max_samples, profile.quantization.calibration_samples)
    cases = _golden_inputs(source, calib, val_idx[:GOLDEN_CASES], dest)

    golden_artifacts = []
    for r in results:
        shutil.copyfile(built / r.file, dest / Path(r.file).name)
        session = get_runtime(r.artifact.runtime).open(
            built / r.file, threads=1, source_inputs=source.inputs, source_outputs=source.outputs
        )
        per_case = []
        from .arm64.emulate import arm64_goldens  # what the phone computes: the arm64 run, where the profile emulates one

        arm = arm64_goldens(profile, dataclasses.replace(r.artifact, path=built / r.file), session, [c["feeds"] for c in cases])
        for k, case in enumerate(cases):
            raw_in = session.raw_feeds(case["feeds"])
            raw_out = session.run_raw(raw_in) if arm is None else arm[0][k]
            scores = session.run(case["feeds"]) if arm is None else arm[1][k]
            per_case.append(
                {
                    "inputs": [_tensor_json(b.name, np.asarray(raw_in[b.name])) for b in session.inputs],
                    "outputs": [_tensor_json(b.name, np.asarray(o)) for b, o in zip(session.outputs, raw_out, strict=True)],
                    "scores": [float(v) for v in np.asarray(scores[0], np.float64).reshape(-1)],
                    "top1": int(np.asarray(scores[0]).reshape(-1).argmax()),
                    "_scores": scores,
                }
            )
        tol = _tolerance([c.pop("_scores")[0] for c in per_case], session.outputs[0].quantization, r.parity.outputs[0].max_abs)
        golden_artifacts.append({"file": Path(r.file).name, "tolerance": {"max_abs": tol}, "results": per_case, "computed_on": arm[2] if arm else "measured-host"})

    golden = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "model": report.model["name"],
        "target": target,
        "cases": [
            {
                "image": c["image"],
                "label": c["label"],
                "inputs": [_tensor_json(t.name, np.asarray(c["feeds"][t.name])) for t in source.inputs],
            }
            for c in cases
        ],
        "artifacts": golden_artifacts,
    }
    (dest / GOLDEN_FILE).write_text(json.dumps(golden) + "\n", encoding="utf-8")

    manifest = manifest_json(report, calib)
    chosen = {r.file for r in results}
    manifest["target"] = target
    manifest["golden"] = GOLDEN_FILE
    manifest["artifacts"] = [
        a | {"file": Path(a["file"]).name, "android_library": get_runtime(a["runtime"]).android_library} | _recipe_in_assets(a, built, dest)
        for a in manifest["artifacts"]
        if a["file"] in chosen
    ]
    passing = [a for a in manifest["artifacts"] if a["parity_passed"]] or manifest["artifacts"]
    manifest["default_artifact"] = min(passing, key=lambda a: a["size_bytes"])["file"]
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _recipe_in_assets(entry: dict[str, Any], built: Path, dest: Path) -> dict[str, Any]:
    """An int8_auto artifact's recipe, copied beside it into the assets, its manifest entry naming
    the copy (the app ships what reproduces its model)."""
    auto = entry.get("int8_auto")
    if not auto or not auto.get("recipe_file"):
        return {}
    src = built / auto["recipe_file"]
    if src.is_file():
        shutil.copyfile(src, dest / src.name)
    return {"int8_auto": {**auto, "recipe_file": src.name}}
