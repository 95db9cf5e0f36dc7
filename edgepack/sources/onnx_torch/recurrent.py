"""ONNX LSTM, GRU and RNN, decomposed into matmuls and element-wise torch ops.

The sequence length is static, so each direction's cell is unrolled over it: converters that
have no recurrent op (or only a fused one with other conventions) see plain FULLY_CONNECTED /
matmul, sigmoid, tanh and mul. The input projection of all time steps is one matmul.
Gate orders follow ONNX: LSTM i, o, f, c; GRU z, r, h. Supported: forward, reverse and
bidirectional; layout 0 and 1; initial states; LSTM peepholes; GRU linear_before_reset;
the default activations (and Relu/Tanh/Sigmoid for RNN). Not supported: clip, input_forget,
per-batch sequence_lens that differ from the sequence length.
"""
from __future__ import annotations

import numpy as np

from .ops import Ctx, _F, _torch, op

_ACT = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu"}
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _activations(c: Ctx, kind: str, dirs: int):
    names = c.a("activations") or _DEFAULT_ACTS[kind] * dirs
    if c.a("activation_alpha") or c.a("activation_beta"):
        c.fail("activation_alpha/activation_beta")
    per = len(_DEFAULT_ACTS[kind])
    out = []
    for d in range(dirs):
        group = names[d * per : (d + 1) * per]
        if any(n not in _ACT for n in group):
            c.fail(f"activations {group}")
        out.append([getattr(_torch(), _ACT[n]) for n in group])
    return out


def _check(c: Ctx, kind: str, seq: int, batch: int):
    if c.a("clip") is not None:
        c.fail("the clip attribute")
    if kind == "LSTM" and c.a("input_forget", 0):
        c.fail("input_forget = 1")
    if c.has(4):
        lens = c.np(4)
        if not np.all(lens == seq):
            c.fail(f"sequence_lens {lens.tolist()} that differ from the sequence length {seq}")


@op("LSTM", "GRU", "RNN")
def _recurrent(c: Ctx):
    torch, F = _torch(), _F()
    kind = c.node.op_type
    x = c.t(0)
    layout = c.a("layout", 0)
    if layout == 1:
        x = x.transpose(0, 1)  # -> (seq, batch, input)
    seq, batch, _ = (int(d) for d in x.shape)
    _check(c, kind, seq, batch)
    direction = c.a("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    hidden = int(c.a("hidden_size"))
    g = _GATES[kind]
    W, R = c.np(1), c.np(2)  # (dirs, g*H, input), (dirs, g*H, H)
    B = c.np(3) if c.has(3) else np.zeros((dirs, 2 * g * hidden), W.dtype)
    P = c.np(7) if kind == "LSTM" and c.has(7) else None
    acts = _activations(c, kind, dirs)
    h0 = c.t(5) if c.has(5) else None
    c0 = c.t(6) if kind == "LSTM" and c.has(6) else None
    if layout == 1:  # states are (batch, dirs, H) there
        h0 = h0.transpose(0, 1) if h0 is not None else None
        c0 = c0.transpose(0, 1) if c0 is not None else None
    ys, hs, cs = [], [], []
    for d in range(dirs):
        reverse = direction == "reverse" or d == 1
        w = c.aux(f"w{d}", lambda: W[d])
        r_t = c.aux(f"rT{d}", lambda: np.ascontiguousarray(R[d].T)) if kind != "GRU" else None
        wb = c.aux(f"b{d}", lambda: B[d, : g * hidden] + (B[d, g * hidden :] if kind != "GRU" else 0))
        rb = B[d, g * hidden :]
        xw = F.linear(x, w, wb)  # (seq, batch, g*H): every step's input projection at once
        h = h0[d] if h0 is not None else torch.zeros(batch, hidden, dtype=x.dtype)
        cell = c0[d] if c0 is not None else torch.zeros(batch, hidden, dtype=x.dtype)
        steps = range(seq - 1, -1, -1) if reverse else range(seq)
        out = [None] * seq
        f_act = acts[d]
        for t in steps:
            if kind == "LSTM":
                gates = xw[t] + torch.matmul(h, r_t)
                i, o, f, cc = gates.split(hidden, dim=-1)
                if P is not None:
                    pi, po, pf = (c.aux(f"p{d}{k}", lambda k=k: P[d, k * hidden : (k + 1) * hidden]) for k in range(3))
                    i, f = i + pi * cell, f + pf * cell
                i, f, cc = f_act[0](i), f_act[0](f), f_act[1](cc)
                cell = f * cell + i * cc
                o = f_act[0](o + po * cell) if P is not None else f_act[0](o)
                h = o * f_act[2](cell)
            elif kind == "GRU":
                xz, xr, xh = xw[t].split(hidden, dim=-1)
                rz_b, rr_b, rh_b = (c.aux(f"rb{d}{k}", lambda k=k: rb[k * hidden : (k + 1) * hidden]) for k in range(3))
                r_z, r_r, r_h = (c.aux(f"rT{d}{k}", lambda k=k: np.ascontiguousarray(R[d, k * hidden : (k + 1) * hidden].T)) for k in range(3))
                z = f_act[0](xz + torch.matmul(h, r_z) + rz_b)
                r = f_act[0](xr + torch.matmul(h, r_r) + rr_b)
                if c.a("linear_before_reset", 0):
                    hh = f_act[1](xh + r * (torch.matmul(h, r_h) + rh_b))
                else:
                    hh = f_act[1](xh + torch.matmul(r * h, r_h) + rh_b)
                h = (1 - z) * hh + z * h
            else:
                h = f_act[0](xw[t] + torch.matmul(h, r_t))
            out[t] = h
        ys.append(torch.stack(out, 0))  # (seq, batch, H)
        hs.append(h)
        cs.append(cell)
    y = torch.stack(ys, 1)  # (seq, dirs, batch, H)
    y_h, y_c = torch.stack(hs, 0), torch.stack(cs, 0)
    if layout == 1:
        y, y_h, y_c = y.permute(2, 0, 1, 3), y_h.transpose(0, 1), y_c.transpose(0, 1)
    outs = [y, y_h, y_c][: len(c.node.output)]
    return outs
