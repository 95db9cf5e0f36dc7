"""The first divergent layer: where an artifact's numbers leave the source's, in every format.

    diagnose_artifact(artifact, model, calibration, *, target=None, precision=None, against=None)
        -> diagnosis dict  (`edgepack diagnose`)
    attach_diagnosis(...)  -> ParityReport with .diagnosis  (build: [validation] diagnose)
    render_table(diagnosis) -> str  (the CLI's short table, first divergent layer first)

How: the source's layers (layers.py: fx nodes of its torch.export program, or an ONNX source's
nodes) and the artifact's intermediate tensors (each runtime plug-in's diagnosis_session:
intermediates() + provenance()) run on the same samples, the ones whose outputs agree worst
(default 4). compare.py maps artifact tensors to layers by the names the converters keep, then by
shape and order, and computes SQNR and cosine per pair in graph order; first_divergent() names
the layer where the error jumps (its rule is in its docstring).

The `diagnosis` dict (report.json, per artifact under parity):
    {"against": "source" | other artifact file, "artifact": file, "samples": [origins],
     "mapped": {"source_tensors", "artifact_tensors", "pairs", "by_name", "by_shape_order", ...},
     "band_db": f, "layers": [{"index", "source_name", "op_type", "artifact_tensor", "artifact_op",
       "matched_by", "sqnr_db", "tensor_sqnr_db", "channel_sqnr_db", "cosine", "scale", "range"}],
     "first_divergent": null | {"index", "source_name", "op_type", "sqnr_before", "sqnr_after",
       "scale", "range", "rule", ...},
     "notes": [...], "seconds": f}   (+ "other", "verdict" with --against)
"""
from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

from ..errors import ConfigError, EdgepackError, InputError, first_line
from .run import DEFAULT_SAMPLES, diagnose, worst_samples

__all__ = ["attach_diagnosis", "diagnose", "diagnose_artifact", "render_table", "wanted"]


def wanted(profile, passed: bool, force: bool = False) -> bool:
    """Whether a cell is diagnosed: `[validation] diagnose` ("on-failure" by default, "never",
    "always"); `build --diagnose` (force) diagnoses every failed cell even with "never"."""
    mode = getattr(profile.validation, "diagnose", "on-failure")
    return mode == "always" or (not passed and (force or mode == "on-failure"))


def attach_diagnosis(parity, *, artifact, source, calib, val_idx, refs, outs, tolerance, companions=(), progress=None, trace_cache=None):
    """`parity` with its diagnosis. A diagnosis never fails the cell: when it cannot be made, the
    parity notes say why and `diagnosis` stays None. Cost bound: DEFAULT_SAMPLES samples, and the
    source's trace is shared by every artifact of a build (`trace_cache`, a dict)."""
    picked = worst_samples(refs, outs, DEFAULT_SAMPLES)
    samples = [calib.samples[val_idx[p]] for p in picked]
    origins = [calib.origins[val_idx[p]] for p in picked]
    if progress is not None:
        progress.step(f"{artifact.format} {artifact.precision}: diagnosing on {len(samples)} sample(s)")
    try:
        trace = None
        if trace_cache is not None:
            if "trace" not in trace_cache:
                from .run import trace_source

                trace_cache["trace"] = trace_source(source)
            trace = trace_cache["trace"]
        result = diagnose(source, artifact.path, artifact.runtime, samples, origins, tolerance, companions=tuple(companions), trace=trace)
    except Exception as exc:  # noqa: BLE001 - a diagnosis is advice; the cell's verdict stands
        return dataclasses.replace(parity, notes=(*parity.notes, f"diagnosis not available: {first_line(exc)}"))
    return dataclasses.replace(parity, diagnosis=result)


