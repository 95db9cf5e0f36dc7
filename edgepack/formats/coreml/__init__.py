"""Core ML: .mlpackage ML programs in fp32, fp16 and compressed variants, for iOS 16/17/18.

Route: the source's torch.export program -> run_decompositions -> ct.convert(mlprogram), with
explicit fp32 (or the profile's) I/O, then coremltools.optimize for the compressed variants.
W8A8 is calibrated on Linux by edgepack's emulated Core ML runtime (no predict anywhere), and
every artifact's parity is checked in that emulator; int8_auto is W8A8 with a searched recipe of
float layers (auto.py). Every compressed variant records how much of its weights the saved package
really stores compressed (compress.weight_share; coremltools skips small weights).
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from ...types import Artifact
from ..base import Format, FormatJob, Option, register_format
from . import inspect as _inspect  # noqa: F401  (registers the .mlpackage reader)

_COMPRESSED_TOL = {"min_cosine": 0.99, "min_top1_agreement": 0.95, "max_accuracy_drop": 0.01}
_SUMMARY = {
    "fp32": "float32 weights and compute",
    "fp16": "float16 weights and compute",
    "int8_weights": "int8 weights per channel (constexpr dequantise)",
    "int4_weights": "int4 weights per block (iOS18)",
    "palettize4": "4-bit palettised weights (k-means LUT)",
    "palettize6": "6-bit palettised weights (k-means LUT)",
    "w8a8": "int8 activations (emulator-calibrated ranges) and int8 weights",
    "int8_auto": "W8A8 with its own mixed-precision recipe (the most sensitive activations float) within the accuracy budget",
}
_EIGHT_BIT = ("int8_weights", "w8a8", "int8_auto")  # int8_weight_share too, besides compressed_weight_share


def _check_int4_block_size(program, block: int) -> None:
    """coremltools blocks int4 weights along the input channels (axis 1 of a conv/linear weight) and
    silently skips a weight whose input channels the block size does not divide, and weights of at
    most 2048 elements. Refuse a block size that is not positive, or that would skip every weight."""
    from ...errors import ConfigError

    if block <= 0:
        raise ConfigError(f"int4_block_size = {block} in [formats.coreml]: it must be a positive number of input channels per block (e.g. 32)")
    weights = [(n, tuple(t.shape)) for n, t in program.state_dict.items() if t.ndim >= 2 and t.numel() > 2048]
    if weights and not any(shape[1] % block == 0 for _, shape in weights):
        name, shape = max(weights, key=lambda w: w[1][1])
        raise ConfigError(
            f"int4_block_size = {block} in [formats.coreml] divides the input channels of none of the model's weights "
            f"(e.g. '{name}' {shape} has {shape[1]}), so int4_weights would compress nothing; use a divisor such as "
            f"{next((b for b in (32, 16, 8, 4, 2, 1) if shape[1] % b == 0))}"
        )


def _weights_bytes(package: Path) -> int:
    """The weight blobs' size: what compression shrinks (the report compares it across variants)."""
    weights = package / "Data" / "com.apple.CoreML" / "weights"
    return sum(f.stat().st_size for f in weights.rglob("*") if f.is_file())


