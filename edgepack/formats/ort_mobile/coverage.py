"""Mobile execution-provider coverage from ONNX Runtime's usability checker.

For each EP (NNAPI on Android, CoreML on iOS) it reports the share of nodes the EP can take,
how many partitions the graph splits into, and which op types it leaves on the CPU.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ...errors import require


def ep_coverage(onnx_path: Path, eps: list[str]) -> dict[str, Any]:
    """Coverage for each EP in `eps` ("nnapi", "coreml"); empty when none are asked for."""
    if not eps:
        return {}
    require("onnxruntime", "onnx", "Checking mobile EP coverage")
    logging.getLogger("usability_checker").setLevel(logging.ERROR)
    from onnxruntime.tools.mobile_helpers import usability_checker as uc

    try:
        model = _with_shapes(onnx_path)
    except Exception as exc:  # its shape inference crashes on some graphs (e.g. Resize + Concat); the report says so
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {ep: {"error": f"ONNX Runtime's usability checker failed: {reason}"} for ep in eps}
    checks = {
        "nnapi": lambda: uc.check_nnapi_partitions(model, True),
        "coreml": lambda: uc.check_coreml_partitions(model, True, "coreml_supported_mlprogram_ops.md"),
    }
    out: dict[str, Any] = {}
    for ep in eps:
        check = checks[ep]
        try:
            info = check()
        except Exception as exc:  # the checker is a best-effort tool; report, don't fail the build
            out[ep] = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
            continue
        share = info.num_supported_nodes / info.num_nodes if info.num_nodes else 0.0
        out[ep] = {
            "nodes": info.num_nodes,
            "supported_nodes": info.num_supported_nodes,
            "share": round(share, 4),
            "partitions": info.num_partitions,
            "unsupported_ops": sorted(info.unsupported_ops),
            "suitability": info.suitability().name,
        }
    return out


def _with_shapes(onnx_path: Path):
    """The model with inferred value infos, as the checker wants it. (ORT's own ModelProtoWithShapeInfo
    does the same, but prints an 'Exception ignored in __del__' traceback when inference fails.)"""
    onnx = require("onnx", "onnx", "Checking mobile EP coverage")
    return onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)), strict_mode=True)


def coverage_notes(cov: dict[str, Any]) -> list[str]:
    names = {"nnapi": "NNAPI EP (Android)", "coreml": "CoreML EP, ML Program (iOS)"}
    notes = []
    for ep, info in cov.items():
        if "error" in info:
            notes.append(f"{names.get(ep, ep)}: coverage unknown ({info['error']})")
            continue
        left = f"; left on CPU: {', '.join(info['unsupported_ops'])}" if info["unsupported_ops"] else ""
        notes.append(
            f"{names.get(ep, ep)}: {info['share']:.0%} of {info['nodes']} nodes in {info['partitions']} partition(s), "
            f"suitability {info['suitability']}{left}"
        )
    return notes
