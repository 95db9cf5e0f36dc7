"""fp16 and static int8 (QDQ) variants of an ONNX model, calibrated with edgepack's samples."""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
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


def constants_to_initializers(src: Path, dest: Path) -> bool:
    """Write `src` with its tensor-valued Constant nodes as initializers; False (nothing written)
    when it has none. ONNX Runtime's quantiser quantises initializers only: a model whose weights
    are Constant nodes (paddle2onnx exports, e.g. PaddleOCR) kept every weight in float32 inside a
    Q/DQ pair, so its "int8" .ort was 0.96x the fp32 size."""
    onnx = require("onnx", "onnx", "Quantising ONNX models")
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    keep, moved = [], 0
    for node in graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and set(attrs) == {"value"} and len(node.output) == 1:
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(attrs["value"].t), node.output[0]))
            moved += 1
        else:
            keep.append(node)
    if not moved:
        return False
    del graph.node[:]
    graph.node.extend(keep)
    onnx.save(model, str(dest))
    return True


def prepare_for_int8(src: Path, dest: Path, *, per_channel: bool) -> tuple[Path, list[str]]:
    """The model that static int8 quantises: opset >= 13 for per-channel, Constant weights as
    initializers, then quant_pre_process (shape inference, BatchNormalization folded into Conv).
    Returns (path, extra route steps)."""
    steps = []
    if per_channel:
        newer = dest.with_name(dest.stem + ".opset13.onnx")
        upgraded = upgrade_for_per_channel(src, newer)
        if upgraded is not None:
            src = newer
            steps.append(upgraded)
    inits = dest.with_name(dest.stem + ".init.onnx")
    if constants_to_initializers(src, inits):
        src = inits
        steps.append("Constant weights -> initializers")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dest.with_name(dest.stem + ".pre.onnx").resolve()
    logging.getLogger().setLevel(logging.ERROR)
    for symbolic in (False, True):  # symbolic shape inference fails on some dims ("?"); ONNX's own then
        try:
            # where it fails, symbolic shape inference saves its partial model in the current folder
            # (sym_shape_infer_temp.onnx and a uuid-named .data file: 21 MB for PP-OCRv6 rec), so
            # it runs from a temp folder that goes with it
            with tempfile.TemporaryDirectory(prefix="pre.", dir=pre.parent) as tmp, contextlib.chdir(tmp), \
                    contextlib.redirect_stdout(io.StringIO()):
                quant_pre_process(str(Path(src).resolve()), str(pre), skip_symbolic_shape=symbolic)
            return pre, steps
        except Exception:  # noqa: BLE001 - pre-processing is an optimisation
            continue
    return src, steps  # quantising the plain model is still correct


