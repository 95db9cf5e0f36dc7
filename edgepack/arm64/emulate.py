"""The emulated arm64 part of one artifact's validation (called from pipeline.validation.validate_artifact).

`emulate_artifact(...)` returns report.json's `emulated` for the artifact, or None when the
profile's `[emulation] arm64` is off or the artifact's runtime has no arm64 build (Core ML):
  {"label": "emulated-arm64", "ran": true, "cpu", "samples", "versions",
   "parity": ParityReport json (arm64 outputs against the source, the cell's tolerances),
   "vs_host": compare.compare_outputs (arm64 against the host run, raw outputs),
   "counts": instructions of one single-threaded inference by class, "seconds", "notes"}
  {"label": "emulated-arm64", "ran": false, "note": "arm64 runtime not set up: run `edgepack setup arm64`"}
A failed arm64 parity (or an arm64 runtime that cannot run the artifact) fails the cell (exit 1);
a missing set-up or a machine without QEMU is a note and the build goes on. No network here.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from ..errors import ConversionError
from .compare import compare_outputs, summary
from .home import ready
from .runner import GUEST_RUNTIMES, run_arm64
from .status import NotSetUp

LABEL = "emulated-arm64"
SWITCH = "EDGEPACK_ARM64"  # "off": builds skip the arm64 runs (a note says so), e.g. quick test tiers


def switched_off() -> bool:
    return os.environ.get(SWITCH, "").strip().lower() in ("0", "off", "false", "no")


def availability() -> str | None:
    """None when emulated runs can happen here, else the note that says why not."""
    if not sys.platform.startswith("linux"):
        return f"arm64 emulation unavailable: it needs Linux with qemu-user (this is {sys.platform}); the build goes on without it"
    if not ready():
        return str(NotSetUp())
    return None


def run_state() -> str:
    """Whether this build's arm64 runs happen: "off", "on", or why not (a cell cache key part:
    a cell validated without its arm64 run must not stand in for one with it)."""
    if switched_off():
        return "off"
    return availability() or "on"


def applies(profile, runtime: str) -> bool:
    em = getattr(profile, "emulation", None)
    return bool(em and em.arm64 and runtime in GUEST_RUNTIMES)


def source_order_names(session) -> list[str]:
    """The artifact's own output names in the source's output order (what Session.run_raw returns)."""
    names = getattr(session, "_out_names", None)  # OrtSession
    if names is None and hasattr(session, "_out_order"):  # LiteRtSession: ports in source order
        names = [p.name for p in session._out_order]
    return list(names) if names is not None else [b.name for b in session.outputs]


def decode(session, feeds, raw_outputs: list[np.ndarray]) -> list[np.ndarray]:
    """Raw outputs in source terms, as the session's own run() would give them: the session's run
    is asked to decode these outputs in place of its own run_raw's. A session whose run() does
    not go through run_raw returns its runtime's outputs as they are (fp16 widened to fp32)."""
    called = []

    def replay(_raw):
        called.append(True)
        return [np.array(o) for o in raw_outputs]

    if "run_raw" not in vars(session):
        session.run_raw = replay
        try:
            out = session.run(feeds)
        finally:
            del session.run_raw
        if called:
            return out
    return [np.asarray(o, np.float32) if np.asarray(o).dtype == np.float16 else np.asarray(o) for o in raw_outputs]


