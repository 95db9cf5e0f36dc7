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


def to_int8_qdq(src: Path, dest: Path, *, samples: list[Sample], quant: QuantSettings, input_names: dict[str, str], track) -> None:
    """Static int8 QDQ: quant_pre_process, then quantize_static with the chosen calibration method."""
    require("onnxruntime", "onnx", "Quantising ONNX models")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

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
