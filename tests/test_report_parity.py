"""Reports people can read (#10 parts 2, 4, 5): every output its own row with threshold and margin,
the cross-format parity matrix in report.json / report.md / report.html, inline SVG charts, and a
terminal summary that fits 100 columns. Results are built in code (no conversion): fast."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

from edgepack import REPORT_SCHEMA_VERSION
from edgepack.pipeline.cells import CellFailure
from edgepack.report.html import report_html
from edgepack.report.json_report import report_json
from edgepack.report.markdown import report_markdown
from edgepack.report.summary import TERMINAL_COLUMNS, terminal_lines
from edgepack.types import Artifact, ArtifactResult, BuildReport, Check, ErrorStats, LatencyReport, ParityReport

SVG = "{http://www.w3.org/2000/svg}"


def check(metric: str, value: float | None, threshold: float, op: str, where: str = "tolerances.int8") -> Check:
    margin = None if value is None else (value - threshold if op == ">=" else threshold - value)
    return Check(metric, value, threshold, op, margin, margin is not None and margin >= 0, where)


def stats(output, kind, cos, sqnr, max_abs, top1=None, checks=(), nonfinite=0) -> ErrorStats:
    return ErrorStats(
        output=output, max_abs=max_abs, mean_abs=max_abs / 4, min_cosine=cos, sqnr_db=sqnr, top1_agreement=top1, samples=8,
        kind=kind, checks=tuple(checks), passed=all(c.passed for c in checks) and not nonfinite,
        nonfinite_values=nonfinite, nonfinite_samples=1 if nonfinite else 0,
    )


def result(fmt, precision, outputs, size, p50=None, target="android-arm64") -> ArtifactResult:
    failures = tuple(f"output '{s.output}': {c.metric} failed" for s in outputs for c in s.checks if not c.passed)
    failures += tuple(f"output '{s.output}': {s.nonfinite_values} non-finite values" for s in outputs if s.nonfinite and not s.checks)
    parity = ParityReport(
        passed=not failures, outputs=tuple(outputs), failures=failures, accuracy=None, reference_accuracy=None,
        tolerances={}, samples=8, min_samples=8,
    )
    lat = None if p50 is None else LatencyReport(p50, p50 * 1.2, p50, 10, 2, 4, "host", "onnxruntime")
    art = Artifact(Path(f"/tmp/m.{precision}.{fmt}"), fmt, precision, fmt, f"{fmt} route")
    return ArtifactResult(target, art, f"{target}/m.{precision}.{fmt}", (), size, "0" * 64, (), (), parity, lat,
                          latency_skipped=None if p50 else "--no-latency")


def two_output_build(name: str = "det") -> BuildReport:
    """A class-scores + boxes model across ort and tflite: ort int8 fails cosine on its boxes (only),
    tflite int8's boxes are non-finite, and tflite fp16 produced no artifact."""
    fp32 = ("tolerances.fp32", 0.99999)
    arts = [
        result("ort", "fp32", [
            stats("scores", "class_scores", 0.999999, 95.0, 1e-5, 1.0, [check("min_cosine", 0.999999, fp32[1], ">=", fp32[0]), check("max_abs", 1e-5, 1e-4, "<=", fp32[0])]),
            stats("boxes", "boxes", 0.9999995, 101.0, 2e-5, None, [check("min_cosine", 0.9999995, fp32[1], ">=", fp32[0]), check("max_abs", 2e-5, 1e-4, "<=", fp32[0])]),
        ], 400_000, 1.5),
        result("ort", "int8", [
            stats("scores", "class_scores", 0.995, 24.0, 0.05, 0.96, [check("min_cosine", 0.995, 0.99, ">="), check("min_top1_agreement", 0.96, 0.95, ">=")]),
            stats("boxes", "boxes", 0.78, 7.5, 3.1, None, [check("min_cosine", 0.78, 0.99, ">=", "tolerances.int8.outputs.boxes"), check("min_sqnr_db", 7.5, 5.0, ">=")]),
        ], 110_000, 0.9),
        result("tflite", "fp32", [
            stats("scores", "class_scores", 0.999998, 90.0, 2e-5, 1.0, [check("min_cosine", 0.999998, fp32[1], ">=", fp32[0])]),
            stats("boxes", "boxes", 0.999997, 88.0, 3e-5, None, [check("min_cosine", 0.999997, fp32[1], ">=", fp32[0])]),
        ], 390_000, 1.2),
        result("tflite", "int8", [
            stats("scores", "class_scores", 0.993, 22.0, 0.06, 0.97, [check("min_cosine", 0.993, 0.99, ">="), check("min_top1_agreement", 0.97, 0.95, ">=")]),
            stats("boxes", "boxes", math.nan, math.nan, math.nan, None, [check("min_cosine", None, 0.99, ">=")], nonfinite=12),
        ], 105_000, 0.7),
    ]
    failed = [CellFailure("android-arm64", "tflite", "fp16", "convert", "the converter crashed", "ConverterCrash", 4)]
    targets = [{"name": "android-arm64", "formats": {"ort": {"precisions": ["fp32", "int8"]}, "tflite": {"precisions": ["fp32", "fp16", "int8"]}}}]
    model = {"name": name, "source": "det.onnx", "kind": "onnx", "sha256": "a" * 64,
             "outputs": [{"name": "scores", "shape": [1, 10], "dtype": "float32"}, {"name": "boxes", "shape": [1, 4], "dtype": "float32"}]}
    return BuildReport(REPORT_SCHEMA_VERSION, "0.test", model, targets, {}, arts, Path("out"), "2026-12-02T00:00:00Z", 1.0, failed_cells=failed)


