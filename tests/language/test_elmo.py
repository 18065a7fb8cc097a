"""The ELMo-style biLM: shift alignment of both LMs, causality of each direction, padding, the
scalar mix, the loss by hand, and the errors."""

from __future__ import annotations

import pytest
import torch

from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError, UsageError
from deepnotes.data.parallel import Vocabulary
from deepnotes.language.elmo import (
    BiLM,
    BiLMSettings,
    ScalarMix,
    contextual,
    pad_ids,
    reverse_padded,
    train_bilm,
)

SMALL = BiLMSettings(dim=6, hidden=10, layers=2, dropout=0.0, steps=1, every=1)
V = 12


def bilm(settings: BiLMSettings = SMALL, seed: int = 0) -> BiLM:
    with torch.random.fork_rng():  # the global RNG is left as it was
        torch.manual_seed(seed)
        return BiLM(V, settings).double().eval()


def test_reverse_padded_reverses_within_each_length_and_is_an_involution() -> None:
    ids, mask = pad_ids([[4, 5, 6], [7, 8, 9, 10, 11]])
    rev = reverse_padded(ids, mask)
    assert rev.tolist() == [[6, 5, 4, 0, 0], [11, 10, 9, 8, 7]]
    assert torch.equal(reverse_padded(rev, mask), ids)
    x = torch.randn(2, 5, 3)
    assert torch.equal(reverse_padded(reverse_padded(x, mask), mask), x)


def test_the_backward_lm_predicts_the_previous_word(tmp_path) -> None:
    # one sentence, every word unique: each next and previous word is determined
    vocab = Vocabulary(["a", "b", "c", "d", "e"])
    sentence = vocab.encode(["a", "b", "c", "d", "e"], add_sos=True, add_eos=True)
    settings = BiLMSettings(
        dim=8, hidden=8, layers=1, dropout=0.0, lr=0.05, batch=2, steps=120, every=120
    )
    ctx = RunContext("t", 0, torch.device("cpu"), tmp_path, show_progress=False)
    model = train_bilm([sentence], vocab, settings, ctx, tag="bilm")
    ids, mask = pad_ids([sentence])
    forward, backward = model.logits(ids, mask)
    # forward state at t scores the token at t + 1; backward state at t the token at t - 1
    assert forward[0, :-1].argmax(-1).tolist() == sentence[1:]
    assert backward[0, 1:].argmax(-1).tolist() == sentence[:-1]
    with torch.no_grad():
        assert float(model.lm_loss(ids, mask)["loss"]) < 0.1


