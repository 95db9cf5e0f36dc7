"""int8_auto's recipe in manifest.json, report.md, report.html and the terminal (#11): rendering
tests on a recipe dict written out here (the shape edgepack/quantize_search/recipe.py writes), and
one real ORT int8_auto build of outlier_net() whose report files are read back."""
from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

import pytest

from edgepack.report.html import report_html
from edgepack.report.int8_auto import binding_metric, manifest_entry, markdown_block, terminal_line
from edgepack.report.json_report import report_json
from edgepack.report.manifest import MANIFEST_SCHEMA_VERSION
from edgepack.report.markdown import report_markdown
from edgepack.report.summary import TERMINAL_WIDTH, terminal_lines
from test_report_parity import two_output_build

SVG = "{http://www.w3.org/2000/svg}"
BUDGET = {"logits": {"min_cosine": {"value": 0.99, "source": "defaults.int8_auto"},
                     "min_top1_agreement": {"value": 0.95, "source": "tolerances.int8_auto"},
                     "max_accuracy_drop": {"value": 0.01, "source": "defaults.int8_auto"}}}


def _step(k, label, layers, passed, cos, top1, size=7451):
    return {"fallbacks": k, "label": label, "layers": layers, "size_bytes": size, "passed": passed, "score": 0.0,
            "values": {"logits": {"min_cosine": cos, "min_top1_agreement": top1}}, "failures": []}


def recipe(reused=False):
    """An int8_auto recipe as Recipe.to_json writes it: conv1 went to float after int16 did not do."""
    layers = [
        {"name": "image", "op_type": "input", "sensitivity_db": 40.435, "precision": "int8"},
        {"name": "node_conv2d", "op_type": "Conv+Relu", "sensitivity_db": 0.424, "precision": "float"},
        {"name": "node_conv2d_1", "op_type": "Conv+Relu", "sensitivity_db": 19.305, "precision": "int8"},
        {"name": "node_conv2d_2", "op_type": "Conv+Relu", "sensitivity_db": 33.166, "precision": "int8"},
        {"name": "node_linear", "op_type": "Gemm", "sensitivity_db": 37.297, "precision": "int8"},
    ]
    steps = [
        _step(0, "full int8", [], False, 0.9813, 0.0, 11572),
        _step(1, "1 to int16", ["node_conv2d"], False, 0.9928, 0.5),
        _step(1, "1 to float", ["node_conv2d"], True, 0.99998, 0.95, 13193),  # exactly on the top-1 threshold
        _step(2, "2 to int16", ["node_conv2d", "node_conv2d_1"], False, 0.9924, 0.25),
        _step(3, "3 to int16", ["node_conv2d", "node_conv2d_1", "node_conv2d_2"], False, 0.9928, 0.125),
    ]
    search = {"fit_samples": 16, "check_samples": 8, "candidates": 6, "seconds": 3.14, "reused": False, "sensitivity": "per-layer error map", "note": None}
    if reused:
        search = {**search, "reused": True, "from": "outlier.int8_auto.recipe.json"}
    return {
        "edgepack_recipe": 1, "format": "ort", "precision": "int8_auto", "base": {"method": "minmax", "per_channel": True},
        "layers": layers, "fallbacks": ["node_conv2d"], "counts": {"int8": 4, "int16": 0, "float": 1},
        "fixes": [{"fix": "percentile range (99.99)", "score": -1.0, "passed": False, "helped": False}],
        "steps": steps, "search": search, "budget": BUDGET,
    }


def auto_build(reused=False):
    """two_output_build() with its ort int8 cell turned into an int8_auto cell carrying the recipe."""
    rep = two_output_build()
    ort32, ort8, *rest = rep.artifacts
    art = dataclasses.replace(ort8.artifact, precision="int8_auto", details={"recipe": recipe(reused), "int8_weight_share": 0.4481})
    auto = dataclasses.replace(ort8, artifact=art, file="android-arm64/m.int8_auto.ort",
                               extra_files=("android-arm64/m.int8_auto.recipe.json",), size_bytes=16_800)
    return dataclasses.replace(rep, artifacts=[ort32, auto, *rest])


