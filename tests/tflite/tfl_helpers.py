"""Helpers for the LiteRT (.tflite) tests: profiles written to tmp, one shared digits build."""
from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

from conftest import DIGITS_DATA, DIGITS_PT2, run_cli, write_profile

ALL = ["fp32", "fp16", "dynamic_int8", "int8", "int8_io", "int16x8", "int16x8_io"]
INT8_LIKE = ["dynamic_int8", "int8", "int8_io", "int16x8", "int16x8_io"]


def profile(path: Path, precisions, *, name="tfl", ort=None, layout=None, method=None, percentile=None, extra="", runs=3) -> Path:
    body = f'name = "{name}"\nthreads = 1\n[formats.tflite]\nprecisions = {json.dumps(list(precisions))}\n'
    if layout:
        body += f'layout = "{layout}"\n'
    if ort:
        body += f"[formats.ort]\nprecisions = {json.dumps(list(ort))}\n"
    if method:
        body += f'[quantization]\nmethod = "{method}"\n'
        if percentile:
            body += f"percentile = {percentile}\n"
    body += f"[latency]\nwarmup = 1\nruns = {runs}\n" + extra
    return write_profile(path, body)


def digits_build(tmp: Path) -> tuple[int, str, Path]:
    """The digits example (.pt2): .tflite in every precision and .ort, from one command, in `tmp`."""
    prof = profile(tmp / "digits.toml", ALL, name="digits", ort=["fp32", "int8"])
    out = tmp / "out"
    code, stdout, stderr = run_cli("build", str(DIGITS_PT2), "--calibration", str(DIGITS_DATA), "--target", str(prof), "--out", str(out), "-q")
    return code, stdout + stderr, out


def report_by(out: Path) -> dict[tuple[str, str], dict]:
    rep = json.loads((out / "report.json").read_text())
    return {(a["format"], a["precision"]): a for a in rep["artifacts"]}


def read_graph(path: Path):
    from edgepack.formats.tflite.flatbuf import read_graph as rg

    return rg(path.read_bytes())


def assert_variant_types(path: Path, precision: str) -> None:
    """The op and tensor types that each precision promises, read from the flatbuffer."""
    g = read_graph(path)
    weights = g.weight_dtypes()
    ops = g.op_histogram()
    io = [g.tensors[i].dtype for i in (*g.inputs, *g.outputs)]
    assert "CONV_2D" in weights or "DEPTHWISE_CONV_2D" in weights, (precision, weights)
    assert "FULLY_CONNECTED" in weights, (precision, weights)
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        if op not in weights:
            continue
        want = {"fp32": ["float32"], "fp16": ["float16"]}.get(precision, ["int8"])
        assert weights[op] == want, (precision, op, weights[op])
    acts = {g.tensors[o].dtype for op in g.ops if op.name in ("CONV_2D", "FULLY_CONNECTED") for o in op.outputs}
    if precision in ("fp32", "fp16", "dynamic_int8"):
        assert acts == {"float32"} and set(io) == {"float32"}, (precision, acts, io)
    if precision == "fp16":
        assert ops.get("DEQUANTIZE", 0) >= 2, ops
    if precision in ("int8", "int16x8"):
        assert set(io) == {"float32"} and ops.get("QUANTIZE") and ops.get("DEQUANTIZE"), (precision, io, ops)
    if precision in ("int8", "int8_io"):
        assert acts == {"int8"}, (precision, acts)
    if precision in ("int16x8", "int16x8_io"):
        assert acts == {"int16"}, (precision, acts)
    if precision == "int8_io":
        assert set(io) == {"int8"}, io
    if precision == "int16x8_io":
        assert set(io) == {"int16"}, io
