"""What a cell's cache key is made of.

    key = sha256(canonical JSON of {
        model:        the source model's content digest (file, folder, or an entry point's module file),
        calibration:  the calibration folder's content digest, and the split this target makes of it,
        shapes:       the static input shapes the build resolved,
        profile:      the target's resolved settings that the cell uses (this format, this precision),
        options:      build options that change results (latency timed or not, diagnosis),
        versions:     edgepack's version and a digest of its own code, and the version of every tool
                      a cell may touch (converters, runtimes, numpy),
    })

Everything is content, never a path or a time, so two machines with the same inputs and the same
tools compute the same key and can share a cache. Over-inclusion is safe (a change of any listed
tool invalidates every cell); under-inclusion would reuse a stale artifact, so when in doubt a
part goes in.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..files import file_sha256
from .digest import settings_digest, tree_digest

# Every distribution whose version can change what a cell builds or measures.
TOOLS = (
    "numpy", "torch", "onnx", "onnxruntime", "onnxscript", "ai-edge-litert", "litert-torch",
    "ai-edge-quantizer", "litert-converter", "coremltools", "tensorflow-cpu", "tensorflow", "keras",
    "tf2onnx", "scikit-learn", "pillow", "ml_dtypes", "flatbuffers", "protobuf",
)
_ENTRY = re.compile(r"^(?P<mod>[\w./\\-]+?)(?P<py>\.py)?:(?P<fn>\w+)$")


@lru_cache(maxsize=1)
def tool_versions() -> dict[str, str]:
    out = {}
    for dist in TOOLS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of edgepack's own Python files and shipped profiles: an edited checkout (same version
    number) never reuses cells built by other code."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + file_sha256(path).encode())
    return h.hexdigest()


def model_digest(spec: str) -> str | None:
    """The content digest of a model spec: a file or folder by its bytes; an entry point
    (`models/net.py:build` or `pkg.mod:build`) by its module file. None when it cannot be found
    without running code (the build then goes uncached)."""
    path = Path(spec)
    if path.exists():
        return tree_digest(path)
    m = _ENTRY.match(spec)
    if not m:
        return None
    mod = m["mod"]
    file = Path(mod + ".py") if m["py"] or "/" in mod or os.sep in mod else None
    if file is None:
        try:
            found = importlib.util.find_spec(mod)
        except (ImportError, ValueError):
            return None
        file = Path(found.origin) if found is not None and found.origin and found.origin.endswith(".py") else None
    if file is None or not file.is_file():
        return None
    return "entry:" + m["fn"] + ":" + file_sha256(file)


def cell_profile(profile_json: dict[str, Any], fmt: str, precision: str) -> dict[str, Any]:
    """The part of a resolved profile that one cell uses: its format's options with only this
    precision, this precision's tolerances, and every other setting; not the file's path or prose."""
    out = {k: v for k, v in profile_json.items() if k not in ("path", "description", "formats", "tolerances")}
    spec = dict(profile_json.get("formats", {}).get(fmt, {}))
    spec["precisions"] = [precision]
    if spec.get("recipe"):  # an int8_auto recipe file: its content decides the artifact, not its path
        from ..quantize_search.recipe import recipe_digest

        spec["recipe"] = recipe_digest(spec["recipe"])
    out["format"] = {fmt: spec}
    out["tolerance"] = (profile_json.get("tolerances") or {}).get(precision)
    return out


def cell_key(base: dict[str, Any], profile_json: dict[str, Any], fmt: str, precision: str, split: tuple[list[int], list[int]]) -> str:
    """`base`: the build-wide parts (model, calibration, shapes, options); see the module docstring."""
    parts = {
        **base,
        "profile": cell_profile(profile_json, fmt, precision),
        "split": {"calibration": list(split[0]), "validation": list(split[1])},
        "versions": {"edgepack_code": code_digest(), **tool_versions()},
        "layout": 1,
    }
    return settings_digest(parts)


def model_key(base: dict[str, Any]) -> str:
    """The key of the model-description entry that lets a fully cached build skip loading the model."""
    return settings_digest({"model-info": base, "versions": {"edgepack_code": code_digest(), **tool_versions()}})


def rebuild_record(model: str, calibration: str | Path, profiles, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """What report.json records so that a build can be repeated and audited: the inputs' digests,
    the settings' digests, every tool's version, and the seeds and process settings that fix the
    output's bytes. `base`: a CellCache's key parts, when it has digested the inputs already."""
    from ..pipeline.layout import fixed_layout_command

    _, env = fixed_layout_command(["python"])
    return {
        "model_sha256": (base or {}).get("model") or model_digest(str(model)),
        "calibration_sha256": (base or {}).get("calibration") or tree_digest(Path(calibration)),
        "profiles_sha256": {p.name: settings_digest({k: v for k, v in p.to_json().items() if k not in ("path", "description")}) for p in profiles},
        "edgepack_code_sha256": code_digest(),
        "tool_versions": tool_versions(),
        "seeds": {"calibration_split": 0, "PYTHONHASHSEED": env.get("PYTHONHASHSEED")},
        "ort_saver_address_layout": "fixed (setarch -R)" if env else "randomised (EDGEPACK_REPRODUCIBLE=0)",  # the .ort save process (formats/ort_mobile/convert.py)
    }
