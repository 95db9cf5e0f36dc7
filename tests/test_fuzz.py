"""Fuzzing the library's readers with hypothesis (issue #8): profiles (TOML keys, values, types,
raw bytes), calibration arrays (.npy/.npz bytes: headers, dtypes, shapes, NaNs, members) and model
archives (.pt2 zip members dropped, renamed, bit-flipped, truncated; .onnx protobuf bytes).

The property: every input ends in a result or in one of edgepack's own user errors (an
EdgepackError that is not an InternalError). Anything else escaping is a bug. The default tier
runs 52 examples in all (13 per reader); the slow tier runs 1,200 (300 per reader).
"""
from __future__ import annotations

import io
import math
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgepack.errors import EdgepackError, InternalError  # noqa: E402
from edgepack.types import TensorSpec  # noqa: E402

FAST = settings(max_examples=13, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
SLOW = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
INPUTS = (TensorSpec("x", (1, 4), "float32"),)


def expect_user_error_or_result(fn, *args, **kwargs):
    """Call fn; a user error is fine, an internal error or a foreign exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except InternalError as exc:
        pytest.fail(f"internal error from {fn.__name__}: {exc}")
    except EdgepackError:
        return None
    except Exception as exc:  # noqa: BLE001 - the property under test
        pytest.fail(f"{type(exc).__name__} escaped {fn.__name__}: {str(exc)[:300]}")


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="edgepack-fuzz-"))


def _cleanup(d: Path) -> None:
    import shutil

    shutil.rmtree(d, ignore_errors=True)


# --- profiles ------------------------------------------------------------------------------------

VALID_PROFILE = {
    "name": "fuzz",
    "threads": 1,
    "formats": {"ort": {"precisions": ["fp32"]}},
    "quantization": {"method": "minmax", "calibration_samples": 10},
    "validation": {"split": 0.4, "max_samples": 10},
    "latency": {"warmup": 1, "runs": 2},
    "budgets": {"max_size_mb": 5.0},
    "tolerances": {"fp32": {"max_abs": 1e-4}},
}

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["fp32", "fp16", "int8", "ort", "tflite", "coreml", "report.json", "..", "nl\n", "minmax", ""]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)


def _toml_key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "-_" for c in k) else '"' + k.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in v) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(d: dict) -> str:
    """A minimal TOML writer: top-level scalars, then one inline table per top-level table."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in d.items())


@st.composite
def mutated_profiles(draw) -> str:
    import copy

    d = copy.deepcopy(VALID_PROFILE)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "delete", "add", "nested_set"]))
        if op == "delete" and d:
            d.pop(draw(st.sampled_from(sorted(d))))
        elif op == "add":
            d[draw(st.text(min_size=1, max_size=10))] = draw(values)
        elif op == "set" and d:
            d[draw(st.sampled_from(sorted(d)))] = draw(values)
        elif op == "nested_set":
            tables = [k for k, v in d.items() if isinstance(v, dict)]
            if tables:
                t = d[draw(st.sampled_from(tables))]
                key = draw(st.one_of(st.sampled_from(sorted(t) or ["x"]), st.text(min_size=1, max_size=8)))
                t[key] = draw(values)
    text = to_toml(d)
    if draw(st.booleans()) and draw(st.booleans()):  # sometimes damage the text itself
        pos = draw(st.integers(0, max(len(text) - 1, 0)))
        text = text[:pos] + draw(st.text(max_size=5)) + text[pos + draw(st.integers(0, 5)):]
    return text


def _fuzz_profile(text: str) -> None:
    from edgepack.profiles import load_profile

    d = _tmp()
    try:
        p = d / "fuzz.toml"
        p.write_text(text, encoding="utf-8", errors="surrogatepass")
        expect_user_error_or_result(load_profile, p)
    finally:
        _cleanup(d)


@FAST
@given(mutated_profiles())
def test_fuzz_profiles(text):
    _fuzz_profile(text)


@pytest.mark.slow
@SLOW
@given(mutated_profiles())
def test_fuzz_profiles_slow(text):
    _fuzz_profile(text)


# --- calibration arrays --------------------------------------------------------------------------

DTYPES = ["float32", "float64", "float16", "int8", "uint8", "int64", "bool", "complex64", "U3", "S2", "V4", "object"]


@st.composite
def npy_bytes(draw) -> bytes:
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=4)))
    n = int(np.prod(shape)) if shape else 1
    if dtype == "object":
        arr = np.array([None] * n, dtype=object).reshape(shape)
    else:
        raw = draw(st.binary(min_size=n * np.dtype(dtype).itemsize, max_size=n * np.dtype(dtype).itemsize))
        arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy() if n else np.zeros(shape, dtype)
    if arr.dtype.kind == "f" and arr.size and draw(st.booleans()):
        arr.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    data = bytearray(buf.getvalue())
    mode = draw(st.sampled_from(["keep", "flip", "truncate", "header"]))
    if mode == "flip" and data:
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, min(len(data), 128) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif mode == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif mode == "header":
        hdr = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
            draw(st.sampled_from(["<f4", "<f8", "|O", "<i8", ">f4", "<U9", "zz", "<f4'"])),
            draw(st.sampled_from(["False", "True", "1", "x"])),
            draw(st.sampled_from(["(40, 4)", "(1099511627776, 40960)", "(-1, 4)", "()", "(2**62,)", "[40]", "(40, 4, 'a')"])),
        )
        hdr_b = hdr.encode("latin1")
        pad = 64 - (10 + len(hdr_b) + 1) % 64
        data = bytearray(b"\x93NUMPY\x01\x00" + (len(hdr_b) + pad + 1).to_bytes(2, "little") + hdr_b + b" " * pad + b"\n") + data[128:]
    return bytes(data)


