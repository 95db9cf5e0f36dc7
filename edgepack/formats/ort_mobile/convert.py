"""ONNX -> ORT format (.ort) for a mobile target platform, plus the reduced-build operator config."""
from __future__ import annotations

from pathlib import Path

from ...errors import ConversionError, require

CONFIG_SUFFIX = ".required_operators_and_types.config"


def to_ort(onnx_path: Path, ort_path: Path, *, target_platform: str, optimization: str) -> Path:
    """Save `onnx_path` as an ORT-format model; return the operator config written beside it.

    For arm, the NCHWc layout transformer is disabled (x86-only kernels) and int8 QDQ stays
    int8 (`session.qdqisint8allowed`), as ONNX Runtime's own converter does for mobile.
    """
    ort = require("onnxruntime", "onnx", "Converting to the ORT format")
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[optimization]
    so.optimized_model_filepath = str(ort_path)
    so.log_severity_level = 3
    so.add_session_config_entry("session.save_model_format", "ORT")
    so.add_session_config_entry("session.qdqisint8allowed", "1" if target_platform == "arm" else "0")
    disabled = ["NchwcTransformer"] if target_platform == "arm" and optimization == "all" else None
    try:
        ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)
    except Exception as exc:
        raise ConversionError(f"{onnx_path.name}: ONNX Runtime could not convert it to .ort ({str(exc).splitlines()[0]})") from exc

    import logging

    from onnxruntime.tools.ort_format_model import create_config_from_models

    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)

    config = ort_path.with_name(ort_path.stem + CONFIG_SUFFIX)
    create_config_from_models([ort_path], config, True)
    # The config's header lists the models it came from by their full path (here, the work folder's);
    # keep the file name only, so that the same model gives the same config wherever it was built.
    text = config.read_text(encoding="utf-8").replace(str(ort_path), ort_path.name)
    config.write_text(text, encoding="utf-8")
    return config
