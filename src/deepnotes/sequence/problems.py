r"""The notes' sequence problems, answered by the library's RNN, LSTM and Transformer.

Notes: discussion 6, section 1.3 (the problems "Gradients in Vanilla RNN" and "Coding RNNs Up!")
and section 2 ("Backpropagation Through LSTM"); discussion 7, section 2.3 (the problem "Machine
Translation", questions 1-4). Issue 12, "Problems and derivations".

- **Coding RNNs Up!** The notes' ``VanillaRNN`` (completed in :mod:`deepnotes.mechanics.recurrent`)
  runs on their 3x3 shapes; the PyTorch :class:`~deepnotes.sequence.recurrent.RNN` and
  ``nn.RNN`` with the same weights give the same hidden states.
- **Gradients in Vanilla RNN.** :math:`\partial h_T / \partial h_t = \prod_{s=t+1}^{T}
  \mathrm{diag}(1 - h_s^2) W_{hh}`, measured by autograd against that product, for recurrent
  matrices of spectral radius 0.5, 1 and 2.
- **Backpropagation Through LSTM.** The chain for :math:`\partial J / \partial W^g`, with the
  mechanics derivation re-run from the catalog and the module check of
  :mod:`deepnotes.sequence.derivations`.
- **Machine Translation.** FLOPs of the Transformer's attention sublayers counted with
  ``torch.utils.flop_counter.FlopCounterMode`` over several lengths and widths, exponents fitted
  in log-log; encoder outputs unchanged by decoding; permutation equivariance without positional
  encoding; two hand-set heads attending to two different structures.

Only the dimensions, lengths and seeds chosen here are literals; every number shown is
computed by the library. FLOP counts follow ``FlopCounterMode``: a product of an ``(a, b)`` and
a ``(b, c)`` matrix costs ``2 a b c``; biases, softmax and LayerNorm are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from deepnotes.core.catalog import Answer, derivations, problem
from deepnotes.core.seeding import seeded
from deepnotes.mechanics.recurrent import VanillaRNN
from deepnotes.sequence.attention import MultiHeadAttention, causal_mask
from deepnotes.sequence.complexity import flop_counts, power_law_exponent, sublayer_flops
from deepnotes.sequence.derivations import (
    lstm_module_cell_path_check,
    lstm_module_weight_gradient_check,
)
from deepnotes.sequence.recurrent import RNN, RNNCell, unroll
from deepnotes.sequence.transformer import Transformer, TransformerEncoder

SEED = 0
# Coding RNNs Up!: the notes' sizes D = H = M = 3, a short sequence
RNN_STEPS = 4
# Gradients in Vanilla RNN
GRADIENT_RADII = (0.5, 1.0, 2.0)
GRADIENT_HIDDEN, GRADIENT_STEPS = 8, 25
GRADIENT_FIT_FROM = 5  # fit the per-step rate on lags >= this (past the transient)
GRADIENT_LAGS_SHOWN = (1, 5, 10, 20)
DRIVEN_INPUT_SCALE = 0.1
# Machine Translation: the grid of lengths and widths the FLOPs are counted on
LENGTHS = (8, 16, 32, 64)
FIXED_LENGTH = 8
WIDTHS = (16, 32, 64)
FIXED_WIDTH = 16
HEADS = 2
VOCAB = 16
SECOND_DIFFERENCE_LENGTHS = (8, 16, 24, 32)
PERMUTATION_LENGTH = 6
# Multi-head attention: two hand-set heads on one-hot positions
STRUCTURE_LENGTH = 4
STRUCTURE_GAIN = 5.0


# --------------------------------------------------------------------------------------------
# discussion 6: RNNs


@problem(
    "Coding RNNs Up!",
    topic="sequence",
    source="discussion 6, section 1.3, 'Coding RNNs Up!'",
)
def _coding_rnns() -> Answer:
    rnn = VanillaRNN(rng=SEED)  # D = H = M = 3, standard-normal weights
    x = np.random.default_rng(SEED + 1).normal(size=(RNN_STEPS, 3))  # (T, D)
    outputs, hidden = [], []
    for x_t in x:
        outputs.append(rnn.step(x_t))  # y_t = W_hy h_t + B_y
        hidden.append(rnn.hidden_state.copy())  # h_t = tanh(W_hh h_{t-1} + W_xh x_t + B_h)
    hs, ys = np.stack(hidden), np.stack(outputs)  # (T, H), (T, M)

    with seeded(SEED):  # the modules' own init draws are overwritten below
        ours = RNN(3, 3).double()
        theirs = nn.RNN(3, 3, batch_first=True, dtype=torch.float64)
    cell = ours.cells[0]
    with torch.no_grad():
        cell.W_xh.copy_(torch.from_numpy(rnn.W_xh))
        cell.W_hh.copy_(torch.from_numpy(rnn.W_hh))
        cell.B_h.copy_(torch.from_numpy(rnn.Bh))
        theirs.weight_ih_l0.copy_(cell.W_xh)
        theirs.weight_hh_l0.copy_(cell.W_hh)
        theirs.bias_ih_l0.copy_(cell.B_h)
        theirs.bias_hh_l0.zero_()
        seq = torch.from_numpy(x)[None]  # (1, T, D)
        hs_ours = ours(seq)[0][0].numpy()  # (T, H)
        hs_theirs = theirs(seq)[0][0].numpy()
    batch_hs, _ = rnn.forward(x[None])  # the batched NumPy pass, (1, T, H)
    return Answer(
        [
            (
                "completed step",
                "self.hidden_state = np.tanh(W_hh @ h + W_xh @ x + Bh); "
                "return W_hy @ self.hidden_state + By",
            ),
            ("D, H, M", [rnn.W_xh.shape[1], rnn.W_hh.shape[0], rnn.W_hy.shape[0]]),
            ("inputs x_1..x_T (T, D)", x),
            ("hidden states h_1..h_T (T, H)", hs),
            ("outputs y_1..y_T (T, M)", ys),
            ("max |step loop - batched rnn_forward|", float(np.max(np.abs(hs - batch_hs[0])))),
            (
                "max |VanillaRNN - sequence.recurrent.RNN| (hidden states)",
                float(np.max(np.abs(hs - hs_ours))),
            ),
            (
                "max |VanillaRNN - torch.nn.RNN| (hidden states)",
                float(np.max(np.abs(hs - hs_theirs))),
            ),
            (
                "max |y_t - (W_hy h_t + B_y) from the RNN module|",
                float(np.max(np.abs(ys - rnn.output(hs_ours)))),
            ),
        ],
        note=f"VanillaRNN(rng={SEED}).step over {RNN_STEPS} Gaussian inputs; the same weights "
        "copied into sequence.recurrent.RNN and nn.RNN (weight_ih = W_xh, weight_hh = W_hh, "
        "bias_ih = B_h, bias_hh = 0), float64.",
    )


def _recurrent_jacobians(rho: float, input_scale: float) -> tuple[np.ndarray, float]:
    """Norms ``||dh_T/dh_{T-lag}||_2`` for lag ``0..T-1`` by autograd, and the largest relative
    gap to the closed-form product ``prod_s diag(1 - h_s^2) W_hh``."""
    g = torch.Generator().manual_seed(SEED)
    hidden, steps = GRADIENT_HIDDEN, GRADIENT_STEPS
    w0 = torch.randn(hidden, hidden, generator=g, dtype=torch.float64)
    radius = torch.linalg.eigvals(w0).abs().max()
    with seeded(SEED):
        cell = RNNCell(3, hidden).double()
    with torch.no_grad():
        cell.W_hh.copy_(rho * w0 / radius)  # spectral radius rho
        cell.B_h.zero_()
    x = input_scale * torch.randn(1, steps, 3, generator=g, dtype=torch.float64)
    hs = unroll(cell, x)  # h_1 .. h_T, each (1, H), in the graph
    rows = [torch.autograd.grad(hs[-1][0, j], hs, retain_graph=True) for j in range(hidden)]
    auto = [torch.stack([row[t][0] for row in rows]) for t in range(steps)]  # dh_T/dh_t (H, H)
    closed, gap = torch.eye(hidden, dtype=torch.float64), 0.0
    norms = np.empty(steps)
    with torch.no_grad():
        for lag in range(steps):
            t = steps - 1 - lag
            if lag:  # dh_T/dh_t = dh_T/dh_{t+1} diag(1 - h_{t+1}^2) W_hh
                closed = closed @ torch.diag(1 - hs[t + 1][0] ** 2) @ cell.W_hh
            norms[lag] = torch.linalg.matrix_norm(auto[t], ord=2).item()
            gap = max(gap, ((closed - auto[t]).abs().max() / auto[t].abs().max()).item())
    return norms, gap


def _rate_per_step(norms: np.ndarray) -> float:
    """``exp`` of the log-log slope of the norms over lags ``>= GRADIENT_FIT_FROM``."""
    lags = np.arange(len(norms))
    keep = lags >= GRADIENT_FIT_FROM
    return float(np.exp(np.polyfit(lags[keep], np.log(norms[keep]), 1)[0]))


@problem(
    "Gradients in Vanilla RNN",
    topic="sequence",
    source="discussion 6, section 1.3, 'Gradients in Vanilla RNN'",
)
def _rnn_gradients() -> Answer:
    rows, driven, gaps = [], [], []
    for rho in GRADIENT_RADII:
        norms, gap = _recurrent_jacobians(rho, 0.0)
        rows.append([rho, _rate_per_step(norms), *(norms[lag] for lag in GRADIENT_LAGS_SHOWN)])
        norms_driven, gap_driven = _recurrent_jacobians(rho, DRIVEN_INPUT_SCALE)
        driven.append([rho, *(norms_driven[lag] for lag in GRADIENT_LAGS_SHOWN)])
        gaps += [gap, gap_driven]
    lags = list(GRADIENT_LAGS_SHOWN)
    return Answer(
        [
            (
                "why",
                "dh_T/dh_t = prod_{s=t+1}^T diag(1 - h_s^2) W_hh: a product of T - t "
                "Jacobians, so its norm shrinks or grows geometrically with the lag (like "
                "rho(W_hh)^lag near h = 0); vanishing: the loss at T cannot train on inputs far "
                "back (long-range dependencies are not learned); exploding: huge, unstable steps "
                "(NaN, divergence) unless gradients are clipped",
            ),
            (
                f"x = 0 (h stays 0, each Jacobian = W_hh): [rho, fitted factor per step, "
                f"||dh_T/dh_(T-lag)|| for lag in {lags}]",
                rows,
            ),
            (
                f"inputs ~ N(0, {DRIVEN_INPUT_SCALE}^2): [rho, ||dh_T/dh_(T-lag)|| for lag in "
                f"{lags}]",
                driven,
            ),
            ("max relative |closed-form product - autograd|", max(gaps)),
        ],
        note=f"RNNCell (H={GRADIENT_HIDDEN}, T={GRADIENT_STEPS}) with W_hh a Gaussian matrix "
        "rescaled to spectral radius rho; dh_T/dh_t by autograd through unroll (one backward "
        "pass per unit of h_T), 2-norms, per-step factor = exp(slope of log norm vs lag) over "
        f"lags >= {GRADIENT_FIT_FROM}. With inputs the states saturate for rho = 2 and the "
        "factors diag(1 - h^2) < 1 pull the product down: the norms stop growing geometrically "
        "and wander instead, while rho = 0.5 still vanishes.",
    )


@problem(
    "Backpropagation Through LSTM",
    topic="sequence",
    source="discussion 6, section 2, 'Backpropagation Through LSTM' and 'Vanishing Gradient "
    "in LSTMs'",
)
def _lstm_backprop() -> Answer:
    (mechanics,) = [
        d for d in derivations(["mechanics"]) if d.name == "LSTM dJ/dW^g through time (all gates)"
    ]
    mechanics_check = mechanics.fn()
    module_check = lstm_module_weight_gradient_check()
    cell_check = lstm_module_cell_path_check()
    return Answer(
        [
            ("dJ/dW^g", "sum_t dJ/dh_t dh_t/dW^g"),
            (
                "dh_t/dW^g",
                "dh_t/dC_t dC_t/dW^g + dh_t/dh_{t-1} dh_{t-1}/dW^g, with "
                "dh_t/dC_t = o_t * (1 - tanh^2 C_t)  (dh_t/do_t = tanh C_t feeds the o-gate path)",
            ),
            (
                "dC_t/dW^g",
                "direct term i_t * (1 - C~_t^2) h_{t-1}^T + dC_t/dC_{t-1} dC_{t-1}/dW^g "
                "(+ the path through h_{t-1} into every gate)",
            ),
            ("dC_t/dC_{t-1} (h_{t-1} held fixed)", "diag(f_t)"),
            (
                "vanishing gradient in LSTMs",
                "the term dC_t/dC_{t-1} = f_t: no weight matrix and "
                "no squashing on the memory path, so dC_T/dC_t = prod f_s stays near 1 while the "
                "forget gates stay open",
            ),
            (
                f"mechanics derivation '{mechanics.name}': max |closed form - autograd|",
                mechanics_check.max_abs_error,
            ),
            (
                "sequence.recurrent.LSTM: max |autograd dJ/dW^g (and all weights) - NumPy BPTT|",
                module_check.max_abs_error,
            ),
            (
                "sequence.recurrent.LSTM: max |prod f_s - autograd dC_T/dC_t|",
                cell_check.max_abs_error,
            ),
        ],
        note="the mechanics derivation is looked up in the catalog by name and re-run; the "
        "module checks are those of sequence.derivations (float64).",
    )


# --------------------------------------------------------------------------------------------
# discussion 7: machine translation (FLOP counting helpers)


def _translator(width: int, max_len: int = 128) -> Transformer:
    """A one-layer encoder-decoder :class:`Transformer` in float64, evaluation mode."""
    with seeded(SEED):
        return (
            Transformer(
                VOCAB,
                VOCAB,
                d_model=width,
                num_heads=HEADS,
                num_encoder_layers=1,
                num_decoder_layers=1,
                dropout=0.0,
                max_len=max_len,
                pad_id=None,
            )
            .double()
            .eval()
        )


def _sublayers(model: Transformer, m: int, n: int) -> dict[str, tuple[int, int]]:
    """``(attention products, projections)`` FLOPs of each attention sublayer of ``model`` for
    one sentence of source length ``m`` (``M``) and target length ``n`` (``N``), each counted
    on the model's own :class:`MultiHeadAttention` modules by
    :func:`~deepnotes.sequence.complexity.sublayer_flops`."""
    width = model.d_model
    g = torch.Generator().manual_seed(SEED)
    src = torch.randn(1, m, width, generator=g, dtype=torch.float64)  # (1, M, k)
    tgt = torch.randn(1, n, width, generator=g, dtype=torch.float64)  # (1, N, k)
    enc, dec = model.encoder.layers[0], model.decoder.layers[0]
    counts = {
        "encoder self-attention": sublayer_flops(enc.self_attn, src),
        "decoder self-attention": sublayer_flops(dec.self_attn, tgt, attn_mask=causal_mask(n)),
        "decoder-encoder attention": sublayer_flops(dec.cross_attn, tgt, memory=src),
    }
    return {name: (c.attention, c.projections) for name, c in counts.items()}


def _slope(xs: Sequence[int], ys: Sequence[int]) -> float:
    """:func:`~deepnotes.sequence.complexity.power_law_exponent`, shown to 6 decimals."""
    return round(power_law_exponent(xs, ys), 6) + 0.0  # + 0.0: show -1e-16 as 0, not -0


def _tokens(generator: torch.Generator, length: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length), generator=generator)  # (1, L) ids


@problem(
    "Machine Translation",
    topic="sequence",
    source="discussion 7, section 2.3, 'Machine Translation' (questions 1-4)",
)
def _machine_translation() -> Answer:
    names = ("encoder self-attention", "decoder self-attention", "decoder-encoder attention")
    model = _translator(FIXED_WIDTH)
    over_m = [_sublayers(model, m, FIXED_LENGTH) for m in LENGTHS]
    over_n = [_sublayers(model, FIXED_LENGTH, n) for n in LENGTHS]
    over_k = [_sublayers(_translator(k), FIXED_WIDTH, FIXED_WIDTH) for k in WIDTHS]
    exponents = []
    for name in names:
        exponents.append(
            [
                name,
                _slope(LENGTHS, [f[name][0] for f in over_m]),
                _slope(LENGTHS, [f[name][0] for f in over_n]),
                _slope(WIDTHS, [f[name][0] for f in over_k]),
                _slope(WIDTHS, [f[name][1] for f in over_k]),
            ]
        )
    # the sublayers' score FLOPs against the whole model's, for one (M, N)
    g = torch.Generator().manual_seed(SEED)
    src, tgt1, tgt2 = _tokens(g, 12), _tokens(g, 7), _tokens(g, 7)
    parts = _sublayers(model, 12, 7)
    with torch.no_grad():
        whole_core = flop_counts(lambda: model(src, tgt1)).get("bmm", 0)

        # Q4: encode once, decode twice
        memory = model.encode(src)
        before = memory.clone()
        full = flop_counts(lambda: model.decode(tgt1, model.encode(src)))
        encoder_only = flop_counts(lambda: model.encode(src))
        second = flop_counts(lambda: model.decode(tgt2, memory))
        model.decode(tgt1, memory)
        with seeded(SEED + 1):  # a different decoder (another target language)
            for p in model.decoder.parameters():
                nn.init.normal_(p)
        again = model.encode(src)
    unchanged = bool(torch.equal(before, memory) and torch.equal(before, again))
    memory_grad = model.encode(src)
    decoder_grads = torch.autograd.grad(
        memory_grad.sum(), list(model.decoder.parameters()), allow_unused=True
    )
    decoder_total = sum(second.values())
    extra_over_m = [
        sum(flop_counts(lambda m=m: _decode_only(model, m)).values())
        for m in SECOND_DIFFERENCE_LENGTHS
    ]
    encoder_over_m = [
        sum(flop_counts(lambda m=m: _encode_only(model, m)).values())
        for m in SECOND_DIFFERENCE_LENGTHS
    ]

    # Q1: no positional encoding -> permutation-equivariant encoder
    equivariance, with_pe = _permutation_gaps()
    # Q2: two heads, two structures
    heads_argmax = _two_head_structures()
    return Answer(
        [
            (
                "1. positional encoding",
                "attention and the position-wise FFN treat the input as a "
                "set: without positions, permuting the source only permutes the encoder output, so "
                "word order is lost; fix: add PE(pos) to the embeddings, sinusoidal "
                "sin/cos(pos / 10000^(2i/D)) or a learned table",
            ),
            (
                f"1. max |enc(P x) - P enc(x)|, no positional encoding (L={PERMUTATION_LENGTH})",
                equivariance,
            ),
            ("1. the same with sinusoidal positional encoding", with_pe),
            (
                "2. multi-head attention",
                "H softmaxes per query instead of one: each head, in its "
                "own D/H-dim subspace, can attend to a different position or relation (previous "
                "token, first token / delimiter, syntactic head, coreferent) at the same layer",
            ),
            (
                f"2. hand-set heads on one-hot positions (L={STRUCTURE_LENGTH}): argmax key per "
                "query, [head 1 (previous token), head 2 (first token)]",
                heads_argmax,
            ),
            (
                "3. complexities",
                "encoder self-attention O(M^2 k), decoder self-attention "
                "O(N^2 k), decoder-encoder attention O(M N k); the Q, K, V, output projections add "
                "O(M k^2), O(N k^2), O((M + N) k^2)",
            ),
            (
                "3. fitted exponents of the score FLOPs (Q K^T, P V): [sublayer, in M "
                f"(N={FIXED_LENGTH}), in N (M={FIXED_LENGTH}), in k (M=N={FIXED_WIDTH}), "
                "projections in k]",
                exponents,
            ),
            (
                "3. [sublayer, score FLOPs, 4 B L_q L_k k] at M=12, N=7, k=16",
                [
                    [name, parts[name][0], 4 * lq * lk * FIXED_WIDTH]
                    for name, (lq, lk) in zip(names, ((12, 12), (7, 7), (7, 12)), strict=True)
                ],
            ),
            (
                "3. whole Transformer's score FLOPs = sum of the three sublayers'",
                [whole_core, sum(parts[name][0] for name in names)],
            ),
            ("4. encoder output bitwise unchanged by two decodes and a new decoder", unchanged),
            (
                "4. decoder parameters the encoder output depends on",
                sum(grad is not None for grad in decoder_grads),
            ),
            (
                "4. FLOPs: [full translation, encoder alone, second translation (decoder alone)]",
                [sum(full.values()), sum(encoder_only.values()), decoder_total],
            ),
            (
                "4. second translation = full - encoder",
                decoder_total == sum(full.values()) - sum(encoder_only.values()),
            ),
            (
                f"4. second differences over M = {list(SECOND_DIFFERENCE_LENGTHS)} (N=8): "
                "[decoder alone, encoder]",
                [np.diff(extra_over_m, 2).tolist(), np.diff(encoder_over_m, 2).tolist()],
            ),
            (
                "4. answer",
                "no: the encoder reads only the source, so it runs once and its output "
                "is reused; a translation into another target language costs only that decoder, "
                "O(N^2 k + M N k + (M + N) k^2) (linear in M: no M^2 term), not the encoder's "
                "O(M^2 k + M k^2)",
            ),
        ],
        note="FLOPs counted with torch.utils.flop_counter.FlopCounterMode (2 per multiply-add) on "
        f"a one-layer Transformer ({HEADS} heads, float64, eval) through its own attention "
        f"modules; exponents from log-log least squares over M, N in {list(LENGTHS)} and k in "
        f"{list(WIDTHS)}. The causal mask does not save score FLOPs (masked entries are computed, "
        "then set to -inf).",
    )


def _decode_only(model: Transformer, m: int) -> None:
    """Decode a length-``FIXED_LENGTH`` target against a source-length-``m`` memory."""
    g = torch.Generator().manual_seed(SEED)
    memory = torch.randn(1, m, model.d_model, generator=g, dtype=torch.float64)
    with torch.no_grad():
        model.decode(_tokens(g, FIXED_LENGTH), memory)


def _encode_only(model: Transformer, m: int) -> None:
    """Encode a length-``m`` source."""
    with torch.no_grad():
        model.encode(_tokens(torch.Generator().manual_seed(SEED), m))


def _permutation_gaps() -> tuple[float, float]:
    """``max |enc(P x) - P enc(x)|`` for an encoder stack on raw embeddings (no positions) and
    for a Transformer's ``encode`` with sinusoidal positions."""
    g = torch.Generator().manual_seed(SEED)
    perm = torch.randperm(PERMUTATION_LENGTH, generator=g)
    x = torch.randn(1, PERMUTATION_LENGTH, FIXED_WIDTH, generator=g, dtype=torch.float64)
    with seeded(SEED):
        encoder = TransformerEncoder(
            1, d_model=FIXED_WIDTH, num_heads=HEADS, dim_feedforward=32, dropout=0.0
        )
    encoder = encoder.double().eval()
    model = _translator(FIXED_WIDTH)
    ids = _tokens(g, PERMUTATION_LENGTH)
    with torch.no_grad():
        plain = (encoder(x[:, perm])[0] - encoder(x)[0][:, perm]).abs().max().item()
        positional = (model.encode(ids[:, perm]) - model.encode(ids)[:, perm]).abs().max().item()
    return plain, positional


