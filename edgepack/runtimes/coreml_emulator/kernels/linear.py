"""Matrix products: linear, matmul, einsum, and iOS18 scaled_dot_product_attention
(coremltools' value_inference: numpy matmul/einsum; softmax(Q K^T / sqrt(E) + mask) V)."""
from __future__ import annotations

from ._bound import use_value_inference

use_value_inference("linear", "matmul", "einsum", "scaled_dot_product_attention")