def quantize_prepared(
    pre: Path, dest: Path, *, samples: list[Sample], quant: QuantSettings, input_names: dict[str, str], track,
    exclude: tuple[str, ...] = (), int16_tensors: tuple[str, ...] = (), calibration_cache: Path | None = None, where: str | None = None,
    range_margin: float = 0.0, weight_params: dict[str, list[dict]] | None = None, weight_memo=None,
    range_overrides: dict[str, tuple[float, float]] | None = None,
) -> None:
    """quantize_static QDQ of a prepare_for_int8 model: int8 everywhere, but the nodes in `exclude`
    stay float and the activations in `int16_tensors` are int16 (com.microsoft Q/DQ).
    `range_margin` m > 0 widens every calibrated range [lo, hi] to [lo - m(hi-lo), hi + m(hi-lo)]
    before the scales are computed (widen_ranges), so samples a little past the calibration's
    extremes do not clip. `weight_params` (weight_quant_params of an earlier quantisation of the same
    model): those weights' scales and zero points, given to the quantiser instead of computed again
    (the same values; its per-channel loop was most of a quantisation of a big net). `weight_memo`
    (quantiser_speed.QuantiserMemo): what earlier quantisations of `pre` computed, reused.
    `range_overrides`: {tensor: (lo, hi)} in place of those tensors' calibrated ranges (before the
    margin widens every range)."""
    if range_margin > 0 or range_overrides:
        with tempfile.TemporaryDirectory(prefix="ranges.", dir=dest.parent) as tmp:
            raw = calibration_cache if calibration_cache is not None else Path(tmp) / "ranges.json"
            if not raw.is_file():  # calibrate once (the quantised model of this pass is discarded)
                quantize_prepared(pre, Path(tmp) / "raw.onnx", samples=samples, quant=quant, input_names=input_names, track=track,
                                  exclude=exclude, int16_tensors=int16_tensors, calibration_cache=raw, where=where, weight_params=weight_params,
                                  weight_memo=weight_memo)
            wide = widen_ranges(raw, Path(tmp) / "wide.json", range_margin, range_overrides)
            quantize_prepared(pre, dest, samples=[], quant=quant, input_names=input_names, track=lambda it, n, label: it,
                              exclude=exclude, int16_tensors=int16_tensors, calibration_cache=wide, where=where, weight_params=weight_params,
                              weight_memo=weight_memo)
        return
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[quant.method]
    reader = _Reader(input_names, iter(track(samples, len(samples), f"calibrating ({quant.method})")))
    extra = {"CalibPercentile": quant.percentile, "ActivationSymmetric": False, "WeightSymmetric": True}
    overrides = dict(weight_params or {})
    if int16_tensors:
        overrides.update({t: [{"quant_type": QuantType.QInt16}] for t in int16_tensors})
        extra["UseQDQContribOps"] = True
    if overrides:
        extra["TensorQuantOverrides"] = overrides
    from .quantiser_speed import fast_rewiring

    try:
        with contextlib.redirect_stdout(io.StringIO()), fast_rewiring(), (weight_memo.active() if weight_memo else contextlib.nullcontext()):
            quantize_static(
                str(pre),
                str(dest),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=quant.per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
                nodes_to_exclude=list(exclude),
                extra_options=extra,
                calibration_cache_path=calibration_cache,
            )
    except Exception as exc:
        raise ConversionError(f"{where or pre.name}: int8 quantisation failed ({str(exc).splitlines()[0]})") from exc


_WEIGHTED = {"Conv": 1, "ConvTranspose": 1, "MatMul": 1, "Gemm": 1}  # node type -> the input index of its weight


def weight_quant_params(pre: Path, quantised: Path) -> dict[str, list[dict]]:
    """{weight: its TensorQuantOverrides entry} for every int8 weight of a Conv/ConvTranspose/
    MatMul/Gemm of the prepared model `pre` that quantize_static quantised in `quantised` (an
    initializer `<weight>_quantized` read by a DequantizeLinear): its scale and zero point, one
    dict per channel (with the axis) when per-channel. They depend on the weight alone, so every
    quantisation of `pre` with the same per-channel setting computes the same ones."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    weights = set()
    for node in onnx.load(str(pre), load_external_data=False).graph.node:
        i = _WEIGHTED.get(node.op_type)
        if i is not None and len(node.input) > i:
            weights.add(node.input[i])
    model = onnx.load(str(quantised))
    inits = {t.name: t for t in model.graph.initializer}
    out: dict[str, list[dict]] = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or not node.input[0].endswith("_quantized") or len(node.input) < 3:
            continue
        w = node.input[0].removesuffix("_quantized")
        if w not in weights or node.input[1] not in inits or node.input[2] not in inits:
            continue
        scale, zp = numpy_helper.to_array(inits[node.input[1]]), numpy_helper.to_array(inits[node.input[2]])
        if zp.dtype != np.int8 or inits[node.input[0]].data_type != onnx.TensorProto.INT8:
            continue
        if scale.ndim == 0:
            out[w] = [{"scale": scale, "zero_point": zp}]
        else:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            out[w] = [{"axis": axis, "scale": s, "zero_point": z} for s, z in zip(scale, zp)]
    return out


def widen_ranges(src: Path, dest: Path, margin: float, overrides: dict[str, tuple[float, float]] | None = None) -> Path:
    """A copy of ONNX Runtime's calibration cache `src` at `dest` with the ranges of `overrides`'
    tensors replaced by theirs, then every tensor's range [lo, hi] widened by `margin` x (hi - lo)
    on both sides (a zero-width range stays as it is)."""
    import numpy as np
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, load_tensors_data, save_tensors_data

    from ...quantize_search.search import widened

    data = load_tensors_data(src)
    out = {}
    for name in data:
        td = data[name]
        attrs = {k: getattr(td, k) for k in td._attrs}
        if "lowest" in attrs and "highest" in attrs:
            lo, hi = np.asarray(attrs["lowest"]), np.asarray(attrs["highest"])
            if overrides and name in overrides and lo.size == 1:
                lo, hi = (np.asarray(v, lo.dtype).reshape(lo.shape) for v in overrides[name])
            wide_lo, wide_hi = widened(lo.astype(np.float64), hi.astype(np.float64), margin)
            attrs["lowest"], attrs["highest"] = wide_lo.astype(lo.dtype), wide_hi.astype(hi.dtype)
        out[name] = TensorData(**attrs)
    save_tensors_data(TensorsData(data.calibration_method, out), dest)
    return dest


def quantised_op_types() -> set[str]:
    """The node types ONNX Runtime's quantiser quantises, and quantize_static calibrates: those of
    its QDQ and QLinear registries."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return set(QDQRegistry) | set(QLinearOpsRegistry)


