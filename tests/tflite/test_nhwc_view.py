"""A PyTorch CNN that flattens with x.view(-1, C*H*W) after its convolutions (MTCNN's ONet style)
builds on the NHWC .tflite route (it failed: 'Cannot view a tensor with shape [1, 128, 3, 3] and
strides (1152, 1, 384, 128)', because the permuted input's channels-last strides flowed through)."""
import numpy as np
import pytest

pytest.importorskip("litert_torch")


def test_view_after_convs_on_the_nhwc_route(tmp_path):
    import torch

    import edgepack
    from conftest import write_profile

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
            self.c2 = torch.nn.Conv2d(16, 128, 3, stride=4, padding=1)
            self.fc = torch.nn.Linear(1152, 10)

        def forward(self, image):
            x = torch.relu(self.c2(torch.relu(self.c1(image))))
            return self.fc(x.view(-1, 1152))

    torch.manual_seed(0)
    model = tmp_path / "view.pt2"
    torch.export.save(torch.export.export(Net().eval(), (torch.randn(1, 3, 12, 12),)), str(model))
    calib = tmp_path / "c.npz"
    np.savez(calib, image=np.random.default_rng(0).standard_normal((20, 3, 12, 12)).astype(np.float32))
    prof = write_profile(tmp_path / "p.toml", 'name = "t"\n[formats.tflite]\nprecisions = ["fp32"]\nlayout = "nhwc"\n[latency]\nruns = 1\nwarmup = 0\n')
    rep = edgepack.build(str(model), calib, [prof], tmp_path / "o")
    assert not rep.failed_cells, rep.failed_cells
    (r,) = rep.artifacts
    assert r.passed and r.inputs[0].shape == (1, 12, 12, 3) and r.inputs[0].layout == "nhwc"
    assert r.parity.outputs[0].max_abs <= 1e-4
