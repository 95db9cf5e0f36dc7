"""Keras source: a .keras file built in code, loaded in safe mode, exported with tf2onnx, and
built for ONNX Runtime Mobile and LiteRT (through the ONNX route), with parity checked."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgepack
from edgepack.errors import InputError
from edgepack.sources.base import load_source

keras = pytest.importorskip("keras")


def _tiny_keras(path: Path) -> Path:
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5, name="logits")(x)
    keras.Model(inp, out).save(str(path))
    return path


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("keras")
    model = _tiny_keras(d / "tiny.keras")
    calib = d / "calib.npz"
    np.savez(calib, image=np.random.default_rng(0).random((40, 16, 16, 3), dtype=np.float32))
    return model, calib, d


def test_describes_nhwc_inputs_and_named_outputs(keras_files):
    model, _, _ = keras_files
    src = load_source(str(model))
    assert src.kind == "keras" and src.layout == "nhwc"
    assert [(t.name, t.shape, t.dtype) for t in src.inputs] == [("image", (None, 16, 16, 3), "float32")]
    assert [t.name for t in src.outputs] == ["logits"]
    y = src.run({"image": np.zeros((1, 16, 16, 3), np.float32)})
    assert y[0].shape == (1, 5)


def test_builds_ort_and_tflite_with_parity(keras_files, tmp_path):
    model, calib, _ = keras_files
    prof = tmp_path / "k.toml"
    prof.write_text(
        'name = "k"\nthreads = 1\n[formats.ort]\nprecisions = ["fp32", "int8"]\nmobile_eps = []\n'
        '[formats.tflite]\nprecisions = ["fp32", "int8"]\nlayout = "nhwc"\n[latency]\nruns = 3\n'
    )
    rep = edgepack.build(str(model), calib, [prof], tmp_path / "o")
    res = {(r.artifact.format, r.artifact.precision): r for r in rep.results}
    assert rep.passed
    for fmt in ("ort", "tflite"):
        assert res[(fmt, "fp32")].parity.outputs[0].max_abs <= 1e-4
        assert res[(fmt, "int8")].parity.outputs[0].min_cosine >= 0.99
        assert "tf2onnx" in res[(fmt, "fp32")].artifact.route
    assert res[("tflite", "fp32")].inputs[0].shape == (1, 16, 16, 3)  # NHWC kept, no transpose needed
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["artifacts"][0]["inputs"][0]["layout"] == "nhwc"


def test_keras_reaches_core_ml_through_its_onnx_route(keras_files, tmp_path):
    pytest.importorskip("coremltools")
    model, calib, _ = keras_files
    prof = tmp_path / "c.toml"
    prof.write_text('name = "c"\n[formats.coreml]\nprecisions = ["fp32"]\n[latency]\nruns = 2\nwarmup = 0\n')
    rep = edgepack.build(str(model), calib, [prof], tmp_path / "o")
    (r,) = rep.artifacts
    assert rep.passed and r.path.is_dir() and "tf2onnx" in r.artifact.route
    assert r.parity.outputs[0].min_cosine >= 0.99999, r.parity.outputs


def test_unsafe_lambda_refused_unless_allowed(tmp_path):
    inp = keras.Input(shape=(4,), name="x")
    out = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    path = tmp_path / "lam.keras"
    keras.Model(inp, out).save(str(path))
    with pytest.raises(InputError, match=r"lam.keras: cannot load the Keras model .*--allow-pickle"):
        load_source(str(path))
    src = load_source(str(path), allow_pickle=True)
    assert np.allclose(src.run({"x": np.ones((1, 4), np.float32)})[0], 2.0)


def test_h5_and_corrupt_files(tmp_path):
    h5 = tmp_path / "old.h5"
    h5.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(InputError, match=r"save the model with model.save\('model.keras'\)"):
        load_source(str(h5))
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"bad.keras: cannot load the Keras model"):
        load_source(str(bad))
