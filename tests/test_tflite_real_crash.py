"""The two LiteRT int8 failures of RapidOCR's PP-OCRv6 nets (issue #9), each minimised to a tiny model.

1. SIGSEGV: the ONNX bridge pads an asymmetric (SAME_UPPER) max-pool with -inf; an activation range
   of -inf gave a requantize to scale inf, and XNNPACK crashed preparing it. calibrate.py ignores
   non-finite values; build_steps.check_scales refuses any non-finite scale before XNNPACK sees it.
2. "div.cc: data[i] != zero_point": a LayerNorm exported as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div
   (ONNX opset < 17) became int8 ops; a row of zero variance gave a divisor equal to its zero point
   and LiteRT's int8 DIV aborted. float_ops.py keeps normalisation statistics in float32.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")


def _convert(module, example):
    import torch

    from edgepack.formats.tflite.routes import import_litert_torch

    litert_torch = import_litert_torch()
    with torch.no_grad():
        return bytes(litert_torch.convert(module.eval(), (example,)).model_content())


def _interp(content: bytes, keep: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=content, experimental_preserve_all_tensors=keep, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def _run(it, x: np.ndarray) -> np.ndarray:
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def _qsvs(content: bytes, samples, finite: bool = True) -> dict:
    """ai-edge-quantizer ranges over `samples` (min/max of every activation tensor)."""
    from edgepack.formats.tflite.calibrate import activation_tensors
    from edgepack.formats.tflite.flatbuf import read_graph

    g = read_graph(content)
    it = _interp(content, keep=True)
    lo, hi = {}, {}
    for x in samples:
        _run(it, x)
        for i in activation_tensors(g):
            v = it.get_tensor(i)
            v = v[np.isfinite(v)] if finite else v
            n = g.tensors[i].name
            lo[n], hi[n] = min(lo.get(n, np.inf), float(v.min())), max(hi.get(n, -np.inf), float(v.max()))
    rank = {t.name: len(t.shape) for t in g.tensors}
    return {n: {"min": np.full((1,) * rank[n], lo[n], np.float32), "max": np.full((1,) * rank[n], hi[n], np.float32)} for n in lo}


def _cos(a, b) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _norm_net():
    """A LayerNorm written as opset-11 ONNX exports it (DIV by sqrt(var + eps)) and torch's own
    layer_norm (which litert-torch lowers to RSQRT), between two linear layers."""
    import torch

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(32, 32), torch.nn.Linear(32, 8)
            self.ln = torch.nn.LayerNorm(32)

        def forward(self, x):
            d = x - x.mean(-1, keepdim=True)
            n = d / torch.sqrt((d * d).mean(-1, keepdim=True) + 1e-5)
            return self.fc2(self.ln(self.fc1(n)) + n)

    return Net()


def _rows(n: int, seed: int) -> list[np.ndarray]:
    """Samples whose last four rows are constant (padding): their variance is exactly 0."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.standard_normal((1, 16, 32)) * 3.0
        x[:, 12:, :] = rng.uniform(-1, 1, (1, 4, 1))
        out.append(x.astype(np.float32))
    return out


@pytest.fixture(scope="module")
def norm_model():
    import torch

    return _convert(_norm_net(), torch.zeros(1, 16, 32))


def test_normalisation_statistics_are_found_in_both_forms(norm_model):
    from edgepack.formats.tflite import float_ops
    from edgepack.formats.tflite.flatbuf import read_graph

    g = read_graph(norm_model)
    kept = float_ops.find(g, {}, 8)
    assert kept.normalisations == 2 and kept.zero_divisors == 0
    names = sorted(o.name for o in kept.ops)
    assert {"DIV", "SQRT", "RSQRT", "MEAN"} <= set(names), names
    assert "FULLY_CONNECTED" not in names  # the layers around the norms stay integer
    assert re.search(r"\d+ ops kept in float32 \(2 normalisation statistic\(s\): .*DIV.*RSQRT", kept.summary())
    # each recipe regex matches the scope of exactly one op (ai-edge-quantizer: output names + ';')
    scopes = [";".join(g.tensors[t].name for t in o.outputs) + ";" for o in g.ops]
    for rx in kept.scopes(g):
        assert sum(bool(re.search(rx, s)) for s in scopes) == 1, rx


