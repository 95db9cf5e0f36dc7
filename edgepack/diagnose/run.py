"""Running a diagnosis: the source's layers and an artifact's tensors, on the same samples."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import ConversionError
from ..runtimes.base import CompanionMissing, get_runtime
from ..types import Sample
from .compare import Accumulator, band_db, first_divergent, map_tensors
from .layers import SourceTrace, trace_onnx, trace_program

DEFAULT_SAMPLES = 4


def trace_source(source) -> SourceTrace:
    """The source's layers: an ONNX source's own graph, else its torch.export program (PyTorch,
    and Keras or others through the bridge)."""
    names = [t.name for t in source.inputs]
    if source.kind == "onnx":
        return trace_onnx(source.path, names)
    trace = trace_program(source.exported_program(), names)
    return trace


def _aliases(trace: SourceTrace, source) -> dict[str, str]:
    """Artifacts name their outputs as the source does ('output'); the last layers are those."""
    outs = [t.name for t in source.outputs]
    keys = [la.key for la in trace.layers if not la.is_input]
    return dict(zip(outs, keys[-len(outs):])) if len(outs) == 1 and keys else {}


def open_for_diagnosis(artifact_path: Path, runtime: str, source, companions: tuple[Path, ...], rebuild: Callable[[], Path] | None):
    """The runtime's diagnosis session; when it needs the file the artifact was made from and that
    is gone, `rebuild()` makes it again (returns the folder) and the session opens from there."""
    rt = get_runtime(runtime)
    kw = dict(source_inputs=source.inputs, source_outputs=source.outputs)
    try:
        return rt.diagnosis_session(Path(artifact_path), companions=companions, **kw), None
    except CompanionMissing as exc:
        if rebuild is None:
            raise ConversionError(f"{exc}; rebuild it, or give the source model and calibration data to `edgepack diagnose`") from exc
        folder = rebuild()
        return rt.diagnosis_session(Path(artifact_path), companions=(*companions, folder), **kw), f"{exc}: rebuilt from the artifact's route"


def diagnose_session(source, trace: SourceTrace, session, samples: list[Sample], tolerance: dict) -> dict:
    """Rows per mapped layer (graph order), the first divergent one, and how much was mapped."""
    prov = session.provenance()
    acc: dict[int, Accumulator] = {}
    pairs = None
    art_tensors = 0
    for sample in samples:
        ref = trace.run(sample)
        art = session.intermediates(sample)
        if pairs is None:
            for la in trace.layers:
                if la.key in ref:
                    la.shape = tuple(ref[la.key].shape)
            art_tensors = len(art)
            pairs = map_tensors(trace.layers, prov, {k: tuple(v.shape) for k, v in art.items()}, _aliases(trace, source))
        for pr in pairs:
            if pr.layer.key not in ref or pr.tensor not in art:
                continue
            a = art[pr.tensor]
            if pr.perm is not None:
                a = a.transpose(pr.perm)
            acc.setdefault(pr.layer.index, Accumulator()).add(ref[pr.layer.key], a.reshape(ref[pr.layer.key].shape))
    rows = []
    for pr in pairs or []:
        if pr.layer.index not in acc:
            continue
        p = prov[pr.tensor]
        rows.append(
            {
                "index": pr.layer.index,
                "source_name": pr.layer.source_name,
                "op_type": pr.layer.op_type,
                "source_tensor": pr.layer.key,
                "artifact_tensor": pr.tensor,
                "artifact_op": p.get("op_type"),
                "matched_by": pr.how,
                **acc[pr.layer.index].result(),
                "scale": p.get("scale"),
                "range": [float(x) for x in p["range"]] if p.get("range") else None,
            }
        )
    by_name = sum(1 for r in rows if r["matched_by"] == "name")
    band = band_db(tolerance)
    return {
        "mapped": {
            "source_tensors": len(trace.layers),
            "artifact_tensors": art_tensors,
            "pairs": len(rows),
            "by_name": by_name,
            "by_shape_order": len(rows) - by_name,
            "source_intermediates": trace.tensors,
        },
        "band_db": band,
        "layers": rows,
        "first_divergent": first_divergent(rows, band),
    }


def diagnose(
    source,
    artifact_path: Path,
    runtime: str,
    samples: list[Sample],
    origins: list[str],
    tolerance: dict,
    *,
    against: tuple[Path, str] | None = None,
    companions: tuple[Path, ...] = (),
    rebuild: Callable[[Path, str], Path] | None = None,
    trace: SourceTrace | None = None,
) -> dict:
    """The contract's `diagnosis` of one artifact against the source (or, with `against` = (other
    artifact, its runtime), both against the source, and which diverges first).
    `rebuild(path, runtime) -> folder` remakes a file an artifact was made from, when needed."""
    started = time.perf_counter()
    trace = trace or trace_source(source)
    notes = []

    def one(path: Path, rt: str) -> dict:
        session, note = open_for_diagnosis(path, rt, source, companions, (lambda: rebuild(path, rt)) if rebuild else None)
        if note:
            notes.append(note)
        return diagnose_session(source, trace, session, samples, tolerance)

    result = one(Path(artifact_path), runtime)
    out = {"against": "source", "artifact": Path(artifact_path).name, "samples": list(origins), **result}
    if against is not None:
        other = one(Path(against[0]), against[1])
        out["against"] = Path(against[0]).name
        out["other"] = other
        out["verdict"] = verdict(out["artifact"], result, out["against"], other)
        _merge_other(out["layers"], other["layers"])
    out["notes"] = notes
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def _merge_other(rows: list[dict], other: list[dict]) -> None:
    by_index = {r["index"]: r for r in other}
    for r in rows:
        o = by_index.get(r["index"])
        r["other_sqnr_db"] = o["sqnr_db"] if o else None
        r["other_cosine"] = o["cosine"] if o else None


def verdict(name: str, mine: dict, other_name: str, other: dict) -> str:
    a, b = mine["first_divergent"], other["first_divergent"]
    if a is None and b is None:
        return f"neither {name} nor {other_name} diverges from the source"
    if b is None or (a is not None and a["index"] < b["index"]):
        first, at, second = name, a, (f"{other_name} at layer {b['index']} ({b['source_name']})" if b else f"{other_name} does not")
    elif a is None or b["index"] < a["index"]:
        first, at, second = other_name, b, (f"{name} at layer {a['index']} ({a['source_name']})" if a else f"{name} does not")
    else:
        return f"both diverge first at layer {a['index']} ({a['source_name']}): {name} {a['sqnr_after']:.1f} dB, {other_name} {b['sqnr_after']:.1f} dB"
    return f"{first} diverges first, at layer {at['index']} ({at['source_name']}, {at['op_type']}); {second}"


def worst_samples(refs: list[list[np.ndarray]], outs: list[list[np.ndarray]], k: int = DEFAULT_SAMPLES) -> list[int]:
    """Positions of the k samples whose outputs agree worst with the source's (lowest cosine)."""
    scores = []
    for pos, (r, o) in enumerate(zip(refs, outs)):
        worst = 1.0
        for a, b in zip(r, o):
            a = np.asarray(a, np.float64).ravel()
            b = np.asarray(b, np.float64).ravel()
            if not np.isfinite(b).all():
                worst = -2.0  # non-finite outputs first
                continue
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            worst = min(worst, float(a @ b / (na * nb)) if na > 0 and nb > 0 else (1.0 if na == nb else 0.0))
        scores.append((worst, pos))
    return [pos for _, pos in sorted(scores)[:k]]
