"""ONNX Runtime Mobile: .ort files for the arm target platform, in fp32, fp16 and static int8 QDQ.

Route: source -> ONNX (torch.onnx dynamo export, or the source .onnx) -> [fp16 | int8 QDQ]
-> .ort with its required-operators config. EP coverage comes from the ONNX that each .ort
was made from.
"""
from __future__ import annotations

import platform as _platform
import shutil
from collections.abc import Iterator
from pathlib import Path

from ...errors import require
from ...types import Artifact
from ..base import Format, FormatJob, Option, register_format
from . import inspect as _inspect  # noqa: F401  (registers the .onnx/.ort readers)
from .convert import to_ort
from .coverage import coverage_notes, ep_coverage
from .quantize import int8_weight_share, to_fp16, to_int8_qdq


@register_format
class OrtMobile(Format):
    name = "ort"
    title = "ONNX Runtime Mobile"
    suffix = ".ort"
    runtime = "onnxruntime"
    extra = "onnx"
    precisions = ("fp32", "fp16", "int8", "int8_auto")
    int8_auto_from = "int8"
    # imported by the converter worker before its first cell, and by the build while it waits (pipeline/isolation.py)
    warm_imports = ("onnx", "onnxruntime", "onnxruntime.tools.ort_format_model", "onnxruntime.quantization", "onnxscript")
    check_imports = ("onnxruntime",)
    options = {
        "target_platform": Option(str, "arm", "ORT-format target platform: arm for phones and arm64 boards", ("arm", "amd64")),
        "optimization": Option(str, "all", "graph optimisation level baked into the .ort (fp16 always uses basic)", ("basic", "extended", "all")),
        "mobile_eps": Option(
            list, ["nnapi", "coreml"], "execution providers whose node coverage is reported", ("nnapi", "coreml")
        ),
        "recipe": Option(str, "", "int8_auto: a .recipe.json from an earlier int8_auto build, applied with no search"),
    }

    def build(self, job: FormatJob) -> Iterator[Artifact]:
        ort = require("onnxruntime", self.extra, "Building .ort artifacts")
        onnx = require("onnx", self.extra, "Building .ort artifacts")
        work = job.workdir
        fp32 = work / f"{job.stem}.fp32.onnx"
        if "onnx_fp32" in job.shared:  # exported once per build, shared by every target
            route = job.shared["onnx_route"]
            if Path(job.shared["onnx_fp32"]) != fp32:  # another target's export; this target's cells share one copy
                shutil.copyfile(job.shared["onnx_fp32"], fp32)
        else:
            job.progress.step("ort: exporting ONNX")
            route = job.source.to_onnx(fp32)
            job.shared.update(onnx_fp32=fp32, onnx_route=route)
        versions = {"onnxruntime": ort.__version__, "onnx": onnx.__version__}

        platform = job.options["target_platform"]
        for precision in job.precisions:
            job.progress.step(f"ort {precision}: converting")
            level = job.options["optimization"]
            extra_details: dict = {}
            if precision == "fp32":
                onnx_path, steps = fp32, route
            elif precision == "fp16":
                job.enter("quantise")
                onnx_path = work / f"{job.stem}.fp16.onnx"
                to_fp16(fp32, onnx_path)
                steps = f"{route} -> float16 (keep_io_types)"
                # Level "all" lets the host CPU EP fold fp16 weights back to fp32 (no fp16 kernels
                # on x86), so fp16 keeps to "basic": the weights stay fp16 in the .ort.
                level = "basic"
            elif precision == "int8_auto":
                job.enter("quantise")
                onnx_path, steps, auto = self._int8_auto(job, fp32, route, level, platform)
                extra_details.update(auto)
            else:
                job.enter("quantise")
                onnx_path = work / f"{job.stem}.int8.onnx"
                names = {t.name: t.name for t in job.source.inputs}
                upgraded = to_int8_qdq(fp32, onnx_path, samples=job.calibration, quant=job.quantization, input_names=names, track=job.progress.track)
                pc = "per-channel" if job.quantization.per_channel else "per-tensor"
                steps = f"{route}{f' -> {upgraded}' if upgraded else ''} -> quantize_static QDQ int8 {pc}, {job.quantization.method} over {len(job.calibration)} samples"
            if precision.startswith("int8"):
                extra_details.update(int8_weight_share(onnx_path))
            ort_path = work / f"{job.stem}.{precision}.ort"
            cov = ep_coverage(onnx_path, job.options["mobile_eps"])
            config = to_ort(onnx_path, ort_path, target_platform=platform, optimization=level)
            yield Artifact(
                path=ort_path,
                format=self.name,
                precision=precision,
                runtime=self.runtime,
                route=f"{steps} -> .ort (target platform {platform}, optimization {level})",
                extra_files=[config, *extra_details.pop("_files", [])],
                details={"ep_coverage": cov, "notes": coverage_notes(cov) + _host_notes(precision, platform), **extra_details},
                tool_versions=versions,
            )


    def _int8_auto(self, job: FormatJob, fp32: Path, route: str, level: str, platform: str):
        """Search (or reuse) the recipe, then quantise with it over every calibration sample."""
        from ...quantize_search import details, recipe_for
        from .auto import OrtBackend

        names = {t.name: t.name for t in job.source.inputs}
        backend = OrtBackend(fp32, job.workdir, job.quantization, names, job.progress.track, level, platform)
        recipe = recipe_for(job, self.name, backend)
        onnx_path = job.workdir / f"{job.stem}.int8_auto.onnx"
        backend.final(recipe.base, recipe.precision_of(), list(job.calibration), onnx_path)
        prep = backend.prepared(bool(recipe.base["per_channel"]))[1]
        c = recipe.counts()
        how = recipe.provenance()
        weights = {"float": "fp32", "int16": "int16"}.get(recipe.base.get("float_weights", "int8"), "int8")  # of the float layers
        ct = recipe.base.get("clip_tensors") or []
        clipped = f", {len(ct)} ranges at percentile {recipe.base.get('clip_percentile')}" if ct else ""
        steps = (
            f"{route}{''.join(' -> ' + s for s in prep)} -> quantize_static QDQ int8_auto ({recipe.base['method']}, "
            f"{'per-channel' if recipe.base['per_channel'] else 'per-tensor'}"
            f"{f', range margin {m:g}' if (m := float(recipe.base.get('range_margin', 0.0))) else ''}"
            f"{clipped}; "
            f"{c['int8']} layers int8, {c['int16']} int16, {c['float']} float"
            f"{f' ({weights} weights)' if c['float'] else ''}; {how})"
        )
        out = details(recipe, job, self.suffix)
        return onnx_path, steps, out


def _host_notes(precision: str, platform: str) -> list[str]:
    host = _platform.machine().lower()
    if precision.startswith("int8") and platform == "arm" and host not in ("aarch64", "arm64"):
        return [
            f"host latency is not representative for this int8 .ort: it keeps int8 x int8 QLinear ops for arm, "
            f"which this {host} host runs on slow fallback kernels; arm64 devices run them natively"
        ]
    return []
