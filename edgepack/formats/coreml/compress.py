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


def _cto():
    coremltools()
    import coremltools.optimize.coreml as cto

    return cto


def int8_weights(mlmodel):
    cto = _cto()
    cfg = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel"))
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


def w8a8(mlmodel, package: Path, samples: list[Sample], track: Callable):
    """Activations int8 from emulator-calibrated ranges, then int8 weights."""
    ct = coremltools()
    cto = _cto()
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.models import utils as model_utils

    stats = activation_stats(mlmodel, package, samples, track)
    if not stats:
        raise ConversionError(f"{package.name}: no float activations were observed; W8A8 has nothing to calibrate")
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
    passes = []
    for name in ("compression::insert_prefix_quantize_dequantize_pair", "compression::insert_suffix_quantize_dequantize_pair"):
        p = PASS_REGISTRY[name]
        p.set_options([PassOption("config", config), PassOption("activation_stats", stats)])
        passes.append(p)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    with no_progress_bars():
        a8 = model_utils._apply_graph_pass(
            mlmodel,
            passes,
            spec_version=max(ct._SPECIFICATION_VERSION_IOS_17, mlmodel.get_spec().specificationVersion),
            pymil_load_func=milproto_load.load,
            skip_model_load=True,
        )
    return int8_weights(a8), len(stats)
