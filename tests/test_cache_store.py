"""The cell cache's parts without a build: keys, the JSON codec, and both stores (a folder, and a
real S3-compatible server on loopback) with their atomicity and corruption checks."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from edgepack.cache.codec import decode, encode
from edgepack.cache.digest import tree_digest
from edgepack.cache.keys import cell_key, model_digest
from edgepack.cache.store import ENTRY, Corrupt, Store
from edgepack.profiles import resolve_profile
from edgepack.types import Artifact, ArtifactResult, ErrorStats, IOBinding, LatencyReport, ParityReport


def _files(root: Path) -> list[str]:
    (root / "t").mkdir(parents=True)
    (root / "t" / "m.tflite").write_bytes(b"\x01" * 1000)
    (root / "t" / "m.mlpackage" / "Data").mkdir(parents=True)
    (root / "t" / "m.mlpackage" / "Data" / "w.bin").write_bytes(b"w" * 300)
    return ["t/m.tflite", "t/m.mlpackage/Data/w.bin"]


def test_local_store_round_trip_and_miss(tmp_path):
    store = Store(tmp_path / "cache")
    files = _files(tmp_path / "src")
    assert store.get("ab" * 32, tmp_path / "out0") is None
    store.put("ab" * 32, tmp_path / "src", files, {"x": [1, 2]})
    got = store.get("ab" * 32, tmp_path / "out1")
    assert got.meta == {"x": [1, 2]}
    assert (tmp_path / "out1" / "t" / "m.tflite").read_bytes() == b"\x01" * 1000
    assert (tmp_path / "out1" / "t" / "m.mlpackage" / "Data" / "w.bin").stat().st_size == 300
    assert sorted(got.files) == sorted(files)


def test_partial_entry_without_entry_json_is_a_miss(tmp_path):
    store = Store(tmp_path / "cache")
    key = "cd" * 32
    store.put(key, tmp_path / "src", _files(tmp_path / "src"), {})
    entry = tmp_path / "cache" / "v1" / key[:2] / key / ENTRY
    entry.unlink()  # as if the writer died before its last step
    assert store.get(key, tmp_path / "out") is None


def test_corrupt_file_is_detected_and_the_entry_removed(tmp_path):
    store = Store(tmp_path / "cache")
    key = "ef" * 32
    store.put(key, tmp_path / "src", _files(tmp_path / "src"), {})
    (blob,) = [p for p in (tmp_path / "cache").rglob("m.tflite")]
    blob.write_bytes(b"\x02" * 1000)  # same size, other bytes
    with pytest.raises(Corrupt, match="m.tflite does not match its digest"):
        store.get(key, tmp_path / "out")
    assert not (tmp_path / "cache" / "v1" / key[:2] / key).exists()
    assert store.get(key, tmp_path / "out2") is None  # gone: the next build rebuilds it


def test_entry_naming_a_file_outside_itself_is_refused(tmp_path):
    store = Store(tmp_path / "cache")
    key = "aa" * 32
    store.put(key, tmp_path / "src", _files(tmp_path / "src"), {})
    entry = tmp_path / "cache" / "v1" / key[:2] / key / ENTRY
    data = json.loads(entry.read_text())
    data["files"] = {"../../escape": {"sha256": "0", "size": 1}}
    entry.write_text(json.dumps(data))
    with pytest.raises(Corrupt, match="outside itself"):
        store.get(key, tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_codec_round_trips_a_result_with_nan_and_paths():
    art = Artifact(Path("/w/t/m.tflite"), "tflite", "int8", "litert", "route", [Path("/w/t/x.json")], {"k": [1]}, {"tool": "1"})
    stats = ErrorStats("probs", 0.5, float("nan"), 0.99, 31.5, 1.0, 8)
    parity = ParityReport(False, (stats,), ("bad",), 0.9, 0.95, {"min_cosine": 0.99}, 8)
    lat = LatencyReport(1.5, 2.0, 1.7, 50, 10, 4, "host", "litert 2.3.0")
    r = ArtifactResult("t", art, "t/m.tflite", ("t/x.json",), 1000, "ab" * 32, (IOBinding("x", (1, 3), "int8", "nhwc", {"scale": [0.1]}),), (), parity, lat)
    data = json.loads(json.dumps(encode(r)))  # plain JSON: no NaN literal, no objects
    back = decode(ArtifactResult, data)
    assert math.isnan(back.parity.outputs[0].mean_abs) and back.parity.outputs[0].sqnr_db == 31.5
    assert back.inputs[0].shape == (1, 3) and back.inputs[0].quantization == {"scale": [0.1]}
    assert back.artifact.extra_files == [Path("/w/t/x.json")] and back.latency.p50_ms == 1.5
    assert encode(back) == data


def test_keys_follow_content_not_paths(tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "sub" / "b.onnx"
    b.parent.mkdir()
    a.write_bytes(b"model-bytes")
    b.write_bytes(b"model-bytes")
    assert model_digest(str(a)) == model_digest(str(b))
    b.write_bytes(b"model-bytez")
    assert model_digest(str(a)) != model_digest(str(b))
    d1, d2 = tmp_path / "c1", tmp_path / "c2"
    for d in (d1, d2):
        d.mkdir()
        (d / "s.npz").write_bytes(b"1234")
    assert tree_digest(d1) == tree_digest(d2)
    os.utime(d2 / "s.npz", (0, 0))  # times never count
    assert tree_digest(d1) == tree_digest(d2)


def test_cell_key_ignores_other_cells_settings():
    prof = resolve_profile("android-arm64").to_json()
    base = {"model": "m", "calibration": "c", "shape_overrides": {}, "options": {}}
    split = ([0, 1], [2])
    k = cell_key(base, prof, "ort", "int8", split)
    other = json.loads(json.dumps(prof))
    other["formats"]["tflite"]["precisions"] = ["fp32"]  # another format's cells
    other["tolerances"]["fp32"]["max_abs"] = 1.0  # another precision's tolerances
    other["path"] = "/elsewhere/android-arm64.toml"
    assert cell_key(base, other, "ort", "int8", split) == k
    other["tolerances"]["int8"]["min_cosine"] = 0.5  # this cell's own gate
    assert cell_key(base, other, "ort", "int8", split) != k
    assert cell_key(base, prof, "ort", "int8", ([0], [1, 2])) != k  # another split


def test_s3_store_shared_between_two_clients(tmp_path, monkeypatch):
    pytest.importorskip("s3fs")
    from s3_server import s3_server

    with s3_server() as (url, env):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        key = "12" * 32
        writer = Store("s3://edgepack-cache/ci")
        writer.put(key, tmp_path / "src", _files(tmp_path / "src"), {"who": "writer"})
        reader = Store("s3://edgepack-cache/ci")  # another client, as on another CI machine
        got = reader.get(key, tmp_path / "out")
        assert got.meta == {"who": "writer"}
        assert (tmp_path / "out" / "t" / "m.tflite").read_bytes() == b"\x01" * 1000
        # a corrupted object on the server is caught by the digest, not used
        writer.fs.fs.pipe_file(f"edgepack-cache/ci/v1/{key[:2]}/{key}/{got_nonce(reader, key)}/t/m.tflite", b"bad")
        reader.fs.fs.invalidate_cache()
        with pytest.raises(Corrupt):
            reader.get(key, tmp_path / "out2")


def got_nonce(store: Store, key: str) -> str:
    return json.loads(store.fs.read(store.fs.join("v1", key[:2], key, ENTRY)))["nonce"]