def diagnose_artifact(artifact, model, calibration, *, target=None, precision=None, against=None, samples=DEFAULT_SAMPLES, allow_pickle=False, progress=None) -> dict:
    """`edgepack diagnose`: the artifact's first divergent layer against its source model (or,
    with `against`, which of two artifacts of the model diverges first), on the held-out samples
    of `calibration` whose outputs agree worst. Precision: `precision`, else the one in the file
    name edgepack gives (`model.int8.tflite`), else fp32 (it picks the tolerance band)."""
    from ..pipeline.validation import ReferenceCache
    from ..progress import as_progress
    from ..calibration import load_calibration
    from ..formats.base import format_for_file
    from ..profiles import default_profile, resolve_profile
    from ..runtimes.base import get_runtime
    from ..sources.base import load_source
    from .rebuild import rebuilder

    progress = as_progress(progress)
    paths = [Path(artifact)] + ([Path(against)] if against else [])
    fmts = []
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: artifact not found; check the path")
        fmt = format_for_file(p)
        if fmt is None:
            raise InputError(f"{p}: not an artifact edgepack can run; give an .ort, .tflite or .mlpackage")
        fmts.append(fmt)
    if samples < 1:
        raise ConfigError(f"--samples {samples}: give at least 1")
    profile = default_profile() if target is None else resolve_profile(str(target))
    prec = precision or _precision_from_name(paths[0], fmts[0])
    if prec not in fmts[0].precisions:
        raise ConfigError(f"--precision {prec!r} is not a {fmts[0].name} precision; choose from: {', '.join(fmts[0].precisions)}")
    tolerance = dict(profile.tolerance_for(prec)) if hasattr(profile, "tolerance_for") else {}
    progress.step(f"loading {model}")
    source = load_source(str(model), allow_pickle=allow_pickle)
    calib = load_calibration(calibration, source.inputs, allow_pickle=allow_pickle, outputs=source.outputs, max_bytes=profile.validation.max_calibration_bytes)
    cal_idx, val_idx = calib.split(profile.validation.split, profile.validation.max_samples, profile.quantization.calibration_samples)
    if not val_idx:
        raise InputError(f"{calibration}: no held-out sample to diagnose on; give more calibration samples")
    refs = ReferenceCache(source, calib, progress).outputs(val_idx)
    rt = get_runtime(fmts[0].runtime)
    try:
        session = rt.open(paths[0], threads=1, source_inputs=source.inputs, source_outputs=source.outputs)
        outs = [session.run(calib.samples[i]) for i in val_idx]
    except EdgepackError as exc:
        raise InputError(f"{exc}; is {paths[0].name} a valid artifact made from {model}?") from exc
    picked = worst_samples(refs, outs, samples)
    keep: list = []
    rebuild = rebuilder(source, profile, [calib.samples[i] for i in cal_idx], prec, keep)
    progress.step(f"diagnosing {paths[0].name} on {len(picked)} sample(s)")
    try:
        return diagnose(
            source, paths[0], fmts[0].runtime, [calib.samples[val_idx[p]] for p in picked], [calib.origins[val_idx[p]] for p in picked],
            tolerance, against=(paths[1], fmts[1].runtime) if against else None, rebuild=rebuild,
        )
    finally:
        for tmp in keep:
            tmp.cleanup()


def _precision_from_name(path: Path, fmt) -> str:
    parts = path.name.split(".")
    return next((p for p in reversed(parts[1:-1]) if p in fmt.precisions), "fp32")


def _db(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def render_table(d: dict, width: int = 100) -> str:
    """A short table: the first divergent layer first, then every mapped layer in graph order."""
    m = d["mapped"]
    lines = [
        f"diagnosis of {d.get('artifact', '?')} against {d['against']} on {len(d['samples'])} sample(s)",
        f"mapped: {m['pairs']} of {m['source_tensors']} source layers ({m.get('by_name', 0)} by name, "
        f"{m.get('by_shape_order', 0)} by shape+order), band {d.get('band_db', 0):.1f} dB"
    ]
    fd = d["first_divergent"]
    if fd is None:
        lines.append("first divergent layer: none (every mapped layer stays within the band)")
    else:
        q = f", scale {fd['scale']:.4g} range [{fd['range'][0]:.4g}, {fd['range'][1]:.4g}]" if fd.get("scale") and fd.get("range") else ""
        lines += textwrap.wrap(
            f"first divergent layer: #{fd['index']} {fd['source_name']} ({fd['op_type']}): SQNR {_db(fd['sqnr_before'])} -> "
            f"{_db(fd['sqnr_after'])} dB{q}",
            width,
        )
    if d.get("verdict"):
        lines += textwrap.wrap(d["verdict"], width)
    other = "other" in d
    head = f"{'#':>3}  {'layer':<28} {'op':<12} {'SQNR dB':>8} {'cosine':>9}" + (f" {'other dB':>9}" if other else "") + "  artifact tensor"
    lines += [head, "-" * min(width, len(head) + 10)]
    for r in d["layers"]:
        mark = "*" if fd is not None and r["index"] == fd["index"] else " "
        cos = "–" if r["cosine"] is None else f"{r['cosine']:.5f}"
        row = f"{r['index']:>3}{mark} {r['source_name'][:28]:<28} {str(r['op_type'])[:12]:<12} {_db(r['sqnr_db']):>8} {cos:>9}"
        if other:
            row += f" {_db(r.get('other_sqnr_db')):>9}"
        lines.append((row + f"  {r['artifact_tensor']}")[:width])
    return "\n".join(lines)
