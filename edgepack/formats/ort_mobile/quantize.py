"""fp16 and static int8 (QDQ) variants of an ONNX model, calibrated with edgepack's samples."""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

from ...errors import ConversionError, require
from ...profiles import QuantSettings
from ...types import Sample


def to_fp16(src: Path, dest: Path) -> None:
    onnx = require("onnx", "onnx", "Making an fp16 ONNX model")
    require("onnxruntime", "onnx", "Making an fp16 ONNX model")
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = onnx.load(str(src))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            half = convert_float_to_float16(model, keep_io_types=True)
            OnnxModel(half).topological_sort()  # the converter appends its I/O casts at the end
    except Exception as exc:
        raise ConversionError(f"{src.name}: fp16 conversion failed ({str(exc).splitlines()[0]})") from exc
    onnx.save(half, str(dest))


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over edgepack samples."""

    def __init__(self, names: dict[str, str], progress_iter: Iterator[Sample]):
        self._it = progress_iter
        self._names = names

    def get_next(self):
        s = next(self._it, None)
        return None if s is None else {self._names[k]: v for k, v in s.items()}

    def rewind(self):  # not needed by MinMax/Entropy/Percentile collection in one pass
        pass


# Per-channel DequantizeLinear (its `axis` attribute) exists from opset 13 on. ORT's quantiser writes it
# whatever the model's opset, so an opset 11/12 model (typical of paddle2onnx exports) would give an
# int8 model that ONNX Runtime refuses to load ("Unrecognized attribute: axis").
PER_CHANNEL_MIN_OPSET = 13


def default_opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade_for_per_channel(src: Path, dest: Path) -> str | None:
    """Convert `src` to opset 13 at `dest` when its opset is older; return a route step, or None when
    `src` is already new enough (nothing written)."""
    onnx = require("onnx", "onnx", "Quantising ONNX models")
    model = onnx.load(str(src))
    old = default_opset(model)
    if old >= PER_CHANNEL_MIN_OPSET:
        return None
    from onnx import version_converter

    try:
        newer = version_converter.convert_version(model, PER_CHANNEL_MIN_OPSET)
    except Exception as exc:
        raise ConversionError(
            f"{src.name}: per-channel int8 needs opset {PER_CHANNEL_MIN_OPSET}, and converting this opset {old} model failed "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); set per_channel = false under [quantization], "
            f"or re-export the model at opset {PER_CHANNEL_MIN_OPSET} or later"
        ) from exc
    onnx.save(newer, str(dest))
    return f"opset {old} -> {PER_CHANNEL_MIN_OPSET} (per-channel DequantizeLinear)"


def to_int8_qdq(src: Path, dest: Path, *, samples: list[Sample], quant: QuantSettings, input_names: dict[str, str], track) -> str | None:
    """Static int8 QDQ: quant_pre_process, then quantize_static with the chosen calibration method.
    Returns an extra route step when the model had to be upgraded first, else None."""
    require("onnxruntime", "onnx", "Quantising ONNX models")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    upgraded = None
    if quant.per_channel:
        newer = dest.with_name(dest.stem + ".opset13.onnx")
        upgraded = upgrade_for_per_channel(src, newer)
        if upgraded is not None:
            src = newer
    pre = dest.with_name(dest.stem + ".pre.onnx")
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
    except Exception:
        pre = src  # pre-processing is an optimisation; quantising the plain model is still correct
    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[quant.method]
    reader = _Reader(input_names, iter(track(samples, len(samples), f"calibrating ({quant.method})")))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(pre),
                str(dest),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=quant.per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
                extra_options={"CalibPercentile": quant.percentile, "ActivationSymmetric": False, "WeightSymmetric": True},
            )
    except Exception as exc:
        raise ConversionError(f"{src.name}: int8 quantisation failed ({str(exc).splitlines()[0]})") from exc
    return upgraded