def test_manifest_entry_lists_counts_fallbacks_size_and_the_recipe_file():
    from edgepack.report.manifest import manifest_json

    rep = auto_build()
    rep = dataclasses.replace(rep, model={**rep.model, "inputs": [{"name": "image", "shape": [1, 3, 16, 16], "dtype": "float32"}]})

    class Calib:  # what manifest_json reads of a CalibrationSet
        preprocess, labels = None, ["a", "b"]

    man = manifest_json(rep, Calib())
    assert man["schema_version"] == MANIFEST_SCHEMA_VERSION == "1.1"
    arts = {a["precision"]: a for a in man["artifacts"] if a["format"] == "ort"}
    assert "int8_auto" not in arts["fp32"]  # only int8_auto artifacts get the key
    assert arts["int8_auto"]["int8_auto"] == {
        "counts": {"int8": 4, "int16": 0, "float": 1},
        "fallbacks": [{"name": "node_conv2d", "op_type": "Conv+Relu", "precision": "float", "sensitivity_db": 0.424}],
        "size_bytes": 16_800,
        "recipe_file": "android-arm64/m.int8_auto.recipe.json",
        "reused_recipe": False,
        "int8_weight_share": 0.4481,
    }
    assert set(arts["int8_auto"]) - {"int8_auto"} == set(arts["fp32"])  # every 1.1 key is still there
    json.dumps(man, allow_nan=False)


def test_binding_metric_is_the_check_that_binds_in_most_steps():
    # top-1 agreement is the worst relative margin in 4 of the 5 steps (cosine binds on the passing one)
    assert binding_metric(recipe()) == ("logits", "min_top1_agreement", 0.95)
    rec = recipe()
    rec["fixes"].append({"fix": "range margin 0.1", "on_top_of": ["per-channel weights"], "helped": True, "passed": True})
    assert "range margin 0.1 (on top of per-channel weights): helped, met the budget" in "".join(markdown_block(_with(rec)))
    for s in rec["steps"]:
        s["values"]["logits"]["min_top1_agreement"] = 1.0
    assert binding_metric(rec) == ("logits", "min_cosine", 0.99)
    assert binding_metric({**rec, "steps": []}) is None


def _with(rec):
    """auto_build()'s int8_auto cell carrying `rec` instead."""
    r = auto_build().artifacts[1]
    return dataclasses.replace(r, artifact=dataclasses.replace(r.artifact, details={"recipe": rec}))


def _svg_of(page: str) -> ET.Element:
    start = page.index("<svg xmlns='http://www.w3.org/2000/svg' class='chart steps'")
    return ET.fromstring(page[start: page.index("</svg>", start) + len("</svg>")])


def test_html_chart_has_one_point_per_step_and_the_threshold_at_its_value():
    rep = auto_build()
    page = report_html(rep, report_json(rep))
    svg = _svg_of(page)
    points = [c for c in svg.iter(f"{SVG}circle") if c.get("class", "").startswith("step")]
    assert len(points) == 5  # one per step, in the recipe's order
    titles = [p.find(f"{SVG}title").text for p in points]
    assert titles[0] == "full int8: logits: min_top1_agreement 0, misses the budget"
    assert titles[2] == "1 to float: logits: min_top1_agreement 0.95, meets the budget (the recipe)"
    assert [p.get("class") for p in points] == ["step fail", "step fail", "step pass", "step fail", "step fail"]
    (thr,) = [ln for ln in svg.iter(f"{SVG}line") if ln.get("class") == "threshold"]
    assert thr.get("y1") == thr.get("y2") == points[2].get("cy")  # the passing step sits exactly on top-1 = 0.95
    assert thr.get("stroke-dasharray")
    cy = [float(p.get("cy")) for p in points]
    # linear in the value: 0 -> 0.5 is half of 0 -> 1 ... and 0.95 is above 0.5 (smaller y)
    assert cy[0] > cy[1] > cy[2] and cy[3] > cy[1] and abs((cy[0] - cy[4]) / (cy[0] - cy[1]) - 0.25) < 1e-2
    cx = [float(p.get("cx")) for p in points]
    assert cx[1] == cx[2] and cx[0] < cx[1] < cx[3] < cx[4] and abs((cx[4] - cx[0]) - 3 * (cx[1] - cx[0])) < 0.2
    assert len([c for c in svg.iter(f"{SVG}circle") if c.get("class") == "chosen"]) == 1
    assert "budget ≥ 0.95" in "".join(t.text or "" for t in svg.iter(f"{SVG}text"))


