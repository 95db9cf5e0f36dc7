"""A Keras CNN with a "same" max-pool (tf2onnx pads it with -inf) gets a loadable int8 .tflite: the
activation ranges ignore non-finite values (an inf scale made XNNPACK refuse the model:
"unsupported scale value (inf) in channel 0 for INT8 tensor")."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")
pytest.importorskip("litert_torch")


def test_same_maxpool_keras_cnn_int8(tmp_path):
    import edgepack
    from conftest import write_profile

    inp = keras.Input((24, 24, 1), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.Conv2D(7, 3, padding="same")(x)
    out = keras.layers.Activation("softmax", name="emotions")(keras.layers.GlobalAveragePooling2D()(x))
    model = tmp_path / "cnn.keras"
    keras.Model(inp, out).save(str(model))
    calib = tmp_path / "c.npz"
    np.savez(calib, image=np.random.default_rng(0).random((20, 24, 24, 1), dtype=np.float32))
    prof = write_profile(tmp_path / "p.toml", 'name = "t"\n[formats.tflite]\nprecisions = ["int8"]\n[latency]\nruns = 1\nwarmup = 0\n')
    rep = edgepack.build(str(model), calib, [prof], tmp_path / "o")
    assert not rep.failed_cells, rep.failed_cells
    (r,) = rep.artifacts
    assert r.parity.outputs[0].min_cosine >= 0.999, r.parity.outputs
    xnn = r.artifact.details["xnnpack"]
    assert "error" not in xnn and xnn["delegated_nodes"] > 0