COLS = ["ort/fp32", "ort/int8", "tflite/fp32", "tflite/fp16", "tflite/int8"]


def test_json_has_the_raised_schema_per_output_checks_and_the_parity_matrix():
    rep = two_output_build()
    rj = json.loads(json.dumps(report_json(rep), allow_nan=False))  # strict JSON, NaN included
    assert rj["schema_version"] == REPORT_SCHEMA_VERSION == "2"
    boxes = rj["artifacts"][1]["parity"]["outputs"][1]
    assert boxes["kind"] == "boxes" and boxes["top1_agreement"] is None and boxes["passed"] is False
    cos = boxes["checks"][0]
    assert cos == {"metric": "min_cosine", "value": 0.78, "threshold": 0.99, "op": ">=", "margin": cos["margin"],
                   "passed": False, "source": "tolerances.int8.outputs.boxes"}
    assert math.isclose(cos["margin"], 0.78 - 0.99)
    m = rj["parity_matrix"]
    assert m["metrics"] == ["sqnr_db", "min_cosine", "top1_agreement"]
    assert [f"{c['format']}/{c['precision']}" for c in m["columns"]] == COLS
    assert [c["status"] for c in m["columns"]] == ["passed", "gate_failed", "passed", "failed", "gate_failed"]
    assert [(r["output"], r["kind"], len(r["cells"])) for r in m["rows"]] == [("scores", "class_scores", 5), ("boxes", "boxes", 5)]
    scores, boxes = m["rows"]
    assert scores["cells"][3] is None and boxes["cells"][3] is None  # no artifact
    assert scores["cells"][1] == {"sqnr_db": 24.0, "min_cosine": 0.995, "top1_agreement": 0.96, "passed": True, "failing": [], "nonfinite": False}
    assert boxes["cells"][1] == {"sqnr_db": 7.5, "min_cosine": 0.78, "top1_agreement": None, "passed": False, "failing": ["min_cosine"], "nonfinite": False}
    assert boxes["cells"][4] == {"sqnr_db": None, "min_cosine": None, "top1_agreement": None, "passed": False, "failing": ["min_cosine"], "nonfinite": True}
    assert rj["artifacts"][0]["latency_estimate"] is None