def test_html_section_has_the_budget_the_fallen_back_layer_fixes_and_cost():
    from test_report_emulated import _Tables

    rep = auto_build()
    page = report_html(rep, report_json(rep))
    t = _Tables()
    t.feed(page)
    assert [c[1] for c in t.tables["budget"][1]] == ["logits", "min_cosine", ">= 0.99", "defaults.int8_auto"]
    assert [c[1] for c in t.tables["budget"][2]] == ["logits", "min_top1_agreement", ">= 0.95", "tolerances.int8_auto"]
    assert [c[1] for c in t.tables["budget"][3]] == ["logits", "max_accuracy_drop", "<= 0.01", "defaults.int8_auto"]
    assert [[c[1] for c in r] for r in t.tables["fallbacks"]] == [["Layer", "Op", "Precision", "Sensitivity"], ["node_conv2d", "Conv+Relu", "float", "0.42 dB"]]
    assert "4 layers stayed int8." in page
    assert "percentile range (99.99): did not help" in page
    assert "Search: 6 candidates, 3.1 s on 16 fit + 8 check samples (sensitivity: per-layer error map)." in page
    assert "<code>android-arm64/m.int8_auto.recipe.json</code>" in page
    reused = auto_build(reused=True)
    assert "Search: reused recipe outlier.int8_auto.recipe.json (no search)." in report_html(reused, report_json(reused))


def test_markdown_block_text():
    rep = auto_build()
    assert markdown_block(rep.artifacts[1]) == [
        "**android-arm64 · ort · int8_auto** (recipe `android-arm64/m.int8_auto.recipe.json`)",
        "- 4 layers int8, 0 int16, 1 float; 16.8 KB; int8 weights 44.8%",
        "- fallbacks: `node_conv2d` (Conv+Relu) → float, 0.42 dB",
        "- fixes tried: percentile range (99.99): did not help",
        "- search: 6 candidates, 3.1 s on 16 fit + 8 check samples (sensitivity: per-layer error map)",
        "",
    ]
    md = report_markdown(rep).splitlines()
    at = md.index("## int8_auto recipes")
    assert md[at + 2].startswith("**android-arm64 · ort · int8_auto**")
    assert sum(1 for ln in md if ln.startswith("- search: ")) == 1  # only the int8_auto cell has a block


