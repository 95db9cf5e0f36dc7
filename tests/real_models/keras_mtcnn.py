"""MTCNN's ONet as a Keras model with the trained weights that the mtcnn 1.0.0 wheel ships
(`mtcnn/assets/weights/onet.lz4`, read by joblib_arrays without unpickling).

mtcnn builds ONet as a subclassed tf.keras.Model (mtcnn/network/onet.py) and calls
`set_weights(joblib.load(...))`. A subclassed model cannot be reloaded from a `.keras` file in
Keras' safe mode, so the same layers are written here as a functional model (same names, same
order, so the flat weight list maps one to one), saved with model.save(). Input: a 48x48 RGB face
crop, NHWC, normalised as mtcnn does, (x - 127.5) / 128. Outputs, in mtcnn's order: box offsets
(4), landmarks (10), face probability (softmax over [not face, face]).
"""
from __future__ import annotations

from pathlib import Path

from joblib_arrays import load_arrays


def onet_keras():
    """The functional ONet (untrained)."""
    import keras
    from keras import layers as L

    x = inp = keras.Input((48, 48, 3), name="faces")
    for i, (filters, k, pool, pool_k, pad) in enumerate(
        [(32, 3, True, 3, "same"), (64, 3, True, 3, "valid"), (64, 3, True, 2, "same"), (128, 2, False, 0, "")], start=1
    ):
        x = L.Conv2D(filters, k, padding="valid", name=f"conv{i}")(x)
        x = L.PReLU(shared_axes=[1, 2], name=f"prelu{i}")(x)
        if pool:
            x = L.MaxPooling2D(pool_k, 2, padding=pad, name=f"maxpooling{i}")(x)
    x = L.Flatten(name="flatten4")(L.Permute((2, 1, 3), name="permute")(x))
    x = L.PReLU(name="prelu5")(L.Dense(256, name="fc5")(x))
    outs = [L.Dense(4, name="boxes")(x), L.Dense(10, name="landmarks")(x), L.Dense(2, activation="softmax", name="face_prob")(x)]
    return keras.Model(inp, outs, name="mtcnn_onet")


# mtcnn's ONet tracks its layers in this order; each contributes its weights in Keras' order
_ORDER = ["conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4", "fc5", "prelu5", "boxes", "landmarks", "face_prob"]


def trained_onet(weights_file) -> "object":
    model = onet_keras()
    arrays = load_arrays(weights_file)
    i = 0
    for name in _ORDER:
        layer = model.get_layer(name)
        n = len(layer.weights)
        chunk = arrays[i : i + n]
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in chunk] != expected:
            raise ValueError(f"{weights_file}: layer {name} expects {expected}, the file has {[a.shape for a in chunk]}")
        layer.set_weights(chunk)
        i += n
    if i != len(arrays):
        raise ValueError(f"{weights_file}: {len(arrays) - i} arrays left over")
    return model


def save_onet_keras(weights_file, dest: Path) -> Path:
    trained_onet(weights_file).save(str(dest))
    return dest