def _table(md: str, heading: str) -> list[list[str]]:
    block = md.split(heading, 1)[1].split("\n\n", 2)[2]  # heading, blank, caption, blank, table
    rows = [ln for ln in block.split("\n\n", 1)[0].splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in rows]


def test_markdown_has_a_row_per_output_with_threshold_and_margin_and_the_matrix():
    md = report_markdown(two_output_build())
    rows = _table(md, "## Outputs")
    head, body = rows[0], rows[2:]
    assert head == ["Target", "Format", "Precision", "Output", "Kind", "Max abs", "Mean abs", "Min cosine", "SQNR dB", "Top-1 agree", "Result"]
    assert len(body) == 8 and [r[3] for r in body] == ["scores", "boxes"] * 4
    ort_boxes = dict(zip(head, body[3], strict=True))
    assert ort_boxes["Kind"] == "boxes" and ort_boxes["Top-1 agree"] == "–"  # never top-1 for boxes
    assert ort_boxes["Min cosine"] == f"0.780000 (≥ 0.99, margin {0.78 - 0.99:+.6f}) ❌" == "0.780000 (≥ 0.99, margin -0.210000) ❌"
    assert ort_boxes["SQNR dB"] == "7.5 (≥ 5, margin +2.5)" and ort_boxes["Result"] == "FAIL ❌"
    ort_scores = dict(zip(head, body[2], strict=True))
    assert ort_scores["Top-1 agree"] == "96.00% (≥ 0.95, margin +1.00%)" and ort_scores["Result"] == "PASS"
    assert dict(zip(head, body[7], strict=True))["Min cosine"] == "non-finite (≥ 0.99, margin –) ❌"

    matrix = _table(md, "## Parity matrix")
    assert matrix[0] == ["Output", *COLS] and len(matrix) == 4 and all(len(r) == 6 for r in matrix[2:])
    scores, boxes = matrix[2], matrix[3]
    assert scores[0] == "scores (class_scores)" and scores[2] == "24.0 / 0.995000 / 96.00%" and scores[4] == "no artifact"
    assert boxes[2] == "7.5 / 0.780000 ❌ (min_cosine)" and boxes[5] == "non-finite ❌ (min_cosine)"
    assert "| android-arm64 | tflite | fp16 |" in md and "FAIL (convert)" in md  # the failed cell, as before


