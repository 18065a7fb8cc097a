r"""Derivation checks of the sequence topic: the trained PyTorch modules against closed forms.

Notes: discussion 6, section 2 (the problems "Backpropagation Through LSTM" and "Vanishing
Gradient in LSTMs") and discussion 7, sections 1.2 and 2.2-2.3 ("Generalized Attention in
Matrix Form"; padding and causal masks; multi-head attention).

The NumPy closed forms and their own autograd checks live in
:mod:`deepnotes.mechanics.derivations_sequence`; here the *trained* side is checked:

- the autograd gradient of :class:`deepnotes.sequence.recurrent.LSTM` with respect to its
  candidate-gate weights :math:`W^g` equals the NumPy BPTT of :mod:`deepnotes.mechanics.recurrent`
  run on the same weights,
  :math:`\partial J / \partial W^g = \sum_t h_{t-1}^\top \, \partial J / \partial a^g_t`;
- the LSTM module's cell path :math:`\partial C_T / \partial C_t = \prod_{s > t} f_s`
  (:func:`forget_gate_product`, closed form) equals :func:`cell_path_gradient` (autograd),
  the factor :math:`\partial C_t / \partial C_{t-1} = f_t` of the chain;
- attention in matrix form, :math:`\mathrm{softmax}(Q K^\top / \sqrt d + M) V`, equals
  attending one query at a time with the notes' vector form
  (:math:`w_j \propto \exp(q \cdot k_j / \sqrt d)` over the unmasked keys,
  :math:`z = \sum_j w_j v_j`), forward and gradients, for the hand-written
  :func:`scaled_dot_product_attention` and for :class:`MultiHeadAttention` (hand-written and
  ``F.scaled_dot_product_attention`` paths) with padding and causal masks.

Everything runs in float64; the loss is ``J = sum(dout * out)`` for a random ``dout``. The
closed forms are arguments of the check functions (the tests hand them wrong ones; for
multi-head attention they monkeypatch the module's attention) so each check is seen to fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from deepnotes.core.catalog import Check, derivation
from deepnotes.core.seeding import seeded
from deepnotes.mechanics.recurrent import lstm_backward, lstm_forward, lstm_params_from_torch
from deepnotes.sequence.attention import (
    MultiHeadAttention,
    causal_mask,
    combine_masks,
    padding_mask,
    scaled_dot_product_attention,
)
from deepnotes.sequence.recurrent import LSTM, cell_path_gradient, forget_gate_product

CELL_PATH_TOLERANCE = 1e-10
"""The brief's tolerance for the cell-path check (a product of up to T sigmoids)."""

