"""torch.export -> run_decompositions -> ct.convert(mlprogram), with explicit I/O types."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ConfigError, ConversionError, UnsupportedOpError
from ...types import Preprocess
from ..._coremltools import coremltools, no_progress_bars

TARGETS = ("iOS16", "iOS17", "iOS18")


def image_scale_bias(pp: Preprocess, where: str) -> tuple[float, list[float]]:
    """Core ML's ImageType computes scale * pixel + bias[c]: one scale for all channels."""
    if len(set(pp.std)) != 1:
        raise ConfigError(
            f"{where}: Core ML's ImageType has one scale for all channels, but the std differs per channel {list(pp.std)}; "
            "set image_input = false in the profile (the app then normalises), or use one std"
        )
    scale = pp.scale / pp.std[0]
    return scale, [-m / s for m, s in zip(pp.mean, pp.std, strict=True)]


def unsupported_source(source) -> ConversionError:
    return ConversionError(
        f"{source.spec}: unsupported source for Core ML (a {source.kind} model; coremltools dropped ONNX input in 6.0); "
        "supported: a PyTorch .pt2 file or a Python entry point 'package.module:function'"
    )


def convert(source, *, precision: str, target: str, io_dtype: str, image: Preprocess | None, labels: list[str] | None) -> Any:
    ct = coremltools()
    where = source.spec
    try:
        ep = source.exported_program()
    except ConversionError:
        raise unsupported_source(source) from None
    np_io = np.float16 if io_dtype == "fp16" else np.float32
    inputs = []
    for t in source.inputs:
        if image is not None and len(t.shape) == 4:
            scale, bias = image_scale_bias(image, where)
            layout = {"gray": ct.colorlayout.GRAYSCALE, "rgb": ct.colorlayout.RGB, "bgr": ct.colorlayout.BGR}[image.channels]
            inputs.append(ct.ImageType(name=t.name, shape=t.static_shape(), scale=scale, bias=bias, color_layout=layout, channel_first=True))
        else:
            inputs.append(ct.TensorType(name=t.name, shape=t.static_shape(), dtype=np_io))
    outputs = [ct.TensorType(name=t.name, dtype=np_io) for t in source.outputs]
    kwargs = {}
    if labels and len(source.outputs) == 1:
        kwargs["classifier_config"] = ct.ClassifierConfig(class_labels=list(labels))
        outputs = None  # a classifier names its own outputs (label and probabilities)
    try:
        with no_progress_bars():
            return ct.convert(
                ep.run_decompositions({}),
                convert_to="mlprogram",
                minimum_deployment_target=getattr(ct.target, target),
                compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                inputs=inputs,
                outputs=outputs,
                **kwargs,
            )
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "not implemented" in msg.lower() or "unsupported" in msg.lower():
            op = msg.split("'")[1] if msg.count("'") >= 2 else "?"
            raise UnsupportedOpError(op, "coreml", f"{where}: coremltools cannot convert op '{op}' to Core ML ({msg})") from exc
        raise ConversionError(f"{where}: coremltools conversion failed ({msg})") from exc
