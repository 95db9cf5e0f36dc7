"""LiteRT (TensorFlow Lite): .tflite files in fp32, fp16, dynamic int8, full int8 and 16x8.

Route: source -> PyTorch module (the ExportedProgram, or edgepack's ONNX bridge) -> litert-torch
-> float32 .tflite -> ai-edge-quantizer with activation ranges that edgepack computed from the
calibration samples -> edgepack metadata -> .tflite. No TensorFlow is needed. Each artifact's
XNNPACK coverage is measured in the LiteRT interpreter and reported.
"""
from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version

from ...errors import require
from ...types import Artifact
from ..base import Format, FormatJob, Option, register_format
from . import inspect as _inspect  # noqa: F401  (registers the .tflite reader)
from .variants import VARIANTS

_INT8_TOL = {"min_cosine": 0.99, "min_top1_agreement": 0.95, "max_accuracy_drop": 0.01}


def _versions(*dists: str) -> dict[str, str]:
    out = {}
    for d in dists:
        try:
            out[d] = version(d)
        except PackageNotFoundError:
            pass
    return out


@register_format
class TFLite(Format):
    name = "tflite"
    title = "LiteRT (TensorFlow Lite)"
    suffix = ".tflite"
    runtime = "litert"
    extra = "tflite"
    precisions = tuple(VARIANTS)
    int8_auto_from = "int8"
    # imported by the converter worker before its first cell, and by the build while it waits (pipeline/isolation.py)
    warm_imports = ("edgepack.formats.tflite.routes:import_litert_torch", "ai_edge_quantizer")
    check_imports = ("ai_edge_litert.interpreter",)
    options = {
        "layout": Option(
            str,
            "source",
            "layout of 4-D inputs in the .tflite: source keeps the source's (NCHW for PyTorch/ONNX), nhwc suits camera pipelines",
            ("source", "nchw", "nhwc"),
        ),
        "allow_flex": Option(bool, False, "accept ops that need TensorFlow Select (Flex) kernels; the app must link the Flex delegate"),
        "recipe": Option(str, "", "int8_auto: a .recipe.json from an earlier int8_auto build, applied with no search"),
    }
    tolerances = {
        # fp16 here is weight-only (DEQUANTIZE to float32, fp32 compute): only weight rounding, no fp16
        # activations, so a tighter cosine than the compute-fp16 formats' default (digits: 0.9999997)
        "fp16": {"max_abs": 5e-2, "min_cosine": 0.9999},
        "dynamic_int8": dict(_INT8_TOL),
        "int8_io": dict(_INT8_TOL),
        "int16x8": dict(_INT8_TOL),
        "int16x8_io": dict(_INT8_TOL),
    }

    def build(self, job: FormatJob) -> Iterator[Artifact]:
        require("ai_edge_litert", self.extra, "Building .tflite artifacts")
        from ...runtimes.litert import coverage_note, xnnpack_coverage
        from . import build_steps, routes

        routes.import_litert_torch()
        from .flatbuf import read_graph

        where = job.source.spec
        job.progress.step("tflite: converting with litert-torch")
        fm = routes.float_model(job, job.options["layout"])
        build_steps.check_float(fm, where, allow_flex=job.options["allow_flex"])
        versions = {**fm.versions, **_versions("ai-edge-litert", "ai-edge-quantizer")}
        stats = None
        for precision in job.precisions:
            v = VARIANTS[precision]
            job.progress.step(f"tflite {precision}: {v.summary}")
            qsvs, auto = None, {}
            if v.kind != "float":
                job.enter("quantise")
            if precision == "int8_auto":
                content, route, auto = _int8_auto(job, fm)
            else:
                if v.kind == "static":
                    if stats is None:
                        stats = build_steps.cached_calibration(job, fm, job.options["layout"])
                    q = job.quantization
                    qsvs = stats.qsvs(q.method, q.percentile, v.activation_bits)
                content, route = build_steps.make_variant(job, fm, v, qsvs)
            graph = read_graph(content)
            if v.kind in ("static", "dynamic"):
                auto.update(build_steps.int8_weight_share(graph))
            build_steps.check_variant(graph, where, allow_flex=job.options["allow_flex"])
            content, meta = build_steps.with_metadata(job, fm, v, graph, content, route)
            path = job.workdir / f"{job.stem}.{precision}.tflite"
            path.write_bytes(content)
            cov = xnnpack_coverage(path)
            yield Artifact(
                path=path,
                format=self.name,
                precision=precision,
                runtime=self.runtime,
                route=route,
                extra_files=auto.pop("_files", []),
                details={
                    "xnnpack": cov,
                    "notes": [coverage_note(cov)],
                    "op_histogram": graph.op_histogram(),
                    "weight_dtypes": graph.weight_dtypes(),
                    "metadata": {k: meta[k] for k in ("inputs", "outputs", "preprocess", "edgepack_version")},
                    **auto,
                },
                tool_versions=versions,
            )


def _int8_auto(job: FormatJob, fm) -> tuple[bytes, str, dict]:
    """Search (or reuse) the recipe, then quantise with it over every calibration sample."""
    import importlib.metadata as md

    from ...quantize_search import details, recipe_for
    from .auto import TfliteBackend

    backend = TfliteBackend(job, fm, job.options["layout"])
    recipe = recipe_for(job, TFLite.name, backend)
    content = backend.build(recipe.base, recipe.precision_of(), list(job.calibration))
    b, c = recipe.base, recipe.counts()
    method = f"percentile {b['percentile']:g}" if b["method"] == "percentile" else b["method"]
    margin = f", range margin {b['range_margin']:g}" if b.get("range_margin") else ""
    route = (
        f"{fm.route} -> ai-edge-quantizer {md.version('ai-edge-quantizer')}: int8_auto ({'per-channel' if b['per_channel'] else 'per-tensor'} weights; "
        f"activation ranges by edgepack ({method}{margin}) over {len(job.calibration)} calibration samples; "
        f"{c['int8']} layers int8, {c['int16']} int16, {c['float']} float{' with fp32 weights' if b.get('float_weights') == 'float' else ''})"
    )  # the route is in the .tflite's metadata: whether the recipe was searched or reused is not (byte-identical reuse)
    out = details(recipe, job, TFLite.suffix)
    return content, route, out
