"""int8_auto's recipe in the reports: manifest.json's entry, report.md's block, report.html's section
and the terminal's line, all read from the recipe JSON (Artifact.details["recipe"], see
edgepack/quantize_search/recipe.py), never from a format's name.

The chart's metric is the budget's binding one: the (output, tolerance key) whose margin, relative
to its threshold, is the worst in most steps (the first step breaks a tie)."""
from __future__ import annotations

import math
import re
from html import escape as e
from typing import Any

from ..quantize_search.recipe import SUFFIX as RECIPE_SUFFIX
from ..quantize_search.search import BISECT_SHARE
from ..types import ArtifactResult
from .summary import TERMINAL_WIDTH, clip, human_size
from .svg import StepPoint, steps_chart


def shown(la: dict) -> str:
    """How a layer is shown: its label where the format gives one (LiteRT), else its name."""
    return la.get("label") or la["name"]


def recipe_of(r: ArtifactResult) -> dict[str, Any] | None:
    """The artifact's recipe JSON, or None for any other artifact."""
    rec = (r.artifact.details or {}).get("recipe")
    return rec if isinstance(rec, dict) and "layers" in rec else None


def recipe_file(r: ArtifactResult) -> str | None:
    """The .recipe.json among the artifact's extra files (relative to the output folder)."""
    return next((f for f in r.extra_files if str(f).endswith(RECIPE_SUFFIX)), None)


def _fallback_layers(rec: dict) -> list[dict]:
    by_name = {la["name"]: la for la in rec.get("layers", [])}
    names = rec.get("fallbacks") or [la["name"] for la in rec.get("layers", []) if la.get("precision") != "int8"]
    return [by_name[n] for n in names if n in by_name]


def _counts(rec: dict) -> dict[str, int]:
    c = rec.get("counts")
    if isinstance(c, dict):
        return {k: int(v) for k, v in c.items()}
    out = {"int8": 0, "int16": 0, "float": 0}
    for la in rec.get("layers", []):
        out[la.get("precision", "int8")] = out.get(la.get("precision", "int8"), 0) + 1
    return out


def manifest_entry(r: ArtifactResult) -> dict[str, Any] | None:
    """manifest.json's per-artifact "int8_auto" object (schema 1.1, additive), or None."""
    rec = recipe_of(r)
    if rec is None:
        return None
    fallbacks = []
    for la in _fallback_layers(rec):
        item = {"name": la["name"], "op_type": la.get("op_type"), "precision": la["precision"], "sensitivity_db": la.get("sensitivity_db")}
        if la.get("label"):  # a readable name where the format's own is not (LiteRT's tensor names)
            item["label"] = la["label"]
        if la.get("skip_one_loss") is not None:
            item["skip_one_loss"] = la["skip_one_loss"]
        if la.get("with_input"):
            item["with_input"] = True
        fallbacks.append(item)
    search = rec.get("search") or {}
    out = {
        "counts": _counts(rec),
        "fallbacks": fallbacks,
        "size_bytes": r.size_bytes,
        "recipe_file": recipe_file(r),
        "reused_recipe": bool(search.get("reused")),
    }
    share = (r.artifact.details or {}).get("int8_weight_share")
    if share is not None:
        out["int8_weight_share"] = share
    return out


# ---- the budget and the steps ----

def _direction(key: str) -> str:
    """">=" for lower bounds (min_*), "<=" for upper bounds (max_*)."""
    from ..validate.parity import METRICS

    return METRICS[key][1] if key in METRICS else ("<=" if key.startswith("max_") else ">=")


