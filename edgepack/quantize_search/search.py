"""The search: full int8 first, cheap fixes, then the fewest greedy fallbacks that meet the budget.

A format plug-in drives it with a Backend (its own quantiser; nothing here knows a format):

    layers()                      -> [{"name", "op_type"}] quantisable layers, graph order
    fallback_options              -> ("int16", "float") or ("float",): next better first
    base()                        -> the whole-model settings of plain int8 (method, per_channel, ...)
    fixes(base, sensitive)        -> [(label, base')]: cheap fixes to try, cheapest first; they
                                     compound (each on top of the ones that helped before it);
                                     `sensitive()`: the layers, most sensitive first, by the error
                                     map of full int8 (empty without one), taken when first called
    build(base, precisions, fit)  -> a candidate, calibrated on `fit`
    run(candidate, samples)       -> per sample, the outputs in the source's order
    size(candidate)               -> bytes
    layer_errors(candidate, samples) -> {layer: dB} of each layer's own quantisation, or None
    last_resort(base)  (optional)  -> [(label, base'), ...], cheapest first: rounds of the last
                                     option once more, when no count passes (ORT: float layers
                                     keep int16, then fp32 weights); [] when there are none
    movers()  (optional)           -> {layer: [the layers it reads]} for the layers whose op only
                                     moves or selects values (pad, transpose, concat, max pool, ...)

Samples: the calibration part only. `fit` calibrates every candidate, `check` judges it against
the budget; the gate's held-out samples are never seen here. A candidate that meets the budget on
fewer than MIN_JUDGED check samples is judged again with search-fit samples added up to that
many: they are in-sample for its ranges, but weight rounding and the spread between samples show
on them as on any other (PP-OCRv6 det in Core ML, 12 calibration samples: float activations with
int8 weights met the budget on its 4 check samples at cosine 0.9927 and read 0.935 on a fit one;
the gate's held-out samples read 0.981). Where those runs cost more than a build (Core ML's
emulator on a big net; measured as the search goes), a fallback count's pass is confirmed only
when the search comes to take it (settle): the bisection first runs on the check samples; if the
count it lands on misses on the search-fit ones, the passes held above it are confirmed in turn,
every later pass at once, and the bisection goes on above the miss. Passes above the one taken
can keep figures from the check samples alone (their steps say so).

A layer that only moves values (Backend.movers) follows what it reads: once every layer it reads
has fallen back, it takes the best of their precisions, since quantising it alone would add a
rounding (and a quantize/dequantize pair) and save nothing. PP-OCRv6 det in LiteRT: a -inf PADV2
and its TRANSPOSE before a max pool, left int8 between float layers, re-quantised the float stem
and clipped a held-out sample (cosine 0.931; 1.0000 with either in float).

Cost: one build and one check run per candidate (and a confirming run for the pass it takes,
and for the full int8, fix and skip-one candidates that pass, on fewer than MIN_JUDGED check
samples). After plain int8 and the fixes, the counts 1, 2 and 4 are tried (3 when 2 misses and
4 passes), then the first passing count is bisected between 4 and N, so a model with N layers
costs about 3 + log2(N) candidates per fallback option, not N; past 16 fallbacks the bisection
stops within 1/8 of the fewest (resolution), so a net that needs hundreds saves its last few
steps. One candidate with every layer at the option tells whether the option can meet the budget
at all (after the first counts;
first, on models with more than 16 layers); when it cannot, the search moves to the next option
at once. A fallback candidate runs FIRST_LOOK check sample first and the rest only when that one
does not already miss a worst-sample check (min_cosine, max_abs, non-finite values) at the gate's
own threshold (budget.hopeless): more samples could not save it, and most counts below the
answer miss that clearly (its step records the samples it was judged on).

Every candidate is judged twice on the same figures: against the search's thresholds (budget.py:
tighter than the gate's) and against the gate's own. When no count of any round meets the former,
the fewest fallbacks that met the latter are taken (search.met_headroom false) and the gate decides
on the held-out samples; only when none met even those does the cell fail.

A candidate that cannot be built or run (a quantiser or runtime error) fails its trial with the
error as its reason; it never fails the cell by itself.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import ConversionError
from ..errors import first_line
from .budget import Budget, Figures, evaluate_at, failed, hopeless, output_kinds
from .recipe import Recipe


class Backend(Protocol):
    fallback_options: tuple[str, ...]

    def layers(self) -> list[dict[str, Any]]: ...
    def base(self) -> dict[str, Any]: ...
    def fixes(self, base: dict[str, Any], sensitive: Callable[[], tuple[str, ...]] = tuple) -> list[tuple[str, dict[str, Any]]]: ...
    def build(self, base: dict[str, Any], precisions: dict[str, str], samples: list) -> Any: ...
    def run(self, candidate: Any, samples: list) -> list[list]: ...
    def size(self, candidate: Any) -> int: ...
    def layer_errors(self, candidate: Any, samples: list) -> dict[str, float] | None: ...


FIX_MIN_GAIN = 0.25  # a fix is kept when it closes at least this share of the gap to the budget


def standard_fixes(base: dict[str, Any], percentile: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """The cheap whole-model fixes, cheapest first, for a backend whose base has "per_channel",
    "range_margin" and (where the format can calibrate percentiles) "method"/"percentile"."""
    out = []
    if not base["per_channel"]:
        out.append(("per-channel weights", {**base, "per_channel": True}))
    if percentile and base.get("method") == "minmax":
        out.append(("percentile range (99.99)", {**base, "method": "percentile", "percentile": 99.99}))
    out.append(("range margin 0.1", {**base, "range_margin": 0.1}))
    return out


def widened(lo, hi, margin: float):
    """A calibrated range [lo, hi] widened by `margin` x (hi - lo) on both sides: base["range_margin"],
    as every backend applies it (scalars or arrays; a zero-width range stays as it is)."""
    pad = (hi - lo) * margin
    return lo - pad, hi + pad


class LastSession:
    """A backend's session of the candidate it ran last: the search runs a candidate in two goes
    (its first look, then the other samples), and a session costs a model load."""

    def __init__(self):
        self._candidate, self._session = None, None

    def of(self, candidate, make: Callable[[Any], Any]):
        if self._session is None or self._candidate is not candidate:
            self._candidate, self._session = candidate, make(candidate)
        return self._session


def _refused(exc: Exception) -> Figures:
    """The figures of a candidate the quantiser or the runtime refused (its trial fails, not the search)."""
    return failed(f"candidate failed: {type(exc).__name__}: {first_line(exc)[:200]}")


MAP_SAMPLES = 4  # search-fit samples the per-layer error map runs
MIN_JUDGED = 16  # a passing candidate is judged on at least this many samples (search-fit ones added)
FIRST_LOOK = 1  # check samples a candidate runs first; it runs the rest unless they show a clear miss


def split_calibration(samples: list) -> tuple[list, list]:
    """(search-fit, search-check): every third sample checks, the rest calibrate; with fewer than
    three samples both are all of them (the recipe then says so)."""
    if len(samples) < 3:
        return list(samples), list(samples)
    check = [s for i, s in enumerate(samples) if i % 3 == 2]
    fit = [s for i, s in enumerate(samples) if i % 3 != 2]
    return fit, check


PROBE_AFTER = 4  # counts tried before one all-at-option candidate asks whether the option can pass at all
PROBE_FIRST_ABOVE = 16  # ... asked first on models with more layers than this, where a hopeless option costs most


def settled(precisions: dict[str, str], movers: dict[str, list[str]], options: tuple[str, ...]) -> dict[str, str]:
    """`precisions` with every int8 mover whose read layers have all fallen back at the best of
    their precisions (`options` next better first); movers in graph order, so a chain follows."""
    out = dict(precisions)
    rank = {o: i for i, o in enumerate(options)}
    for name, reads in movers.items():
        if out.get(name, "int8") == "int8" and reads and all(out.get(r, "int8") != "int8" for r in reads):
            out[name] = max((out[r] for r in reads), key=lambda p: rank.get(p, -1))
    return out


BISECT_SHARE = 8  # the bisection stops once the fewest passing count is known to within 1/8 of it


def resolution(hi: int) -> int:
    """How close the bisection brings a passing count `hi` to the fewest that pass: exact below 16
    fallbacks, within hi/8 above (layout in ONNX Runtime took 203 of 330 layers after 8 bisection
    steps; within 1/8 it takes 207 after 4, a candidate of ~3 s saved per step, the .ort 784 bytes
    bigger of 3.86 MB, held-out cosine 0.9984 against 0.9970). The recipe's search.fewest_within
    gives the bracket: the fewest that pass lie in it."""
    return max(1, hi // BISECT_SHARE)


def schedule(n: int) -> list[int]:
    """1, 2, 4, then n: a few fallbacks are the common case and cost one candidate each (3 is
    bisected between 2 and 4 when 4 passes); past them, the first passing count is bisected between
    4 and n (a binary search over the rest: the real nets that need more than four take many of
    their layers, 87 of 92 on ocr_cls, 207 of 330 on layout). Trying 3 first would cost a candidate
    on every net that needs 4 or more and save one only on those that need exactly 3."""
    return [k for k in (1, 2, 4) if k < n] + ([n] if n else [])


def search(
    fmt: str,
    backend: Backend,
    budget: Budget,
    calibration: list,
    reference: Callable[[list], list[list]],
    step: Callable[[str], None] = lambda _m: None,
) -> Recipe:
    """The recipe with the fewest fallbacks that meets `budget` on the search-check samples.
    `reference(samples)`: the source's outputs. Raises ConversionError when even every layer at
    the best option misses, with the best figure reached."""
    started = time.perf_counter()
    fit, check = split_calibration(calibration)
    extra = fit[: max(0, MIN_JUDGED - len(check))] if len(calibration) >= 3 else []
    refs = reference(check)
    kinds = output_kinds(budget, refs)  # a first look at FIRST_LOOK samples judges each output as all of them would
    extra_refs: list = []
    layers = [dict(la) for la in backend.layers()]
    names = [la["name"] for la in layers]
    steps: list[dict[str, Any]] = []
    built = [0]

    # met the gate's thresholds, not the headroom: (fallbacks, -gate score, base, precisions, ranked, label, step)
    gate_only: list[tuple[int, float, dict[str, Any], dict[str, str], set[str], str, dict[str, Any]]] = []

    spent = {"build": [0.0, 0], "run": [0.0, 0]}  # seconds and count: builds, and runs per sample

    def timed(kind, f, *args, n=1):
        t = time.perf_counter()
        out = f(*args)
        spent[kind][0] += time.perf_counter() - t
        spent[kind][1] += n
        return out

    def deferring() -> bool:
        """Whether a pass's confirmation is worth deferring: when its runs cost more than a build
        (a wasted bisection step, should the sample sets disagree). Core ML's emulator on a big
        net; not ONNX Runtime or LiteRT, whose runs are cheap."""
        (bt, bn), (rt, rn) = spent["build"], spent["run"]
        return lazy and bn > 0 and rn > 0 and (rt / rn) * len(extra) > bt / bn

    def met_gate_only(gate, plain: Figures, entry: dict[str, Any]) -> dict[str, Any]:
        """Keep a candidate that met the gate's thresholds but not the headroom; `entry`: its step."""
        n_moved, base_, precisions, ranked, label = gate
        gate_only.append((n_moved, -plain.score, base_, precisions, ranked, label, entry))
        return entry

    def better(fig: Figures) -> bool:
        """A new best figure (for the error that names it): judged on every check sample, and higher."""
        return fig.score > best.score and fig.samples >= len(check)

    def confirmed(cand, outs):
        """(figures, gate figures) on the check samples' outputs `outs` and the search-fit ones added (MIN_JUDGED)."""
        if not extra_refs:
            extra_refs.extend(reference(extra))
        return evaluate_at(budget, refs + extra_refs, outs + timed("run", backend.run, cand, extra, n=len(extra)), (None, 0))

    def trial(base, precisions, label, record=True, to=None, ranked=(), look=False, defer=False) -> tuple[Figures, Any, dict | None]:
        """(figures, candidate, pending). `look`: one check sample first (a clear miss stops there).
        `defer`: a pass on the check samples is not confirmed on the search-fit ones yet; `pending`
        holds what settle() needs to confirm it, if the search comes to take it."""
        built[0] += 1
        moved = [n for n in names if precisions.get(n, "int8") != "int8"]
        gate = (len(moved), dict(base), dict(precisions), set(ranked), label)  # what gate_only keeps of it
        gated = None  # this candidate's step, kept in gate_only when it met only the gate's thresholds
        pending = None
        try:
            cand = timed("build", backend.build, base, precisions, fit)
            first = check[:FIRST_LOOK] if look else check  # a clear miss stops there (hopeless)
            outs = timed("run", backend.run, cand, first, n=len(first))
            fig, plain = evaluate_at(budget, refs[: len(outs)], outs, (None, 0), kinds)
            if len(outs) < len(check) and not hopeless(plain):
                outs = outs + timed("run", backend.run, cand, check[len(outs):], n=len(check) - len(outs))
                fig, plain = evaluate_at(budget, refs, outs, (None, 0))
            if (fig.passed or plain.passed) and extra:
                if defer and fig.passed and deferring():
                    pending = {"cand": cand, "outs": outs, "gate": gate}
                else:
                    fig, plain = confirmed(cand, outs)
            if plain.passed and not fig.passed:
                gated = met_gate_only(gate, plain, {})
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # this candidate only: the quantiser or the runtime refused it
            cand, fig, pending = None, _refused(exc), None
        early = f" (on {fig.samples} of {len(check)} check samples)" if 0 < fig.samples < len(check) else ""
        verdict = "meets the budget" + (" on the check samples" if pending else "") if fig.passed else (fig.failures or ("misses",))[0] + early
        step(f"int8_auto: candidate {built[0]} ({label}): {verdict}")
        if record or gated is not None:
            size = backend.size(cand) if cand is not None else None
            entry = {"fallbacks": len(moved), "label": label, "to": to or "int8", "layers": moved, "size_bytes": size, **fig.to_json(), "samples": fig.samples}
            if record:
                steps.append(entry)
            else:  # a fix that met only the gate: its step goes in if the search ends up taking it
                gated.update(entry)
            if pending is not None:
                pending["entry"] = entry
        return fig, cand, pending

    def settle(pending) -> bool:
        """Confirm a deferred pass on the search-fit samples too; its step then says how it did."""
        try:
            fig, plain = confirmed(pending["cand"], pending["outs"])
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            fig = plain = _refused(exc)
        entry = pending.get("entry")
        if entry is not None:
            entry.update({**fig.to_json(), "samples": fig.samples})
        if plain.passed and not fig.passed:
            met_gate_only(pending["gate"], plain, entry or {})
        step(f"int8_auto: {pending['gate'][4]}: {'confirmed' if fig.passed else (fig.failures or ('misses',))[0]} on {fig.samples} samples")
        return fig.passed

    int8 = {n: "int8" for n in names}
    base = backend.base()
    step(f"int8_auto: full int8 over {len(fit)} samples, checked on {len(check)}" + (f" (a pass also on {len(extra)} of the fit samples)" if extra else ""))
    best, cand, _ = trial(base, int8, "full int8")
    fixes = []
    mapped: list = []  # [the candidate, its per-layer error map], once one is taken

    def error_map(c):
        if not mapped or mapped[0] is not c:
            mapped[:] = [c, backend.layer_errors(c, fit[:MAP_SAMPLES]) if c is not None else {}]
        return mapped[1]

    if not best.passed:
        full = cand

        def sensitive() -> tuple[str, ...]:
            """The layers, most sensitive first, by full int8's error map: taken only when a fix asks
            (ORT's percentile ranges on the most sensitive layers), and kept for the fallbacks."""
            errs = error_map(full)
            return tuple(sorted(errs, key=errs.get)) if errs else ()

        # The fixes compound: each is tried on top of the ones that helped before it (its change
        # against the plain base, applied to the current base).
        plain, kept = dict(base), []
        for label, fixed in backend.fixes(plain, sensitive=sensitive):
            change = {k: v for k, v in fixed.items() if plain.get(k) != v}
            trying = {**base, **change}
            fig, c, _ = trial(trying, int8, label, record=False)
            # kept only when it closes a real share of the distance to the budget: a whole-model change
            # that barely helps (a percentile range that clips every tensor) costs the fallbacks later
            helped = fig.passed or fig.score - best.score >= FIX_MIN_GAIN * -best.score
            fixes.append({"fix": label, "on_top_of": list(kept), "score": round(fig.score, 6), "passed": fig.passed, "helped": helped})
            if helped:
                base, best, cand = trying, fig, c
                kept.append(label)
                steps.append({"fallbacks": 0, "label": "full int8 + " + " + ".join(kept), "to": "int8", "layers": [], "size_bytes": backend.size(c), **fig.to_json(), "samples": fig.samples})
            if fig.passed:
                break
    chosen, ranked, met_headroom, bracket = int8, set(), True, None
    if not best.passed:
        errors = error_map(cand)  # full int8's, or, when a fix helped, the map of the candidate it gave
        how = "per-layer error map" if cand is not None else "none (full int8 did not run): graph order"
        if errors is None:  # skip-one trials: the score each layer's own fallback wins
            how = "skip-one trials"
            opt = backend.fallback_options[0]
            gains = {}
            for n in names:
                fig, _, _ = trial(base, {**int8, n: opt}, f"skip-one {n}", record=False, ranked=[n])
                gains[n] = fig.score - best.score
            errors = {n: -g for n, g in gains.items()}  # lower = more sensitive, as dB would be
        for la in layers:
            if la["name"] in errors:
                la["sensitivity_db" if how == "per-layer error map" else "skip_one_loss"] = round(float(errors[la["name"]]), 3)
        order = sorted(names, key=lambda n: errors.get(n, float("inf")))
        movers = getattr(backend, "movers", None)
        known = set(names)
        movers = {k: v for k, v in (movers() if movers is not None else {}).items() if k in known}
        found = None
        tried: dict[tuple[str, int], Figures] = {}
        rounds = [(option, base, "") for option in backend.fallback_options]
        last = getattr(backend, "last_resort", None)
        for label, last_base in (last(base) if last is not None else []):  # e.g. float layers with wider weights (bigger)
            rounds.append((backend.fallback_options[-1], last_base, f" ({label})"))
        lazy = True  # confirm a pass when the search takes it; once one misses there, every pass at once (the sample sets disagree)
        for option, round_base, note in rounds:
            def at(k: int) -> dict[str, str]:
                return settled({**int8, **{n: option for n in order[:k]}}, movers, backend.fallback_options)

            last_fail, n_all = 0, len(order)
            held: dict[int, dict] = {}  # count -> its pass on the check samples, not yet confirmed (settle)
            for k in schedule(n_all):
                probe = k > PROBE_AFTER or n_all > PROBE_FIRST_ABOVE
                if probe and (option + note, n_all) not in tried:  # can this option meet the budget at all?
                    fig, _, pend = trial(round_base, at(n_all), f"{n_all} to {option}{note}", to=option + note, ranked=order, look=True, defer=True)
                    tried[(option + note, n_all)] = fig
                    if pend:
                        held[n_all] = pend
                    best = fig if better(fig) else best
                    if not fig.passed:
                        break
                if k == n_all and (option + note, k) in tried:
                    fig = tried[(option + note, k)]
                else:
                    fig, _, pend = trial(round_base, at(k), f"{k} to {option}{note}", to=option + note, ranked=order[:k], look=True, defer=True)
                    if pend:
                        held[k] = pend
                tried[(option + note, k)] = fig
                if better(fig):
                    best = fig
                if fig.passed:
                    lo, hi = last_fail, k  # bisect: lo fails, hi passes
                    while True:
                        while hi - lo > resolution(hi):
                            mid = (lo + hi) // 2
                            f2, _, pend = trial(round_base, at(mid), f"{mid} to {option}{note}", to=option + note, ranked=order[:mid], look=True, defer=True)
                            if pend:
                                held[mid] = pend
                            lo, hi = (mid, hi) if not f2.passed else (lo, mid)
                        if hi not in held or settle(held.pop(hi)):  # confirmed: the fewest that pass (within resolution)
                            found, ranked, bracket = at(hi), set(order[:hi]), [lo + 1, hi]
                            break
                        # it missed on the search-fit samples: from now on every pass is confirmed at
                        # once (the sample sets disagree: else each count up could pass the check
                        # samples alone and cost a bisection of its own). The held passes above it
                        # are confirmed in turn (runs, no builds); the bisection goes on below the first that holds.
                        lo, hi, lazy = hi, None, False
                        for c in sorted(held):
                            if settle(held.pop(c)):
                                hi = c
                                break
                            lo = max(lo, c)
                        if hi is None:
                            break
                    break
                last_fail = k
            if found is not None:
                chosen, base = found, round_base
                break
        if found is None and gate_only:  # no candidate met the headroom; the fewest fallbacks that met the gate's own figures
            n_moved, _, base, chosen, ranked, label, entry = min(gate_only, key=lambda g: (g[0], g[1]))
            met_headroom = False
            for f in fixes:  # a fix that met only the gate and is taken: it helped after all
                if f["fix"] == label and not f["helped"]:
                    f["helped"] = True
                    steps.append({**entry, "label": "full int8 + " + " + ".join([*f["on_top_of"], label])})
            step(f"int8_auto: no candidate met the search's headroom; {n_moved} fallbacks met the gate's own thresholds")
        elif found is None:
            worst = best.failures[0] if best.failures else ""
            raise ConversionError(
                f"int8_auto: the budget is not met on the search-check samples even with every layer at "
                f"{backend.fallback_options[-1]}{rounds[-1][2]} (best: {worst}; the search holds each threshold "
                "tighter than the gate: details.recipe.budget 'searched'); loosen [tolerances.int8_auto] or use fp16/fp32"
            )
        sens_how = how
    else:
        sens_how = None
    for la in layers:
        la["precision"] = chosen[la["name"]]
        if la["precision"] != "int8" and la["name"] not in ranked:
            la["with_input"] = True  # a mover that followed the layers it reads
    return Recipe(
        format=fmt,
        base=base,
        layers=layers,
        fixes=fixes,
        steps=sorted(steps, key=lambda s: (s["fallbacks"], s["label"] != "full int8")),
        search={
            "fit_samples": len(fit), "check_samples": len(check), "confirm_samples": len(extra), "candidates": built[0],
            "seconds": round(time.perf_counter() - started, 3), "reused": False, "sensitivity": sens_how,
            "met_headroom": met_headroom, "fewest_within": bracket,
            "note": "fit and check are the same samples (fewer than 3 calibration samples)" if len(calibration) < 3 else None,
        },
        budget=budget.to_json(),
    )
