"""Activation quantisation for W8A8 programs: quantize and dequantize (iOS17).

quantize uses coremltools' value_inference (x / scale, rounded half to even, + zero_point,
clipped to the integer range); dequantize uses coremltools' own materialized_val_inference
((q - zero_point) * scale), run on the runtime values.
"""
from __future__ import annotations

from ._bound import use_materialized_val_inference, use_value_inference

use_value_inference("quantize")
use_materialized_val_inference("dequantize")