class _Cells(HTMLParser):
    """Collects every td (class, text) of the tables, by table class."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}
        self._table = self._td = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("class") or "", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._td = [a.get("class") or "", ""]
            self._table[-1].append(self._td)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._td is not None:
            self._td = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._td is not None:
            self._td[1] += data


def _svgs(page: str) -> dict[str, ET.Element]:
    out = {}
    for block in re.findall(r"<svg .*?</svg>", page, flags=re.S):
        el = ET.fromstring(block)  # well-formed XML, or this raises
        out[el.get("class").removeprefix("chart ")] = el
    return out


def _with_diagnosis_and_estimate(rep: BuildReport) -> BuildReport:
    layers = [{"index": i, "source_name": f"features.{i}.conv", "op_type": "Conv", "artifact_tensor": f"t{i}",
               "sqnr_db": v, "cosine": None, "scale": None, "range": None} for i, v in enumerate([48.0, 45.5, None, 12.0, 11.0])]
    diag = {"against": "source", "samples": ["s0"], "mapped": {"source_tensors": 9, "artifact_tensors": 11, "pairs": 5}, "layers": layers,
            "first_divergent": {"index": 3, "source_name": "features.3.conv", "op_type": "Conv", "sqnr_before": 45.5, "sqnr_after": 12.0,
                                "scale": 0.031, "range": [-4.0, 3.9]}}
    rep.artifacts[1].parity = dataclasses.replace(rep.artifacts[1].parity, diagnosis=diag)
    rep.artifacts[1].latency_estimate = {"label": "estimated-device", "device": "Pixel 4", "ms": 2.4, "error_pct": 18.0, "threads": 4}
    return rep


def test_html_charts_parse_as_svg_and_failing_cells_carry_the_class():
    rep = _with_diagnosis_and_estimate(two_output_build())
    page = report_html(rep, report_json(rep))
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # no JS, no network
    svgs = _svgs(page)
    assert set(svgs) == {"size-sqnr", "latency", "layers", "heatmap"}

    points = [c for c in svgs["size-sqnr"].iter(SVG + "circle") if "point" in c.get("class", "").split()]
    assert len(points) == len(rep.artifacts) == 4
    assert sum("fail" in c.get("class").split() for c in points) == 2  # ort int8, tflite int8
    labels = [t.text for t in svgs["size-sqnr"].iter(SVG + "text") if t.get("class") == "label"]
    assert labels == ["ort fp32", "ort int8 ✗", "tflite fp32", "tflite int8 ✗ (non-finite)"]

    bars = [r for r in svgs["latency"].iter(SVG + "rect") if "bar" in r.get("class", "").split()]
    assert len(bars) == 5  # four host figures and one estimate
    est = [r for r in bars if "estimated" in r.get("class").split()]
    assert len(est) == 1 and "estimated" in est[0].find(SVG + "title").text and "2.4 ms" in est[0].find(SVG + "title").text

    lay = svgs["layers"]
    lines = lay.findall(SVG + "polyline")
    assert [len(p.get("points").split()) for p in lines] == [2, 2]  # layer 2 has no SQNR: the curve breaks there
    mark = [c for c in lay.iter(SVG + "circle") if c.get("class") == "divergent"]
    assert len(mark) == 1
    label = next(t for t in lay.iter(SVG + "text") if t.get("class") == "divergent-label")
    assert label.text == "first divergent: #3 features.3.conv (Conv)"
    said = "Mapped 5 tensor pairs (9 source, 11 artifact tensors). First divergent layer: #3 features.3.conv (Conv), SQNR 45.5 → 12.0 dB, scale 0.031, range [-4, 3.9]."
    assert "0.900 / 1.080 ms (host, 4 thr); estimated 2.4 ms ±18% on Pixel 4" in page  # the summary table's latency cell
    assert said in page and f"- diagnosis against source: {said}" in report_markdown(rep)

    heat = [r for r in svgs["heatmap"].iter(SVG + "rect") if "cell" in r.get("class", "").split()]
    assert len(heat) == 2 * 5 and sum("fail" in r.get("class").split() for r in heat) == 2
    assert sum("empty" in r.get("class").split() for r in heat) == 2

    p = _Cells()
    p.feed(page)
    head, *rows = p.tables["outputs"]
    names = [h[1] for h in head]
    assert len(rows) == 8
    ort_boxes = dict(zip(names, rows[3], strict=True))
    assert ort_boxes["Min cosine"] == ["fail", "0.780000≥ 0.99 · margin -0.210000"]
    assert ort_boxes["SQNR dB"][0] == "pass" and ort_boxes["Top-1 agree"] == ["none", "–"]
    assert dict(zip(names, rows[2], strict=True))["Min cosine"][0] == "pass"
    mhead, *mrows = p.tables["matrix"]
    assert [h[1] for h in mhead] == ["Output", *COLS]
    assert [c[0] for c in mrows[1][1:]] == ["pass", "fail", "pass", "none", "fail"]


def test_html_escapes_every_string():
    rep = two_output_build(name="<img src=x onerror=alert(1)>")
    evil = "<b>&'\""
    rep.artifacts = [result("ort", "fp32", [stats(evil, "class_scores", 0.5, 3.0, 1.0, 0.5, [check("min_cosine", 0.5, 0.9, ">=", evil)])], 1000, 1.0, target=evil)]
    rep.model["outputs"] = [{"name": evil}]
    rep.failed_cells = []
    page = report_html(rep, report_json(rep))
    assert "<img" not in page and "<b>" not in page
    assert "&lt;b&gt;&amp;" in page
    _svgs(page)  # every chart is still well-formed


def test_terminal_summary_has_the_worst_output_and_a_line_per_failing_output():
    rep = two_output_build()
    lines = terminal_lines(rep.artifacts, rep.failed_cells)
    assert lines[0].split()[:5] == ["Target", "Format", "Precision", "Size", "Worst"]
    rows = [ln.split() for ln in lines[2:7]]
    assert [r[5] for r in rows[:4]] == ["scores", "boxes", "boxes", "boxes"]  # failing first, else the lowest cosine
    assert rows[1][6] == "0.780000" and rows[3][6] == "non-finite" and rows[1][-1] == "FAIL"
    assert rows[4][:3] == ["android-arm64", "tflite", "fp16"] and lines[6].endswith("FAIL (convert)")
    fails = [ln for ln in lines if ln.startswith("FAIL ")]
    assert fails == [
        "FAIL android-arm64 ort int8 boxes (boxes): min_cosine 0.780000 (≥ 0.99, margin -0.210000)",
        "FAIL android-arm64 tflite int8 boxes (boxes): min_cosine non-finite (≥ 0.99, margin –)",
    ]
    assert max(map(len, lines)) <= 100


def test_terminal_summary_fits_100_columns_in_the_worst_case():
    long = "a-very-long-output-name-that-goes-on"
    worst = [check("min_cosine", 0.123456, 0.99999, ">="), check("max_abs", 123.456, 1e-4, "<="), check("min_sqnr_db", 1.5, 30, ">=")]
    arts = [result("tflite", "dynamic_int8", [stats(long, "class_scores", 0.123456, 1.5, 123.456, 0.123, worst)], 999_999, None,
                   target="a-target-name-that-is-long")]
    failed = [CellFailure("a-target-name-that-is-long", "coreml", "int4_weights", "quantise", "x", "ConversionError", 4)]
    lines = terminal_lines(arts, failed)
    assert len(TERMINAL_COLUMNS) == 10
    assert max(map(len, lines)) <= 100, "\n".join(lines)
    assert lines[2].split()[:3] == ["a-target-nam…", "tflite", "dynamic_int8"] and "not measured" in lines[2]
    assert lines[-1].startswith("FAIL a-target-nam… tflite dynamic_int8 a-very-long-output-name-that-goes-on (class_scores): ")
    assert lines[-1].endswith("…") and len(lines[-1]) == 100


def test_artifact_against_artifact_draws_both_curves_and_says_which_diverges_first():
    rep = two_output_build()
    layers = [{"index": i, "source_name": f"l{i}", "op_type": "Conv", "sqnr_db": a, "other_sqnr_db": b}
              for i, (a, b) in enumerate([(40.0, 41.0), (38.0, 12.0), (11.0, 10.0)])]
    diag = {"against": "m.int8.tflite", "artifact": "m.int8.ort", "samples": ["s0"], "mapped": {"source_tensors": 3, "artifact_tensors": 3, "pairs": 3},
            "band_db": 20.0, "layers": layers, "first_divergent": {"index": 2, "source_name": "l2", "op_type": "Conv", "sqnr_before": 38.0, "sqnr_after": 11.0},
            "other": {"layers": [], "first_divergent": None}, "verdict": "m.int8.tflite diverges first, at layer 1 (l1, Conv); m.int8.ort at layer 2 (l2)"}
    rep.artifacts[1].parity = dataclasses.replace(rep.artifacts[1].parity, diagnosis=diag)
    page = report_html(rep, report_json(rep))
    lay = _svgs(page)["layers"]
    curves = {p.get("class"): len(p.get("points").split()) for p in lay.iter(SVG + "polyline")}
    assert curves == {"curve": 3, "curve other": 3}
    assert [ln.get("class") for ln in lay.iter(SVG + "line") if ln.get("class") == "band"] == ["band"]
    assert "Verdict: m.int8.tflite diverges first, at layer 1 (l1, Conv); m.int8.ort at layer 2 (l2)." in page
