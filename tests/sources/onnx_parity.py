"""Helpers: build a small ONNX graph, run it in onnxruntime and through the ONNX->PyTorch bridge."""
from __future__ import annotations

import numpy as np


def make_model(nodes, feeds: dict, outputs: list[str], inits: dict | None = None, opset: int = 17, out_shapes: dict | None = None):
    """A model; outputs untyped (onnxruntime infers them), or float32 of `out_shapes` (for onnx.checker)."""
    from onnx import ValueInfoProto, helper, numpy_helper

    elem = lambda a: helper.np_dtype_to_tensor_dtype(a.dtype)  # noqa: E731
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(k, elem(v), list(v.shape)) for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, 1, out_shapes[o]) if out_shapes else ValueInfoProto(name=o) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def run_both(model, feeds: dict, export: bool = True):
    """(onnxruntime's outputs, the bridge's outputs, the bridge's outputs through torch.export)."""
    import onnxruntime as ort
    import torch

    from edgepack.sources.onnx_torch import to_torch

    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    module = to_torch(model, {k: v.shape for k, v in feeds.items()}, {k: v.dtype.name for k, v in feeds.items()}, where="t.onnx")
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    with torch.no_grad():
        got = module(*args)
    got = [g.numpy() for g in (got if isinstance(got, tuple) else (got,))]
    exported = None
    if export:
        ep = torch.export.export(module, args, strict=False)
        out = ep.module()(*args)
        exported = [o.detach().numpy() for o in (out if isinstance(out, tuple) else (out,))]
    return want, got, exported


def assert_parity(model, feeds: dict, atol: float = 2e-5, rtol: float = 1e-4, export: bool = True):
    want, got, exported = run_both(model, feeds, export)
    assert len(want) == len(got)
    for w, g in zip(want, got):
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, atol=atol, rtol=rtol)
    for w, e in zip(want, exported or []):
        np.testing.assert_allclose(e, w, atol=atol, rtol=rtol)
    return want
