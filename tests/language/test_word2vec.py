"""deepnotes.language.word2vec: losses against brute force and hand computations, the noise
distribution, subsampling, pairs, purity, analogies and a tiny training run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError, UsageError
from deepnotes.data.parallel import Vocabulary
from deepnotes.language import word2vec as w2v


def _uv(seed: int = 0, vocab: int = 6, dim: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(vocab, dim, generator=g, dtype=torch.float64),
        torch.randn(vocab, dim, generator=g, dtype=torch.float64),
    )


def test_softmax_loss_is_the_brute_force_log_probability() -> None:
    u, v = _uv()
    c, o = torch.tensor([1, 4]), torch.tensor([2, 0])
    brute = 0.0
    for ci, oi in zip(c.tolist(), o.tolist(), strict=True):
        scores = [math.exp(float(u[w] @ v[ci])) for w in range(6)]
        brute -= math.log(scores[oi] / sum(scores))
    assert float(w2v.softmax_loss(u, v, c, o)) == pytest.approx(brute, abs=1e-12)


def test_negative_sampling_loss_by_hand_skips_a_negative_equal_to_the_context() -> None:
    u, v = _uv(1)
    c, o, neg = torch.tensor([3]), torch.tensor([1]), torch.tensor([[2, 1, 5]])

    def sig(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    by_hand = -math.log(sig(float(u[1] @ v[3])))
    by_hand -= math.log(sig(-float(u[2] @ v[3]))) + math.log(sig(-float(u[5] @ v[3])))
    assert float(w2v.negative_sampling_loss(u, v, c, o, neg)) == pytest.approx(by_hand, abs=1e-12)
    positive_only = -math.log(sig(float(u[1] @ v[3])))
    assert float(w2v.negative_sampling_loss(u, v, c, o, None)) == pytest.approx(positive_only)


def test_noise_distribution_is_the_three_quarter_power_and_its_table_samples_it() -> None:
    counts = torch.tensor([0.0, 1.0, 16.0, 81.0])
    p = w2v.noise_distribution(counts)
    expected = torch.tensor([0.0, 1.0, 8.0, 27.0]) / 36.0  # count ** 0.75
    assert torch.allclose(p, expected.double(), atol=1e-12)
    table = w2v.noise_table(p, 36_000)
    share = torch.bincount(table, minlength=4).double() / len(table)
    assert torch.allclose(share, expected.double(), atol=1e-4)
    draws = w2v.draw_negatives(table, 50, 3, torch.Generator().manual_seed(0))
    assert draws.shape == (50, 3) and not bool((draws == 0).any())


def test_discard_probability_is_one_minus_sqrt_t_over_f() -> None:
    counts = torch.tensor([1.0, 9.0, 990.0])  # f = 0.001, 0.009, 0.99
    p = w2v.discard_probability(counts, 1e-3)
    assert p[0] == pytest.approx(0.0, abs=1e-12)
    assert p[1] == pytest.approx(1 - math.sqrt(1e-3 / 0.009))
    assert p[2] == pytest.approx(1 - math.sqrt(1e-3 / 0.99))
    assert bool((w2v.discard_probability(counts, 0.0) == 0).all())


def test_skipgram_pairs_on_a_tiny_sentence() -> None:
    c, o = w2v.skipgram_pairs([[10, 11, 12], [13, 14]], window=1)
    assert sorted(zip(c.tolist(), o.tolist(), strict=True)) == [
        (10, 11),
        (11, 10),
        (11, 12),
        (12, 11),
        (13, 14),
        (14, 13),
    ]
    c2, _ = w2v.skipgram_pairs([[1, 2, 3, 4]], window=2)
    assert len(c2) == 2 * (3 + 2)  # offsets 1 and 2, both directions
    rng = np.random.default_rng(0)
    c3, _ = w2v.skipgram_pairs([[1, 2, 3, 4]] * 50, 2, rng=rng, dynamic_window=True)
    assert 2 * 3 * 50 <= len(c3) < 10 * 50  # some offset-2 pairs dropped


def test_category_purity_on_planted_embeddings() -> None:
    words = [f"{c}{i}" for c in "abc" for i in range(4)]
    vocab = Vocabulary(words)
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3) * 10
    emb = torch.randn(len(vocab), 3, generator=g)
    for w in words:
        emb[vocab.id_of(w)] = centres["abc".index(w[0])] + 0.1 * torch.randn(3, generator=g)
    category_of = {w: w[0] for w in words}
    purity, chance = w2v.category_purity(emb, vocab, category_of, k=3)
    assert purity == 1.0 and chance == pytest.approx(3 / 11)
    shuffled = emb[torch.randperm(len(vocab), generator=g)]
    assert w2v.category_purity(shuffled, vocab, category_of, k=3)[0] < 1.0


def test_nearest_and_analogy_and_their_errors() -> None:
    vocab = Vocabulary(["king", "queen", "man", "woman", "apple"])
    emb = torch.zeros(len(vocab), 3)
    for word, vec in {
        "king": (1, 1, 0),
        "queen": (1, 0, 1),
        "man": (0, 1, 0),
        "woman": (0, 0, 1),
        "apple": (-1, 0.2, 0.1),
    }.items():
        emb[vocab.id_of(word)] = torch.tensor(vec, dtype=torch.float32)
    assert w2v.analogy(emb, vocab, "man", "king", "woman")[0][0] == "queen"
    assert w2v.nearest(emb, vocab, "king", k=1)[0][0] in ("queen", "man")
    with pytest.raises(UsageError, match="'prince'"):
        w2v.analogy(emb, vocab, "man", "prince", "woman")
    with pytest.raises(UsageError, match="V"):
        w2v.nearest(emb[:3], vocab, "king")


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(ConfigError, match="objective"):
        w2v.Word2VecSettings(objective="hierarchical")
    with pytest.raises(ConfigError, match="subsample"):
        w2v.Word2VecSettings(subsample=-1.0)


def test_a_tiny_training_run_learns_two_categories(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    animals, foods = ["cat", "dog", "cow"], ["rice", "bread", "soup"]
    sentences = []
    for _ in range(300):
        a, f = rng.choice(animals), rng.choice(foods)
        sentences += [["the", a, "runs"], ["we", "eat", f]]
    vocab = Vocabulary.build(sentences)
    ids = [vocab.encode(s) for s in sentences]
    ctx = RunContext("t", 0, torch.device("cpu"), tmp_path, show_progress=False)
    settings = w2v.Word2VecSettings(dim=8, epochs=15, batch=256, subsample=0.0)
    emb, history = w2v.train_word2vec(ids, len(vocab), None, settings, ctx, tag="tiny")
    assert emb.shape == (len(vocab), 8) and len(history) == 15
    assert history[-1]["loss"] < history[0]["loss"]
    category_of = {w: "animal" for w in animals} | {w: "food" for w in foods}
    assert w2v.category_purity(emb, vocab, category_of, k=2)[0] == 1.0
    with pytest.raises(UsageError, match="token ids"):
        w2v.train_word2vec([[0, 99]], 5, None, settings, ctx, tag="bad")
