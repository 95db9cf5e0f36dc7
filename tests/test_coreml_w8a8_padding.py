"""-inf padding before a max pool (PP-OCRv6's detector; `F.pad(x, ..., value=-inf)` in torch): the
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
