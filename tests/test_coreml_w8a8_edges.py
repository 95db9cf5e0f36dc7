"""Core ML W8A8 edge cases. -inf padding before a max pool (PP-OCRv6's detector; `F.pad(x, ..., value=-inf)` in torch): the
.pt2 loads (torch writes the float as "-Infinity"), and Core ML W8A8 keeps that activation float,
since an int8 scale over a range that reaches -inf turns it into noise (the detector's W8A8 had
cosine 0.05)."""
from __future__ import annotations

import json
import zipfile

import pytest

from conftest import run_cli, write_stacked

PROFILE = 'name = "p"\n[formats.coreml]\nprecisions = ["w8a8"]\n[latency]\nruns = 0\n[validation]\ndiagnose = "never"\n'


def _padpool():
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)

    class PadPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1)
            self.conv2 = nn.Conv2d(16, 16, 3, padding=1)

        def forward(self, image):
            x = torch.relu(self.conv(image))
            x = F.max_pool2d(F.pad(x, (1, 1, 1, 1), value=float("-inf")), 3, stride=1)
            return self.conv2(x)

    return PadPool().eval()


def test_unquantisable_ranges():
    from edgepack.formats.coreml.compress import unquantisable

    stats = {"a": {"rmin": 0.0, "rmax": 3.0}, "pad": {"rmin": float("-inf"), "rmax": 5.0}, "big": {"rmin": -70000.0, "rmax": 1.0}, "nan": {"rmin": float("nan"), "rmax": 1.0}}
    assert unquantisable(stats) == ["big", "nan", "pad"]


@pytest.mark.slow
def test_minus_inf_padding_loads_and_stays_float_in_w8a8(tmp_path):
    import torch

    model = tmp_path / "padpool.pt2"
    torch.export.save(torch.export.export(_padpool(), (torch.randn(1, 3, 16, 16),)), str(model))
    with zipfile.ZipFile(model) as z:  # what the safe loader must accept: the float, as torch writes it
        assert '"-Infinity"' in z.read(next(n for n in z.namelist() if n.endswith("model.json"))).decode()
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE, encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(model), "-c", str(write_stacked(tmp_path / "calib", 24, (3, 16, 16))), "-t", str(profile), "-o", str(out), "--no-cache", "-q")
    assert code == 0, err
    art = json.loads((out / "report.json").read_text())["artifacts"][0]
    assert art["route"].endswith("; 1 with a non-finite range (max-pool padding) stay float")
    assert art["parity"]["outputs"][0]["min_cosine"] > 0.999


def _int_add():
    import torch
    from torch import nn

    torch.manual_seed(0)

    class IntAdd(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.pos, self.fc = nn.Embedding(64, 16), nn.Embedding(40, 16), nn.Linear(16, 8)

        def forward(self, input_ids):
            pos = torch.arange(input_ids.shape[1]).unsqueeze(0) + 2  # integer arithmetic, as a transformer's positions
            return self.fc(torch.relu(self.emb(input_ids) + self.pos(pos))).mean(dim=1)

    return IntAdd().eval()


@pytest.mark.slow
def test_integer_add_is_left_alone_by_w8a8_and_int8_auto(tmp_path):
    """An int32 add (MiniLM's positions) has no activation range: W8A8 raised KeyError 'cast_41'
    and int8_auto put an fp32 scale on an int32 quantize. Both now build and pass."""
    import numpy as np
    import torch

    model = tmp_path / "intadd.pt2"
    torch.export.save(torch.export.export(_int_add(), (torch.zeros(1, 8, dtype=torch.long),)), str(model))
    calib = tmp_path / "calib"
    calib.mkdir()
    np.savez(calib / "samples.npz", input_ids=np.random.default_rng(0).integers(0, 64, (24, 8)).astype(np.int64))
    profile = tmp_path / "p.toml"
    profile.write_text(PROFILE.replace('["w8a8"]', '["w8a8", "int8_auto"]'), encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = run_cli("build", str(model), "-c", str(calib), "-t", str(profile), "-o", str(out), "--no-cache", "-q")
    assert code == 0, err
    arts = {a["precision"]: a for a in json.loads((out / "report.json").read_text())["artifacts"]}
    assert set(arts) == {"w8a8", "int8_auto"}
    assert all(a["parity"]["outputs"][0]["min_cosine"] > 0.99 for a in arts.values())
