"""Read a .keras file for `edgepack inspect` without Keras or TensorFlow.

A .keras file is a zip: config.json (the model's layers and their wiring), metadata.json (the
Keras version) and model.weights.h5. The config gives the inputs (InputLayer batch shapes), the
output layers, and a histogram of layer classes; the weight dtypes come from the .h5 when h5py
(a Keras dependency) is installed. Nothing here runs the model, so no custom code is executed.
Output shapes are derived for the common head layers (Dense, activations); others show unknown.
"""
from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..inspect import Inspection, quantization_summary, register_inspector
from ..types import TensorSpec

# layers whose output shape is their input shape
_SAME_SHAPE = {"Activation", "ReLU", "Softmax", "LeakyReLU", "ELU", "PReLU", "Dropout", "BatchNormalization", "LayerNormalization", "Rescaling", "Identity"}
_MAX_CONFIG = 64 * 2**20


def _dims(shape) -> tuple:
    return tuple(d if isinstance(d, int) else None for d in (shape or ()))


def _dtype(cfg: dict[str, Any], default: str = "float32") -> str:
    d = cfg.get("dtype")
    if isinstance(d, dict):  # a DTypePolicy
        d = (d.get("config") or {}).get("name")
    return d if isinstance(d, str) and d else default


def _layers(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [layer for layer in (model.get("config") or {}).get("layers") or [] if isinstance(layer, dict)]


def _name(layer: dict[str, Any]) -> str:
    return str(layer.get("name") or (layer.get("config") or {}).get("name") or "?")


def _refs(spec) -> list[str]:
    """input_layers/output_layers: ['name', 0, 0] or a list of those."""
    if isinstance(spec, list) and spec and isinstance(spec[0], str):
        return [spec[0]]
    return [s[0] for s in spec or [] if isinstance(s, list) and s and isinstance(s[0], str)]


def _input_shape(layer: dict[str, Any]) -> tuple:
    """The layer's (first) input shape: its build_config, else the tensor its first call received."""
    shape = (layer.get("build_config") or {}).get("input_shape")
    if shape is None:
        try:
            arg = layer["inbound_nodes"][0]["args"][0]
            shape = (arg[0] if isinstance(arg, list) else arg)["config"]["shape"]
        except (KeyError, IndexError, TypeError):
            shape = None
    return _dims(shape) if isinstance(shape, list) and all(d is None or isinstance(d, int) for d in shape) else ()


def _output_shape(layer: dict[str, Any]) -> tuple:
    cfg = layer.get("config") or {}
    shape = _input_shape(layer)
    if layer.get("class_name") == "Dense" and shape and isinstance(cfg.get("units"), int):
        return (*shape[:-1], cfg["units"])
    if layer.get("class_name") in _SAME_SHAPE:
        return shape
    return ()


def read_keras_config(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """(config.json, metadata.json, weight dtypes) of a .keras zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise InputError(f"{path}: not a Keras v3 file (no config.json inside); save it with model.save('model.keras')")
            if zf.getinfo("config.json").file_size > _MAX_CONFIG:
                raise InputError(f"{path}: its config.json is larger than 64 MB; this is not a model edgepack reads")
            config = json.loads(zf.read("config.json").decode("utf-8"))
            meta = json.loads(zf.read("metadata.json").decode("utf-8")) if "metadata.json" in names else {}
            weights = _weight_dtypes(zf) if "model.weights.h5" in names else {}
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a .keras file (not a readable zip: {exc}); save it with model.save('model.keras')") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: its config.json is not valid JSON ({exc}); save the model again") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: its config.json is not a model config; save the model again")
    return config, meta if isinstance(meta, dict) else {}, weights


def _weight_dtypes(zf: zipfile.ZipFile) -> dict[str, int]:
    try:
        import h5py
    except ImportError:
        return {}
    out: Counter = Counter()
    try:  # h5py reads the member through a seekable zip stream: only the headers it needs
        with zf.open("model.weights.h5") as member, h5py.File(member, "r") as f:

            def visit(_name, obj):
                if isinstance(obj, h5py.Dataset):
                    out[str(obj.dtype)] += 1

            f.visititems(visit)
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile):
        return {}
    return dict(out)


@register_inspector(".keras")
def inspect_keras(path: Path) -> Inspection:
    config, meta, weights = read_keras_config(path)
    layers = _layers(config)
    by_name = {_name(layer): layer for layer in layers}
    cfg = config.get("config") or {}
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    if config.get("class_name") == "Sequential":
        first = layers[0] if layers else {}
        if first.get("class_name") == "InputLayer":
            fc = first.get("config") or {}
            inputs.append(TensorSpec(_name(first), _dims(fc.get("batch_shape") or fc.get("batch_input_shape")), _dtype(fc)))
        elif cfg.get("build_input_shape"):
            inputs.append(TensorSpec("input", _dims(cfg["build_input_shape"]), _dtype(cfg)))
        body = [la for la in layers if la.get("class_name") != "InputLayer"]
        if body:
            outputs.append(TensorSpec(_name(body[-1]), _output_shape(body[-1]), _dtype(body[-1].get("config") or {})))
    else:
        for n in _refs(cfg.get("input_layers")):
            lc = (by_name.get(n) or {}).get("config") or {}
            inputs.append(TensorSpec(n, _dims(lc.get("batch_shape") or lc.get("batch_input_shape")), _dtype(lc)))
        for n in _refs(cfg.get("output_layers")):
            layer = by_name.get(n) or {}
            outputs.append(TensorSpec(n, _output_shape(layer), _dtype(layer.get("config") or {})))
    hist = dict(Counter(str(la.get("class_name", "?")) for la in layers if la.get("class_name") != "InputLayer").most_common())
    details: dict[str, Any] = {
        "model_class": config.get("class_name"),
        "keras_version": meta.get("keras_version"),
        "layers": len(layers),
    }
    if any(len(t.shape) == 4 for t in inputs):
        details["layout"] = "nhwc"  # Keras' channels_last; edgepack keeps it (see keras_source)
    if not all(t.shape for t in outputs):
        details["note"] = "output shapes are known only for Dense and activation heads without loading the model"
    return Inspection(
        path=path,
        kind=f"Keras model (.keras, Keras {meta.get('keras_version', '?')})",
        size_bytes=path.stat().st_size,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        op_histogram=hist,
        weight_dtypes=weights,
        quantization=quantization_summary(weights, hist),
        details=details,
    )
