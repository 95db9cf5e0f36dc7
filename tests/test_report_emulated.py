"""Reports show the arm64 run (#12): report.md, report.html and the terminal summary give each
emulated artifact's arm64 parity (worst cosine), arm64 against the host, and its instruction
count with the top classes; an arm64 parity failure is a FAIL line. Results built in code."""
from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

from edgepack.report.emulated import top_classes, vs_host_text
from edgepack.report.html import report_html
from edgepack.report.json_report import report_json
from edgepack.report.markdown import report_markdown
from edgepack.report.summary import failures, terminal_lines
from edgepack.types import ParityReport
from test_report_parity import check, stats, two_output_build

COUNTS = {"sdot": 500_000, "udot": 0, "fmla": 0, "vector": 200_000, "fp_scalar": 0, "load": 300_000, "load_vector": 0,
          "store": 0, "store_vector": 0, "scalar": 234_567, "total": 1_234_567}


def _arm_parity(cos, top1, passed):
    s = stats("scores", "class_scores", cos, 30.0, 0.01, top1, [check("min_cosine", cos, 0.99, ">=")])
    fails = () if passed else (f"output 'scores': cosine {cos:.6g} < 0.99",)
    return ParityReport(passed, (s,), fails, None, None, {"min_cosine": 0.99}, 3).to_json()


