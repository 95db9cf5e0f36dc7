"""Parity in real builds (issue #10): min_samples, per-output rows for a scores + boxes model,
`check` reading the precision edgepack stored, fp16 overflow in every format."""
import json

import numpy as np
import pytest

from conftest import run_cli, save_pt2, write_stacked


def _profile(path, formats, extra=""):
    body = 'name = "p"\n[latency]\nruns = 0\n' + "".join(f'[formats.{f}]\nprecisions = {json.dumps(p)}\n' for f, p in formats.items())
    path.write_text(body + extra, encoding="utf-8")
    return path


def test_too_few_held_out_samples_is_bad_input(tmp_path, tiny_cnn_files):
    calib = write_stacked(tmp_path / "calib", 6, (3, 16, 16))
    prof = _profile(tmp_path / "p.toml", {"ort": ["fp32"]})
    code, out, err = run_cli("build", str(tiny_cnn_files["pt2"]), "-c", str(calib), "-t", str(prof), "-o", str(tmp_path / "o"))
    assert code == 3
    assert err.strip().splitlines()[-1] == (
        f"edgepack: error: {calib}: 6 samples give 2 held-out samples for parity; at least 8 are needed: "
        f"add samples or lower validation.min_samples in {prof}"
    )
    assert not (tmp_path / "o").exists()  # refused before any conversion
    code, _, err = run_cli("build", str(tiny_cnn_files["pt2"]), "-c", str(calib), "-t", "android-arm64", "-o", str(tmp_path / "o2"))
    assert code == 3 and "lower validation.min_samples in a copy of the shipped profile " in err and "android-arm64.toml given to --target" in err


def test_an_output_name_the_model_lacks_is_a_config_error(tmp_path, tiny_cnn_files):
    prof = _profile(tmp_path / "p.toml", {"ort": ["fp32"]}, "[tolerances.fp32.outputs.outptu]\nmax_abs = 1\n")
    code, _, err = run_cli("build", str(tiny_cnn_files["pt2"]), "-c", str(tiny_cnn_files["calib"]), "-t", str(prof), "-o", str(tmp_path / "o"))
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"edgepack: error: {prof}: key 'tolerances.fp32.outputs.outptu' names output 'outptu', which {tiny_cnn_files['pt2']} "
        "does not have; did you mean 'output'? its outputs are: output"
    )


def _detector(tmp_path):
    """scores (1, 10) and boxes (1, 6, 4): xywh with sizes >= 0."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Det(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(16, 32)
            self.cls = nn.Linear(32, 10)
            self.box = nn.Linear(32, 24)

        def forward(self, x):
            h = torch.relu(self.body(x))
            b = self.box(h).reshape(1, 6, 4)
            return self.cls(h), torch.cat([b[..., :2], nn.functional.softplus(b[..., 2:])], dim=-1) * 50.0

    return save_pt2(Det().eval(), (torch.randn(1, 16),), tmp_path / "det.pt2")


@pytest.mark.slow
def test_scores_and_boxes_are_judged_per_output(tmp_path):
    model = _detector(tmp_path)
    calib = write_stacked(tmp_path / "calib", 25, (16,), name="x")  # 10 held out
    prof = _profile(tmp_path / "p.toml", {"ort": ["fp32", "int8"]}, """