def test_each_direction_sees_only_its_side() -> None:
    model = bilm()
    ids = torch.tensor([[1, 4, 5, 6, 7, 8, 9, 2]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    k, d = 4, SMALL.dim
    changed = ids.clone()
    changed[0, k] = 10
    a, b = model.layer_states(ids, mask), model.layer_states(changed, mask)  # (L+1, 1, T, 2D)
    diff = (a - b).abs().amax(dim=(0, 1))  # (T, 2D): over layers
    fwd, bwd = diff[:, :d].amax(-1), diff[:, d:].amax(-1)  # (T,)
    assert torch.all(fwd[:k] == 0) and torch.all(fwd[k:] > 1e-6)  # forward: t >= k only
    assert torch.all(bwd[k + 1 :] == 0) and torch.all(bwd[: k + 1] > 1e-6)  # backward: t <= k


def test_padding_does_not_change_the_real_tokens_states() -> None:
    model = bilm()
    short, long = [1, 4, 5, 6, 2], [1, 7, 8, 9, 10, 11, 4, 2]
    alone = model.layer_states(*pad_ids([short]))
    ids, mask = pad_ids([short, long])
    ids[0, len(short) :] = 9  # whatever sits under the padding
    batched = model.layer_states(ids, mask)
    torch.testing.assert_close(batched[:, 0, : len(short)], alone[:, 0], rtol=0, atol=1e-12)
    assert torch.all(batched[:, 0, len(short) :] == 0)


def test_layer_zero_is_the_token_embedding_duplicated() -> None:
    model = bilm()
    ids, mask = pad_ids([[1, 4, 5, 2], [1, 6, 2]])
    both = model.contextual(ids, mask, "both", layer=0)
    assert both.shape == (2, 4, 2 * SMALL.dim)
    assert torch.equal(model.contextual(ids, mask, "forward", 0), both[..., : SMALL.dim])
    torch.testing.assert_close(both[..., : SMALL.dim], both[..., SMALL.dim :])
    torch.testing.assert_close(both[0, :, : SMALL.dim], model.embedding(ids[0]).detach())
    assert contextual(model, ids, mask, "backward").shape == (2, 4, SMALL.dim)


def test_the_scalar_mix_weights_sum_to_one_and_gamma_scales() -> None:
    mix = ScalarMix(3).double()
    with torch.no_grad():
        mix.s.copy_(torch.tensor([0.3, -1.2, 2.0]))
    w = mix.weights
    assert float(w.sum().detach()) == pytest.approx(1.0, abs=1e-12) and torch.all(w > 0)
    layers = torch.randn(3, 2, 5, 4, dtype=torch.float64)
    by_hand = w[0] * layers[0] + w[1] * layers[1] + w[2] * layers[2]
    torch.testing.assert_close(mix(layers), by_hand)
    with torch.no_grad():
        mix.gamma.fill_(2.5)
    torch.testing.assert_close(mix(layers), 2.5 * by_hand)
    mix(layers).sum().backward()
    assert mix.s.grad is not None and mix.gamma.grad is not None
    # the default mix is the mean of the layers
    torch.testing.assert_close(ScalarMix(3).double()(layers), layers.mean(0))


def test_the_loss_equals_a_hand_computation_with_padding() -> None:
    model = bilm()
    ids, mask = pad_ids([[1, 4, 5, 6, 2], [1, 7, 2]])
    forward, backward = model.logits(ids, mask)
    fwd_terms, bwd_terms = [], []
    for b in range(2):
        n = int(mask[b].sum())
        for t in range(n - 1):  # forward: state t -> token t + 1
            fwd_terms.append(-torch.log_softmax(forward[b, t], -1)[ids[b, t + 1]])
        for t in range(1, n):  # backward: state t -> token t - 1
            bwd_terms.append(-torch.log_softmax(backward[b, t], -1)[ids[b, t - 1]])
    assert len(fwd_terms) == len(bwd_terms) == 6
    expected_f, expected_b = torch.stack(fwd_terms).mean(), torch.stack(bwd_terms).mean()
    parts = model.lm_loss(ids, mask)
    torch.testing.assert_close(parts["forward_ce"], expected_f, rtol=0, atol=1e-12)
    torch.testing.assert_close(parts["backward_ce"], expected_b, rtol=0, atol=1e-12)
    torch.testing.assert_close(parts["loss"], expected_f + expected_b, rtol=0, atol=1e-12)


def test_bad_input_is_refused_with_what_was_expected(tmp_path) -> None:
    model = bilm()
    ids, mask = pad_ids([[1, 4, V, 2]])
    with pytest.raises(UsageError, match=rf"0\.\.{V - 1}"):
        model.contextual(ids, mask)
    ids, mask = pad_ids([[1, 4, 5, 2]])
    with pytest.raises(UsageError, match="prefix"):
        model.contextual(ids, torch.tensor([[True, False, True, True]]))
    with pytest.raises(UsageError, match="direction"):
        model.contextual(ids, mask, "sideways")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="layer"):
        model.contextual(ids, mask, layer=3)
    with pytest.raises(ConfigError, match="hidden"):
        BiLMSettings(dim=8, hidden=4)
    ctx = RunContext("t", 0, torch.device("cpu"), tmp_path, show_progress=False)
    vocab = Vocabulary(["a", "b"])
    with pytest.raises(UsageError, match="non-empty"):
        train_bilm([], vocab, SMALL, ctx, tag="x")
    with pytest.raises(UsageError, match=r"0\.\.5"):
        train_bilm([[1, 4, 9, 2]], vocab, SMALL, ctx, tag="x")