def _fuzz_calibration(files: dict[str, bytes], as_npz: bool, stored: bool) -> None:
    from edgepack.calibration import load_calibration

    d = _tmp()
    try:
        if as_npz:
            p = d / "calib.npz"
            with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as zf:
                for name, data in files.items():
                    zf.writestr(name, data)
        else:
            p = d / "calib.npy"
            p.write_bytes(next(iter(files.values()), b""))
        expect_user_error_or_result(load_calibration, p, INPUTS)
    finally:
        _cleanup(d)


member_names = st.one_of(st.sampled_from(["x.npy", "x", "y.npy", "../x.npy", "x.npy/", "dir/x.npy", "labels.txt"]), st.text(min_size=1, max_size=12))
calib_files = st.dictionaries(member_names, npy_bytes(), min_size=0, max_size=3)


@FAST
@given(calib_files, st.booleans(), st.booleans())
def test_fuzz_calibration(files, as_npz, stored):
    _fuzz_calibration(files, as_npz, stored)


@pytest.mark.slow
@SLOW
@given(calib_files, st.booleans(), st.booleans())
def test_fuzz_calibration_slow(files, as_npz, stored):
    _fuzz_calibration(files, as_npz, stored)


# --- model archives ------------------------------------------------------------------------------

_models: dict[str, bytes] = {}


def _base_model(kind: str) -> bytes:
    """The tiny CNN's bytes as .pt2 or .onnx, exported once per test process."""
    if kind not in _models:
        from hostile_case import tiny_files

        _models[kind] = tiny_files()[kind].read_bytes()
    return _models[kind]


@st.composite
def archive_mutation(draw) -> list[tuple]:
    """A list of edits to a zip's members: (op, member index, argument)."""
    ops = st.tuples(
        st.sampled_from(["drop", "rename", "flip", "truncate", "empty", "duplicate", "add_pickle_name"]),
        st.integers(0, 10_000),
        st.integers(0, 2**31),
    )
    return draw(st.lists(ops, min_size=1, max_size=4))


def mutate_zip(data: bytes, edits: list[tuple]) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    members = [(i, src.read(i)) for i in src.infolist()]
    for op, k, arg in edits:
        if not members:
            break
        j = k % len(members)
        info, body = members[j]
        if op == "drop":
            members.pop(j)
        elif op == "rename":
            new = zipfile.ZipInfo(info.filename.rsplit("/", 1)[0] + f"/renamed{arg % 7}" + ("/" if arg % 11 == 0 else ".pt"))
            members[j] = (new, body)
        elif op == "flip" and body:
            b = bytearray(body)
            b[arg % len(b)] ^= 1 << (arg % 8)
            members[j] = (info, bytes(b))
        elif op == "truncate":
            members[j] = (info, body[: arg % (len(body) + 1)])
        elif op == "empty":
            members[j] = (info, b"")
        elif op == "duplicate":
            members.append((zipfile.ZipInfo(info.filename), body))
        elif op == "add_pickle_name":
            root = info.filename.split("/", 1)[0]
            members.append((zipfile.ZipInfo(f"{root}/data/weights/sub/model{arg % 3}.pt"), body))
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        warnings.simplefilter("ignore")  # duplicate member names are one of the mutations
        for info, body in members:
            zf.writestr(info.filename, body)
    return out.getvalue()


def _fuzz_model(name: str, data: bytes) -> None:
    from edgepack.sources.base import load_source

    d = _tmp()
    try:
        p = d / name
        p.write_bytes(data)
        marker = d / "PAYLOAD"
        expect_user_error_or_result(load_source, str(p), allow_pickle=False)
        assert not marker.exists()
    finally:
        _cleanup(d)


def _fuzz_pt2(edits, cut_tail):
    data = mutate_zip(_base_model("pt2"), edits)
    _fuzz_model("fuzz.pt2", data[: len(data) - cut_tail] if cut_tail else data)


@FAST
@given(archive_mutation(), st.sampled_from([0, 0, 1, 22, 200]))
def test_fuzz_pt2_archive(edits, cut_tail):
    _fuzz_pt2(edits, cut_tail)


@pytest.mark.slow
@SLOW
@given(archive_mutation(), st.sampled_from([0, 0, 1, 22, 200]))
def test_fuzz_pt2_archive_slow(edits, cut_tail):
    _fuzz_pt2(edits, cut_tail)


@st.composite
def onnx_bytes(draw) -> bytes:
    data = bytearray(_base_model("onnx"))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        i = draw(st.integers(0, len(data) - 1)) if data else 0
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            data = data[:i]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


@FAST
@given(onnx_bytes())
def test_fuzz_onnx_bytes(data):
    _fuzz_model("fuzz.onnx", data)


@pytest.mark.slow
@SLOW
@given(onnx_bytes())
def test_fuzz_onnx_bytes_slow(data):
    _fuzz_model("fuzz.onnx", data)
