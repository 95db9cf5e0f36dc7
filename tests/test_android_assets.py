"""--android-assets: the app's files, manifest and golden vectors, from a real build."""
import json

import numpy as np
import pytest
from PIL import Image

import edgepack
from conftest import DIGITS_DATA, DIGITS_PT2, run_cli
from edgepack.android_assets import tensor_to_pixels
from edgepack.preprocess import load_preprocess, pixels_to_tensor


def test_tensor_to_pixels_inverts_preprocessing():
    pp = load_preprocess(DIGITS_DATA / "preprocess.toml")
    px = np.arange(64, dtype=np.uint8).reshape(8, 8, 1) * 4
    assert np.array_equal(tensor_to_pixels(pixels_to_tensor(px, pp), pp), px)


def test_digits_assets(tmp_path):
    assets = tmp_path / "assets"
    rep = edgepack.build(str(DIGITS_PT2), DIGITS_DATA, ["android-arm64"], tmp_path / "out", android_assets=assets)
    manifest = json.loads((assets / "manifest.json").read_text())
    files = {a["file"] for a in manifest["artifacts"]}
    built = {r.file.split("/")[-1] for r in rep.results}  # every android-arm64 artifact runs on Android
    assert {"digits_cnn.fp32.ort", "digits_cnn.int8.ort", "digits_cnn.int8.tflite"} <= files == built
    assert all((assets / f).is_file() for f in files)
    smallest = min((r for r in rep.results if r.passed), key=lambda r: r.size_bytes)
    assert manifest["default_artifact"] == smallest.file.split("/")[-1]
    libs = {a["file"].rsplit(".", 1)[1]: a["android_library"] for a in manifest["artifacts"]}
    assert libs == {"ort": "com.microsoft.onnxruntime:onnxruntime-android", "tflite": "com.google.ai.edge.litert:litert"}
    golden = json.loads((assets / manifest["golden"]).read_text())
    assert len(golden["cases"]) == 3
    pp = load_preprocess(DIGITS_DATA / "preprocess.toml")
    for n, case in enumerate(golden["cases"]):
        px = np.asarray(Image.open(assets / case["image"]))[:, :, None]
        tensor = pixels_to_tensor(px, pp)
        assert case["inputs"][0]["shape"] == [1, 1, 8, 8]
        assert np.allclose(np.array(case["inputs"][0]["data"]), tensor.reshape(-1), atol=1e-7)
        for art in golden["artifacts"]:
            res = art["results"][n]
            assert res["top1"] == case["label"]  # the held-out digits are classified right
            assert len(res["scores"]) == 10 and art["tolerance"]["max_abs"] > 0
    by_file = {a["file"]: a for a in golden["artifacts"]}
    assert set(by_file) == files
    assert rep.passed


def test_android_assets_need_an_android_runtime(tmp_path):
    code, _, err = run_cli(
        "build", str(DIGITS_PT2), "-c", str(DIGITS_DATA), "-t", "android-arm64", "-o", str(tmp_path / "o"),
        "--android-assets", str(tmp_path / "a"), "--android-target", "iphone",
    )
    assert code == 2 and "--android-target 'iphone' is not one of this build's targets: android-arm64" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "a").exists()


@pytest.mark.slow
def test_entry_point_build(tmp_path):
    rep = edgepack.build("examples.digits.model:entry_point", DIGITS_DATA, ["linux-arm64"], tmp_path / "o")
    assert rep.passed and {r.artifact.precision for r in rep.results} == {"fp32", "int8"}
