"""Derivation checks for recurrent nets and attention: the closed forms of :mod:`.recurrent` and
:mod:`.attention` against torch autograd in float64.

Notes: discussion 6, section 1.3 (vanilla RNN; backpropagation through time) and section 2
(the problems "Backpropagation Through LSTM" and "Vanishing Gradient in LSTMs"); discussion 7,
sections 1.2 and 2.2-2.3 (scaled dot-product attention, causal and padding masks, multi-head
attention).

Each entry draws seeded inputs, runs the hand-written NumPy forward and backward pass, and runs
the same computation through torch autograd: the recurrences written out literally from the
notes' equations (RNN, LSTM), ``F.scaled_dot_product_attention`` with a boolean causal mask, and
``nn.MultiheadAttention`` with the weights mapped by :func:`.attention.mha_params_to_torch`. The
loss is ``J = sum(dout * out)`` for a random ``dout``, so autograd returns the vector-Jacobian
products the closed forms compute. The check is the largest absolute difference.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.core.catalog import Check, derivation
from deepnotes.mechanics.attention import (
    causal_mask,
    combine_masks,
    mha_init_params,
    mha_params_to_torch,
    multihead_attention_backward,
    multihead_attention_forward,
    padding_mask,
    scaled_dot_product_attention,
    sdpa_backward,
)
from deepnotes.mechanics.recurrent import (
    GATES,
    lstm_backward,
    lstm_forward,
    lstm_init_params,
    rnn_backward,
    rnn_forward,
)


def _leaf(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def _vjp(out: torch.Tensor, dout: np.ndarray) -> torch.Tensor:
    """The scalar ``J = sum(dout * out)`` whose gradient is the VJP with ``dout``."""
    return (out * torch.from_numpy(dout)).sum()


@derivation(
    "vanilla RNN gradients through time (BPTT)",
    topic="mechanics",
    closed_form="da_t = (dh_t + da_{t+1} W_hh) * (1 - h_t^2); dW_hh = sum_t da_t^T h_{t-1}; "
    "dW_xh = sum_t da_t^T x_t; db = sum_t da_t; dx_t = da_t W_xh",
)
def _rnn_bptt() -> Check:
    rng = np.random.default_rng(0)
    n, steps, d, h = 2, 6, 3, 4
    x, h0 = rng.normal(size=(n, steps, d)), rng.normal(size=(n, h))
    W_xh, W_hh, b = rng.normal(size=(h, d)), 0.5 * rng.normal(size=(h, h)), rng.normal(size=h)
    hs, cache = rnn_forward(x, h0, W_xh, W_hh, b)
    dhs = rng.normal(size=hs.shape)
    dx, dh0, grads = rnn_backward(dhs, cache)

    tx, th0, tW_xh, tW_hh, tb = (_leaf(a) for a in (x, h0, W_xh, W_hh, b))
    state, outs = th0, []
    for t in range(steps):  # h_t = tanh(W_hh h_{t-1} + W_xh x_t + B_h), batch-first rows
        state = torch.tanh(state @ tW_hh.T + tx[:, t] @ tW_xh.T + tb)
        outs.append(state)
    ths = torch.stack(outs, dim=1)  # (N, T, H)
    auto = torch.autograd.grad(_vjp(ths, dhs), (tx, th0, tW_xh, tW_hh, tb))
    return Check.compare(
        [hs, dx, dh0, grads["W_xh"], grads["W_hh"], grads["b"]],
        [ths, *auto],
        detail=f"N={n}, T={steps}, D={d}, H={h}; hs, dx, dh0, dW_xh, dW_hh, db",
    )


def _torch_lstm(
    tx: torch.Tensor, th0: torch.Tensor, tc0: torch.Tensor, tp: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The notes' LSTM equations written out in torch: ``(hs (N, T, H), C_T (N, H))``."""
    h, c, outs = th0, tc0, []
    for t in range(tx.shape[1]):
        x_t = tx[:, t]
        f = torch.sigmoid(x_t @ tp["U_f"] + h @ tp["W_f"] + tp["b_f"])
        i = torch.sigmoid(x_t @ tp["U_i"] + h @ tp["W_i"] + tp["b_i"])
        o = torch.sigmoid(x_t @ tp["U_o"] + h @ tp["W_o"] + tp["b_o"])
        c_tilde = torch.tanh(x_t @ tp["U_g"] + h @ tp["W_g"] + tp["b_g"])
        c = f * c + i * c_tilde
        h = torch.tanh(c) * o
        outs.append(h)
    return torch.stack(outs, dim=1), c


@derivation(
    "LSTM dJ/dW^g through time (all gates)",
    topic="mechanics",
    closed_form="BPTT: dW^g = sum_t h_{t-1}^T da^g_t, dU^g = sum_t x_t^T da^g_t; "
    "dC_{t-1} = dC_t * f_t + (path through h_{t-1})",
)
def _lstm_bptt() -> Check:
    rng = np.random.default_rng(1)
    n, steps, d, h = 2, 5, 3, 4
    params = lstm_init_params(d, h, rng=rng)
    x, h0, c0 = rng.normal(size=(n, steps, d)), rng.normal(size=(n, h)), rng.normal(size=(n, h))
    hs, cache = lstm_forward(x, h0, c0, params)
    dhs, dcT = rng.normal(size=hs.shape), rng.normal(size=(n, h))
    dx, dh0, dc0, grads = lstm_backward(dhs, cache, dcT)

    tp = {k: _leaf(v) for k, v in params.items()}
    tx, th0, tc0 = _leaf(x), _leaf(h0), _leaf(c0)
    ths, tcT = _torch_lstm(tx, th0, tc0, tp)
    names = [f"{kind}_{g}" for g in GATES for kind in ("U", "W", "b")]
    auto = torch.autograd.grad(
        _vjp(ths, dhs) + _vjp(tcT, dcT), [tx, th0, tc0, *(tp[k] for k in names)]
    )
    return Check.compare(
        [hs, cache.cs[:, -1], dx, dh0, dc0, *(grads[k] for k in names)],
        [ths, tcT, *auto],
        detail=f"N={n}, T={steps}, D={d}, H={h}, loss on every h_t and on C_T; "
        "U^g, W^g, b^g for g in i, f, g (C~), o, and dx, dh0, dc0",
    )