def test_a_recipe_with_no_layer_left_in_int8_says_it_is_no_int8_model():
    """ocr_det's tier cells: the bisection's bracket reached every layer; the report must not let
    such an artifact pass as int8 (markdown, HTML and the terminal say so)."""
    from edgepack.report.int8_auto import none_int8_text

    rec = recipe()
    assert none_int8_text(rec) is None
    rec["layers"] = [{**la, "precision": "float"} for la in rec["layers"]]
    rec["fallbacks"] = [la["name"] for la in rec["layers"]]
    rec["counts"] = {"int8": 0, "int16": 0, "float": 5}
    text = ("no layer stays int8: every layer fell back to float, so this artifact is no int8 model (only its weights "
            "are narrower); compare its size and latency with the format's fp16 variant")
    assert none_int8_text(rec) == text
    cell = _with(rec)
    block = markdown_block(cell)
    assert block[1] == "- 0 layers int8, 0 int16, 5 float; 16.8 KB" and block[2] == f"- ⚠️ {text}"
    assert terminal_line(cell) == "int8_auto ort: every layer fell back (5), no int8 left, 6 candidates, 3.1 s"
    rep = dataclasses.replace(auto_build(), artifacts=[auto_build().artifacts[0], cell, *auto_build().artifacts[2:]])
    assert f"<p>⚠️ {text}.</p>" in report_html(rep, report_json(rep)).replace("&#x27;", "'")
    rec["counts"] = {"int8": 0, "int16": 3, "float": 2}
    assert "fell back to int16 activations or float," in none_int8_text(rec)
    rec["counts"] = {"int8": 0, "int16": 5, "float": 0}
    assert "fell back to int16 activations," in none_int8_text(rec)
    assert none_int8_text({**rec, "counts": {"int8": 0, "int16": 0, "float": 0}}) is None


def test_a_recipe_that_met_only_the_gates_thresholds_says_so():
    from edgepack.report.int8_auto import cost_text

    rec = recipe()
    assert "headroom" not in cost_text(rec)
    rec["search"]["met_headroom"] = False
    assert cost_text(rec) == ("6 candidates, 3.1 s on 16 fit + 8 check samples (sensitivity: per-layer error map); no candidate "
                              "met the search's headroom: the fewest fallbacks that met the gate's own thresholds")


def test_terminal_line_per_int8_auto_cell_within_100_columns():
    rep = auto_build()
    assert terminal_line(rep.artifacts[1]) == "int8_auto ort: 1 fallback (node_conv2d → float), 6 candidates, 3.1 s"
    lines = terminal_lines(rep.artifacts, rep.failed_cells)
    assert sum(1 for ln in lines if ln.startswith("int8_auto ")) == 1
    assert all(len(ln) <= TERMINAL_WIDTH for ln in lines)
    reused = auto_build(reused=True)
    assert terminal_line(reused.artifacts[1]) == "int8_auto ort: 1 fallback (node_conv2d → float), reused outlier.int8_auto.recipe.json"
    # many fallbacks: the first names, then a count; still one line within 100 columns
    rec = recipe()

    def with_names(fmt):
        rec["layers"] = [{"name": fmt.format(i), "op_type": "Conv", "sensitivity_db": float(i), "precision": "int16"} for i in range(9)]
        rec["fallbacks"] = [la["name"] for la in rec["layers"]]
        return terminal_line(_with(rec), with_target=True)

    assert with_names("stage{0}/conv_{0}") == "android-arm64 int8_auto ort: 9 fallbacks (stage0/conv_0 → int16, +8 more), 6 candidates, 3.1 s"
    long = with_names("model/backbone/stage{0}/block{0}/conv_{0}")  # even the first name is cut
    assert long == "android-arm64 int8_auto ort: 9 fallbacks (model/backbone/stage0/bloc…, +8 more), 6 candidates, 3.1 s"
    assert len(long) == TERMINAL_WIDTH


def test_cells_without_a_recipe_get_no_int8_auto_output():
    rep = two_output_build()
    assert all(manifest_entry(r) is None for r in rep.artifacts)
    assert "int8_auto" not in report_markdown(rep)
    assert "chart steps" not in report_html(rep, report_json(rep))
    assert not any(ln.startswith("int8_auto") for ln in terminal_lines(rep.artifacts, rep.failed_cells))


PROFILE = """
name = "auto"
[formats.ort]
precisions = ["int8_auto"]
[latency]
runs = 0
[validation]
diagnose = "never"
"""


