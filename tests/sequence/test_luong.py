"""Luong attention against hand loops, masks, decoding (greedy = beam 1, beam vs brute force)."""

from __future__ import annotations

import itertools
import math
import time

import pytest
import torch
import torch.nn.functional as F

from deepnotes.sequence.luong import (
    LuongAttention,
    LuongSeq2Seq,
    beam_search,
    greedy_search,
)

PAD, BOS, EOS = 0, 1, 2


def _states(B: int = 2, T: int = 3, S: int = 5, H: int = 4):
    g = torch.Generator().manual_seed(0)
    h_t = torch.randn(B, T, H, dtype=torch.float64, generator=g)
    h_l = torch.randn(B, S, H, dtype=torch.float64, generator=g)
    return h_t, h_l


@pytest.mark.parametrize("score", ["general", "dot", "location"])
def test_scores_context_and_output_against_a_hand_loop(score: str) -> None:
    torch.manual_seed(0)
    B, T, S, H = 2, 3, 5, 4
    attn = LuongAttention(H, score, max_source_len=7).double()
    h_t, h_l = _states(B, T, S, H)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    h_tilde, context, weights = attn(h_t, h_l, mask)
    for b in range(B):
        for t in range(T):
            s = torch.empty(S, dtype=torch.float64)
            for pos in range(S):
                if score == "general":
                    s[pos] = h_l[b, pos] @ attn.W_a @ h_t[b, t]  # h_l^T W_a h_t
                elif score == "dot":
                    s[pos] = h_l[b, pos] @ h_t[b, t]
                else:
                    s[pos] = (attn.W_a @ h_t[b, t])[pos]  # [W_a h_t]_l
            torch.testing.assert_close(attn.scores(h_t, h_l)[b, t], s, atol=1e-12, rtol=0)
            real = mask[b]
            a = torch.zeros(S, dtype=torch.float64)
            a[real] = torch.exp(s[real]) / torch.exp(s[real]).sum()
            c = sum(a[pos] * h_l[b, pos] for pos in range(S))
            ht = torch.tanh(attn.W_f @ torch.cat([h_t[b, t], c]))
            torch.testing.assert_close(weights[b, t], a, atol=1e-12, rtol=0)
            torch.testing.assert_close(context[b, t], c, atol=1e-12, rtol=0)
            torch.testing.assert_close(h_tilde[b, t], ht, atol=1e-12, rtol=0)


@pytest.mark.parametrize("score", ["general", "dot", "location"])
def test_weights_sum_to_one_and_padding_gets_exactly_zero(score: str) -> None:
    attn = LuongAttention(4, score, max_source_len=5).double()
    h_t, h_l = _states()
    mask = torch.tensor([[True, True, False, False, False], [True] * 4 + [False]])
    _, _, weights = attn(h_t, h_l, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, dtype=torch.float64))
    assert torch.all(weights[0, :, 2:] == 0) and torch.all(weights[1, :, 4] == 0)
    assert torch.all(weights[0, :, :2] > 0)
    h_l2 = h_l.clone()
    h_l2[0, 2:] = 100.0 * torch.randn(3, 4, dtype=torch.float64)  # padded content changes
    h_l2[1, 4] = -7.0
    out1, out2 = attn(h_t, h_l, mask), attn(h_t, h_l2, mask)
    for a, b in zip(out1, out2, strict=True):
        assert torch.equal(a, b)


def test_attention_errors_name_expected_and_received() -> None:
    with pytest.raises(ValueError, match=r"one of \('general', 'dot', 'location'\); received 'x'"):
        LuongAttention(4, "x")
    with pytest.raises(ValueError, match="max_source_len >= 1; received None"):
        LuongAttention(4, "location")
    attn = LuongAttention(4, "location", max_source_len=3).double()
    h_t, h_l = _states(S=5)
    with pytest.raises(ValueError, match="at most max_source_len = 3 positions; received 5"):
        attn(h_t, h_l)
    with pytest.raises(ValueError, match=r"src_mask must be a bool \(B, S\) = \(2, 5\)"):
        LuongAttention(4).double()(h_t, h_l, torch.ones(2, 4, dtype=torch.bool))


# --------------------------------------------------------------------------------------------
# the encoder-decoder


def _batch(g: torch.Generator, B: int = 4, S: int = 6, T: int = 5, vocab: int = 9):
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    lengths[0] = S
    src = torch.randint(3, vocab, (B, S), generator=g)
    src[torch.arange(S)[None, :] >= lengths[:, None]] = PAD
    tgt_in = torch.cat(
        [torch.full((B, 1), BOS), torch.randint(3, vocab, (B, T - 1), generator=g)], 1
    )
    return src, tgt_in


