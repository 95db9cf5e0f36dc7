"""The Android demo's Java core (android_demo/core) on the JVM, against assets this test makes.

edgepack writes Android assets for the digits example (1 channel) and for a tiny 3-channel CNN on
calibration_data/images (NCHW and NHWC differ only with more than one channel); then
android_demo/core/run_tests.sh compiles the Java core and its JUnit 4 tests with javac and runs
them on both folders: manifest parsing, Java preprocessing of the golden PNGs vs edgepack's Python
preprocessing, postprocessing of the golden outputs, the self-check's PASS/FAIL verdicts, and that
every manifest/golden key the Java reads is one edgepack wrote.

Needs a JDK, JUnit 4 and Android's org.json from the OS packages (`make test` installs them as
root on Debian-like systems). Without them the test is SKIPPED, naming the apt-get line; with
EDGEPACK_REQUIRE_JVM=1 (set by CI) it FAILS instead, so CI can never skip it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgepack

# Paths as in tests/conftest.py; not imported from there, because another tests/*/conftest.py can
# shadow the module name "conftest" when the whole suite is collected.
ROOT = Path(__file__).resolve().parents[2]
DIGITS_PT2 = ROOT / "examples" / "digits" / "digits_cnn.pt2"
DIGITS_DATA = ROOT / "calibration_data" / "digits"
IMAGES_DATA = ROOT / "calibration_data" / "images"
RUN_TESTS = ROOT / "android_demo" / "core" / "run_tests.sh"
APT_LINE = "apt-get install -y --no-install-recommends default-jdk-headless junit4 libandroid-json-java"
JARS = ("/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar", "/usr/share/java/com.android.json.jar")
# JUnit tests in android_demo/core/src/test when given these two folders (the parameterised
# classes run once per folder). Raise it when adding tests; it guards against tests silently
# dropping out (e.g. a class run_tests.sh no longer finds).
MIN_TESTS = 46

RGB_PROFILE = """
name = "android-rgb"
description = "tiny RGB CNN for the Android demo's JVM tests"
threads = 1

[formats.ort]
precisions = ["fp32", "int8"]

[formats.tflite]
precisions = ["int8_io"]   # int8 input and output: exercises the Java quantisation path
layout = "nhwc"            # a real 3-channel NHWC artifact

[latency]
warmup = 1
runs = 3
"""


def _tiny_rgb_cnn():
    """(1, 3, 64, 64) -> (1, 5): strided convs and a global average pool."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


def _require_java_toolchain() -> None:
    missing = [t for t in ("javac", "java") if shutil.which(t) is None]
    missing += [j for j in JARS if not Path(j).is_file()]
    if missing:
        why = f"the Android demo's JVM tests need {', '.join(missing)}; install them with: sudo {APT_LINE}"
        if os.environ.get("EDGEPACK_REQUIRE_JVM") == "1":
            pytest.fail(f"{why} (EDGEPACK_REQUIRE_JVM=1: they may not be skipped)", pytrace=False)
        pytest.skip(why)


def test_missing_toolchain_skips_with_the_apt_line_unless_required(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "JARS", ("/nonexistent/junit4.jar",))
    monkeypatch.delenv("EDGEPACK_REQUIRE_JVM", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"need /nonexistent/junit4.jar; install them with: sudo apt-get install -y --no-install-recommends default-jdk-headless junit4 libandroid-json-java$"):
        _require_java_toolchain()
    monkeypatch.setenv("EDGEPACK_REQUIRE_JVM", "1")
    with pytest.raises(pytest.fail.Exception, match=r"EDGEPACK_REQUIRE_JVM=1: they may not be skipped"):
        _require_java_toolchain()


def test_java_core_passes_on_assets_edgepack_generates(tmp_path):
    import torch

    _require_java_toolchain()
    assets = tmp_path / "assets"

    digits = assets / "digits"
    edgepack.build(str(DIGITS_PT2), DIGITS_DATA, ["android-arm64"], tmp_path / "out-digits", android_assets=digits)

    rgb = assets / "rgb"
    model = tmp_path / "tiny_rgb.pt2"
    torch.export.save(torch.export.export(_tiny_rgb_cnn(), (torch.randn(1, 3, 64, 64),)), str(model))
    profile = tmp_path / "android-rgb.toml"
    profile.write_text(RGB_PROFILE, encoding="utf-8")
    edgepack.build(str(model), IMAGES_DATA, [profile], tmp_path / "out-rgb", android_assets=rgb)

    for d in (digits, rgb):
        assert (d / "manifest.json").is_file() and (d / "golden.json").is_file(), sorted(p.name for p in d.iterdir())

    proc = subprocess.run(
        ["bash", str(RUN_TESTS), str(digits), str(rgb)], capture_output=True, text=True, timeout=300
    )
    log = f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"run_tests.sh exited {proc.returncode}\n{log}"
    ok = re.search(r"^OK \((\d+) tests?\)$", proc.stdout, re.MULTILINE)
    assert ok, f"no JUnit 'OK (N tests)' line\n{log}"
    assert int(ok.group(1)) >= MIN_TESTS, f"JUnit ran {ok.group(1)} tests, expected at least {MIN_TESTS}\n{log}"


def test_the_app_names_no_asset_file_but_the_manifest():
    """Asset file names (models, golden.json, golden images) come from the manifest: the only file
    name in the app's and core's sources is manifest.json, in ManifestKeys."""
    literal = re.compile(r'"([\w.-]+\.(?:ort|tflite|onnx|json|png|jpe?g))"')
    found = []
    for src in sorted((ROOT / "android_demo").glob("*/src/main/java/**/*.java")):
        for n, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith(("*", "/*", "//")):
                continue
            for name in literal.findall(line):
                found.append((src.name, n, name))
    assert [(f, name) for f, _, name in found] == [("ManifestKeys.java", "manifest.json")], found