@pytest.fixture(scope="module")
def real_build(tmp_path_factory):
    """One real ORT int8_auto build of outlier_net() (the search runs: plain int8 misses)."""
    import torch

    from conftest import run_cli, save_onnx, write_stacked
    from int8_auto_models import outlier_net

    d = tmp_path_factory.mktemp("auto_reports")
    onnx_path = save_onnx(outlier_net(), (torch.randn(1, 3, 16, 16),), d / "outlier.onnx", output_names=("logits",))
    calib = write_stacked(d / "calib", 40, (3, 16, 16))
    (d / "auto.toml").write_text(PROFILE, encoding="utf-8")
    out = d / "out"
    code, stdout, stderr = run_cli("build", str(onnx_path), "-c", str(calib), "-t", str(d / "auto.toml"), "-o", str(out), "--no-cache", "-q")
    return code, stdout, stderr, out


def test_real_build_reports_its_recipe_everywhere(real_build):
    code, stdout, stderr, out = real_build
    assert code == 0, stderr
    rep = json.loads((out / "report.json").read_text())
    (cell,) = rep["artifacts"]
    rec = cell["details"]["recipe"]
    man = json.loads((out / "manifest.json").read_text())
    (entry,) = man["artifacts"]
    auto = entry["int8_auto"]
    assert auto["counts"] == rec["counts"] and [f["name"] for f in auto["fallbacks"]] == rec["fallbacks"] == ["node_conv2d"]
    assert auto["fallbacks"][0]["op_type"] == "Conv+Relu" and auto["fallbacks"][0]["sensitivity_db"] < 3
    assert auto["size_bytes"] == cell["size_bytes"] and (out / auto["recipe_file"]).is_file()
    assert auto["recipe_file"] in cell["extra_files"] and auto["reused_recipe"] is False
    svg = _svg_of((out / "report.html").read_text())
    assert len([c for c in svg.iter(f"{SVG}circle") if c.get("class", "").startswith("step")]) == len(rec["steps"])
    md = (out / "report.md").read_text()
    assert "- fallbacks: `node_conv2d` (Conv+Relu) → " in md and f"- search: {rec['search']['candidates']} candidates, " in md
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith("int8_auto ort: ")]
    assert line.startswith("int8_auto ort: 1 fallback (node_conv2d → ") and len(line) <= TERMINAL_WIDTH
    assert f"{rec['search']['candidates']} candidates" in line


def test_a_mover_that_followed_its_input_says_so():
    """A layer the search moved with the layers it reads (`with_input`) is named as such in the
    manifest, report.md and report.html, not by a sensitivity it was not chosen for."""
    from edgepack.report.int8_auto import html_section

    rep = auto_build()
    auto = rep.artifacts[1]
    rec = auto.artifact.details["recipe"]
    rec["layers"].insert(2, {"name": "node_maxpool", "op_type": "MaxPool", "sensitivity_db": 120.0, "precision": "float", "with_input": True})
    rec["counts"] = {"int8": 4, "int16": 0, "float": 2}
    rec["fallbacks"] = ["node_conv2d", "node_maxpool"]
    rec["search"]["confirm_samples"] = 8
    fallbacks = manifest_entry(auto)["fallbacks"]
    assert [f["name"] for f in fallbacks] == ["node_conv2d", "node_maxpool"]
    assert fallbacks[1]["with_input"] is True and "with_input" not in fallbacks[0]
    md = "\n".join(markdown_block(auto))
    assert "`node_maxpool` (MaxPool) → float, moves values only: follows its input" in md
    html = html_section(auto)
    assert "<td>moves values only: follows its input</td>" in html
    assert "a passing one also on 8 search-fit samples" in html
    assert "stopped at" not in html
    rec["search"]["check_samples"] = 8
    rec["steps"][1]["samples"] = 1  # a first look past the gate's threshold
    assert "a passing one also on 8 search-fit samples; 1 stopped at its first sample, already past the gate's own threshold" in html_section(auto)


def test_binding_metric_reads_the_searchs_own_record():
    rec = recipe()
    for st in rec["steps"]:
        st["binding"] = ["logits", "min_cosine"]  # what the search recorded (its tightened thresholds)
    assert binding_metric(rec) == ("logits", "min_cosine", 0.99)
