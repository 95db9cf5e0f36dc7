"""The arm64 run of each artifact (ArtifactResult.emulated, edgepack/arm64/emulate.py) as report
text: parity against the source with the worst cosine, arm64 against the host run, and the
instruction count of one inference with its top classes.

    EMULATED_COLUMNS, emulated_row(r) -> tuple[str, ...] | None   (report.md / report.html table)
    TERMINAL_COLUMNS, emulated_terminal_row(r) -> tuple | None     (the terminal's arm64 table)
    emulated_failures(r) -> list[str]                              (FAIL lines: "arm64 (cpu): ...")
"""
from __future__ import annotations

import math
from typing import Any

from ..types import ArtifactResult

EMULATED_COLUMNS = ("Target", "Format", "Precision", "CPU", "Samples", "arm64 parity", "Worst cosine", "arm64 vs host", "Instructions", "Top classes")
TOP_CLASSES = 3


def _em(r: ArtifactResult) -> dict[str, Any] | None:
    return r.emulated if isinstance(r.emulated, dict) else None


def worst_cosine(em: dict[str, Any]) -> float | None:
    """The lowest cosine over the arm64 outputs; NaN when an output's values were not finite."""
    outs = (em.get("parity") or {}).get("outputs") or []
    if any(o.get("nonfinite") for o in outs):
        return math.nan
    values = [o["min_cosine"] for o in outs if o.get("min_cosine") is not None]
    return min(values) if values else None


def _cos(v: float | None) -> str:
    return "–" if v is None else "non-finite" if not math.isfinite(v) else f"{v:.6f}"


def _vs_host_parts(em: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """("bit-identical" | "–" | None, the outputs that differ); None means: describe the differences."""
    v = em.get("vs_host")
    if not v:
        return "–", []
    if v.get("bit_identical"):
        return "bit-identical", []
    return None, v.get("outputs") or []


def vs_host_text(em: dict[str, Any]) -> str:
    """"bit-identical", or how many values differ and by how many LSBs (integer outputs) or how
    much (float outputs), summed over the outputs."""
    word, outs = _vs_host_parts(em)
    if word is not None:
        return word
    differing, values = sum(o.get("differing", 0) for o in outs), sum(o.get("values", 0) for o in outs)
    text = f"{differing} of {values} values differ"
    lsb = [o["max_lsb"] for o in outs if o.get("differing") and "max_lsb" in o]
    ulp = [o for o in outs if o.get("differing") and "max_ulp" in o]
    if any(o.get("shape_mismatch") for o in outs):
        text += ", shapes or dtypes differ"
    if lsb:
        text += f", up to {max(lsb)} LSB"
    if ulp:
        text += f", up to {max(o['max_abs'] for o in ulp):.3g} abs ({max(o['max_ulp'] for o in ulp)} ULP)"
    return text


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} G" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)


def top_classes(counts: dict[str, int] | None, k: int = TOP_CLASSES) -> list[tuple[str, float]]:
    """The `k` largest instruction classes with their share of the total."""
    if not counts or not counts.get("total"):
        return []
    total = counts["total"]
    parts = sorted(((c, n) for c, n in counts.items() if c != "total" and n > 0), key=lambda x: (-x[1], x[0]))
    return [(c, n / total) for c, n in parts[:k]]


def counts_text(em: dict[str, Any]) -> tuple[str, str]:
    """("66.1 k", "scalar 62%, load 25%, store 12%") for one inference; dashes without counts."""
    counts = em.get("counts")
    if not counts or not counts.get("total"):
        return "–", "–"
    return _count(counts["total"]), ", ".join(f"{c} {s:.0%}" for c, s in top_classes(counts))


def _parity_word(em: dict[str, Any]) -> str:
    p = em.get("parity")
    if not p:
        return "–"
    return "PASS" if p.get("passed") else "FAIL"


def emulated_row(r: ArtifactResult) -> tuple[str, ...] | None:
    """The report table's row, or None when the profile does not emulate this artifact. A run that
    did not happen says why in the parity column."""
    em = _em(r)
    if em is None:
        return None
    head = (r.target, r.artifact.format, r.artifact.precision)
    if not em.get("ran"):
        why = em.get("note") or em.get("error") or "not run"
        return (*head, em.get("cpu", "–"), "–", ("FAIL: " if _parity_word(em) == "FAIL" else "not run: ") + why, "–", "–", "–", "–")
    total, classes = counts_text(em)
    return (*head, em.get("cpu", "–"), str(em.get("samples", "–")), _parity_word(em), _cos(worst_cosine(em)), vs_host_text(em), total, classes)


TERMINAL_COLUMNS = ("arm64 run", "CPU", "Parity", "Cosine", "vs host", "Instr", "Top classes")


def _short_vs(em: dict[str, Any]) -> str:
    """vs_host_text for the terminal: "bit-identical", "76/100 differ ≤14 LSB", "3/48 differ ≤2 ULP"."""
    word, outs = _vs_host_parts(em)
    if word is not None:
        return word
    text = f"{sum(o.get('differing', 0) for o in outs)}/{sum(o.get('values', 0) for o in outs)} differ"
    lsb = [o["max_lsb"] for o in outs if o.get("differing") and "max_lsb" in o]
    ulp = [o["max_ulp"] for o in outs if o.get("differing") and "max_ulp" in o]
    return text + (f" ≤{max(lsb)} LSB" if lsb else "") + (f" ≤{max(ulp)} ULP" if ulp else "")


def emulated_terminal_row(r: ArtifactResult, with_target: bool = True) -> tuple[str, ...] | None:
    """The terminal's row of an artifact that ran emulated (or whose arm64 run failed); None for
    one that was not emulated or did not run (arm64_lines gives those one line per reason)."""
    em = _em(r)
    if em is None or (not em.get("ran") and _parity_word(em) != "FAIL"):
        return None
    cell = (f"{r.target} " if with_target else "") + f"{r.artifact.format} {r.artifact.precision}"
    cpu = str(em.get("cpu") or "–").removeprefix("cortex-")
    if not em.get("ran"):
        return (cell, cpu, "FAIL", "–", "cannot run it", "–", "–")
    counts = em.get("counts")
    total = counts_text(em)[0]
    top = " ".join(f"{c} {sh:.0%}" if sh >= 0.005 else f"{c} <1%" for c, sh in top_classes(counts, 2))
    return (cell, cpu, _parity_word(em), _cos(worst_cosine(em)), _short_vs(em), total, top or "–")


def emulated_failures(r: ArtifactResult) -> list[str]:
    """The arm64 run's failures, each naming arm64 and its CPU."""
    em = _em(r)
    p = (em or {}).get("parity") or {}
    if p.get("passed") is not False:
        return []
    where = f"arm64 ({em.get('cpu', '?')})"
    return [f if f.startswith("arm64") else f"{where}: {f}" for f in p.get("failures") or [f"{where}: parity failed"]]
