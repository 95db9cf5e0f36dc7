"""A failed cell of the precision int8_auto starts from says how to ask for int8_auto, once the
format offers it and the profile does not build it; a build's report carries the note."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli, save_onnx, write_stacked
from edgepack.pipeline.validation import int8_auto_hint
from edgepack.profiles import load_profile

BOTH = '''
name = "t"
[formats.ort]
precisions = ["int8"]
[formats.tflite]
precisions = ["int8", "int8_auto"]
[formats.coreml]
precisions = ["w8a8"]
'''


def test_the_hint_names_the_format_table_only_where_int8_auto_is_missing(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(BOTH, encoding="utf-8")
    p = load_profile(path)
    assert int8_auto_hint(p, "ort", "int8", passed=False) == (
        'int8 misses its budget: add "int8_auto" to [formats.ort] precisions and edgepack searches for the fewest '
        "layers to keep in int16 or float that meet the same budget (README: int8_auto)")
    assert int8_auto_hint(p, "coreml", "w8a8", passed=False).startswith('w8a8 misses its budget: add "int8_auto" to [formats.coreml]')
    assert int8_auto_hint(p, "tflite", "int8", passed=False) is None  # the profile builds it already
    assert int8_auto_hint(p, "ort", "int8", passed=True) is None
    assert int8_auto_hint(p, "coreml", "int8_weights", passed=False) is None  # int8_auto does not start there
    assert int8_auto_hint(p, "ort", "fp16", passed=False) is None


@pytest.mark.slow
def test_a_failed_int8_ort_cell_reports_the_hint(tmp_path):
    import torch

    from int8_auto_models import outlier_net

    onnx_path = save_onnx(outlier_net(), (torch.randn(1, 3, 16, 16),), tmp_path / "o.onnx", output_names=("logits",))
    calib = write_stacked(tmp_path / "calib", 24, (3, 16, 16))
    prof = tmp_path / "p.toml"
    prof.write_text('name = "p"\n[formats.ort]\nprecisions = ["int8"]\n[latency]\nruns = 0\n[validation]\ndiagnose = "never"\n', encoding="utf-8")
    code, _, err = run_cli("build", str(onnx_path), "-c", str(calib), "-t", str(prof), "-o", str(tmp_path / "out"), "--no-cache", "-q")
    assert code == 1, err
    art = json.loads((tmp_path / "out" / "report.json").read_text())["artifacts"][0]
    assert art["parity"]["passed"] is False
    assert any(n.startswith('int8 misses its budget: add "int8_auto" to [formats.ort] precisions') for n in art["notes"])
    assert 'add "int8_auto" to [formats.ort] precisions' in (tmp_path / "out" / "report.md").read_text()
