"""Remaking the file an artifact was made from, when its runtime needs it for a diagnosis.

An .ort cannot be opened with extra outputs; the ONNX it was saved from lives only in the build's
work folder. `edgepack diagnose` on a shipped .ort rebuilds that cell (same format, precision,
profile settings and calibration split, so the same calibration samples) into a temporary folder
and diagnoses the rebuilt ONNX; a note says so. A different profile or calibration set than the
build's gives different int8 ranges: pass the build's --target and calibration data.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import ConversionError
from ..formats.base import FormatJob, format_for_file
from ..progress import Silent


def rebuilder(source, profile, calibration_samples, precision: str, keep: list):
    """rebuild(path, runtime) -> folder holding the rebuilt cell's files (kept alive by `keep`)."""

    def rebuild(path: Path, runtime: str) -> Path:
        fmt = format_for_file(Path(path))
        if fmt is None:
            raise ConversionError(f"{path}: no format plug-in reads it, so it cannot be rebuilt for diagnosis")
        spec = next((f for f in profile.formats if f.name == fmt.name), None)
        options = {k: o.default for k, o in fmt.options.items()} | (dict(spec.options) if spec else {})
        tmp = tempfile.TemporaryDirectory(prefix="edgepack-diagnose-")
        keep.append(tmp)
        job = FormatJob(
            source=source,
            precisions=(precision,),
            options=options,
            quantization=profile.quantization,
            calibration=calibration_samples,
            workdir=Path(tmp.name),
            stem=Path(path).name.split(".")[0],
            progress=Silent(),
        )
        built = list(fmt().build(job))
        for artifact in built:  # the rebuilt artifact keeps the name the runtime looks for
            target = Path(tmp.name) / Path(path).name
            if Path(artifact.path) != target and not target.exists():
                Path(artifact.path).rename(target)
        return Path(tmp.name)

    return rebuild