def emulate_artifact(profile, artifact, session, source, calib, val_idx, refs, progress) -> dict[str, Any] | None:
    if not applies(profile, artifact.runtime):
        return None
    em = profile.emulation
    why_not = f"arm64 emulation off ({SWITCH}={os.environ.get(SWITCH)})" if switched_off() else availability()
    if why_not:
        progress.step(f"[{profile.name}] {artifact.format} {artifact.precision}: {why_not}")
        return {"label": LABEL, "ran": False, "note": why_not}
    idx = list(val_idx[: em.samples])
    feeds = [calib.samples[i] for i in idx]
    raw_in = [session.raw_feeds(f) for f in feeds]
    host_raw = [session.run_raw(r) for r in raw_in]
    names = source_order_names(session)
    label = f"[{profile.name}] {artifact.format} {artifact.precision}"
    progress.step(f"{label}: arm64 run under QEMU ({em.cpu}, {len(idx)} sample(s), counting one inference)")
    try:
        run = run_arm64(artifact, raw_in, em.cpu, count=True, output_names=names)
    except ConversionError as exc:  # the arm64 runtime cannot run it: the phone would not either
        return {"label": LABEL, "ran": False, "cpu": em.cpu, "error": str(exc),
                "parity": {"passed": False, "failures": [f"arm64 ({em.cpu}): {exc}"]}}
    decoded = [decode(session, f, outs) for f, outs in zip(feeds, run.outputs)]
    targets = calib.targets[idx] if calib.targets is not None else None
    parity = emulated_parity(profile, artifact, source, refs[: len(idx)], decoded, targets, [calib.origins[i] for i in idx])
    vs_host = compare_outputs(names, host_raw, run.outputs)
    notes = [summary(vs_host), *parity.get("notes", [])]
    if not parity["passed"]:
        notes.append(f"arm64 parity failed on {em.cpu}: {parity['failures'][0]}")
    return {
        "label": LABEL,
        "ran": True,
        "cpu": em.cpu,
        "samples": len(idx),
        "versions": run.versions,
        "parity": parity,
        "vs_host": vs_host,
        "counts": run.counts,
        "counts_note": "guest instructions of one single-threaded inference by class (QEMU TCG plugin); not a time",
        "seconds": round(run.seconds, 2),
        "notes": notes,
    }


# Rate metrics: shares of samples (rows). On a few emulated samples one row moves them by 1/n, so
# below validation.min_samples they are reported, not gated; continuous metrics still gate.
RATE_KEYS = ("min_top1_agreement", "min_top5_agreement", "max_accuracy_drop")


def emulated_parity(profile, artifact, source, refs, outs, targets, origins) -> dict[str, Any]:
    """report.json's emulated `parity`: the arm64 outputs against the source, with the cell's
    tolerances. When the emulated samples are fewer than `validation.min_samples`, the rate checks
    (RATE_KEYS) do not gate: they are listed under "ungated" (value, threshold, passed) and a note
    says why; cosine, SQNR, max/mean abs, exact match and non-finite values still gate."""
    from ..validate.parity import check_parity

    names = [t.name for t in source.outputs]
    fmt, prec = artifact.format, artifact.precision
    tol = profile.tolerance_for(prec, format=fmt)
    per = {n: profile.tolerance_sources(prec, format=fmt, output=n) for n in names}
    kw = {"origins": origins, "source": source.spec, "kinds": profile.output_kinds}
    full = check_parity(names, refs, outs, tol, targets, per_output=per, **kw)
    floor = profile.validation.min_samples
    ungated = [{"output": s.output, **c.to_json()} for s in full.outputs for c in s.checks if c.metric in RATE_KEYS]
    if len(refs) >= floor or not ungated:
        return full.to_json()

    def strip(d):
        return {k: v for k, v in d.items() if k not in RATE_KEYS}

    gated = check_parity(names, refs, outs, strip(tol), targets, per_output={n: strip(t) for n, t in per.items()}, **kw)
    missed = [u for u in ungated if not u["passed"]]
    note = (
        f"arm64 parity ran on {len(refs)} sample(s), fewer than validation.min_samples ({floor}): "
        "top-1/top-5 agreement and the accuracy drop are reported, not gated (one sample moves them by "
        f"{1 / max(len(refs), 1):.2f})" + (f"; {len(missed)} of {len(ungated)} would fail" if missed else "")
        + "; cosine, SQNR, max/mean abs and non-finite values gate"
    )
    out = gated.to_json()
    out["ungated"] = ungated
    out["notes"] = [*out["notes"], note]
    return out


def arm64_goldens(profile, artifact, session, feeds_list) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]], str] | None:
    """Golden vectors from the arm64 run (what the phone computes): (raw outputs, decoded outputs,
    label) per case, or None (the host's then) when the profile does not emulate this artifact,
    the runtime is not set up, or the arm64 run fails (the cell's own arm64 parity says so)."""
    if not applies(profile, artifact.runtime) or switched_off() or availability():
        return None
    raw_ins = [session.raw_feeds(f) for f in feeds_list]
    try:
        run = run_arm64(artifact, raw_ins, profile.emulation.cpu, output_names=source_order_names(session))
    except ConversionError:
        return None
    decoded = [decode(session, f, outs) for f, outs in zip(feeds_list, run.outputs)]
    return run.outputs, decoded, f"{LABEL} ({profile.emulation.cpu})"
