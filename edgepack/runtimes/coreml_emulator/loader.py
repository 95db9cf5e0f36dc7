"""Read a saved Core ML model from disk and rebuild its ML program with its weights.

An `.mlpackage` is a folder: `Manifest.json` names the root model file (normally
`Data/com.apple.CoreML/model.mlmodel`, a `Model` protobuf) and the weights folder
(`Data/com.apple.CoreML/weights/weight.bin`). We read both from disk, as they ship, then let
coremltools' MIL-proto loader (`converters.mil.frontend.milproto.load.load`, an internal API)
rebuild the pymil Program. A plain `.mlmodel` file is read too (it can hold a neural network,
which is refused, or an ML program without external weights).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._coremltools import coremltools
from ...errors import ConversionError, InputError, require

TESTED_COREMLTOOLS = "9.0"  # the coremltools version whose internals this emulator was checked against

_PURPOSE = "Emulating Core ML"


@dataclass(frozen=True)
class PackageFiles:
    spec_file: Path
    weights_dir: Path | None


def package_files(path: Path) -> PackageFiles:
    """Where the model spec and the weights are inside `path` (.mlpackage folder or .mlmodel file)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such Core ML model")
    if path.is_file():
        return PackageFiles(path, None)
    manifest = path / "Manifest.json"
    if not manifest.is_file():
        raise InputError(f"{path}: not a Core ML package (no Manifest.json)")
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
        entries = info["itemInfoEntries"]
        root_path = entries[info["rootModelIdentifier"]]["path"]
        weights = [e["path"] for e in entries.values() if e.get("name") == "weights"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{manifest}: unreadable package manifest ({type(exc).__name__}: {exc})") from exc
    data = path / "Data"
    spec_file = data / root_path
    if not spec_file.is_file():
        raise InputError(f"{path}: the manifest names '{root_path}', which is not in the package")
    weights = [data / w for w in weights]
    weights_dir = next((w for w in weights if w.is_dir()), spec_file.parent / "weights")
    return PackageFiles(spec_file, weights_dir if weights_dir.is_dir() else None)


def read_spec(path: Path) -> tuple[Any, PackageFiles]:
    """The `Model` protobuf of a saved model, and where its files are."""
    files = package_files(path)
    coremltools(_PURPOSE)  # the quiet import; the submodules below are then plain imports
    proto = require("coremltools.proto.Model_pb2", "coreml", _PURPOSE)
    spec = proto.Model()
    try:
        spec.ParseFromString(files.spec_file.read_bytes())
    except Exception as exc:  # protobuf's DecodeError, or a truncated file
        raise InputError(f"{path}: the model spec cannot be parsed ({type(exc).__name__}: {exc})") from exc
    return spec, files


def load_program(path: Path) -> tuple[Any, Any]:
    """Rebuild the pymil Program (with its weights) of a saved ML program. Returns (program, spec)."""
    path = Path(path)
    spec, files = read_spec(path)
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise ConversionError(
            f"{path}: a '{kind}' Core ML model, not an ML program; the Core ML emulator runs only ML programs "
            "(convert with convert_to='mlprogram')"
        )
    milproto = require("coremltools.converters.mil.frontend.milproto.load", "coreml", _PURPOSE)
    try:
        program = milproto.load(spec, spec.specificationVersion, str(files.weights_dir or ""))
    except Exception as exc:
        raise ConversionError(
            f"{path}: coremltools cannot rebuild the ML program ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    return program, spec


def coremltools_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("coremltools")
    except PackageNotFoundError:
        from ...errors import MissingDependencyError

        raise MissingDependencyError("coremltools", "coreml", _PURPOSE) from None
