"""Inline SVG charts for report.html, written by hand: no network, no JavaScript, no plotting library.

Every chart is one well-formed <svg> element (tests parse it with xml.etree) whose strings are all
escaped. Colours come from a palette by order of appearance, so no chart knows any format's name."""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from html import escape

from .summary import clip, human_size

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
FAIL = "#c00"
_FONT = "font-family='system-ui,sans-serif' font-size='11'"


def _a(value) -> str:
    """An attribute value or text node, escaped (quotes included)."""
    return escape(str(value), quote=True)


def _n(v: float) -> str:
    return f"{v:.1f}"


def _svg(width: int, height: int, title: str, body: list[str], cls: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' class='{_a(cls)}' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{_a(title)}' {_FONT}>"
        f"<title>{_a(title)}</title>" + "".join(body) + "</svg>"
    )


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi], about `count` of them."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def colours(groups: list[str]) -> dict[str, str]:
    """A colour per group, in order of first appearance."""
    out: dict[str, str] = {}
    for g in groups:
        if g not in out:
            out[g] = PALETTE[len(out) % len(PALETTE)]
    return out


@dataclass(frozen=True)
class Point:
    label: str  # "ort int8" or "android-arm64 ort int8"
    size_bytes: int
    sqnr_db: float | None  # the artifact's lowest output SQNR; None when undefined (non-finite outputs)
    group: str  # the colour group: the format
    failed: bool
    detail: str = ""  # the tooltip's extra line


