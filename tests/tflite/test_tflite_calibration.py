"""The quantiser gets activation ranges that edgepack computed: true min/max (or the profile's
percentile / entropy), never ai-edge-quantizer's clipping moving average."""
import numpy as np
import pytest

import edgepack
from conftest import save_pt2
from edgepack.calibration import load_calibration
from edgepack.sources.base import load_source
from edgepack.formats.tflite.calibrate import ActivationStats, _Acc, _entropy_threshold
from tfl_helpers import profile, read_graph

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    pytest.importorskip("litert_torch")
    import torch
    from torch import nn

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    d = tmp_path_factory.mktemp("mlp")
    x = np.random.default_rng(1).standard_normal((60, 16)).astype(np.float32)
    cal = sorted(np.random.default_rng(0).permutation(60)[24:])  # CalibrationSet.split's calibration part
    x[cal[5], 0] = 9.0  # rare outliers: a moving average forgets them, true min/max keeps them
    x[cal[20], 5] = -7.5
    (d / "calib").mkdir()
    np.savez(d / "calib" / "samples.npz", x=x)

    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)

    return {"pt2": save_pt2(Named().eval(), (torch.randn(1, 16),), d / "mlp.pt2"), "calib": d / "calib", "x": x, "module": m}


def _io_quant(path):
    g = read_graph(path)
    i, o = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    return (i.scale[0], i.zero_point[0]), (o.scale[0], o.zero_point[0])


def _asym_scale(lo, hi):  # ai-edge-quantizer's int8 asymmetric scale: the range always holds 0
    return (max(hi, 0.0) - min(lo, 0.0)) / 255.0


def _ema(values, smoothing=0.95):
    acc = values[0]
    for v in values[1:]:
        acc = smoothing * acc + (1 - smoothing) * v
    return acc


def test_int8_ranges_are_true_min_max_or_the_profile_method(tmp_path, mlp):
    import torch

    profiles = [
        profile(tmp_path / f"{m}.toml", ["int8_io"], name=m, method=m, percentile=99.0, runs=0)
        for m in ("minmax", "percentile", "entropy")
    ]
    rep = edgepack.build(str(mlp["pt2"]), mlp["calib"], profiles, tmp_path / "out")
    res = {r.target: r for r in rep.results}

    calib = load_calibration(mlp["calib"], load_source(str(mlp["pt2"])).inputs)
    cal_idx, _ = calib.split(0.4, 200, 200)  # the profile defaults: the samples the build calibrated with
    xs = np.stack([calib.samples[i]["x"] for i in cal_idx])
    with torch.no_grad():
        ys = mlp["module"](torch.from_numpy(xs.reshape(len(cal_idx), 16))).numpy()

    (in_s, in_z), (out_s, _) = _io_quant(tmp_path / "out" / res["minmax"].file)
    assert in_s == pytest.approx(_asym_scale(xs.min(), xs.max()), rel=1e-6)  # true min/max of the input
    assert in_z == round(-128 - min(xs.min(), 0) / in_s)
    assert out_s == pytest.approx(_asym_scale(ys.min(), ys.max()), rel=1e-4)  # and of the output
    ema = _asym_scale(_ema([s.min() for s in xs]), _ema([s.max() for s in xs]))
    assert in_s > 1.3 * ema  # what the quantiser's own moving-average calibrator would have clipped to
    assert res["minmax"].parity.outputs[0].min_cosine >= 0.95  # 4 outputs, 16.5-wide input range: coarse but sane

    for method in ("percentile", "entropy"):  # these clip the rare outliers on purpose
        (s, _), _ = _io_quant(tmp_path / "out" / res[method].file)
        assert s < in_s, method
        assert f"activation ranges by edgepack ({method}" in res[method].artifact.route


def test_percentile_clips_to_the_quantile():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(200_000).astype(np.float32)
    v[:5] = 40.0
    a = _Acc(ndim=1, lo=float(v.min()), hi=float(v.max()))
    a.edges = np.linspace(a.lo, a.hi, 2049)
    a.hist = np.histogram(v, a.edges)[0]
    stats = ActivationStats(tensors={"t": a})
    lo, hi = stats.ranges("percentile", 99.9, 8)["t"]
    assert hi == pytest.approx(np.quantile(v, 0.999), abs=0.05) and lo == pytest.approx(np.quantile(v, 0.001), abs=0.05)
    assert stats.ranges("minmax", 99.9, 8)["t"] == (a.lo, 40.0)


def test_entropy_threshold_ignores_rare_outliers():
    rng = np.random.default_rng(0)
    v = np.abs(rng.standard_normal(500_000))
    v[:20] = 30.0
    edges = np.linspace(0, v.max(), 2049)
    t = _entropy_threshold(np.histogram(v, edges)[0], edges)
    assert 2.0 < t < 6.0  # a few sigma, far below the outliers at 30
    flat = np.linspace(0, 1, 100_000)  # no tail: keep (almost) everything
    edges = np.linspace(0, 1, 2049)
    assert _entropy_threshold(np.histogram(flat, edges)[0], edges) > 0.9