def _two_head_structures() -> list[list[int]]:
    """Argmax key of every query for two hand-set heads of one :class:`MultiHeadAttention`.

    Inputs are one-hot positions ``x_i = e_i`` (``D = L = 4``, head width 2). Head 1: ``q_i``
    and ``k_j`` at angles ``pi i / L`` and ``pi (j + 1) / L``, so ``q_i . k_j`` peaks at
    ``j = i - 1`` (the previous token). Head 2: every query ``(c, 0)``, only ``k_0 = (c, 0)``
    (the first token).
    """
    size, c = STRUCTURE_LENGTH, STRUCTURE_GAIN
    angle = math.pi * torch.arange(size + 1, dtype=torch.float64) / size
    queries = torch.zeros(size, size, dtype=torch.float64)  # row i: q_i (head 1 | head 2)
    keys = torch.zeros(size, size, dtype=torch.float64)
    queries[:, 0], queries[:, 1] = c * angle[:size].cos(), c * angle[:size].sin()
    keys[:, 0], keys[:, 1] = c * angle[1:].cos(), c * angle[1:].sin()
    queries[:, 2] = c
    keys[0, 2] = c
    with seeded(SEED):  # the init is overwritten below
        mha = MultiHeadAttention(size, 2, bias=False).double()
    eye = torch.eye(size, dtype=torch.float64)
    with torch.no_grad():  # W_Q x_i = q_i, W_K x_j = k_j, W_V = W_O = I
        mha.in_proj.weight.copy_(torch.cat([queries.T, keys.T, eye]))
        mha.out_proj.weight.copy_(eye)
        _, weights = mha(eye[None], eye[None], eye[None])  # (1, 2, L, L)
    return weights[0].argmax(dim=-1).tolist()