def calibrate_minmax(pre: Path, samples: list[Sample], input_names: dict[str, str], dest: Path) -> Path:
    """ONNX Runtime's MinMax calibration of the prepared model `pre` over `samples`, saved as its
    calibration cache `dest`: the calibrator quantize_static creates (every quantised_op_types type;
    asymmetric ranges, no moving average), without the quantisation after it."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="calib.", dir=dest.parent) as tmp:
        calibrator = create_calibrator(Path(pre), sorted(quantised_op_types()),
                                       augmented_model_path=str(Path(tmp) / "augmented_model.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(_Reader(input_names, iter(samples)))
        save_tensors_data(calibrator.compute_data(), dest)
        del calibrator
    return dest


def merge_minmax(parts: list[Path], dest: Path) -> Path:
    """The MinMax calibration cache of the samples of every cache in `parts` together: ONNX
    Runtime's MinMax range of a tensor is the lowest and highest of its per-sample minima and
    maxima, so each tensor's range is the lowest of the parts' lows and the highest of their highs:
    the same values as one calibration over all the samples (tested)."""
    import numpy as np
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData, load_tensors_data, save_tensors_data

    datas = [load_tensors_data(p) for p in parts]
    out = {}
    for name in datas[0]:
        tds = [d[name] for d in datas if name in d]
        lo = np.minimum.reduce([np.asarray(td.range_value[0]) for td in tds])  # the parts' dtype
        hi = np.maximum.reduce([np.asarray(td.range_value[1]) for td in tds])
        out[name] = TensorData(lowest=lo, highest=hi)
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, out), dest)
    return dest


def to_int8_qdq(src: Path, dest: Path, *, samples: list[Sample], quant: QuantSettings, input_names: dict[str, str], track) -> str | None:
    """Static int8 QDQ: prepare_for_int8, then quantize_static with the chosen calibration method.
    Returns the extra route steps (opset upgrade, Constant weights), else None."""
    require("onnxruntime", "onnx", "Quantising ONNX models")
    pre, steps = prepare_for_int8(src, dest, per_channel=quant.per_channel)
    quantize_prepared(pre, dest, samples=samples, quant=quant, input_names=input_names, track=track, where=src.name)
    return " -> ".join(steps) or None


def int8_weight_share(path: Path) -> dict[str, float | int]:
    """How much of a quantised ONNX model's weights really are 8-bit: elements of int8/uint8
    initializers over the elements of every weight-like initializer (float, 8/16-bit integer;
    int32 biases and int64 shapes are not weights). Scalars (scales, zero points) are left out."""
    onnx = require("onnx", "onnx", "Reading ONNX models")
    from onnx import TensorProto

    model = onnx.load(str(path))
    eight = {TensorProto.INT8, TensorProto.UINT8}
    weighty = eight | {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.INT16, TensorProto.UINT16, TensorProto.DOUBLE}
    total = low = 0
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if n <= 1 or t.data_type not in weighty or t.name.endswith(("_zero_point", "_scale")):
            continue  # per-channel scales and zero points are quantisation parameters, not weights
        total += n
        low += n if t.data_type in eight else 0
    for node in model.graph.node:  # Constant weights a quantiser left in float count against the share
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type in weighty:
                    n = 1
                    for d in a.t.dims:
                        n *= d
                    if n > 1:
                        total += n
                        low += n if a.t.data_type in eight else 0
    return {"int8_weight_share": round(low / total, 4) if total else 0.0, "weight_elements": total, "int8_weight_elements": low}
