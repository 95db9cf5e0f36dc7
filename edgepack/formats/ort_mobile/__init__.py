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
from .quantize import to_fp16, to_int8_qdq


@register_format
class OrtMobile(Format):
    name = "ort"
    title = "ONNX Runtime Mobile"
    suffix = ".ort"
    runtime = "onnxruntime"
    extra = "onnx"
    precisions = ("fp32", "fp16", "int8")
    # imported by the converter worker before its first cell, and by the build while it waits (pipeline/isolation.py)
    warm_imports = ("onnx", "onnxruntime", "onnxruntime.tools.ort_format_model", "onnxruntime.quantization", "onnxscript")
    check_imports = ("onnxruntime",)
    options = {
        "target_platform": Option(str, "arm", "ORT-format target platform: arm for phones and arm64 boards", ("arm", "amd64")),
        "optimization": Option(str, "all", "graph optimisation level baked into the .ort (fp16 always uses basic)", ("basic", "extended", "all")),
        "mobile_eps": Option(
            list, ["nnapi", "coreml"], "execution providers whose node coverage is reported", ("nnapi", "coreml")
        ),
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
            else:
                job.enter("quantise")
                onnx_path = work / f"{job.stem}.int8.onnx"
                names = {t.name: t.name for t in job.source.inputs}
                upgraded = to_int8_qdq(fp32, onnx_path, samples=job.calibration, quant=job.quantization, input_names=names, track=job.progress.track)
                pc = "per-channel" if job.quantization.per_channel else "per-tensor"
                steps = f"{route}{f' -> {upgraded}' if upgraded else ''} -> quantize_static QDQ int8 {pc}, {job.quantization.method} over {len(job.calibration)} samples"
            ort_path = work / f"{job.stem}.{precision}.ort"
            cov = ep_coverage(onnx_path, job.options["mobile_eps"])
            config = to_ort(onnx_path, ort_path, target_platform=platform, optimization=level)
            yield Artifact(
                path=ort_path,
                format=self.name,
                precision=precision,
                runtime=self.runtime,
                route=f"{steps} -> .ort (target platform {platform}, optimization {level})",
                extra_files=[config],
                details={"ep_coverage": cov, "notes": coverage_notes(cov) + _host_notes(precision, platform)},
                tool_versions=versions,
            )


def _host_notes(precision: str, platform: str) -> list[str]:
    host = _platform.machine().lower()
    if precision == "int8" and platform == "arm" and host not in ("aarch64", "arm64"):
        return [
            f"host latency is not representative for this int8 .ort: it keeps int8 x int8 QLinear ops for arm, "
            f"which this {host} host runs on slow fallback kernels; arm64 devices run them natively"
        ]
    return []