def size_sqnr_chart(points: list[Point], width: int = 680, height: int = 380) -> str:
    """Size (log axis) against SQNR, one labelled circle per artifact, coloured by format; failed
    artifacts get a red ring and class 'fail'; an undefined SQNR sits on the axis, labelled."""
    if not points:
        return ""
    left, right, top, bottom = 56, 150, 24, 46
    pw, ph = width - left - right, height - top - bottom
    sizes = [max(p.size_bytes, 1) for p in points]
    lx_lo, lx_hi = math.floor(math.log10(min(sizes))), math.ceil(math.log10(max(sizes)))
    if lx_hi == lx_lo:
        lx_hi += 1
    known = [p.sqnr_db for p in points if p.sqnr_db is not None]
    yt = nice_ticks(min([0.0, *known]), max([10.0, *known]))
    y_lo, y_hi = yt[0], yt[-1]

    def x(size: int) -> float:
        return left + (math.log10(max(size, 1)) - lx_lo) / (lx_hi - lx_lo) * pw

    def y(v: float) -> float:
        return top + ph - (v - y_lo) / (y_hi - y_lo) * ph

    body = [f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#ccc'/>"]
    steps = (1, 2, 5) if lx_hi - lx_lo <= 2 else (1,)  # a narrow range gets 2x and 5x ticks too
    for k in range(lx_lo, lx_hi + 1):
        for m in steps:
            if m * 10**k > 10**lx_hi:
                continue
            xx = _n(x(m * 10**k))
            body.append(f"<line class='grid' x1='{xx}' y1='{top}' x2='{xx}' y2='{top + ph}' stroke='#eee'/>")
            body.append(f"<text x='{xx}' y='{top + ph + 16}' text-anchor='middle'>{_a(human_size(m * 10**k))}</text>")
    for t in yt:
        yy = _n(y(t))
        body.append(f"<line class='grid' x1='{left}' y1='{yy}' x2='{left + pw}' y2='{yy}' stroke='#eee'/>")
        body.append(f"<text x='{left - 6}' y='{yy}' text-anchor='end' dominant-baseline='middle'>{t:g}</text>")
    body.append(f"<text x='{left + pw / 2:.1f}' y='{height - 8}' text-anchor='middle'>file size (log scale)</text>")
    body.append(f"<text x='14' y='{top + ph / 2:.1f}' text-anchor='middle' transform='rotate(-90 14 {top + ph / 2:.1f})'>lowest output SQNR (dB)</text>")
    palette = colours([p.group for p in points])
    placed: list[tuple[float, float, float, float]] = []  # label boxes already drawn: x0, y0, x1, y1
    for p in points:
        cx, cy = x(p.size_bytes), y(y_lo if p.sqnr_db is None else p.sqnr_db)
        cls = "point fail" if p.failed else "point"
        stroke = f" stroke='{FAIL}' stroke-width='2.5'" if p.failed else " stroke='#fff' stroke-width='1'"
        value = "SQNR undefined (non-finite outputs)" if p.sqnr_db is None else f"SQNR {p.sqnr_db:.1f} dB"
        tip = f"{p.label}: {human_size(p.size_bytes)}, {value}" + (", FAILED" if p.failed else "") + (f"; {p.detail}" if p.detail else "")
        body.append(
            f"<circle class='{cls}' cx='{_n(cx)}' cy='{_n(cy)}' r='5' fill='{palette[p.group]}'{stroke}><title>{_a(tip)}</title></circle>"
        )
        text = p.label + (" ✗" if p.failed else "") + (" (non-finite)" if p.sqnr_db is None else "")
        w = 6.2 * len(text)  # about the width of 11 px sans-serif
        end = cx + 8 + w > left + pw  # near the right edge: the label goes left of its point
        x0 = cx - 8 - w if end else cx + 8
        ly = cy - 6
        while any(x0 < b[2] and x0 + w > b[0] and ly - 11 < b[3] and ly > b[1] for b in placed):
            ly += 13  # below the label it would overlap
        placed.append((x0, ly - 11, x0 + w, ly))
        anchor = " text-anchor='end'" if end else ""
        body.append(f"<text class='label' x='{_n(cx - 8 if end else cx + 8)}' y='{_n(ly)}'{anchor}>{_a(text)}</text>")
    for i, (g, c) in enumerate(palette.items()):
        ly = top + 8 + i * 16
        body.append(f"<circle class='legend' cx='{left + pw + 20}' cy='{ly}' r='5' fill='{c}'/>")
        body.append(f"<text x='{left + pw + 30}' y='{ly}' dominant-baseline='middle'>{_a(g)}</text>")
    if any(p.failed for p in points):
        ly = top + 8 + len(palette) * 16
        body.append(f"<circle class='legend' cx='{left + pw + 20}' cy='{ly}' r='5' fill='#fff' stroke='{FAIL}' stroke-width='2.5'/>")
        body.append(f"<text x='{left + pw + 30}' y='{ly}' dominant-baseline='middle'>failed</text>")
    return _svg(width, height, "file size against SQNR, one point per artifact", body, "chart size-sqnr")


@dataclass(frozen=True)
class Bar:
    label: str  # the artifact
    ms: float
    kind: str  # "measured-host", "emulator", "estimated-device", ...: the bar's own label
    estimated: bool = False
    detail: str = ""  # e.g. "±18% (leave-one-out), Pixel 4"


def latency_chart(bars: list[Bar], width: int = 760) -> str:
    """One horizontal bar per latency figure; estimates are hatched, class 'estimated', and say
    "estimated" in their label."""
    if not bars:
        return ""
    left, right, top, row = 200, 260, 10, 20
    height = top * 2 + row * len(bars) + 20
    pw = width - left - right
    hi = max(b.ms for b in bars) or 1.0
    body = [
        "<defs><pattern id='hatch' width='6' height='6' patternUnits='userSpaceOnUse' patternTransform='rotate(45)'>"
        "<rect width='6' height='6' fill='#fde9c9'/><line x1='0' y1='0' x2='0' y2='6' stroke='#e69500' stroke-width='3'/></pattern></defs>"
    ]
    for i, b in enumerate(bars):
        y = top + i * row
        w = max(b.ms / hi * pw, 1.0)
        fill = "url(#hatch)" if b.estimated else "#1f77b4"
        cls = "bar estimated" if b.estimated else "bar"
        word = "estimated" if b.estimated else b.kind
        text = f"{b.ms:.3g} ms ({word}" + (f", {b.detail}" if b.detail else "") + ")"
        body.append(f"<text x='{left - 6}' y='{y + row / 2:.1f}' text-anchor='end' dominant-baseline='middle'>{_a(b.label)}</text>")
        body.append(
            f"<rect class='{cls}' x='{left}' y='{y + 3}' width='{_n(w)}' height='{row - 6}' fill='{fill}'>"
            f"<title>{_a(b.label + ': ' + text)}</title></rect>"
        )
        body.append(f"<text class='value' x='{_n(left + w + 6)}' y='{y + row / 2:.1f}' dominant-baseline='middle'>{_a(text)}</text>")
    axis_y = top + row * len(bars) + 4
    body.append(f"<line x1='{left}' y1='{axis_y}' x2='{left + pw}' y2='{axis_y}' stroke='#999'/>")
    body.append(f"<text x='{left}' y='{axis_y + 14}'>0</text><text x='{left + pw}' y='{axis_y + 14}' text-anchor='end'>{hi:.3g} ms</text>")
    return _svg(width, height, "latency p50 per artifact: measured on this machine, and estimated for the device", body, "chart latency")


def _frame_with_y_grid(left: float, top: float, pw: float, ph: float, ticks: list[float], y) -> list[str]:
    """A plot's frame and its horizontal grid lines, each labelled on the left."""
    body = [f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#ccc'/>"]
    for t in ticks:
        yy = _n(y(t))
        body.append(f"<line class='grid' x1='{left}' y1='{yy}' x2='{left + pw}' y2='{yy}' stroke='#eee'/>")
        body.append(f"<text x='{left - 6}' y='{yy}' text-anchor='end' dominant-baseline='middle'>{t:g}</text>")
    return body


def _runs(idx: list[int], known: dict[int, float]) -> list[list[tuple[int, float]]]:
    """The stretches of consecutive layers that have a value (a curve breaks where one has none)."""
    runs, run = [], []
    for i in sorted(idx):
        if i in known:
            run.append((i, known[i]))
        elif run:
            runs.append(run)
            run = []
    return [*runs, run] if run else runs


def layer_curve(
    layers: list[dict], first_divergent: dict | None, title: str, width: int = 680, height: int = 300,
    band_db: float | None = None, other: str | None = None,
) -> str:
    """SQNR by layer index (graph order) as a polyline per run of defined values; the first divergent
    layer is a red circle (class 'divergent') labelled with its index, source name and op type.
    `band_db`: the divergence band, a dashed line; `other`: the name of a second artifact whose
    per-layer SQNR (each layer's "other_sqnr_db") is a second, dashed curve (class 'curve other')."""
    pts = [(int(t["index"]), float(t["sqnr_db"])) for t in layers if _finite(t.get("sqnr_db"))]
    opts = [(int(t["index"]), float(t["other_sqnr_db"])) for t in layers if _finite(t.get("other_sqnr_db"))] if other else []
    if not layers:
        return ""
    left, right, top, bottom = 56, 20, 30, 40
    pw, ph = width - left - right, height - top - bottom
    idx = [int(t["index"]) for t in layers]
    i_lo, i_hi = min(idx), max(idx)
    if i_hi == i_lo:
        i_hi += 1
    values = [v for _, v in pts + opts] + ([band_db] if _finite(band_db) else [])
    yt = nice_ticks(min([0.0, *values]), max([10.0, *values]))

    def x(i: float) -> float:
        return left + (i - i_lo) / (i_hi - i_lo) * pw

    def y(v: float) -> float:
        return top + ph - (v - yt[0]) / (yt[-1] - yt[0]) * ph

    body = _frame_with_y_grid(left, top, pw, ph, yt, y)
    for t in nice_ticks(i_lo, i_hi, 8):
        if i_lo <= t <= i_hi and t == int(t):
            body.append(f"<text x='{_n(x(t))}' y='{top + ph + 14}' text-anchor='middle'>{int(t)}</text>")
    body.append(f"<text x='{left + pw / 2:.1f}' y='{height - 6}' text-anchor='middle'>layer (graph order)</text>")
    body.append(f"<text x='14' y='{top + ph / 2:.1f}' text-anchor='middle' transform='rotate(-90 14 {top + ph / 2:.1f})'>SQNR (dB)</text>")
    body.append(f"<text x='{left}' y='{top - 10}'>{_a(title)}</text>")
    if _finite(band_db):
        yy = _n(y(band_db))
        body.append(f"<line class='band' x1='{left}' y1='{yy}' x2='{left + pw}' y2='{yy}' stroke='#e69500' stroke-dasharray='6 3'/>")
        body.append(f"<text x='{left + pw - 4}' y='{_n(y(band_db) - 4)}' text-anchor='end' fill='#a66a00'>divergence band {band_db:.1f} dB</text>")
    known = dict(pts)
    for r in _runs(idx, dict(opts)) if other else []:
        coords = " ".join(f"{_n(x(i))},{_n(y(v))}" for i, v in r)
        body.append(f"<polyline class='curve other' points='{coords}' fill='none' stroke='#ff7f0e' stroke-width='1.5' stroke-dasharray='5 3'/>")
    for r in _runs(idx, known):
        coords = " ".join(f"{_n(x(i))},{_n(y(v))}" for i, v in r)
        body.append(f"<polyline class='curve' points='{coords}' fill='none' stroke='#1f77b4' stroke-width='1.5'/>")
    if other:
        lx = left + pw - 200
        body.append(f"<line x1='{lx}' y1='{top - 14}' x2='{lx + 18}' y2='{top - 14}' stroke='#1f77b4' stroke-width='1.5'/><text x='{lx + 22}' y='{top - 10}'>this artifact</text>")
        body.append(
            f"<line x1='{lx + 100}' y1='{top - 14}' x2='{lx + 118}' y2='{top - 14}' stroke='#ff7f0e' stroke-width='1.5' stroke-dasharray='5 3'/>"
            f"<text x='{lx + 122}' y='{top - 10}'>{_a(clip(other, 14))}</text>"
        )
    for i, v in pts:
        name = next((t.get("source_name") for t in layers if int(t["index"]) == i), "")
        body.append(f"<circle class='layer' cx='{_n(x(i))}' cy='{_n(y(v))}' r='2.5' fill='#1f77b4'><title>{_a(f'#{i} {name}: {v:.1f} dB')}</title></circle>")
    if first_divergent:
        i = int(first_divergent["index"])
        v = known.get(i, first_divergent.get("sqnr_after"))
        v = yt[0] if not _finite(v) else float(v)
        text = f"first divergent: #{i} {first_divergent.get('source_name', '')} ({first_divergent.get('op_type', '')})"
        cx, cy = x(i), y(v)
        anchor = "end" if cx > left + pw * 0.6 else "start"
        tx = cx - 8 if anchor == "end" else cx + 8
        body.append(f"<line x1='{_n(cx)}' y1='{top}' x2='{_n(cx)}' y2='{top + ph}' stroke='{FAIL}' stroke-dasharray='4 3'/>")
        body.append(f"<circle class='divergent' cx='{_n(cx)}' cy='{_n(cy)}' r='6' fill='none' stroke='{FAIL}' stroke-width='2.5'><title>{_a(text)}</title></circle>")
        body.append(f"<text class='divergent-label' x='{_n(tx)}' y='{_n(max(cy - 10, top + 12))}' text-anchor='{anchor}' fill='{FAIL}'>{_a(text)}</text>")
    return _svg(width, height, f"per-layer SQNR: {title}", body, "chart layers")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def sqnr_colour(v: float | None) -> str:
    """Red at 0 dB or below, through yellow, to green at 60 dB and above; grey when undefined."""
    if v is None:
        return "#ddd"
    hue = max(0.0, min(v, 60.0)) / 60.0 * 120.0
    r, g, b = colorsys.hls_to_rgb(hue / 360.0, 0.72, 0.65)  # hex, not hsl(): every SVG renderer reads it
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def heatmap(row_labels: list[str], col_labels: list[str], values: list[list[dict | None]]) -> str:
    """The parity matrix as coloured cells: rows are outputs, columns target/format/precision; each
    cell shows SQNR and cosine, coloured by SQNR; failing cells have a red border and class 'fail';
    a cell with no figures (no artifact, or no such output) is grey."""
    if not row_labels or not col_labels:
        return ""
    cw, rh, left = 96, 34, 12 + 7 * max(len(r) for r in row_labels)
    top = 16 + int(5.5 * max(len(c) for c in col_labels))
    width, height = left + cw * len(col_labels) + 10, top + rh * len(row_labels) + 10
    body = []
    for j, c in enumerate(col_labels):
        cx = left + j * cw + cw / 2
        body.append(f"<text x='{cx:.1f}' y='{top - 6}' transform='rotate(-35 {cx:.1f} {top - 6})'>{_a(c)}</text>")
    for i, rname in enumerate(row_labels):
        y = top + i * rh
        body.append(f"<text x='{left - 6}' y='{y + rh / 2:.1f}' text-anchor='end' dominant-baseline='middle'>{_a(rname)}</text>")
        for j, cell in enumerate(values[i]):
            x = left + j * cw
            if cell is None:
                body.append(f"<rect class='cell empty' x='{x}' y='{y}' width='{cw - 2}' height='{rh - 2}' fill='#eee'><title>no figures</title></rect>")
                continue
            sq, cos = cell.get("sqnr_db"), cell.get("min_cosine")
            failed = not cell.get("passed", True)
            cls = "cell fail" if failed else "cell"
            stroke = f" stroke='{FAIL}' stroke-width='3'" if failed else ""
            line1 = "non-finite" if cell.get("nonfinite") else ("–" if sq is None else f"{sq:.1f} dB")
            line2 = "" if cos is None else f"cos {cos:.6f}"
            tip = f"{rname} · {col_labels[j]}: {line1} {line2}".strip() + (" — FAILED " + ", ".join(cell.get("failing", [])) if failed else "")
            body.append(
                f"<rect class='{cls}' x='{x}' y='{y}' width='{cw - 2}' height='{rh - 2}' fill='{sqnr_colour(sq)}'{stroke}><title>{_a(tip)}</title></rect>"
            )
            body.append(f"<text x='{x + cw / 2 - 1:.1f}' y='{y + 13}' text-anchor='middle'>{_a(line1)}</text>")
            if line2:
                body.append(f"<text x='{x + cw / 2 - 1:.1f}' y='{y + 26}' text-anchor='middle' font-size='10'>{_a(line2)}</text>")
    return _svg(width, height, "parity matrix: SQNR of every output in every cell", body, "chart heatmap")


@dataclass(frozen=True)
class StepPoint:
    """One candidate of an int8_auto search (edgepack/report/int8_auto.py)."""

    fallbacks: int  # how many layers left int8
    value: float | None  # the binding check's value; None when undefined (non-finite outputs)
    label: str  # "full int8", "2 to int16", ...
    passed: bool  # met the whole budget
    group: str  # what its layers went to: "int8" (none), "int16", "float"
    chosen: bool = False  # the recipe's step


def steps_chart(points: list[StepPoint], threshold: float, metric: str, higher_is_better: bool, width: int = 560, height: int = 280) -> str:
    """The binding check's value against the number of fallbacks: one circle per step (class
    'step pass' or 'step fail': filled when it met the budget, hollow when not), a line per group
    starting at the last 0-fallback step, the threshold as a dashed line (class 'threshold'), the
    recipe's step ringed (class 'chosen'). An undefined value sits on the x axis."""
    if not points:
        return ""
    left, right, top, bottom = 64, 120, 24, 40
    pw, ph = width - left - right, height - top - bottom
    x_hi = max(max(p.fallbacks for p in points), 1)
    known = [p.value for p in points if p.value is not None]
    yt = nice_ticks(min([threshold, *known]), max([threshold, *known]))
    if len(yt) < 2:
        yt = [yt[0], yt[0] + 1]

    def x(k: float) -> float:
        return left + k / x_hi * pw

    def y(v: float) -> float:
        return top + ph - (v - yt[0]) / (yt[-1] - yt[0]) * ph

    body = _frame_with_y_grid(left, top, pw, ph, yt, y)
    for t in nice_ticks(0, x_hi, min(x_hi, 8)):
        if 0 <= t <= x_hi and t == int(t):
            body.append(f"<text x='{_n(x(t))}' y='{top + ph + 14}' text-anchor='middle'>{int(t)}</text>")
    body.append(f"<text x='{left + pw / 2:.1f}' y='{height - 6}' text-anchor='middle'>layers fallen back</text>")
    body.append(f"<text x='14' y='{top + ph / 2:.1f}' text-anchor='middle' transform='rotate(-90 14 {top + ph / 2:.1f})'>{_a(clip(metric, 40))}</text>")
    ty = _n(y(threshold))
    side = "≥" if higher_is_better else "≤"
    body.append(f"<line class='threshold' x1='{left}' y1='{ty}' x2='{left + pw}' y2='{ty}' stroke='{FAIL}' stroke-dasharray='6 3'/>")
    body.append(f"<text class='threshold-label' x='{left + pw - 4}' y='{_n(y(threshold) - 4)}' text-anchor='end' fill='{FAIL}'>budget {side} {threshold:g}</text>")
    palette = colours([p.group for p in points])
    start = next((p for p in reversed(points) if p.fallbacks == 0 and p.value is not None), None)
    for g, c in palette.items():
        run = sorted((p for p in points if p.group == g and p.value is not None and p.fallbacks > 0), key=lambda p: p.fallbacks)
        if start is not None:
            run = [start, *run]
        if len(run) > 1:
            coords = " ".join(f"{_n(x(p.fallbacks))},{_n(y(p.value))}" for p in run)
            body.append(f"<polyline class='series' points='{coords}' fill='none' stroke='{c}' stroke-width='1.5'/>")
    for p in points:
        v = yt[0] if p.value is None else p.value
        cx, cy = _n(x(p.fallbacks)), _n(y(v))
        c = palette[p.group]
        fill = c if p.passed else "#fff"
        value = "undefined (non-finite outputs)" if p.value is None else f"{p.value:.6g}"
        tip = f"{p.label}: {metric} {value}, " + ("meets the budget" if p.passed else "misses the budget") + (" (the recipe)" if p.chosen else "")
        body.append(
            f"<circle class='step {'pass' if p.passed else 'fail'}' cx='{cx}' cy='{cy}' r='4.5' fill='{fill}' stroke='{c}' stroke-width='2'>"
            f"<title>{_a(tip)}</title></circle>"
        )
        if p.chosen:
            body.append(f"<circle class='chosen' cx='{cx}' cy='{cy}' r='9' fill='none' stroke='#222' stroke-width='1.5'/>")
    for i, (g, c) in enumerate(palette.items()):
        ly = top + 8 + i * 16
        body.append(f"<circle class='legend' cx='{left + pw + 14}' cy='{ly}' r='4.5' fill='{c}'/>")
        body.append(f"<text x='{left + pw + 24}' y='{ly}' dominant-baseline='middle'>{_a('to ' + g if g != 'int8' else 'full int8')}</text>")
    ly = top + 8 + len(palette) * 16
    body.append(f"<text x='{left + pw + 8}' y='{ly + 4}' font-size='10'>hollow: misses</text>")
    return _svg(width, height, f"int8_auto search: {metric} against the number of fallbacks", body, "chart steps")
