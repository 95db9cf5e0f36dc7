"""The precisions, each made from the float .tflite with ai-edge-quantizer (no TensorFlow needed).

| precision    | weights            | activations       | input / output |
|--------------|--------------------|-------------------|----------------|
| fp32         | float32            | float32           | float32        |
| fp16         | float16 (+DEQUANTIZE) | float32        | float32        |
| dynamic_int8 | int8 per channel   | float32, int8 on the fly inside FC/conv | float32 |
| int8         | int8               | int8 (static)     | float32 (QUANTIZE/DEQUANTIZE at the edges) |
| int8_io      | int8               | int8 (static)     | int8           |
| int16x8      | int8               | int16 (static)    | float32        |
| int16x8_io   | int8               | int16 (static)    | int16          |
| int8_auto    | int8               | int8, some int16 or float (auto.py) | float32 |

Static variants take activation ranges that calibrate.py computed from edgepack's samples; the
quantiser's moving-average calibrator is never run.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass

from ...errors import ConversionError, first_line, require
from ..._native import quiet_native


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # float | fp16 | dynamic | static
    activation_bits: int = 8
    integer_io: bool = False
    summary: str = ""


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("fp32", "float", summary="float32"),
        Variant("fp16", "fp16", summary="float16 weights (weight-only, DEQUANTIZE to float32)"),
        Variant("dynamic_int8", "dynamic", summary="dynamic-range int8: int8 weights, activations quantised on the fly"),
        Variant("int8", "static", 8, False, "full int8 (w8a8), float32 input/output"),
        Variant("int8_io", "static", 8, True, "full int8 (w8a8), int8 input/output"),
        Variant("int16x8", "static", 16, False, "int16 activations, int8 weights (16x8), float32 input/output"),
        Variant("int16x8_io", "static", 16, True, "int16 activations, int8 weights (16x8), int16 input/output"),
        Variant("int8_auto", "static", 8, False, "int8 (w8a8) with its own recipe of int16 / float fallbacks that meets the accuracy budget, float32 input/output"),
    )
}


def _quantizer(quantizer, float_model: bytes, recipe, reuse: dict | None):
    if reuse is not None and reuse.get("model") is float_model:
        q = reuse["quantizer"]
        q.load_quantization_recipe(recipe)
        return q
    q = quantizer.Quantizer(bytearray(float_model), recipe)
    if reuse is not None:
        reuse.update(model=float_model, quantizer=q)
    return q


def _recipe(v: Variant, per_channel: bool, float_scopes: tuple[str, ...] = (), layer_configs: tuple[tuple[str, str, str], ...] = ()):
    require("ai_edge_quantizer", "tflite", "Quantising .tflite models")
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    ops = qtyping.TFLOperationName
    granularity = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
    rm = recipe_manager.RecipeManager()
    if v.kind == "fp16":
        rm.add_quantization_config(
            ".*",
            ops.ALL_SUPPORTED,
            op_config=_fp16_weights(qtyping),
            algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
        )
    elif v.kind == "dynamic":
        rm.add_dynamic_config(".*", ops.ALL_SUPPORTED, num_bits=8, granularity=granularity)
    else:
        rm.add_static_config(".*", ops.ALL_SUPPORTED, activation_num_bits=v.activation_bits, weight_num_bits=8, weight_granularity=granularity)
        if not v.integer_io:  # keep float at the graph's edges: QUANTIZE in, DEQUANTIZE out
            for op in (ops.INPUT, ops.OUTPUT):
                rm.add_quantization_config(".*", op, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
        for scope, op_key, precision in layer_configs:  # int8_auto (auto.py): one op's fallback
            layer_config(rm, scope, op_key, precision, granularity)
        for scope in float_scopes:  # float_ops.py: ops whose integer form aborts or loses the signal
            rm.add_quantization_config(scope, ops.ALL_SUPPORTED, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    return rm.get_quantization_recipe()


def layer_config(rm, scope: str, op_key: str, precision: str, granularity) -> str:
    """Give the op whose scope is `scope` (its output tensor names, ';'-joined and ended) the
    precision "int16" (16-bit activations, int8 weights), "float_w8" (float compute, its weights
    int8 behind a DEQUANTIZE where it has weights) or "float" (not quantised). The quantiser
    silently skips a config an op does not support, so each is checked: int16 falls to float_w8,
    weight-only to no quantisation. Returns what the op gets."""
    from ai_edge_quantizer import algorithm_manager, qtyping

    ops = qtyping.TFLOperationName
    none = algorithm_manager.AlgorithmName.NO_QUANTIZE
    regex, key = "^" + re.escape(scope) + "$", ops(op_key)
    got = precision
    if got == "int16":
        rm.add_static_config(regex, ops.ALL_SUPPORTED, activation_num_bits=16, weight_num_bits=8, weight_granularity=granularity)
        algo, cfg = rm.get_quantization_configs(key, scope)
        act = cfg.activation_tensor_config
        got = "int16" if algo != none and act is not None and act.num_bits == 16 else "float_w8"
    if got == "float_w8":
        rm.add_weight_only_config(regex, ops.ALL_SUPPORTED, num_bits=8, granularity=granularity)
        algo, cfg = rm.get_quantization_configs(key, scope)
        ok = algo != none and cfg.compute_precision == qtyping.ComputePrecision.FLOAT and cfg.explicit_dequantize
        got = "float_w8" if ok else "float"
    if got == "float_w16":  # fp16 weights, DEQUANTIZE to float32 (the fp16 variant's config, for one op)
        cast = algorithm_manager.AlgorithmName.FLOAT_CASTING
        rm.add_quantization_config(regex, ops.ALL_SUPPORTED, op_config=_fp16_weights(qtyping), algorithm_key=cast)
        algo, _cfg = rm.get_quantization_configs(key, scope)
        got = "float_w16" if algo == cast else "float"
    if got == "float":
        rm.add_quantization_config(regex, ops.ALL_SUPPORTED, algorithm_key=none)
    for io_op in (ops.INPUT, ops.OUTPUT):  # the graph's edges stay float even where this scope names an output tensor
        rm.add_quantization_config(regex, io_op, algorithm_key=none)
    return got


def _fp16_weights(qtyping):
    return qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
        compute_precision=qtyping.ComputePrecision.FLOAT,
        explicit_dequantize=True,
    )


def make(
    float_model: bytes, v: Variant, *, per_channel: bool, qsvs: dict | None, where: str, float_scopes: tuple[str, ...] = (),
    layer_configs: tuple[tuple[str, str, str], ...] = (), reuse: dict | None = None,
) -> bytes:
    """The `v` variant of `float_model` as flatbuffer bytes; static variants keep the ops that
    `float_scopes` (recipe regexes) match in float32, and give each (scope, op key, precision) of
    `layer_configs` its int8_auto fallback (layer_config). `reuse`, a dict the caller keeps,
    holds one quantiser per float model across calls (int8_auto's candidates): the quantiser
    parses the model once and copies it, by views, for each quantisation."""
    if v.kind == "float":
        return float_model
    require("ai_edge_quantizer", "tflite", "Quantising .tflite models")
    from ai_edge_quantizer import quantizer

    for name in ("absl", "ai_edge_quantizer"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        q = _quantizer(quantizer, float_model, _recipe(v, per_channel, float_scopes, layer_configs), reuse)
        with quiet_native(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # its interpreters keep all tensors, and say so
            result = q.quantize(qsvs if v.kind == "static" else None, enable_progress_bar=False, enable_progress_report=False)
    except Exception as exc:
        first = first_line(exc)
        raise ConversionError(f"{where}: ai-edge-quantizer could not make the {v.name} variant ({first})") from exc
    return bytes(result.quantized_model)
