"""Static shapes for dynamic inputs: from --input-shape, the profiles, or the calibration data."""
import numpy as np
import pytest

from edgepack.errors import ConfigError, InputError
from edgepack.shapes import parse_input_shapes, resolve_input_shapes
from edgepack.types import TensorSpec

DYN = (TensorSpec("images", ("batch", 3, "height", "width"), "float32"),)


def _samples(*shapes):
    return [{"images": np.zeros(s, np.float32)} for s in shapes], [f"s{i}.npz" for i in range(len(shapes))]


def test_parse():
    assert parse_input_shapes(["images=1,3,320,320", "mask=1x8"]) == {"images": (1, 3, 320, 320), "mask": (1, 8)}
    for bad in ["images", "images=", "=1,2", "images=1,a", "images=0,3"]:
        with pytest.raises(ConfigError, match="write NAME=D0,D1"):
            parse_input_shapes([bad])
    with pytest.raises(ConfigError, match="twice"):
        parse_input_shapes(["a=1", "a=2"])


def test_from_calibration_when_samples_agree():
    s, o = _samples((1, 3, 48, 192), (1, 3, 48, 192))
    assert resolve_input_shapes(DYN, s, o) == {"images": (1, 3, 48, 192)}


def test_static_inputs_need_nothing():
    static = (TensorSpec("x", (1, 4), "float32"),)
    assert resolve_input_shapes(static, [{"x": np.zeros((1, 4), np.float32)}], ["a"]) == {}


def test_samples_that_disagree_are_named():
    s, o = _samples((1, 3, 48, 192), (1, 3, 48, 320))
    with pytest.raises(InputError) as e:
        resolve_input_shapes(DYN, s, o)
    msg = str(e.value)
    assert msg.startswith("s1.npz: input 'images' has shape (1, 3, 48, 320), but s0.npz has (1, 3, 48, 192)")
    assert "(batch, 3, height, width)" in msg and "--input-shape images=" in msg


def test_override_must_fit_the_model_and_the_data():
    s, o = _samples((1, 3, 64, 64))
    assert resolve_input_shapes(DYN, s, o, {"images": (1, 3, 64, 64)}) == {"images": (1, 3, 64, 64)}
    with pytest.raises(ConfigError, match=r"does not fit \(batch, 3, height, width\)"):
        resolve_input_shapes(DYN, s, o, {"images": (1, 4, 64, 64)})
    with pytest.raises(InputError, match=r"s0.npz: input 'images' has shape \(1, 3, 64, 64\), but --input-shape asks for \(1, 3, 32, 32\)"):
        resolve_input_shapes(DYN, s, o, {"images": (1, 3, 32, 32)})
    with pytest.raises(ConfigError, match="'imgs', which is not an input"):
        resolve_input_shapes(DYN, s, o, {"imgs": (1, 3, 64, 64)})
