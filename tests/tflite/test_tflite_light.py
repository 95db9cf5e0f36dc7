"""The tflite plug-ins keep `edgepack --help` and `edgepack targets` light: no torch, no TensorFlow."""
import subprocess
import sys

import pytest

from conftest import ROOT

HEAVY = ("torch", "tensorflow", "litert_torch", "ai_edge_litert", "ai_edge_quantizer", "jax", "onnx")

SCRIPT = """
import contextlib, io, sys
from edgepack.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main({argv!r})
assert code == 0, code
print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))
"""


@pytest.mark.parametrize("argv", [["--help"], ["targets"], ["build", "--help"]])
def test_cli_does_not_import_heavy_packages(argv):
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(argv=argv, heavy=HEAVY)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout


def test_the_plugins_are_registered():
    from edgepack.formats.base import formats
    from edgepack.runtimes.base import get_runtime

    fmt = formats()["tflite"]
    assert fmt.suffix == ".tflite" and fmt.extra == "tflite"
    assert set(fmt.precisions) == {"fp32", "fp16", "dynamic_int8", "int8", "int8_io", "int16x8", "int16x8_io", "int8_auto"}
    assert set(fmt.options) == {"layout", "allow_flex", "recipe"}
    assert get_runtime("litert").name == "litert"


def test_profile_gets_tolerances_for_tflite_precisions(tmp_path):
    from edgepack.profiles import load_profile

    p = tmp_path / "p.toml"
    p.write_text('[formats.tflite]\nprecisions = ["int8_io", "int16x8"]\n[tolerances.int16x8]\nmin_cosine = 0.999\n')
    prof = load_profile(p)
    assert prof.tolerance_for("int8_io")["min_cosine"] == 0.99  # the format's default, not "no check"
    assert prof.tolerance_for("int16x8") == {"min_cosine": 0.999}  # the profile's own wins
