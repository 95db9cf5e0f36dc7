import io
import zipfile

import numpy as np
import pytest

from conftest import DIGITS_ONNX, DIGITS_PT2
from edgepack.errors import InputError
from edgepack.sources.base import load_source


def test_pt2_describes_and_runs():
    src = load_source(str(DIGITS_PT2))
    assert src.kind == "pytorch" and src.name == "digits_cnn"
    assert [(t.name, t.shape, t.dtype) for t in src.inputs] == [("image", (1, 1, 8, 8), "float32")]
    assert [(t.name, t.shape) for t in src.outputs] == [("output", (1, 10))]
    y = src.run({"image": np.zeros((1, 1, 8, 8), np.float32)})
    assert y[0].shape == (1, 10) and len(src.sha256) == 64


def test_onnx_matches_pt2():
    a, b = load_source(str(DIGITS_PT2)), load_source(str(DIGITS_ONNX))
    assert [t.name for t in b.outputs] == ["logits"]
    x = {"image": np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)}
    assert np.abs(a.run(x)[0] - b.run(x)[0]).max() < 1e-5


def test_entry_point():
    src = load_source("examples.digits.model:entry_point")
    assert src.kind == "pytorch" and src.inputs[0].shape == (1, 1, 8, 8)
    ref = load_source(str(DIGITS_PT2))
    x = {"image": np.full((1, 1, 8, 8), 0.5, np.float32)}
    assert np.abs(src.run(x)[0] - ref.run(x)[0]).max() < 1e-6


def test_truncated_onnx(tmp_path):
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(DIGITS_ONNX.read_bytes()[:2000])
    with pytest.raises(InputError, match=rf"{bad}: not a valid ONNX model .*re-export it"):
        load_source(str(bad))


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        load_source(str(tmp_path / "nope.onnx"))
    other = tmp_path / "model.h5x"
    other.write_text("x")
    with pytest.raises(InputError, match=r"unrecognised model; edgepack reads: .*\.pt2.*\.onnx"):
        load_source(str(other))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_pt2_refused_unless_allowed(tmp_path, capsys):
    """torch.export.load falls back to weights_only=False for sample inputs; edgepack refuses first."""
    bad = tmp_path / "evil.pt2"
    with zipfile.ZipFile(DIGITS_PT2) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data/sample_inputs/model.pt"):
                buf = io.BytesIO()
                import torch

                torch.save(_Evil(), buf)
                data = buf.getvalue()
            zout.writestr(item, data)
    with pytest.raises(InputError, match=r"contains pickled data naming __builtin__\.print, .*\(digits_cnn/data/sample_inputs/model.pt\).*--allow-pickle"):
        load_source(str(bad))
    assert "pwned" not in capsys.readouterr().out
