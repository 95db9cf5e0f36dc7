"""Weight compression (int8, int4 per block, palettisation) and W8A8 calibrated on Linux.

coremltools' own `linear_quantize_activations` collects activation ranges with `MLModel.predict`,
which exists only on macOS. edgepack runs the calibration samples through its emulated Core ML
runtime instead, records every activation's min/max (true ranges), and hands those statistics to
the same coremltools graph passes that insert the quantize/dequantize pairs.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConversionError
from ...types import Sample
from ..._coremltools import coremltools, no_progress_bars


# coremltools' default (OpLinearQuantizerConfig / OpPalettizerConfig): weights of at most this many
# elements are left uncompressed (Core ML's uncompressed_reason)
WEIGHT_THRESHOLD = 2048


def _cto():
    coremltools()
    import coremltools.optimize.coreml as cto

    return cto


def int8_weight_config(*, per_channel: bool = True, weight_threshold: int = WEIGHT_THRESHOLD, keep_float: tuple[str, ...] = ()):
    """int8 weights; coremltools leaves weights of at most `weight_threshold` elements in float, and
    those of the ops named in `keep_float`."""
    cto = _cto()
    return cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel" if per_channel else "per_tensor", weight_threshold=weight_threshold),
        op_name_configs={name: None for name in keep_float})


def int8_weights(mlmodel):
    cto = _cto()
    cfg = int8_weight_config()
    with no_progress_bars():
        return cto.linear_quantize_weights(mlmodel, cfg)


def int4_weights(mlmodel, *, block_size: int):
    """int4 per block; the iOS18 deployment target it needs is checked by CoreML.preflight."""
    cto = _cto()
    cfg = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=block_size)
    )
    with no_progress_bars():
        return cto.linear_quantize_weights(mlmodel, cfg)


def palettize(mlmodel, nbits: int):
    cto = _cto()
    cfg = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_tensor"))
    with no_progress_bars():
        return cto.palettize_weights(mlmodel, cfg)


def activation_stats(mlmodel, package: Path, samples: list[Sample], track: Callable) -> dict[str, dict[str, float]]:
    """{var name: {"rmin", "rmax"}} over the samples, from the emulator; inputs included."""
    from coremltools.optimize.coreml.experimental._model_debugger import ModelDebugger
    from coremltools.optimize.coreml.experimental._post_training_quantization import (
        _adjust_concat_surrounding_activation_stats,
    )

    from ...runtimes.coreml_emulator import load_mlpackage

    debugger = ModelDebugger(mlmodel)  # reads the spec only; never predicts
    wanted = set(debugger.get_intermediate_output_names(lambda op: op.spec.type != "const"))
    wanted -= {o.name for o in mlmodel.get_spec().description.output}
    model = load_mlpackage(package)
    stats: dict[str, dict[str, float]] = {}

    def update(name: str, value: Any) -> None:
        arr = np.asarray(value)
        if arr.dtype.kind != "f" or arr.size == 0:
            return
        lo, hi = float(arr.min()), float(arr.max())
        s = stats.setdefault(name, {"rmin": lo, "rmax": hi})
        s["rmin"], s["rmax"] = min(s["rmin"], lo), max(s["rmax"], hi)

    def observe(var_name: str, op_type: str, value: Any) -> None:
        if var_name in wanted:
            update(var_name, value)

    for sample in track(samples, len(samples), "W8A8: activation ranges in the Core ML emulator"):
        for name, arr in sample.items():
            update(name, arr)
        model.run(sample, observe=observe)
    _adjust_concat_surrounding_activation_stats(debugger._get_concat_op_info(), stats)
    return stats


def merged_stats(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The activation ranges of two sets of samples together (activation_stats of both at once:
    each var's smaller min and larger max; concat groups stay shared, since both halves share them)."""
    out = {k: dict(v) for k, v in a.items()}
    for k, v in b.items():
        if k in out:
            out[k] = {"rmin": min(out[k]["rmin"], v["rmin"]), "rmax": max(out[k]["rmax"], v["rmax"])}
        else:
            out[k] = dict(v)
    return out


FP16_MAX = 65504.0


def unquantisable(stats: dict[str, dict[str, float]]) -> list[str]:
    """Activations whose observed range is not finite or reaches fp16's limit: the -inf (or
    -3.4e38, -inf in fp16) padding before a max pool. An int8 scale over such a range turns the
    tensor into noise (the PP-OCRv6 detector's W8A8: cosine 0.05), so they stay float."""
    return sorted(n for n, st in stats.items() if not all(np.isfinite(v) and abs(v) < FP16_MAX for v in (st["rmin"], st["rmax"])))


_ACTIVATION_OPS = ("conv", "linear", "add", "avg_pool", "max_pool")  # the ops the prefix pass quantises around