def test_int8_layernorm_with_zero_variance_rows_runs_when_statistics_stay_float(norm_model):
    """Without float_ops the int8 DIV aborts on a zero-variance row, as on PP-OCRv6's recogniser."""
    from edgepack.formats.tflite import float_ops, variants
    from edgepack.formats.tflite.flatbuf import read_graph

    g = read_graph(norm_model)
    qsvs = _qsvs(norm_model, _rows(16, seed=1))
    v = variants.VARIANTS["int8"]
    plain = variants.make(norm_model, v, per_channel=True, qsvs=qsvs, where="m")
    test = _rows(6, seed=2)
    with pytest.raises(RuntimeError, match=r"div\.cc.*data\[i\] != zero_point"):
        for x in test:
            _run(_interp(plain), x)
    ranges = {n: (float(r["min"].min()), float(r["max"].max())) for n, r in qsvs.items()}
    kept = float_ops.find(g, ranges, 8)
    fixed = variants.make(norm_model, v, per_channel=True, qsvs=qsvs, where="m", float_scopes=tuple(kept.scopes(g)))
    fg = read_graph(fixed)
    assert {o.name for o in fg.ops if o.name in ("DIV", "RSQRT")} == {"DIV", "RSQRT"}
    div = next(o for o in fg.ops if o.name == "DIV")
    assert fg.tensors[div.outputs[0]].dtype == "float32"  # kept float
    assert any(fg.tensors[o.outputs[0]].dtype == "int8" for o in fg.ops if o.name == "FULLY_CONNECTED")
    ref, q = _interp(norm_model), _interp(fixed)
    cos = [_cos(_run(ref, x), _run(q, x)) for x in test]
    assert min(cos) >= 0.99, cos


def test_reaches_zero():
    from edgepack.formats.tflite.float_ops import _reaches_zero

    assert _reaches_zero(0.003, 3.0, 8)  # sqrt(eps) against a step of 3/255: rounds to the zero point
    assert not _reaches_zero(1.0, 3.0, 8)  # 1 + p|x|: never near zero
    assert _reaches_zero(-1.0, 1.0, 8)  # crosses zero
    assert not _reaches_zero(0.003, 3.0, 16)  # int16: a step of 3/32767


def test_minus_inf_padding_gives_inf_scale_that_is_refused(tmp_path):
    """The SIGSEGV, minimised: a -inf pad (SAME_UPPER max-pool) whose input also feeds another branch
    makes ai-edge-quantizer add a requantize to the padded tensor's scale. With raw ranges that scale
    is inf (XNNPACK SIGSEGVs in allocate_tensors on it); check_scales refuses it with one line, and
    finite ranges (calibrate.py) give a model whose scales are all finite."""
    import torch

    from edgepack.errors import ConversionError
    from edgepack.formats.tflite import variants
    from edgepack.formats.tflite.build_steps import check_scales
    from edgepack.formats.tflite.flatbuf import read_graph

    torch.manual_seed(0)

    class Pool(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 3)

        def forward(self, x):
            y = torch.relu(self.c1(x))
            pooled = torch.nn.functional.max_pool2d(torch.nn.functional.pad(y, (0, 1, 0, 1), value=float("-inf")), 2, 1)
            return self.c2(pooled) + self.c2(y)

    content = _convert(Pool(), torch.zeros(1, 3, 15, 15))
    samples = [np.random.default_rng(k).standard_normal((1, 3, 15, 15)).astype(np.float32) for k in range(4)]
    v = variants.VARIANTS["int8"]
    raw = variants.make(content, v, per_channel=True, qsvs=_qsvs(content, samples, finite=False), where="m")
    with pytest.raises(ConversionError, match=r"^m: the quantised \.tflite has tensor \d+ .* with scale inf; its activation range was not finite"):
        check_scales(read_graph(raw), "m")
    good = read_graph(variants.make(content, v, per_channel=True, qsvs=_qsvs(content, samples), where="m"))
    check_scales(good, "m")
    assert "PADV2" in good.op_histogram()