def _emulated_build():
    rep = two_output_build()
    ort32, ort8, tfl32, tfl8 = rep.artifacts
    ort8 = dataclasses.replace(ort8, emulated={
        "label": "emulated-arm64", "ran": True, "cpu": "cortex-a76", "samples": 3, "parity": _arm_parity(0.998765, 1.0, True),
        "vs_host": {"bit_identical": False, "samples": 3, "outputs": [
            {"output": "scores", "dtype": "uint8", "values": 100, "differing": 76, "max_lsb": 14, "lsb_histogram": {"1": 60, "14": 16}}]},
        "counts": COUNTS, "notes": []})
    tfl8 = dataclasses.replace(tfl8, emulated={
        "label": "emulated-arm64", "ran": True, "cpu": "cortex-a55", "samples": 3, "parity": _arm_parity(0.91, 0.667, False),
        "vs_host": {"bit_identical": True, "samples": 3, "outputs": []}, "counts": {**COUNTS, "total": 2_500_000_000, "scalar": 2_498_765_433},
        "notes": []})
    ort32 = dataclasses.replace(ort32, emulated={"label": "emulated-arm64", "ran": False, "note": "arm64 emulation off (EDGEPACK_ARM64=off)"})
    return dataclasses.replace(rep, artifacts=[ort32, ort8, tfl32, tfl8])  # tflite fp32: not emulated (None)


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self._cell = {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._rows = self.tables.setdefault(a.get("class") or f"t{len(self.tables)}", [])
        elif tag == "tr":
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = [a.get("class"), ""]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append(tuple(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


EXPECTED = [
    ("android-arm64", "ort", "fp32", "–", "–", "not run: arm64 emulation off (EDGEPACK_ARM64=off)", "–", "–", "–", "–"),
    ("android-arm64", "ort", "int8", "cortex-a76", "3", "PASS", "0.998765", "76 of 100 values differ, up to 14 LSB", "1.23 M",
     "sdot 41%, load 24%, scalar 19%"),
    ("android-arm64", "tflite", "int8", "cortex-a55", "3", "FAIL", "0.910000", "bit-identical", "2.50 G", "scalar 100%, sdot 0%, load 0%"),
]


def test_markdown_has_the_emulated_table_and_the_arm64_fail_line():
    rep = _emulated_build()
    md = report_markdown(rep).splitlines()
    start = md.index("## Emulated arm64")
    head = md[start + 4]
    assert head == "| Target | Format | Precision | CPU | Samples | arm64 parity | Worst cosine | arm64 vs host | Instructions | Top classes |"
    rows = [tuple(c.strip() for c in ln.strip("|").split(" | ")) for ln in md[start + 6 : start + 9]]
    assert rows[0] == EXPECTED[0] and rows[1] == EXPECTED[1]
    assert rows[2] == (*EXPECTED[2][:5], "FAIL ❌", *EXPECTED[2][6:])
    assert md[start + 9] == ""  # tflite fp32 is not emulated: no row
    assert "- ❌ arm64 (cortex-a55): output 'scores': cosine 0.91 < 0.99" in md


def test_html_has_a_small_emulated_table_and_a_fail_item():
    rep = _emulated_build()
    page = report_html(rep, report_json(rep))
    p = _Tables()
    p.feed(page)
    head, *rows = p.tables["emulated"]
    assert [t for _, t in head] == ["Target", "Format", "Precision", "CPU", "Samples", "arm64 parity", "Worst cosine", "arm64 vs host",
                                    "Instructions", "Top classes"]
    assert [tuple(t for _, t in r) for r in rows] == EXPECTED
    assert [r[5][0] for r in rows] == [None, "PASS", "fail"]  # the failing arm64 parity is marked in its cell
    assert page.index("<h2>Emulated arm64</h2>") < page.index("<h2>Artifacts</h2>")
    assert "<li class='FAIL'>arm64 (cortex-a55): output &#x27;scores&#x27;: cosine 0.91 &lt; 0.99</li>" in page


def test_terminal_shows_the_arm64_run_within_100_columns():
    rep = _emulated_build()
    lines = terminal_lines(rep.artifacts, rep.failed_cells)
    assert max(len(ln) for ln in lines) <= 100
    k = lines.index("arm64 run    CPU  Parity  Cosine    vs host                Instr   Top classes")
    assert lines[k + 2 : k + 5] == [
        "ort int8     a76  PASS    0.998765  76/100 differ ≤14 LSB  1.23 M  sdot 41% load 24%",
        "tflite int8  a55  FAIL    0.910000  bit-identical          2.50 G  scalar 100% sdot <1%",
        "arm64 not run for 1 artifact: arm64 emulation off (EDGEPACK_ARM64=off)",
    ]
    assert lines[k - 2].startswith("android-arm64  tflite  fp16") and lines[k + 5] == ""  # after the cells, before the FAIL lines
    other = dataclasses.replace(rep.artifacts[1], target="linux-arm64")  # two targets: the row names its target
    assert "linux-arm64 ort int8       a76  PASS    0.998765  76/100 differ ≤14 LSB  1.23 M  sdot 41% load 24%" in terminal_lines([*rep.artifacts, other])
    ort8, tfl8 = rep.artifacts[1], rep.artifacts[3]
    assert failures(tfl8) == ["output 'boxes': min_cosine failed", "arm64 (cortex-a55): output 'scores': cosine 0.91 < 0.99"]
    assert failures(ort8)[-1].startswith("output 'boxes'") and not tfl8.passed


def test_arm64_that_cannot_run_the_artifact_and_float_differences():
    rep = _emulated_build()
    err = "m.int8.ort: the arm64 onnxruntime under qemu-aarch64 (cortex-a76) failed: killed by signal 11"
    r = dataclasses.replace(rep.artifacts[1], emulated={"label": "emulated-arm64", "ran": False, "cpu": "cortex-a76", "error": err,
                                                          "parity": {"passed": False, "failures": [f"arm64 (cortex-a76): {err}"]}})
    assert failures(r)[-1] == f"arm64 (cortex-a76): {err}"  # already names arm64: not prefixed twice
    md = report_markdown(dataclasses.replace(rep, artifacts=[r]))
    assert f"| android-arm64 | ort | int8 | cortex-a76 | – | FAIL: {err} ❌ | – | – | – | – |" in md
    assert "ort int8   a76  FAIL    –       cannot run it  –      –" in terminal_lines([r])
    fl = {"bit_identical": False, "outputs": [{"output": "y", "values": 40, "differing": 3, "max_abs": 2.4e-7, "max_ulp": 2},
                                              {"output": "z", "values": 8, "differing": 0, "max_abs": 0.0, "max_ulp": 0}]}
    assert vs_host_text({"vs_host": fl}) == "3 of 48 values differ, up to 2.4e-07 abs (2 ULP)"
    assert top_classes(COUNTS, 2) == [("sdot", 500_000 / 1_234_567), ("load", 300_000 / 1_234_567)]