@derivation(
    "LSTM cell path: dC_t/dC_{t-1} = diag(f_t)",
    topic="mechanics",
    closed_form="C_t = f_t * C_{t-1} + i_t * C~_t with h_{t-1} fixed gives diag(f_t): no "
    "squashing or weight matrix on the memory path",
)
def _lstm_cell_path() -> Check:
    rng = np.random.default_rng(2)
    d, h = 3, 5
    params = lstm_init_params(d, h, rng=rng)
    x, h0, c0 = rng.normal(size=(1, 1, d)), rng.normal(size=(1, h)), rng.normal(size=(1, h))
    _, cache = lstm_forward(x, h0, c0, params)
    f = cache.gates[0, 0, h : 2 * h]  # the forget gate f_1, (H,)

    tp = {k: torch.from_numpy(v) for k, v in params.items()}

    def cell(c_prev: torch.Tensor) -> torch.Tensor:
        _, c = _torch_lstm(torch.from_numpy(x), torch.from_numpy(h0), c_prev[None], tp)
        return c[0]

    jac = torch.autograd.functional.jacobian(cell, torch.from_numpy(c0[0]))  # (out, in)
    return Check.compare(np.diag(f), jac.T, detail=f"one step, D={d}, H={h}; full 5x5 Jacobian")


@derivation(
    "scaled dot-product attention backward (dq, dk, dv) with a causal mask",
    topic="mechanics",
    closed_form="dV = P^T dO; dS = P * (dO V^T - rowsum(P * dO V^T)); dQ = dS K / sqrt(d); "
    "dK = dS^T Q / sqrt(d)",
)
def _sdpa_backward() -> Check:
    rng = np.random.default_rng(3)
    n, t, d, dv = 2, 5, 4, 3
    q, k, v = rng.normal(size=(n, t, d)), rng.normal(size=(n, t, d)), rng.normal(size=(n, t, dv))
    mask = causal_mask(t)
    out, cache = scaled_dot_product_attention(q, k, v, mask)
    dout = rng.normal(size=out.shape)
    dq, dk, dv_ = sdpa_backward(dout, cache)

    tq, tk, tv = _leaf(q), _leaf(k), _leaf(v)
    tout = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.from_numpy(mask))
    auto = torch.autograd.grad(_vjp(tout, dout), (tq, tk, tv))
    return Check.compare(
        [out, dq, dk, dv_],
        [tout, *auto],
        detail=f"N={n}, T={t}, d={d}, dv={dv}, causal bool mask (True = attend)",
    )


@derivation(
    "multi-head attention backward (padding + causal masks)",
    topic="mechanics",
    closed_form="dWo = merged^T dO; per head sdpa backward; dWq = X_q^T dQ; "
    "dX_kv = dK Wk^T + dV Wv^T",
)
def _mha_backward() -> Check:
    rng = np.random.default_rng(4)
    n, t, e, heads = 2, 5, 6, 3
    params = mha_init_params(e, rng=rng)
    x = rng.normal(size=(n, t, e))
    lengths = np.array([5, 3])
    mask = combine_masks(padding_mask(lengths, t), causal_mask(t))  # (N, T, T)
    out, cache = multihead_attention_forward(x, x, params, heads, mask)
    dout = rng.normal(size=out.shape)
    dx_q, dx_kv, grads = multihead_attention_backward(dout, cache)

    mha = torch.nn.MultiheadAttention(e, heads, batch_first=True, dtype=torch.float64)
    mha.load_state_dict({k: torch.from_numpy(v) for k, v in mha_params_to_torch(params).items()})
    tx = _leaf(x)
    key_padding = torch.from_numpy(~padding_mask(lengths, t)[:, 0])  # torch: True = masked
    future = torch.from_numpy(~causal_mask(t))  # torch: True = masked
    tout, _ = mha(tx, tx, tx, key_padding_mask=key_padding, attn_mask=future)
    auto = torch.autograd.grad(
        _vjp(tout, dout),
        (tx, mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias),
    )
    d_in_proj = np.concatenate([grads["Wq"].T, grads["Wk"].T, grads["Wv"].T])  # (3E, E)
    d_in_bias = np.concatenate([grads["bq"], grads["bk"], grads["bv"]])
    return Check.compare(
        [out, dx_q + dx_kv, d_in_proj, d_in_bias, grads["Wo"].T, grads["bo"]],
        [tout, *auto],
        detail=f"self-attention, N={n}, T={t}, E={e}, H={heads}, lengths {lengths.tolist()}, "
        "causal; against nn.MultiheadAttention (in_proj = [Wq; Wk; Wv]^T)",
    )
