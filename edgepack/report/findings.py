"""Warnings that the numbers call for, once every artifact is built: a variant larger than its fp32
sibling, or a compressed one no smaller than its float sibling ("came out uncompressed").

Each note is "HEAD; DETAIL": the terminal warning shows HEAD, the reports the whole note."""
from __future__ import annotations

from collections.abc import Callable

from ..types import ArtifactResult
from .summary import human_size

FLOAT = ("fp32", "fp16")
UNCOMPRESSED_RATIO = 0.95  # "no smaller": at least 95% of the float sibling (metadata differs a little)
WEIGHTS = "weights_bytes"  # a format may record its weight payload in Artifact.details; it is compared then
# ... and the share of its weight elements that are stored compressed (read from the saved model):
# below this share a compressed variant "came out uncompressed", with or without a float sibling
SHARE = "compressed_weight_share"
MIN_COMPRESSED_SHARE = 0.5


def size_findings(results: list[ArtifactResult], reason_for: Callable[[str], str | None] = lambda fmt: None) -> dict[int, str]:
    """{index in `results`: note} for every variant whose file is larger than the fp32 one of the same
    target and format, and for compressed variants (every precision but fp32/fp16) that came out
    uncompressed: by their own `compressed_weight_share` where the format records it (below 0.5;
    no sibling needed), else no smaller than the fp16 (else fp32) sibling. `reason_for(format)`
    gives the format's known cause of the latter. One note per variant."""
    by_cell = {(r.target, r.format, r.precision): r for r in results}
    found: dict[int, str] = {}
    for i, r in enumerate(results):
        if r.precision == "fp32":
            continue
        fp32 = by_cell.get((r.target, r.format, "fp32"))
        if fp32 is not None and r.size_bytes > fp32.size_bytes:
            found[i] = (
                f"size: {r.precision} is larger than fp32 ({human_size(r.size_bytes)} vs {human_size(fp32.size_bytes)}, "
                f"+{(r.size_bytes / fp32.size_bytes - 1):.0%}); on this model its {r.precision} form costs more than it saves: ship fp32"
            )
            continue
        if r.precision in FLOAT:
            continue
        share = r.artifact.details.get(SHARE)
        if share is not None:  # measured in the artifact itself: one note, whatever else was built
            if share < MIN_COMPRESSED_SHARE:
                d = r.artifact.details
                why = d.get("uncompressed_reason") or reason_for(r.format)  # the variant's own cause, else the format's
                found[i] = (
                    f"size: {r.precision} came out {'uncompressed' if share == 0 else 'mostly uncompressed'} "
                    f"({d.get('compressed_weight_elements', 0)} of {d.get('weight_elements', 0)} weight elements stored compressed, {share:.0%})"
                    + (f"; {why}" if why else "")
                )
            continue
        sib = next((by_cell[(r.target, r.format, p)] for p in ("fp16", "fp32") if (r.target, r.format, p) in by_cell), None)
        if sib is None:
            continue
        mine, ref, what = r.artifact.details.get(WEIGHTS), sib.artifact.details.get(WEIGHTS), "weights "
        if mine is None or ref is None:  # no weight figure: the whole file
            mine, ref, what = r.size_bytes, sib.size_bytes, ""
        if mine >= UNCOMPRESSED_RATIO * ref:
            why = reason_for(r.format)
            found[i] = (
                f"size: {r.precision} came out uncompressed ({what}{human_size(mine)}, {sib.precision} {what}{human_size(ref)})"
                + (f"; {why}" if why else "")
            )
    return found
