"""Embeddings are not class scores (#10): an L2-normalised (batch, dims) output, or one named like
an embedding, is judged by cosine / SQNR / abs error, never by top-1 agreement."""
import numpy as np
import pytest

from edgepack.validate.output_kinds import KIND_KEYS, KINDS, classify
from edgepack.validate.parity import check_parity


def _embedder():
    """A MiniLM-shaped head built in code: mean-pooled tokens -> Linear(32, 384) -> L2 normalise."""
    import torch

    torch.manual_seed(0)

    class Embed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(32, 384)

        def forward(self, tokens):
            return torch.nn.functional.normalize(self.proj(tokens.mean(dim=1)), dim=-1)

    return Embed().eval()


def _run(model, xs):
    import torch

    with torch.no_grad():
        return [model(torch.from_numpy(x)).numpy() for x in xs]


def test_a_normalised_embedding_is_judged_by_cosine_not_top1():
    import torch

    model = _embedder()
    xs = [np.random.default_rng(i).standard_normal((1, 16, 32)).astype(np.float32) for i in range(10)]
    refs = _run(model, xs)
    assert refs[0].shape == (1, 384) and np.linalg.norm(refs[0]) == pytest.approx(1.0, abs=1e-6)
    half = _embedder()  # the "artifact": the same model with fp16-rounded weights
    with torch.no_grad():
        for p in half.parameters():
            p.copy_(p.half().float())
    outs = _run(half, xs)
    assert classify("output", refs) == "embedding"
    raw = [r * 7.0 for r in refs]  # the same rows, not normalised: logits as far as the values say
    assert classify("output", raw) == "class_scores"
    tol = {"min_cosine": 0.999, "min_top1_agreement": 0.95, "min_top5_agreement": 0.9, "max_accuracy_drop": 0.01}
    targets = np.arange(10) % 384
    rep = check_parity(["output"], [[r] for r in refs], [[o] for o in outs], tol, targets, min_samples=8)
    (e,) = rep.outputs
    assert e.kind == "embedding" and e.top1_agreement is None and e.top5_agreement is None
    assert [c.metric for c in e.checks] == ["min_cosine"]  # the only key of `tol` an embedding has
    assert 0.999 < e.min_cosine < 1.0 and e.sqnr_db > 40 and e.checks[0].margin == pytest.approx(e.min_cosine - 0.999)
    assert rep.passed and rep.accuracy is None and rep.reference_accuracy is None  # no argmax accuracy of an embedding
    # a worse artifact fails on cosine, with the number
    bad = [o + 0.05 * np.random.default_rng(9).standard_normal(o.shape) for o in outs]
    rep = check_parity(["output"], [[r] for r in refs], [[b] for b in bad], tol, None)
    (e,) = rep.outputs
    assert not rep.passed and rep.failures == (f"output 'output': cosine {e.min_cosine:.6g} < 0.999",)
    assert 0.6 < e.min_cosine < 0.8  # noise of norm ~0.98 on unit rows: cos ~ 1 / sqrt(1 + 0.96)


def test_embedding_kind_by_name_and_what_stays_as_it_was():
    rng = np.random.default_rng(3)
    raw = [rng.standard_normal((1, 64)) * 3 for _ in range(4)]  # not normalised
    for name in ("sentence_embedding", "embeddings", "pooler_output", "pooled", "image_features", "feat"):
        assert classify(name, raw) == "embedding", name
    for name in ("output", "logits", "defeat", "embedded_scores_x"):
        assert classify(name, raw) == "class_scores", name
    onehot = [np.eye(5)[[i % 5]] for i in range(4)]  # unit rows but all >= 0: probabilities
    assert classify("output", onehot) == "probabilities"
    unit_pos = [np.abs(r) / np.linalg.norm(r) for r in raw]  # unit rows, one sign only: not an embedding
    assert classify("output", unit_pos) == "class_scores"
    almost = [r / np.linalg.norm(r) * 1.01 for r in raw]  # norm 1.01: outside 1e-3
    assert classify("output", almost) == "class_scores"
    assert classify("emb", [rng.standard_normal((1, 8, 4, 4))]) == "feature_map"  # rank >= 3 is a feature map
    assert "embedding" in KINDS and KIND_KEYS["embedding"] == ("max_abs", "mean_abs", "min_cosine", "min_sqnr_db")
    assert classify("output", raw, declared="embedding") == "embedding"


def test_a_profile_may_declare_an_embedding(tmp_path):
    from edgepack.profiles import load_profile

    p = tmp_path / "p.toml"
    p.write_text('name = "p"\n[formats.ort]\nprecisions = ["fp32"]\n[outputs.vec]\nkind = "embedding"\n')
    assert load_profile(str(p)).output_kinds == {"vec": "embedding"}
