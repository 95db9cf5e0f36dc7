"""PReLU after a Linear layer (rank 2, per-channel alpha), as in MTCNN's ONet, reaches Core ML."""
import numpy as np
import pytest

pytest.importorskip("coremltools")


def test_rank2_per_channel_prelu_converts_and_matches(tmp_path):
    import torch

    import edgepack
    from conftest import write_profile

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.PReLU(4), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 8), torch.nn.PReLU(8)).eval()
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.PReLU):
                m.weight.copy_(torch.linspace(-0.5, 0.9, m.weight.numel()))
    model = tmp_path / "prelu.pt2"
    torch.export.save(torch.export.export(net, (torch.randn(1, 3, 8, 8),)), str(model))
    calib = tmp_path / "c.npz"
    np.savez(calib, input=np.random.default_rng(0).standard_normal((20, 3, 8, 8)).astype(np.float32))
    prof = write_profile(tmp_path / "p.toml", 'name = "t"\n[formats.coreml]\nprecisions = ["fp32"]\n[latency]\nruns = 1\nwarmup = 0\n')
    rep = edgepack.build(str(model), calib, [prof], tmp_path / "o")
    assert not rep.failed_cells, rep.failed_cells
    (r,) = rep.artifacts
    assert r.passed and r.parity.outputs[0].max_abs <= 1e-4
    ops = edgepack.inspect(r.path).op_histogram
    assert "select" in ops and ops.get("prelu", 0) <= 1, ops  # the rank-2 PReLU became a select
