"""int8_auto in Core ML: the search (in edgepack's emulator) finds the outlier conv, the recipe
rebuilds the same .mlpackage, and compressed variants say how much of their weights really are
compressed (coremltools skips weights of 2048 elements or fewer)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, save_pt2, write_stacked
from int8_auto_models import outlier_net

PROFILE = """
name = "auto"
[formats.coreml]
precisions = ["fp32", "w8a8", "int8_auto"]
[latency]
runs = 0
[validation]
diagnose = "never"
"""


def package_digest(package: Path) -> str:
    """sha256 over a package's files: relative paths and bytes, in sorted order."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(package).rglob("*") if p.is_file()):
        h.update(str(f.relative_to(package)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _samples(n, seed):
    rng = np.random.default_rng(seed)
    return [{"image": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(n)]


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    import torch

    d = tmp_path_factory.mktemp("outlier_coreml")
    net = outlier_net()
    pt2 = save_pt2(net, (torch.randn(1, 3, 16, 16),), d / "outlier.pt2")
    return {"pt2": pt2, "dir": d, "fp32_weight_elements": sum(p.numel() for p in net.parameters())}


def _job(files, precisions, shared, work, options=None):
    from edgepack.formats.base import formats as known_formats
    from edgepack.formats.base import FormatJob
    from edgepack.profiles import QuantSettings
    from edgepack.progress import Silent
    from edgepack.quantize_search import Budget
    from edgepack.sources.base import load_source
    from edgepack.validate.tolerances import Threshold

    fmt = known_formats()["coreml"]
    source = shared.setdefault("_source", load_source(str(files["pt2"])))
    opts = {k: o.default for k, o in fmt.options.items()} | (options or {})
    out = source.outputs[0].name
    budget = Budget((out,), {out: {"min_cosine": Threshold(0.99, "defaults.int8_auto"), "min_top1_agreement": Threshold(0.95, "defaults.int8_auto")}})
    work.mkdir(parents=True, exist_ok=True)
    job = FormatJob(source=source, precisions=tuple(precisions), options=opts, quantization=QuantSettings(), calibration=_samples(24, 0),
                    workdir=work, stem="outlier", progress=Silent(), shared=shared, budget=budget)
    return fmt(), job


def _figures(job, artifact, held_out):
    from edgepack.formats.coreml.auto import CoreMLBackend
    from edgepack.quantize_search import evaluate

    backend = CoreMLBackend(None, artifact.path, job.source, None)
    refs = [list(job.source.run(s)) for s in held_out]
    return evaluate(job.budget, refs, backend.run(artifact.path, held_out))


def test_int8_auto_falls_back_the_outlier_conv_and_its_recipe_rebuilds_the_package(outlier, tmp_path):
    shared: dict = {}
    fmt, job = _job(outlier, ["fp32", "int8_auto"], shared, tmp_path / "a")
    arts = {a.precision: a for a in fmt.build(job)}
    auto = _figures(job, arts["int8_auto"], _samples(16, 1))  # held-out samples
    assert auto.values["output"]["min_cosine"] >= 0.999  # (top-1 agreement: the gate's, in the slow build below)

    d = arts["int8_auto"].details
    recipe = d["recipe"]
    assert recipe["format"] == "coreml" and recipe["fallbacks"] == ["conv2d"]  # conv1 (+ its relu), the outlier conv
    layers = {la["name"]: la for la in recipe["layers"]}
    assert list(layers) == ["image", "conv2d", "conv2d_1", "conv2d_2", "mean", "linear_0"]  # graph order, MIL op names
    assert layers["conv2d"]["op_type"] == "conv+relu" and layers["conv2d"]["precision"] == "float"
    assert layers["conv2d"]["sensitivity_db"] < 3  # its int8 output rounds seven of its eight channels to nothing
    assert all(la["sensitivity_db"] > 10 for n, la in layers.items() if n not in ("conv2d", "mean"))
    assert recipe["counts"] == {"int8": 5, "int16": 0, "float": 1} and recipe["search"]["candidates"] <= 9
    # with int8 weights kept, even every activation float misses (conv2's int8 weights crush its 1/100 ones);
    # the last resort, fp16 weights for conv1 and its reader conv2, passes with the one fallback
    steps = {st["label"]: st for st in recipe["steps"]}
    assert not steps["6 to float"]["passed"] and steps["1 to float (fp16 weights in float layers and their readers)"]["passed"]
    assert recipe["base"]["float_weights"] == "fp16" and recipe["base"]["weight_threshold"] == 0
    full = recipe["steps"][0]  # plain W8A8 (every weight int8) misses the budget
    assert full["label"] == "full int8" and not full["passed"] and full["values"]["output"]["min_cosine"] < 0.985
    # size: conv3 and fc int8, conv1 and conv2 (the float layer and its reader) fp16: at most 0.5x the fp32 weights
    fp32 = arts["fp32"].details["weights_bytes"]
    assert fp32 >= 4 * outlier["fp32_weight_elements"]
    assert d["weights_bytes"] <= 0.5 * fp32
    assert d["compressed_weight_elements"] == 8 * 8 * 9 + 8 * 10 and d["weight_elements"] == 1448
    assert d["int8_weight_share"] == d["compressed_weight_share"] == round(656 / 1448, 4)
    assert d["uncompressed_reason"] == "its 1 float layer(s) (conv2d) and the ops reading them keep fp16 weights"
    (rfile,) = arts["int8_auto"].extra_files
    assert rfile.name == "outlier.int8_auto.mlpackage.recipe.json" and json.loads(rfile.read_text())["fallbacks"] == ["conv2d"]

    # the recipe again, with no search: the same package, file for file (the conversion is the build's cached one)
    fmt2, job2 = _job(outlier, ["int8_auto"], shared, tmp_path / "b", {"recipe": str(rfile)})
    (again,) = fmt2.build(job2)
    assert again.details["recipe"]["search"]["reused"] is True and "reused recipe outlier.int8_auto.mlpackage.recipe.json" in again.route
    assert package_digest(again.path) == package_digest(arts["int8_auto"].path)


def test_a_candidate_is_judged_on_the_program_its_conversion_would_save(outlier, tmp_path):
    """The search never writes a candidate: it runs the pymil program after the conversion's own
    passes (compress.conversion_passes). That program computes exactly what the converted, saved
    model computes, and its size is what saving it writes, for plain W8A8, a float layer, and the
    last resort's fp16 weights."""
    from edgepack.formats.coreml.auto import CoreMLBackend
    from edgepack.formats.coreml.convert import convert
    from edgepack.sources.base import load_source

    source = load_source(str(outlier["pt2"]))
    m = convert(source, precision="fp16", target="iOS17", io_dtype="fp32", image=None, labels=None)
    pkg = tmp_path / "base.mlpackage"
    m.save(str(pkg))
    backend = CoreMLBackend(m, pkg, source, lambda xs, _n, _msg: xs)
    names = [la["name"] for la in backend.layers()]
    fit, held = _samples(8, 0), _samples(4, 1)
    base = backend.base()
    for i, (b, floats) in enumerate([(base, ()), (base, ("conv2d",)), ({**base, "float_weights": "fp16"}, ("conv2d",))]):
        precisions = {n: "float" if n in floats else "int8" for n in names}
        program = backend.build(b, precisions, fit)
        saved = tmp_path / f"cand{i}.mlpackage"
        backend.quantise(b, precisions, fit).save(str(saved))
        for got, want in zip(backend.run(program, held), backend.run(saved, held)):
            assert all(np.array_equal(g, w) for g, w in zip(got, want)), (b, floats)
        assert abs(backend.size(program) - backend.size(saved)) <= 0.002 * backend.size(saved), (backend.size(program), backend.size(saved))
    # the artifact's ranges (every sample) run only the samples the search did not calibrate on: the same ranges
    from edgepack.formats.coreml import compress

    seen = []
    backend.track = lambda xs, n, msg: seen.append(n) or xs
    merged = backend.stats(held + fit)
    assert seen == [len(held)] and merged == compress.activation_stats(m, pkg, held + fit, lambda xs, _n, _msg: xs)


def test_compressed_variants_of_small_weights_say_they_are_not(tmp_path):
    """A model whose weights all have at most 2048 elements: int8_weights, int4_weights, palettize4
    and palettize6 store none compressed, and each says so (why, too) with no float sibling built;
    a 64x64 weight is compressed and draws no note."""
    import torch
    from torch import nn

    from edgepack.formats.base import formats as known_formats
    from edgepack.formats.coreml import compress
    from edgepack.formats.coreml.convert import convert
    from edgepack.report.findings import size_findings
    from edgepack.sources.base import load_source
    from edgepack.types import Artifact, ArtifactResult, ParityReport

    torch.manual_seed(0)
    small = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    wide = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64)).eval()
    reason = known_formats()["coreml"].uncompressed_reason
    results = []
    for label, net in (("small", small), ("wide", wide)):
        src = load_source(str(save_pt2(net, (torch.randn(1, 16),), tmp_path / f"{label}.pt2")))
        m = convert(src, precision="fp16", target="iOS18", io_dtype="fp32", image=None, labels=None)
        variants = {
            "int8_weights": compress.int8_weights(m),
            "int4_weights": compress.int4_weights(m, block_size=16),
            "palettize4": compress.palettize(m, 4),
            "palettize6": compress.palettize(m, 6),
        }
        for precision, vm in variants.items() if label == "small" else [("int8_weights", variants["int8_weights"])]:
            out = tmp_path / f"{label}.{precision}.mlpackage"
            vm.save(str(out))
            share = compress.weight_share(out, eight_bit=precision == "int8_weights")
            if label == "small":  # 16x16 + 3x16 weights (the 16- and 3-element biases are below WEIGHT_MIN_ELEMENTS)
                assert share["compressed_weight_share"] == 0.0 and share["weight_elements"] == 304, (precision, share)
            else:  # the 64x64 weight (4096 elements) is int8; 16x64 (1024) and the 64-element biases are not
                assert share["compressed_weight_elements"] == 4096 and share["weight_elements"] == 4096 + 1024 + 64 + 64
            assert ("int8_weight_share" in share) == (precision == "int8_weights")
            parity = ParityReport(passed=True, outputs=(), failures=(), accuracy=None, reference_accuracy=None, tolerances={}, samples=0)
            art = Artifact(path=out, format="coreml", precision=precision, runtime="coreml_emulator", route="", details=share)
            results.append(ArtifactResult(f"t{label}", art, out.name, (), 1, "", (), (), parity, None))
    found = size_findings(results, lambda fmt: reason)
    assert sorted(results[i].precision for i in found) == ["int4_weights", "int8_weights", "palettize4", "palettize6"]
    assert all(results[i].target == "tsmall" for i in found)  # one note per cell, none for the wide model
    assert found[0] == f"size: int8_weights came out uncompressed (0 of 304 weight elements stored compressed, 0%); {reason}"


@pytest.mark.slow
def test_build_int8_auto_and_reuse_its_recipe_byte_for_byte(outlier, tmp_path):
    profile = tmp_path / "auto.toml"
    profile.write_text(PROFILE, encoding="utf-8")
    calib = write_stacked(tmp_path / "calib", 40, (3, 16, 16))
    out = tmp_path / "out"
    code, _, stderr = run_cli("build", str(outlier["pt2"]), "-c", str(calib), "-t", str(profile), "-o", str(out), "--no-cache", "-q")
    assert code == 1, stderr  # plain w8a8 fails its gate; int8_auto passes
    rep = json.loads((out / "report.json").read_text())
    cells = {a["precision"]: a for a in rep["artifacts"]}
    assert cells["w8a8"]["parity"]["passed"] is False
    assert cells["w8a8"]["parity"]["outputs"][0]["min_cosine"] < 0.99
    auto = cells["int8_auto"]
    assert auto["parity"]["passed"] is True and auto["parity"]["outputs"][0]["min_cosine"] >= 0.99, auto["parity"]["failures"]
    assert auto["details"]["recipe"]["fallbacks"] == ["conv2d"]
    assert auto["details"]["weights_bytes"] <= 0.5 * cells["fp32"]["details"]["weights_bytes"]
    # w8a8 compressed none of outlier_net's weights: one note, in report.json and report.md
    (note,) = [n for n in cells["w8a8"]["notes"] if n.startswith("size: ")]
    assert note.startswith("size: w8a8 came out uncompressed (0 of 1448 weight elements stored compressed, 0%); coremltools compresses only")
    assert note in (out / "report.md").read_text()
    rfile = out / "auto" / "outlier.int8_auto.mlpackage.recipe.json"
    assert rfile.is_file() and str(rfile.relative_to(out)) in auto["extra_files"]
    out2 = tmp_path / "out2"
    code, _, stderr = run_cli("build", str(outlier["pt2"]), "-c", str(calib), "-t", str(profile), "-o", str(out2),
                              "--no-cache", "-q", "-p", "int8_auto", "--recipe", str(rfile))
    assert code == 0, stderr
    again = json.loads((out2 / "report.json").read_text())["artifacts"][0]
    assert again["details"]["recipe"]["search"]["reused"] is True and again["sha256"] == auto["sha256"]
    assert package_digest(out2 / again["file"]) == package_digest(out / auto["file"])