def _integer_ops(mlmodel) -> list[str]:
    """The ops the activation passes would quantise around whose live inputs are not float (an
    int32 add of token positions in a transformer): they have no range to quantise with (the
    passes raised KeyError on MiniLM), so they are left alone."""
    from coremltools.converters.mil.mil import types

    prog = getattr(mlmodel, "_mil_program", None)
    if prog is None:
        return []
    out = []
    for fn in prog.functions.values():
        for op in fn.operations:
            if op.op_type in _ACTIVATION_OPS:
                live = [op.inputs[k] for k in ("x", "y") if k in op.inputs and op.inputs[k].op is not None and op.inputs[k].op.op_type != "const"]
                if any(not types.is_float(v.dtype) for v in live):
                    out.append(op.name)
    return out


def quantize_activations(mlmodel, stats: dict[str, dict[str, float]], keep_float: tuple[str, ...] = (), weights=None, program_only: bool = False):
    """coremltools' insert_prefix/suffix_quantize_dequantize_pair passes over `stats` (int8
    activations), then the quantize/dequantize pairs of the vars in `keep_float` taken out again
    (those activations stay float; int8_auto's fallbacks), then, given a weight config
    (int8_weight_config), int8 weights in the same conversion. `program_only`: the pymil program,
    not converted back to a model."""
    cto = _cto()
    bad = unquantisable(stats)
    if bad:  # the passes need a range for every var they see: a placeholder, then the pair goes again
        stats = {**stats, **{n: {"rmin": -1.0, "rmax": 1.0} for n in bad}}
        keep_float = (*keep_float, *(n for n in bad if n not in keep_float))
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass, PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils

    skip = _integer_ops(mlmodel)  # integer arithmetic (token ids, positions) has no activation range
    config = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"), op_name_configs={n: None for n in skip} or None
    )
    passes = []
    for name in ("compression::insert_prefix_quantize_dequantize_pair", "compression::insert_suffix_quantize_dequantize_pair"):
        p = PASS_REGISTRY[name]
        p.set_options([PassOption("config", config), PassOption("activation_stats", stats)])
        passes.append(p)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    if keep_float:
        class _KeepFloat(AbstractGraphPass):
            def apply(self, prog):
                for fn in prog.functions.values():
                    _drop_quantize_dequantize(fn, set(keep_float))

        passes.append(_KeepFloat())
    if weights is not None:
        wq = PASS_REGISTRY["compression::linear_quantize_weights"]
        wq.set_options([PassOption("config", weights), PassOption("joint_compression", False)])
        passes.append(wq)
    from coremltools.converters.mil.converter import _reset_conversion_state

    # the passes name new ops from a process-wide counter that every conversion resets when done; a
    # pass run with no conversion after it (program_only) leaves it counting, and the next model
    # would get other op names: the same model, other bytes. Start and leave it as a conversion does.
    _reset_conversion_state()
    try:
        with no_progress_bars():
            return model_utils._apply_graph_pass(
                mlmodel,
                passes,
                spec_version=_spec_version(mlmodel),
                pymil_load_func=milproto_load.load,
                skip_model_load=True,
                return_pymil_prog=program_only,
            )
    finally:
        _reset_conversion_state()


# The default pipeline's passes that act on what int8_auto's candidate passes add to an already
# converted program: the quantisation passes (canonicalisations, quantize/dequantize pair
# elimination, the add's scale normalisation, constexpr weights) and the clean-up ones. The rest
# (fusions, transpose and shape rewrites) ran when the float model was converted; quantize/
# dequantize pairs only break their patterns. On ocr_cls and ocr_det the emulator reads exactly the
# same outputs from the program after these as after the whole pipeline, at about half the time
# (ocr_det: 1.5-1.9 s against 2.6-2.9 s a candidate); a test holds a candidate to its saved model.
CANDIDATE_PASSES = frozenset({
    "common::int_op_canonicalization", "common::nullify_redundant_quantization_zero_point",
    "common::dequantize_quantize_pair_elimination", "common::distributive_quantized_binary_op_scale_normalization",
    "common::dequantize_to_constexpr", "common::canonicalize_quantized_lut_pattern",
    "common::merge_affine_dequantize_with_consecutive_ops", "common::const_elimination", "common::const_deduplication",
    "common::cast_optimization", "common::noop_elimination", "common::remove_redundant_ops",
    "common::dedup_op_and_var_names", "common::dead_code_elimination", "common::topological_reorder",
})