@register_format
class CoreML(Format):
    name = "coreml"
    title = "Core ML"
    suffix = ".mlpackage"
    runtime = "coreml_emulator"
    extra = "coreml"
    precisions = tuple(_SUMMARY)
    int8_auto_from = "w8a8"
    # imported by the converter worker before its first cell, and by the build while it waits (pipeline/isolation.py):
    # the emulator that checks .mlpackage files needs coremltools too
    warm_imports = ("edgepack._coremltools:coremltools", "edgepack.formats.coreml.convert", "edgepack.formats.coreml.compress")
    check_imports = ("edgepack._coremltools:coremltools", "edgepack.runtimes.coreml_emulator")
    # why a compressed variant can come out no smaller (the report's size note; OpLinearQuantizerConfig/
    # OpPalettizerConfig default weight_threshold)
    uncompressed_reason = "coremltools compresses only weights with more than 2048 elements (weight_threshold); this model's are smaller"
    options = {
        "deployment_target": Option(str, "iOS17", "minimum iOS deployment target", ("iOS16", "iOS17", "iOS18")),
        "compute_precision": Option(str, "fp16", "compute precision of the compressed variants", ("fp16", "fp32")),
        "io_dtype": Option(str, "fp32", "dtype of the model's tensor inputs and outputs", ("fp32", "fp16")),
        "image_input": Option(bool, False, "make 4-D inputs an ImageType with the calibration set's scale and bias"),
        "classifier": Option(bool, True, "add a classifier config (label + probabilities) when the calibration set has labels"),
        "int4_block_size": Option(int, 32, "block size of int4_weights"),
        "recipe": Option(str, "", "int8_auto: a .recipe.json from an earlier int8_auto build, applied with no search"),
    }
    tolerances = {p: dict(_COMPRESSED_TOL) for p in ("int8_weights", "int4_weights", "palettize4", "palettize6", "w8a8", "int8_auto")}

    def preflight(self, source, precisions, options, preprocess) -> None:
        from ...errors import ConfigError, ConversionError
        from .convert import image_scale_bias, unsupported_source

        try:
            program = source.exported_program()
        except ConversionError:
            raise unsupported_source(source) from None
        if "int4_weights" in precisions and options["deployment_target"] != "iOS18":
            raise ConfigError(
                f"int4_weights (int4 per block) needs deployment_target = \"iOS18\" in [formats.coreml], not "
                f"{options['deployment_target']!r}; raise the target or use int8_weights / palettize4"
            )
        if "int4_weights" in precisions:
            _check_int4_block_size(program, options["int4_block_size"])
        if options["image_input"]:
            if preprocess is None:
                raise ConfigError("image_input = true in [formats.coreml] needs a preprocess.toml in the calibration folder (scale, mean, std)")
            image_scale_bias(preprocess, "preprocess.toml")

    def build(self, job: FormatJob) -> Iterator[Artifact]:
        from . import compress
        from .convert import convert
        from ..._coremltools import coremltools
        from .metadata import annotate
        from .reproducible import canonicalize

        import sys

        if "coremltools" not in sys.modules:
            job.progress.step("coreml: importing coremltools (it loads torch and TensorFlow: ~10 s)")
        ct = coremltools()
        opts = job.options
        target = opts["deployment_target"]
        image = job.preprocess if opts["image_input"] else None
        labels = job.labels if opts["classifier"] else None
        versions = {"coremltools": ct.__version__}
        # Converted once per build for each way of converting; every cell after the first reuses it.
        bases: dict[tuple, tuple[object, Path]] = job.shared.setdefault("bases", {})

        def base(compute: str):
            key = (compute, target, opts["io_dtype"], image, tuple(labels or ()))
            if key not in bases:
                job.progress.step(f"coreml: converting ({compute}, {target})")
                m = convert(job.source, precision=compute, target=target, io_dtype=opts["io_dtype"], image=image, labels=labels)
                pkg = job.workdir / f"_base.{compute}.mlpackage"
                m.save(str(pkg))
                bases[key] = (m, pkg)
            return bases[key]

        for precision in job.precisions:
            compute = precision if precision in ("fp32", "fp16") else opts["compute_precision"]
            mlmodel, pkg = base(compute)
            job.progress.step(f"coreml {precision}: {_SUMMARY[precision]}")
            if precision not in ("fp32", "fp16"):
                job.enter("quantise")
            detail, extra, how = "", {}, ""
            if precision == "int8_weights":
                mlmodel = compress.int8_weights(mlmodel)
            elif precision == "int4_weights":
                mlmodel = compress.int4_weights(mlmodel, block_size=opts["int4_block_size"])
            elif precision in ("palettize4", "palettize6"):
                mlmodel = compress.palettize(mlmodel, int(precision[-1]))
            elif precision == "w8a8":
                mlmodel, n, unbounded = compress.w8a8(mlmodel, pkg, job.calibration, job.progress.track)
                detail = f", {n} activation ranges from {len(job.calibration)} samples ({job.quantization.method} ignored: true min/max)"
                if unbounded:
                    detail += f"; {unbounded} with a non-finite range (max-pool padding) stay float"
            elif precision == "int8_auto":
                mlmodel, detail, extra, how = self._int8_auto(job, mlmodel, pkg)
            route = (
                f"{getattr(job.source.exported_program(), 'edgepack_route', 'torch.export')} -> run_decompositions -> coremltools {ct.__version__} ct.convert(mlprogram, {target}, compute {compute}, "
                f"I/O {opts['io_dtype']}{', ImageType' if image else ''}{', classifier' if labels else ''})"
                + ("" if precision in ("fp32", "fp16") else f" -> {_SUMMARY[precision]}{detail}")
            )
            annotate(mlmodel, source=job.source, precision=precision, route=route, preprocess=job.preprocess, image_input=image is not None)
            out = job.workdir / f"{job.stem}.{precision}.mlpackage"
            if out.exists():
                shutil.rmtree(out)
            mlmodel.save(str(out))
            canonicalize(out)  # same model, same bytes (see reproducible.py)
            details = {"deployment_target": target, "compute_precision": compute, "weights_bytes": _weights_bytes(out)}
            if precision not in ("fp32", "fp16"):  # what really is stored compressed (small weights are not)
                details.update(compress.weight_share(out, eight_bit=precision in _EIGHT_BIT))
            yield Artifact(
                path=out,
                format=self.name,
                precision=precision,
                runtime=self.runtime,
                route=route + how,  # how the recipe was found is not in the package: a reused recipe gives the same bytes
                extra_files=extra.pop("_files", []),
                details={**details, **extra},
                tool_versions=versions,
            )

    def _int8_auto(self, job: FormatJob, mlmodel, package: Path):
        """Search (or reuse) the recipe, then W8A8 with it over every calibration sample:
        (model, route detail, details with the recipe and its file, how the recipe was found)."""
        from ...quantize_search import details, recipe_for
        from .auto import CoreMLBackend

        backend = CoreMLBackend(mlmodel, package, job.source, job.progress.track, job.options["compute_precision"])
        recipe = recipe_for(job, self.name, backend)
        model = backend.quantise(recipe.base, recipe.precision_of(), list(job.calibration))
        c = recipe.counts()
        how = recipe.provenance()
        b = {**backend.base(), **recipe.base}
        detail = (
            f" ({c['int8']} activations int8, {c['float']} float; ranges: true min/max over {len(job.calibration)} samples, margin {b['range_margin']:g}; "
            f"weights int8 {'per channel' if b['per_channel'] else 'per tensor'}, above {b['weight_threshold']} elements"
            + (f", {b['float_weights']} in float layers and their readers)" if b["float_weights"] != "int8" else ")")
        )
        out = details(recipe, job, self.suffix)
        floats = [la["name"] for la in recipe.layers if la["precision"] == "float"]
        if floats and b["float_weights"] != "int8":  # why its weight share can be low (the report's size note)
            out["uncompressed_reason"] = (
                f"its {len(floats)} float layer(s) ({', '.join(floats[:4])}{', ...' if len(floats) > 4 else ''}) and the ops reading them "
                f"keep {b['float_weights']} weights"
            )
        return model, detail, out, f"; {how}"