LSTMBackward = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]]
Attend = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def _normal(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def _lstm_setup(
    seed: int, d: int, h: int, n: int, steps: int
) -> tuple[LSTM, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A float64 :class:`LSTM` with random weights and random ``x (N, T, D)``, ``h0, c0 (N, H)``."""
    with seeded(seed):
        lstm = LSTM(d, h).double()
    g = torch.Generator().manual_seed(seed)
    return lstm, _normal(g, n, steps, d), _normal(g, n, h), _normal(g, n, h)


def lstm_module_weight_gradient_check(backward: LSTMBackward = lstm_backward) -> Check:
    """Autograd of :class:`LSTM` wrt ``W^g`` (and every other weight) vs NumPy BPTT ``backward``.

    The module's stacked ``U (D, 4H)``, ``W (H, 4H)``, ``b (4H,)`` are mapped to the notes'
    per-gate ``U^g, W^g, b^g`` with :func:`lstm_params_from_torch` (``U = weight_ih.T``).
    """
    n, steps, d, h = 2, 6, 3, 4
    lstm, x, h0, c0 = _lstm_setup(7, d, h, n, steps)
    cell = lstm.cells[0]
    g = torch.Generator().manual_seed(8)
    dhs, dcT = _normal(g, n, steps, h), _normal(g, n, h)

    x.requires_grad_(True)
    hs, (_, c_T) = lstm(x, (h0[None], c0[None]))  # (N, T, H), C_T (1, N, H)
    loss = (dhs * hs).sum() + (dcT * c_T[0]).sum()  # J = sum(dout * out)
    dW, dU, db, dx = torch.autograd.grad(loss, (cell.W, cell.U, cell.b, x))

    params = lstm_params_from_torch(cell.U.detach().T, cell.W.detach().T, cell.b.detach())
    hs_np, cache = lstm_forward(x.detach().numpy(), h0.numpy(), c0.numpy(), params)
    dx_np, _, _, grads = backward(dhs.numpy(), cache, dcT.numpy())
    candidate = slice(2 * h, 3 * h)  # the columns of W^g in torch's i, f, g, o stacking
    stacked = [np.concatenate([grads[f"{kind}_{q}"] for q in "ifgo"], axis=-1) for kind in "UWb"]
    return Check.compare(
        [grads["W_g"], *stacked, dx_np, hs_np],
        [dW[:, candidate], dU, dW, db, dx, hs],
        detail=f"N={n}, T={steps}, D={d}, H={h}, loss on every h_t and on C_T; dJ/dW^g first, "
        "then dU, dW, db (all gates), dx and the hidden states",
    )


def lstm_module_cell_path_check(
    closed_form: Callable[[torch.Tensor], torch.Tensor] = forget_gate_product,
) -> Check:
    """``closed_form(f)`` from the module's forget gates vs :func:`cell_path_gradient`."""
    n, steps, d, h = 2, 8, 3, 5
    lstm, x, h0, c0 = _lstm_setup(9, d, h, n, steps)
    with torch.no_grad():
        _, _, gates = lstm(x, (h0[None], c0[None]), return_gates=True)
    auto = cell_path_gradient(lstm.cells[0], x, (h0, c0))  # (N, T, H)
    return Check.compare(
        closed_form(gates[0].f),
        auto,
        tolerance=CELL_PATH_TOLERANCE,
        detail=f"N={n}, T={steps}, D={d}, H={h}; diag of dC_T/dC_t for every t, h feedback blocked",
    )


def _attend_one_query(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor
) -> torch.Tensor:
    """The notes' vector form for one query ``q (d,)`` over ``k (Lk, d)``, ``v (Lk, dv)``.

    ``w_j = exp(q . k_j / sqrt(d)) / sum_{j' kept} exp(...)`` over the kept keys (``keep (Lk,)``
    bool), ``z = sum_j w_j v_j``; a query with no key kept gets zeros (the module's convention).
    """
    scores = torch.stack([torch.dot(q, k_j) for k_j in k]) / math.sqrt(q.shape[0])  # (Lk,)
    if not bool(keep.any()):
        return v.new_zeros(v.shape[-1])
    weights = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=0)  # (Lk,)
    return sum(w_j * v_j for w_j, v_j in zip(weights, v, strict=True))  # (dv,)


def _loop_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """:func:`_attend_one_query` for every batch row, head and query: ``(B, H, Lq, dv)``."""
    mask = mask.expand(*q.shape[:-1], k.shape[-2])  # (B, H, Lq, Lk)
    return torch.stack(
        [
            torch.stack(
                [
                    torch.stack(
                        [
                            _attend_one_query(q[b, h, i], k[b, h], v[b, h], mask[b, h, i])
                            for i in range(q.shape[2])
                        ]
                    )
                    for h in range(q.shape[1])
                ]
            )
            for b in range(q.shape[0])
        ]
    )


def sdpa_matrix_form_check(attend: Attend = scaled_dot_product_attention) -> Check:
    """``attend(q, k, v, mask)`` (all queries at once) vs one query at a time, with gradients.

    Cross-attention shapes (``Lq = 3`` queries, ``Lk = 5`` keys), two heads, a key-padding mask
    (lengths 5 and 4) combined with the causal mask aligned to the last keys.
    """
    b, heads, lq, lk, d, dv = 2, 2, 3, 5, 4, 3
    g = torch.Generator().manual_seed(11)
    q, k, v = _normal(g, b, heads, lq, d), _normal(g, b, heads, lk, d), _normal(g, b, heads, lk, dv)
    dout = _normal(g, b, heads, lq, dv)
    mask = combine_masks(padding_mask([5, 4])[:, None, None, :], causal_mask(lq, lk))
    leaves = [t.requires_grad_(True) for t in (q, k, v)]

    def outputs(fn: Callable[..., torch.Tensor]) -> list[torch.Tensor]:
        out = fn(*leaves, mask)
        return [out, *torch.autograd.grad((dout * out).sum(), leaves)]

    stacked = outputs(lambda *a: attend(*a)[0])
    one_by_one = outputs(_loop_attention)
    return Check.compare(
        stacked,
        one_by_one,
        detail=f"B={b}, H={heads}, Lq={lq}, Lk={lk}, d={d}, dv={dv}, padding (lengths 5, 4) and "
        "causal masks; out, dq, dk, dv",
    )


def _loop_multihead(mha: MultiHeadAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Self-attention of ``x (B, L, D)`` one query at a time, from the module's weights.

    ``q_i = W_Q x_i + b_Q`` for the query alone; keys and values of every position; per head
    :func:`_attend_one_query`; heads concatenated; ``W_O z + b_O``.
    """
    dim, heads = mha.embed_dim, mha.num_heads
    w_q, w_k, w_v = mha.in_proj.weight.split(dim)  # each (D, D)
    b_q, b_k, b_v = mha.in_proj.bias.split(dim)
    width = dim // heads
    rows = []
    for b in range(x.shape[0]):
        keys, values = x[b] @ w_k.T + b_k, x[b] @ w_v.T + b_v  # (L, D) each
        outs = []
        for i in range(x.shape[1]):
            query = w_q @ x[b, i] + b_q  # (D,)
            parts = [
                _attend_one_query(
                    query[h * width : (h + 1) * width],
                    keys[:, h * width : (h + 1) * width],
                    values[:, h * width : (h + 1) * width],
                    mask[b, i],
                )
                for h in range(heads)
            ]
            outs.append(mha.out_proj(torch.cat(parts)))  # (D,)
        rows.append(torch.stack(outs))
    return torch.stack(rows)  # (B, L, D)


def multihead_matrix_form_check(use_sdpa: bool = False) -> Check:
    """:class:`MultiHeadAttention` vs :func:`_loop_multihead`, forward and every gradient.

    ``use_sdpa`` picks the ``F.scaled_dot_product_attention`` path instead of the hand-written
    :func:`scaled_dot_product_attention`.
    """
    b, length, dim, heads = 2, 5, 6, 3
    with seeded(12):
        mha = MultiHeadAttention(dim, heads, use_sdpa=use_sdpa).double()
        torch.nn.init.normal_(mha.in_proj.bias)  # non-zero biases, so they are checked too
    g = torch.Generator().manual_seed(13)
    x, dout = _normal(g, b, length, dim), _normal(g, b, length, dim)
    x.requires_grad_(True)
    lengths = [5, 3]
    keep = padding_mask(lengths)  # (B, L), True = real token
    mask = combine_masks(keep[:, None, :], causal_mask(length))  # (B, L, L)
    params = [x, mha.in_proj.weight, mha.in_proj.bias, mha.out_proj.weight, mha.out_proj.bias]

    def outputs(out: torch.Tensor) -> list[torch.Tensor]:
        return [out, *torch.autograd.grad((dout * out).sum(), params)]

    matrix, _ = mha(x, x, x, key_padding_mask=keep, attn_mask=causal_mask(length))
    return Check.compare(
        outputs(matrix),
        outputs(_loop_multihead(mha, x, mask)),
        detail=f"self-attention, B={b}, L={length}, D={dim}, H={heads}, lengths {lengths}, "
        f"causal; {'F.scaled_dot_product_attention' if use_sdpa else 'hand-written'} path; "
        "out, dx, d in_proj (W, b), d out_proj (W, b)",
    )


@derivation(
    "LSTM module dJ/dW^g: autograd = NumPy BPTT",
    topic="sequence",
    closed_form="dJ/dW^g = sum_t h_{t-1}^T da^g_t with da^g_t = dC_t * i_t * (1 - C~_t^2), "
    "dC_{t-1} = dC_t * f_t + dh_{t-1} * o_{t-1} * (1 - tanh^2 C_{t-1}) (mechanics.lstm_backward)",
)
def _lstm_module_weight_gradient() -> Check:
    return lstm_module_weight_gradient_check()


@derivation(
    "LSTM module cell path: dC_T/dC_t = prod_{s>t} f_s",
    topic="sequence",
    closed_form="dC_t/dC_{t-1} = diag(f_t) with h_{t-1} held fixed, so dC_T/dC_t is the "
    "elementwise product of the later forget gates (forget_gate_product)",
)
def _lstm_module_cell_path() -> Check:
    return lstm_module_cell_path_check()


@derivation(
    "attention matrix form = one query at a time (masks, gradients)",
    topic="sequence",
    closed_form="softmax(Q K^T / sqrt(d) + M) V row l = sum_j softmax_j(q_l . k_j / sqrt(d)) v_j "
    "over the unmasked keys j",
)
def _sdpa_matrix_form() -> Check:
    return sdpa_matrix_form_check()


@derivation(
    "multi-head attention module = per-query, per-head loop (hand-written and SDPA paths)",
    topic="sequence",
    closed_form="MHA(X) = concat_h softmax(X W_Q^h (X W_K^h)^T / sqrt(D/H) + M) X W_V^h W_O, "
    "computed for each query x_i and head h separately",
)
def _multihead_matrix_form() -> Check:
    checks = [multihead_matrix_form_check(use_sdpa) for use_sdpa in (False, True)]
    worst = max(checks, key=lambda c: c.max_abs_error)
    return Check(worst.max_abs_error, worst.tolerance, " | ".join(c.detail for c in checks))