def conversion_passes(program) -> None:
    """The graph passes that converting a pymil program back to a model runs (coremltools'
    mil_convert from "milinternal" to "mlprogram": its default pipeline, then the ML-program
    backend's), as far as they act on a candidate (CANDIDATE_PASSES of the default pipeline; the
    backend's all), applied to `program` in place, in the same order and with the same options,
    without the program validation that the conversion runs after every pass, and without writing
    a model. int8_auto judges its candidates on this program: the emulator runs it as it would the
    saved model (a test holds them equal, on a real OCR net too), for a fraction of a conversion's cost."""
    from coremltools.converters.mil.converter import _construct_other_pipelines, _reset_conversion_state
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipeline
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    main = PassPipeline()
    main.remove_passes({"common::add_fp16_cast", "common::add_int16_cast"})
    front, back = _construct_other_pipelines(main, "milinternal", "mlprogram")
    try:
        with no_progress_bars():
            for pipeline in (front, main, back):
                for name in pipeline.passes:
                    if pipeline is main and name not in CANDIDATE_PASSES:
                        continue
                    graph_pass = PASS_REGISTRY[name]
                    graph_pass.set_options(pipeline.get_options(name))
                    graph_pass(program)
    finally:
        _reset_conversion_state()  # the passes name new ops from a process-wide counter: leave it as a conversion does


def _spec_version(mlmodel) -> int:
    return max(coremltools()._SPECIFICATION_VERSION_IOS_17, mlmodel.get_spec().specificationVersion)


def package_bytes(program, mlmodel) -> int:
    """The bytes that saving `program` (a model made from `mlmodel`, after conversion_passes) would
    write: its model spec serialised by coremltools' ML-program backend, its weight file (written
    to a temp folder and measured) and the package manifest. No model is loaded."""
    import tempfile

    from coremltools.converters.mil.backend.mil.load import load as to_proto

    with tempfile.TemporaryDirectory(prefix="edgepack-size.") as tmp:
        proto = to_proto(program, weights_dir=tmp, specification_version=_spec_version(mlmodel), model_description=mlmodel.get_spec().description)
        weights = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    return len(proto.SerializeToString()) + weights + MANIFEST_BYTES


MANIFEST_BYTES = 617  # an .mlpackage's Manifest.json as coremltools writes it (two items)


def _drop_quantize_dequantize(block, names: set[str]) -> None:
    """Every quantize of a var in `names`, and its dequantizes, out: their users read the var."""
    with block:
        for op in list(block.operations):
            if op.op_type != "quantize" or op.inputs["input"].name not in names:
                continue
            src = op.inputs["input"]
            dqs = [c for c in op.outputs[0].child_ops if c.op_type == "dequantize"]
            if len(dqs) != len(op.outputs[0].child_ops):
                continue  # an int8 value used as such: leave it
            for dq in dqs:
                block.replace_uses_of_var_after_op(anchor_op=dq, old_var=dq.outputs[0], new_var=src, force_replace=True)
            block.remove_ops([*dqs, op])


def w8a8(mlmodel, package: Path, samples: list[Sample], track: Callable):
    """Activations int8 from emulator-calibrated ranges, then int8 weights: (model, activation
    ranges observed, how many of them stayed float for want of a finite range)."""
    stats = activation_stats(mlmodel, package, samples, track)
    if not stats:
        raise ConversionError(f"{package.name}: no float activations were observed; W8A8 has nothing to calibrate")
    return int8_weights(quantize_activations(mlmodel, stats)), len(stats), len(unquantisable(stats))


def weight_share(package: Path, eight_bit: bool) -> dict[str, float | int]:
    """How much of a saved package's weights really are stored compressed: elements of constexpr_*
    ops (int8/int4 quantised, palettised: all 8 bits or fewer) over those plus the elements of every
    float const of at least WEIGHT_MIN_ELEMENTS (the consts a constexpr op reads are its storage, not
    more weights). `eight_bit`: also as `int8_weight_share` (the int8-family variants)."""
    from ...runtimes.coreml_emulator.loader import load_program
    from .spec_reader import WEIGHT_MIN_ELEMENTS

    program, _spec = load_program(Path(package))
    total = low = 0
    for fn in program.functions.values():
        for op in fn.operations:
            if op.op_type.startswith("constexpr_"):
                n = int(np.prod(op.outputs[0].shape))
                total, low = total + n, low + n
            elif op.op_type == "const":
                val, users = op.outputs[0].val, op.outputs[0].child_ops
                if isinstance(val, np.ndarray) and val.dtype.kind == "f" and val.size >= WEIGHT_MIN_ELEMENTS:
                    if not (users and all(u.op_type.startswith("constexpr_") for u in users)):
                        total += int(val.size)
    share = round(low / total, 4) if total else 0.0
    out = {"compressed_weight_share": share, "weight_elements": total, "compressed_weight_elements": low}
    return {"int8_weight_share": share, **out} if eight_bit else out