[tolerances.int8.outputs.output_1]
min_sqnr_db = 60
max_abs = 0.001
[tolerances.int8.ort.outputs.output_1]
max_abs = 100
""")
    code, _, err = run_cli("build", str(model), "-c", str(calib), "-t", str(prof), "-o", str(tmp_path / "o"))
    assert code == 1, err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    cells = {a["precision"]: a["parity"] for a in report["artifacts"]}
    fp32, int8 = cells["fp32"], cells["int8"]
    assert fp32["passed"] and fp32["samples"] == 10 and fp32["min_samples"] == 8
    scores, boxes = int8["outputs"]
    assert (scores["output"], scores["kind"], boxes["output"], boxes["kind"]) == ("output_0", "class_scores", "output_1", "boxes")
    assert boxes["top1_agreement"] is None and boxes["top5_agreement"] is None
    assert scores["top1_agreement"] is not None and scores["top5_agreement"] is not None
    checks = {c["metric"]: c for c in boxes["checks"]}
    assert set(checks) == {"max_abs", "min_cosine", "min_sqnr_db"}
    assert checks["max_abs"]["source"] == "tolerances.int8.ort.outputs.output_1" and checks["max_abs"]["threshold"] == 100
    assert checks["min_sqnr_db"]["source"] == "tolerances.int8.outputs.output_1" and not checks["min_sqnr_db"]["passed"]
    assert checks["min_cosine"]["source"] == "defaults.int8" and checks["min_cosine"]["threshold"] == 0.99
    for c in checks.values():
        assert c["margin"] == pytest.approx(c["value"] - c["threshold"] if c["op"] == ">=" else c["threshold"] - c["value"])
    assert not boxes["passed"] and not int8["passed"]
    assert f"output 'output_1': sqnr_db {boxes['sqnr_db']:.6g} < 60" in int8["failures"]
    assert [c["metric"] for c in scores["checks"]] == ["min_cosine", "min_top1_agreement"]
    assert {c["source"] for c in scores["checks"]} == {"defaults.int8"}


def _overflow_model(tmp_path):
    """y = (300 x)^2 * 2^-14 for x in [1, 3]: (300 x)^2 reaches 8.1e5, beyond fp16's 65504, while
    y (<= 50) and every constant (300, 2^-14) are exact in fp16."""
    import torch

    class Overflow(torch.nn.Module):
        def forward(self, x):
            return ((x * 300.0) ** 2) * 2.0**-14

    model = save_pt2(Overflow().eval(), (torch.ones(1, 4),), tmp_path / "overflow.pt2")
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).uniform(1, 3, (20, 4)).astype(np.float32))  # 8 held out
    return model, calib


@pytest.mark.slow
def test_fp16_overflow_in_every_format(tmp_path):
    """What each format's fp16 really does with an intermediate beyond 65504, on this host:
    - Core ML fp16 computes in fp16: the emulator's overflow finding fails the cell (exit 1, never
      70), and the output's inf values are a non-finite finding; report.json stays strict JSON.
    - tflite fp16 is weight-only (fp32 compute): nothing overflows, and the cell passes.
    - ort fp16 on the CPU EP: ORT inserts fp32 casts around ops without fp16 CPU kernels (Mul, Pow
      on x86) and drops the cast pairs between them, so the host computes in fp32 and cannot see
      the overflow (a device EP computing in fp16 would); the cell passes on the host."""
    model, calib = _overflow_model(tmp_path)
    prof = _profile(tmp_path / "p.toml", {"ort": ["fp16"], "tflite": ["fp16"], "coreml": ["fp16"]})
    code, _, err = run_cli("build", str(model), "-c", str(calib), "-t", str(prof), "-o", str(tmp_path / "o"))
    assert code == 1, err
    text = (tmp_path / "o" / "report.json").read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"report.json holds {c}"))
    cells = {a["format"]: a["parity"] for a in report["artifacts"]}
    assert set(cells) == {"ort", "tflite", "coreml"} and report["exit_code"] == 1
    coreml = cells["coreml"]
    (y,) = coreml["outputs"]
    assert not coreml["passed"] and y["nonfinite"] and y["nonfinite_values"] == 8 * 4 and y["nonfinite_samples"] == 8
    assert y["sqnr_db"] is None and y["checks"] and all(c["value"] is None and not c["passed"] for c in y["checks"])
    assert any("non-finite values (32 Inf) on 8 of 8 samples" in f for f in coreml["failures"]), coreml["failures"]
    assert any(f.startswith("fp16 overflow in the Core ML emulator: op ") and "beyond fp16's 65504" in f for f in coreml["failures"])
    assert "FAIL p coreml fp16: fp16 overflow in the Core ML emulator" in err
    for fmt in ("tflite", "ort"):
        (y,) = cells[fmt]["outputs"]
        assert cells[fmt]["passed"] and not y["nonfinite"] and y["max_abs"] <= 1e-3, (fmt, y)


@pytest.mark.slow
def test_check_uses_the_precision_edgepack_stored(tmp_path, tiny_cnn_files):
    """`edgepack check` on an int8 .tflite that edgepack built passes with no --precision (it reads
    int8 from the file); --precision fp32 overrides it and fails; a .ort (it keeps no metadata) takes
    the precision its output folder's manifest.json lists for it; a foreign file is checked at
    fp32, and the note says so."""
    pt2, calib = str(tiny_cnn_files["pt2"]), str(tiny_cnn_files["calib"])
    prof = _profile(tmp_path / "p.toml", {"tflite": ["int8"], "ort": ["fp32"]})
    code, _, err = run_cli("build", pt2, "-c", calib, "-t", str(prof), "-o", str(tmp_path / "o"))
    assert code == 0, err
    tfl, ort = tmp_path / "o" / "p" / "tiny.int8.tflite", tmp_path / "o" / "p" / "tiny.fp32.ort"
    code, out, err = run_cli("check", str(tfl), "-m", pt2, "-c", calib, "--no-latency", "--json")
    assert code == 0, err
    entry = json.loads(out)
    assert entry["precision"] == "int8" and entry["parity"]["tolerances"] == {"min_cosine": 0.99, "min_top1_agreement": 0.95, "max_accuracy_drop": 0.01}
    assert "tolerances of int8, the precision edgepack stored in tiny.int8.tflite (--precision overrides it)" in entry["notes"]
    code, _, err = run_cli("check", str(tfl), "-m", pt2, "-c", calib, "--no-latency", "--precision", "fp32")
    assert code == 1 and f"FAIL {tfl.name} fp32: output 'output': abs " in err
    code, out, err = run_cli("check", str(ort), "-m", pt2, "-c", calib, "--no-latency")  # .ort keeps no metadata: the manifest's
    assert code == 0, err
    assert f"note: tolerances of fp32, the precision {tmp_path / 'o' / 'manifest.json'} records for tiny.fp32.ort" in err
    foreign = tmp_path / "foreign.ort"
    foreign.write_bytes(ort.read_bytes())  # no manifest beside it
    code, out, err = run_cli("check", str(foreign), "-m", pt2, "-c", calib, "--no-latency")
    assert code == 0, err
    assert "note: foreign.ort records no edgepack precision; checked with fp32 tolerances, the default (--precision sets another)" in err