def _value(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _relative(key: str, value: float | None, threshold: float) -> float:
    if value is None:
        return -1e9
    margin = value - threshold if _direction(key) == ">=" else threshold - value
    return margin / max(abs(threshold), 1e-6)


def budget_rows(rec: dict) -> list[tuple[str, str, float, str]]:
    """(output, key, threshold, source) of every check of the budget."""
    rows = []
    for out, keys in (rec.get("budget") or {}).items():
        for key, t in keys.items():
            rows.append((out, key, t.get("value"), t.get("source", "")))
    return rows


def binding_metric(rec: dict) -> tuple[str, str, float] | None:
    """(output, key, threshold) of the check that binds in most steps; None without steps."""
    budget = rec.get("budget") or {}
    counts: dict[tuple[str, str], int] = {}
    first = None
    for s in rec.get("steps") or []:
        b = s.get("binding")  # the search's own record (recipes from before it: recomputed below)
        if isinstance(b, list) and len(b) == 2 and (budget.get(b[0]) or {}).get(b[1], {}).get("value") is not None:
            counts[(b[0], b[1])] = counts.get((b[0], b[1]), 0) + 1
            first = first or (b[0], b[1])
            continue
        worst, which = math.inf, None
        for out, vals in (s.get("values") or {}).items():
            for key, v in vals.items():
                t = (budget.get(out) or {}).get(key)
                if t is None or t.get("value") is None:
                    continue
                rel = _relative(key, _value(v), float(t["value"]))
                if rel < worst:
                    worst, which = rel, (out, key)
        if which is not None:
            counts[which] = counts.get(which, 0) + 1
            first = first or which
    if not counts:
        return None
    best = max(counts.values())
    out, key = first if counts[first] == best else next(k for k, n in counts.items() if n == best)
    return out, key, float(budget[out][key]["value"])


_TO = re.compile(r"^\d+ to (\S+)$")


def step_group(step: dict) -> str:
    """What a step moved its layers to: its "to" key, else its label's "K to PRECISION", else int8."""
    if step.get("to"):
        return str(step["to"])
    m = _TO.match(str(step.get("label", "")))
    if m:
        return m.group(1)
    return "int8" if not step.get("fallbacks") else "fallback"


def step_points(rec: dict, output: str, key: str) -> list[StepPoint]:
    chosen = set(rec.get("fallbacks") or [])
    pts, marked = [], False
    for s in rec.get("steps") or []:
        v = _value((s.get("values") or {}).get(output, {}).get(key))
        is_chosen = not marked and bool(s.get("passed")) and set(s.get("layers") or []) == chosen
        marked = marked or is_chosen
        pts.append(StepPoint(int(s.get("fallbacks") or 0), v, str(s.get("label", "")), bool(s.get("passed")), step_group(s), is_chosen))
    return pts


def _confirmed(rec: dict) -> str:
    search = rec.get("search") or {}
    n, check = search.get("confirm_samples"), search.get("check_samples")
    looked = sum(1 for s in rec.get("steps") or [] if check and 0 < int(s.get("samples") or 0) < check)
    return (f"; a passing one also on {n} search-fit samples" if n else "") + (
        f"; {looked} stopped at {'its' if looked == 1 else 'their'} first sample, already past the gate's own threshold" if looked else "")


def _sensitivity(la: dict) -> str:
    if la.get("with_input"):  # a mover the search moved with the layers it reads
        return "moves values only: follows its input"
    if la.get("sensitivity_db") is not None:
        return f"{la['sensitivity_db']:.2f} dB"
    if la.get("skip_one_loss") is not None:
        return f"skip-one loss {la['skip_one_loss']:.4g}"
    return "–"


def _candidates_text(search: dict) -> str:
    n = search.get("candidates")
    return f"{n} candidate{'s' if n != 1 else ''}, {float(search.get('seconds') or 0):.1f} s"


def cost_text(rec: dict) -> str:
    """The search's cost, or "reused recipe FILE"."""
    s = rec.get("search") or {}
    if s.get("reused"):
        return f"reused recipe {s.get('from') or 'file'} (no search)"
    text = _candidates_text(s)
    if s.get("fit_samples") is not None:
        text += f" on {s['fit_samples']} fit + {s.get('check_samples')} check samples"
    if s.get("sensitivity"):
        text += f" (sensitivity: {s['sensitivity']})"
    lo, hi = s.get("fewest_within") or (None, None)
    if lo is not None and lo < hi:
        text += f"; the fewest that meet the budget lie between {lo} and {hi} fallbacks (bisected to within 1/{BISECT_SHARE})"
    if s.get("met_headroom") is False:
        text += "; no candidate met the search's headroom: the fewest fallbacks that met the gate's own thresholds"
    return text


def _fix_text(f: dict) -> str:
    on = f.get("on_top_of")
    return (f"{f.get('fix')}" + (f" (on top of {' + '.join(on)})" if on else "") + ": "
            + ("helped" if f.get("helped") else "did not help") + (", met the budget" if f.get("passed") else ""))


def _counts_text(rec: dict) -> str:
    c = _counts(rec)
    return f"{c.get('int8', 0)} layers int8, {c.get('int16', 0)} int16, {c.get('float', 0)} float"


def none_int8_text(rec: dict) -> str | None:
    """What to say when the budget left no layer in int8: the artifact is then no int8 model at
    all, only its weights are narrow, and a plain fp16 variant may serve as well."""
    c = _counts(rec)
    if c.get("int8", 0) or not (c.get("int16", 0) or c.get("float", 0)):
        return None
    what = "int16 activations or float" if c.get("int16", 0) and c.get("float", 0) else ("int16 activations" if c.get("int16", 0) else "float")
    return (f"no layer stays int8: every layer fell back to {what}, so this artifact is no int8 model "
            "(only its weights are narrower); compare its size and latency with the format's fp16 variant")


# ---- report.md ----

def markdown_block(r: ArtifactResult) -> list[str]:
    """report.md's short block of one int8_auto cell: counts, fallbacks, fixes, search cost."""
    rec = recipe_of(r)
    if rec is None:
        return []
    f = recipe_file(r)
    share = (r.artifact.details or {}).get("int8_weight_share")
    lines = [f"**{r.target} · {r.artifact.format} · {r.artifact.precision}**" + (f" (recipe `{f}`)" if f else "")]
    lines.append(f"- {_counts_text(rec)}; {human_size(r.size_bytes)}" + (f"; int8 weights {share:.1%}" if share is not None else ""))
    if warn := none_int8_text(rec):
        lines.append(f"- ⚠️ {warn}")
    falls = _fallback_layers(rec)
    if falls:
        lines.append("- fallbacks: " + "; ".join(f"`{shown(la)}` ({la.get('op_type') or '?'}) → {la['precision']}, {_sensitivity(la)}" for la in falls))
    else:
        lines.append("- fallbacks: none (full int8 met the budget)")
    if rec.get("fixes"):
        lines.append("- fixes tried: " + "; ".join(_fix_text(x) for x in rec["fixes"]))
    lines.append(f"- search: {cost_text(rec)}")
    return [*lines, ""]


def markdown_section(results: list[ArtifactResult]) -> list[str]:
    blocks = [ln for r in results for ln in markdown_block(r)]
    return ["## int8_auto recipes", "", *blocks] if blocks else []


# ---- the terminal ----

def terminal_line(r: ArtifactResult, with_target: bool = False, width: int = TERMINAL_WIDTH) -> str | None:
    """One short line: "int8_auto ort: 1 fallback (node_conv2d → int16), 5 candidates, 3.1 s"."""
    rec = recipe_of(r)
    if rec is None:
        return None
    falls = _fallback_layers(rec)
    head = (f"{clip(r.target, 13)} " if with_target else "") + f"{r.artifact.precision} {r.artifact.format}: "
    s = rec.get("search") or {}
    if s.get("reused"):
        cost = f"reused {s.get('from') or 'recipe'}"
    else:
        cost = _candidates_text(s)
    if not falls:
        return clip(head + f"no fallback, {cost}", width)
    if none_int8_text(rec):
        return clip(head + f"every layer fell back ({len(falls)}), no int8 left, {cost}", width)
    what = f"{len(falls)} fallback{'s' if len(falls) != 1 else ''}"
    room = width - len(head) - len(what) - len(cost) - 5  # " (" "), "
    parts: list[str] = []
    for i, la in enumerate(falls):
        part = f"{shown(la)} → {la['precision']}"
        rest = len(falls) - i - 1
        tail = f", +{rest} more" if rest else ""
        if len(", ".join([*parts, part])) + len(tail) > room:
            parts.append(f"+{len(falls) - i} more" if parts else clip(part, max(room - len(tail), 8)) + tail)
            break
        parts.append(part)
    return clip(head + f"{what} ({', '.join(parts)}), {cost}", width)


def terminal_lines(results: list[ArtifactResult], width: int = TERMINAL_WIDTH) -> list[str]:
    many = len({r.target for r in results}) > 1
    return [x for x in (terminal_line(r, many, width) for r in results) if x is not None]


# ---- report.html ----

def html_section(r: ArtifactResult) -> str:
    rec = recipe_of(r)
    if rec is None:
        return ""
    parts = [f"<h3>{e(r.target)} · {e(r.artifact.format)} · {e(r.artifact.precision)}</h3>"]
    f = recipe_file(r)
    share = (r.artifact.details or {}).get("int8_weight_share")
    parts.append(
        f"<p>{e(_counts_text(rec))}; {e(human_size(r.size_bytes))}"
        + (f"; int8 weights {share:.1%}" if share is not None else "")
        + (f"; recipe <code>{e(f)}</code> (give it back with <code>--recipe</code> to rebuild this artifact with no search)" if f else "")
        + f". Search: {e(cost_text(rec))}.</p>"
    )
    rows = budget_rows(rec)
    if rows:
        body = "".join(
            f"<tr><td>{e(o)}</td><td>{e(k)}</td><td>{e(_direction(k))} {e(format(t, 'g') if isinstance(t, (int, float)) else str(t))}</td><td>{e(src)}</td></tr>"
            for o, k, t, src in rows
        )
        parts.append(f"<table class='budget'><tr><th>Output</th><th>Key</th><th>Threshold</th><th>Source</th></tr>{body}</table>")
    bind = binding_metric(rec)
    if bind:
        out, key, thr = bind
        parts.append(
            f"<p>Each candidate on the search-check samples (calibration data, never the held-out part{_confirmed(rec)}): "
            f"output {e(out)}, {e(key)} (the binding check), against the number of fallbacks.</p>"
            + steps_chart(step_points(rec, out, key), thr, f"{out}: {key}", _direction(key) == ">=")
        )
    falls = _fallback_layers(rec)
    c = _counts(rec)
    if falls:
        body = "".join(
            f"<tr><td title='{e(la['name'])}'>{e(shown(la))}</td><td>{e(str(la.get('op_type') or '–'))}</td><td>{e(la['precision'])}</td><td>{e(_sensitivity(la))}</td></tr>"
            for la in falls
        )
        parts.append(
            f"<table class='fallbacks'><tr><th>Layer</th><th>Op</th><th>Precision</th><th>Sensitivity</th></tr>{body}</table>"
            f"<p>{c.get('int8', 0)} layer{'s' if c.get('int8', 0) != 1 else ''} stayed int8.</p>"
            + (f"<p>⚠️ {e(warn)}.</p>" if (warn := none_int8_text(rec)) else "")
        )
    else:
        parts.append(f"<p>No layer left int8: all {c.get('int8', 0)} stayed int8.</p>")
    if rec.get("fixes"):
        parts.append("<p>Fixes tried before any fallback:</p><ul class='fixes'>" + "".join(
            f"<li class='{'PASS' if x.get('helped') else ''}'>{e(_fix_text(x))}</li>" for x in rec["fixes"]) + "</ul>")
    return "".join(parts)


def html_section_all(results: list[ArtifactResult]) -> str:
    parts = [html_section(r) for r in results]
    parts = [p for p in parts if p]
    if not parts:
        return ""
    return ("<h2>int8_auto recipes</h2><p>The mixed-precision recipe each int8_auto cell found within its budget "
            "(its own tolerances): which layers left int8 and why, and what the search cost.</p>" + "".join(parts))
