"""Compressed weights: every constexpr_* op, iOS16 and iOS18 variants.

The interpreter materialises these once, when a program is loaded, through coremltools' own
decompression (`materialized_val_inference`) run on the raw stored values, exactly as coremltools
reads them back. The iOS18 sparse ops (constexpr_lut_to_sparse,
constexpr_sparse_blockwise_shift_scale) give two outputs, a mask and the non-zero values, which a
following constexpr_sparse_to_dense turns into the dense weight.
"""
from __future__ import annotations

from ._bound import use_materialized_val_inference

CONSTEXPR_OPS = (
    "constexpr_affine_dequantize",  # iOS16: int8/uint8 data, per-tensor or per-axis scale/zero point
    "constexpr_blockwise_shift_scale",  # iOS18: int4/int8/... data, per-block scale and offset
    "constexpr_lut_to_dense",  # iOS16 and iOS18: palettised (look-up table) weights
    "constexpr_sparse_to_dense",  # iOS16 and iOS18: pruned weights
    "constexpr_cast",  # iOS16 and iOS18: fp16 -> fp32 weights
    "constexpr_lut_to_sparse",  # iOS18: palettised + pruned
    "constexpr_sparse_blockwise_shift_scale",  # iOS18: quantised + pruned
)

use_materialized_val_inference(*CONSTEXPR_OPS)