@pytest.mark.parametrize("attention", [True, False])
def test_seq2seq_shapes_and_padding_invariance(attention: bool) -> None:
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    model = LuongSeq2Seq(9, 8, embed_dim=6, hidden_size=8, attention=attention).double().eval()
    src, tgt_in = _batch(g, vocab=8)
    logits, weights = model(src, tgt_in)
    assert logits.shape == (4, 5, 8)
    if attention:
        assert weights.shape == (4, 5, 6)
        torch.testing.assert_close(weights.sum(-1), torch.ones(4, 5, dtype=torch.float64))
        assert torch.all(weights.masked_select(~(src != PAD)[:, None, :].expand_as(weights)) == 0)
    else:
        assert weights is None
    # a longer batch with more padding: same outputs for the same real tokens
    src_long = torch.cat([src, torch.full((4, 3), PAD)], dim=1)
    logits2, weights2 = model(src_long, tgt_in)
    torch.testing.assert_close(logits2, logits, atol=1e-12, rtol=0)
    if attention:
        assert torch.all(weights2[..., 6:] == 0)


def test_changing_padded_source_embedding_leaves_outputs_unchanged() -> None:
    """Padding never reaches the encoder's final state nor the attention (packed + masked)."""
    torch.manual_seed(2)
    g = torch.Generator().manual_seed(2)
    model = LuongSeq2Seq(9, 8, embed_dim=6, hidden_size=8).double().eval()
    src, tgt_in = _batch(g, vocab=8)
    before = model(src, tgt_in)
    with torch.no_grad():
        model.src_embed.weight[PAD] = 5.0  # what a padded position would feed, if it leaked
    after = model(src, tgt_in)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b)


def test_teacher_forcing_equals_step_by_step_decoding() -> None:
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(3)
    model = LuongSeq2Seq(9, 8, embed_dim=6, hidden_size=8, num_layers=2).double().eval()
    src, tgt_in = _batch(g, vocab=8)
    logits, weights = model(src, tgt_in)
    state = model.initial_state(model.encode(src))
    for t in range(tgt_in.shape[1]):
        log_probs, state, w = model.step(tgt_in[:, t], state)
        torch.testing.assert_close(log_probs, F.log_softmax(logits[:, t], -1), atol=1e-12, rtol=0)
        torch.testing.assert_close(w, weights[:, t], atol=1e-12, rtol=0)


def test_bad_source_is_rejected() -> None:
    model = LuongSeq2Seq(9, 8, embed_dim=4, hidden_size=4)
    with pytest.raises(ValueError, match="right-padded"):
        model(torch.tensor([[3, 0, 4]]), torch.tensor([[BOS]]))
    with pytest.raises(ValueError, match="right-padded"):
        model(torch.tensor([[0, 0]]), torch.tensor([[BOS]]))
    with pytest.raises(ValueError, match=r"long tensor \(B, S\)"):
        model.encode(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"tgt_in must be \(B, T\) with B = 1"):
        model(torch.tensor([[3, 4]]), torch.tensor([[BOS], [BOS]]))


@pytest.mark.parametrize("attention", [True, False])
def test_beam_one_equals_greedy_and_scores_are_model_log_probs(attention: bool) -> None:
    torch.manual_seed(4)
    g = torch.Generator().manual_seed(4)
    model = LuongSeq2Seq(9, 8, embed_dim=6, hidden_size=8, attention=attention).double().eval()
    src, _ = _batch(g, vocab=8)
    greedy = model.greedy(src, max_len=7)
    beam = model.beam_search(src, beam_size=1, max_len=7)
    assert torch.equal(beam.tokens, greedy.tokens)
    assert torch.equal(beam.lengths, greedy.lengths)
    torch.testing.assert_close(beam.scores, greedy.scores, atol=1e-12, rtol=0)
    if attention:
        torch.testing.assert_close(beam.weights, greedy.weights, atol=1e-12, rtol=0)
    # the score is the teacher-forced log-probability of the emitted tokens
    tgt_in = torch.cat([torch.full((4, 1), BOS), greedy.tokens[:, :-1]], dim=1)
    logits, _ = model(src, tgt_in)
    lp = F.log_softmax(logits, -1).gather(2, greedy.tokens[..., None])[..., 0]  # (B, T)
    counted = torch.arange(greedy.tokens.shape[1])[None, :] < greedy.lengths[:, None]
    torch.testing.assert_close((lp * counted).sum(1), greedy.scores, atol=1e-12, rtol=0)
    wide = model.beam_search(src, beam_size=4, max_len=7)
    assert wide.tokens.shape[0] == 4
    assert (wide.weights is None) == (not attention)


# a hand-made model: next-token log-probabilities from a table indexed by (step, previous token)


def _table_step(table: torch.Tensor):
    """``table (T, V, V)`` of log-probs; the state carries the step counter."""

    def step(prev: torch.Tensor, state: tuple[torch.Tensor, ...]):
        (t,) = state
        return table[t, prev], (t + 1,), None

    return step


