import numpy as np
import pytest
from PIL import Image

from conftest import DIGITS_DATA, IMAGES_DATA
from edgepack.calibration import load_calibration
from edgepack.errors import ConfigError, ExitCode, InputError
from edgepack.preprocess import load_preprocess, pixels_to_tensor
from edgepack.types import TensorSpec

IMG = (TensorSpec("image", (1, 1, 8, 8), "float32"),)


def test_shipped_digits_set():
    cs = load_calibration(DIGITS_DATA, IMG)
    assert len(cs) == 500 and cs.kind == "stacked"
    assert cs.labels == [str(i) for i in range(10)]
    assert cs.targets.shape == (500,) and set(np.unique(cs.targets)) == set(range(10))
    assert cs.samples[0]["image"].shape == (1, 1, 8, 8)
    assert 0.0 <= cs.samples[3]["image"].min() and cs.samples[3]["image"].max() <= 1.0
    assert cs.preprocess.size == (8, 8) and cs.preprocess.channels == "gray"


def test_split_is_disjoint_deterministic_and_capped():
    cs = load_calibration(DIGITS_DATA, IMG)
    cal, val = cs.split(0.4, 150, 120)
    assert len(val) == 150 and len(cal) == 120
    assert not set(cal) & set(val)
    assert (cal, val) == cs.split(0.4, 150, 120)


def test_shipped_images_set_preprocessed():
    spec = (TensorSpec("image", (1, 3, 64, 64), "float32"),)
    cs = load_calibration(IMAGES_DATA, spec)
    assert cs.kind == "images" and len(cs) >= 40
    x = cs.samples[0]["image"]
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    # ImageNet normalisation puts pixel 0 at -mean/std
    assert x.min() >= (0 - 0.485) / 0.229 - 1e-5 and x.max() <= (1 - 0.406) / 0.225 + 1e-5
    assert x.std() > 0.3  # real photos, not a flat fill


def test_pixels_to_tensor_matches_formula(tmp_path):
    pp = load_preprocess(IMAGES_DATA / "preprocess.toml")
    px = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)
    t = pixels_to_tensor(px, pp)
    assert t.shape == (1, 3, 64, 64)
    c, y, x = 2, 5, 7
    want = (px[y, x, c] / 255.0 - pp.mean[c]) / pp.std[c]
    assert abs(float(t[0, c, y, x]) - want) < 1e-6


def test_folder_of_npz_and_npy(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(3):
        np.savez(tmp_path / f"s{i}.npz", image=rng.random((1, 1, 8, 8), dtype=np.float32))
    cs = load_calibration(tmp_path, IMG)
    assert cs.kind == "npz-folder" and len(cs) == 3 and cs.origins[2].endswith("s2.npz")
    f = tmp_path / "one.npy"
    np.save(f, rng.random((7, 1, 8, 8), dtype=np.float32))
    assert len(load_calibration(f, IMG)) == 7


def test_wrong_shape_names_file_and_fix(tmp_path):
    f = tmp_path / "bad.npz"
    np.savez(f, image=np.zeros((4, 1, 9, 9), np.float32))
    with pytest.raises(InputError) as e:
        load_calibration(f, IMG)
    assert str(f) in str(e.value) and "(1, 1, 8, 8)" in str(e.value) and e.value.exit_code == ExitCode.BAD_INPUT


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "Inf")])
def test_nan_and_inf_rejected_naming_sample(tmp_path, bad, word):
    x = np.zeros((5, 1, 8, 8), np.float32)
    x[3, 0, 2, 2] = bad
    f = tmp_path / "d.npz"
    np.savez(f, image=x)
    with pytest.raises(InputError, match=rf"{f} \(sample 3\): input 'image' contains {word}"):
        load_calibration(f, IMG)


def test_dtype_and_key_mismatch(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, image=np.zeros((2, 1, 8, 8), np.float64))
    with pytest.raises(InputError, match=r"dtype float64, the model expects float32; convert it with .astype\('float32'\)"):
        load_calibration(f, IMG)
    np.savez(f, img=np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(InputError, match=r"keys \['img'\] do not match the model's inputs \['image'\]"):
        load_calibration(f, IMG)


def test_pickled_arrays_refused(tmp_path):
    f = tmp_path / "obj.npy"
    np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickled objects.*--allow-pickle"):
        load_calibration(f, IMG)


def test_targets_must_match_sample_count(tmp_path):
    np.savez(tmp_path / "d.npz", image=np.zeros((4, 1, 8, 8), np.float32))
    np.save(tmp_path / "targets.npy", np.arange(3))
    with pytest.raises(InputError, match=r"targets.npy: must be a 1-D integer array with one class id per sample \(4\)"):
        load_calibration(tmp_path, IMG)


def test_image_folder_needs_preprocess_and_valid_one(tmp_path):
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    spec = (TensorSpec("image", (1, 3, 4, 4), "float32"),)
    with pytest.raises(InputError, match="needs a preprocess.toml"):
        load_calibration(tmp_path, spec)
    (tmp_path / "preprocess.toml").write_text('size = [4, 4]\nlayout = "nchw"\nchannels = "rgb"\nsize2 = 1\n')
    with pytest.raises(ConfigError, match="unknown key 'size2'"):
        load_calibration(tmp_path, spec)
    (tmp_path / "preprocess.toml").write_text('size = [4, 4]\nlayout = "nchw"\nchannels = "rgb"\n')
    cs = load_calibration(tmp_path, spec)
    assert cs.samples[0]["image"].shape == (1, 3, 4, 4)


def test_missing_path():
    with pytest.raises(InputError, match="calibration data not found"):
        load_calibration("/no/such/dir", IMG)


def test_folder_of_stacked_files_explains_the_rule(tmp_path):
    for i in range(2):
        np.savez(tmp_path / f"part{i}.npz", image=np.zeros((20, 1, 8, 8), np.float32))
    with pytest.raises(InputError, match=r"part0.npz: holds 20 samples stacked on axis 0, but a folder of several .npz files is read as one sample per file"):
        load_calibration(tmp_path, IMG)