def test_beam_finds_the_better_sequence_greedy_misses() -> None:
    # from bos: a (0.6) or b (0.4); after a everything is flat; after b the end is near certain
    V, EOS_, A, B_ = 4, 2, 3, 1  # ids: 0 pad, 1 'b', 2 eos, 3 'a'
    probs = torch.full((3, V, V), 1e-9, dtype=torch.float64)
    probs[0, BOS] = torch.tensor([1e-9, 0.4, 1e-9, 0.6])
    probs[1:, A] = torch.tensor([1e-9, 1 / 3, 1 / 3, 1 / 3])
    probs[1:, B_] = torch.tensor([1e-9, 0.05, 0.9, 0.05])
    table = (probs / probs.sum(-1, keepdim=True)).log()
    state = (torch.zeros(1, dtype=torch.long),)
    greedy = greedy_search(_table_step(table), state, 1, 3, BOS, EOS_, PAD)
    beam = beam_search(_table_step(table), state, 1, 2, 3, BOS, EOS_, PAD)
    assert greedy.tokens[0, 0].item() == A
    assert beam.tokens[0].tolist() == [B_, EOS_]
    assert beam.scores.item() == pytest.approx(math.log(0.4 * 0.9), abs=1e-6)
    assert beam.scores.item() > greedy.scores.item()


def _brute_force(table: torch.Tensor, max_len: int, alpha: float) -> float:
    V = table.shape[-1]
    best = -math.inf
    seen = set()
    for seq in itertools.product(range(V), repeat=max_len):
        cut = seq[: seq.index(EOS) + 1] if EOS in seq else seq
        if cut in seen:
            continue
        seen.add(cut)
        prev, score = BOS, 0.0
        for t, tok in enumerate(cut):
            score += table[t, prev, tok].item()
            prev = tok
        best = max(best, score / len(cut) ** alpha)
    return best


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_an_exhaustive_beam_equals_brute_force(alpha: float) -> None:
    """With as many beams as hypotheses nothing is pruned: beam search is exact search."""
    g = torch.Generator().manual_seed(5)
    V, max_len = 3, 4
    for _ in range(5):
        table = torch.log_softmax(
            2 * torch.randn(max_len, V, V, generator=g, dtype=torch.float64), -1
        )
        state = (torch.zeros(2, dtype=torch.long),)
        out = beam_search(_table_step(table), state, 2, V**max_len, max_len, BOS, EOS, PAD, alpha)
        expected = _brute_force(table, max_len, alpha)
        for b in range(2):
            assert (out.scores[b] / out.lengths[b] ** alpha).item() == pytest.approx(expected)
        assert out.tokens.shape[0] == 2


def test_length_penalty_prefers_the_longer_sequence() -> None:
    V = 4
    probs = torch.full((2, V, V), 1e-9, dtype=torch.float64)
    probs[0, BOS] = torch.tensor([1e-9, 1e-9, 0.5, 0.5])  # end now, or 'a' (3)
    probs[1, 3] = torch.tensor([1e-9, 0.01, 0.99, 1e-9])  # after 'a': end
    table = probs.log()
    state = (torch.zeros(1, dtype=torch.long),)
    raw = beam_search(_table_step(table), state, 1, 2, 2, BOS, EOS, PAD, 0.0)
    norm = beam_search(_table_step(table), state, 1, 2, 2, BOS, EOS, PAD, 1.0)
    assert raw.tokens[0].tolist() == [EOS, PAD]
    assert norm.tokens[0].tolist() == [3, EOS]


def test_decoding_errors() -> None:
    step = _table_step(torch.zeros(2, 3, 3))
    state = (torch.zeros(1, dtype=torch.long),)
    with pytest.raises(ValueError, match="beam_size must be >= 1; received 0"):
        beam_search(step, state, 1, 0, 2, BOS, EOS, PAD)
    with pytest.raises(ValueError, match="max_len must be >= 1; received 0"):
        greedy_search(step, state, 1, 0, BOS, EOS, PAD)


def test_tiny_model_overfits_eight_pairs() -> None:
    """100 steps on 8 pairs (reverse the source) reach ~0 loss; decoding recovers them."""
    torch.manual_seed(6)
    g = torch.Generator().manual_seed(6)
    vocab, n, S = 10, 8, 5
    lengths = torch.randint(2, S + 1, (n,), generator=g)
    src = torch.randint(3, vocab, (n, S), generator=g)
    src[torch.arange(S)[None, :] >= lengths[:, None]] = PAD
    tgt = torch.full((n, S + 1), PAD)
    for i, k in enumerate(lengths.tolist()):
        tgt[i, :k] = src[i, :k].flip(0)
        tgt[i, k] = EOS
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt[:, :-1]], dim=1)
    model = LuongSeq2Seq(vocab, vocab, embed_dim=16, hidden_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    start = time.perf_counter()
    for _ in range(100):
        logits, _ = model(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, vocab), tgt.reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    assert loss.item() < 0.01
    model.eval()
    out = model.greedy(src, max_len=S + 1)
    assert torch.equal(out.tokens, tgt[:, : out.tokens.shape[1]])
    beam = model.beam_search(src, beam_size=3, max_len=S + 1)
    assert torch.equal(beam.tokens, out.tokens)
    assert elapsed < 10.0  # ~1 s on one CPU thread; generous for a loaded machine
