"""deepnotes.language.bert: masking proportions, batches, the model's shapes and errors, and a
pretraining loop that learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepnotes.core.context import RunContext
from deepnotes.core.stats import agreement_bound
from deepnotes.data.language import planted_corpus
from deepnotes.data.parallel import Vocabulary
from deepnotes.language.bert import (
    IGNORE_INDEX,
    Bert,
    BertSettings,
    bert_from_state,
    cls_features,
    encode_single,
    make_pair_batch,
    mask_tokens,
    mean_features,
    sentence_features,
    special_ids,
    train_bert,
)

TINY = BertSettings(d_model=16, num_heads=2, num_layers=1, dim_feedforward=32, dropout=0.0)


@pytest.fixture(scope="module")
def corpus():
    return planted_corpus(60, words_per_category=2, seed=0)


@pytest.fixture(scope="module")
def vocab(corpus) -> Vocabulary:
    return corpus.vocabulary()


def _z(count: float, n: float, p: float) -> float:
    return abs(count - n * p) / (n * p * (1 - p)) ** 0.5


def test_mask_tokens_80_10_10_and_never_specials(vocab: Vocabulary) -> None:
    g = torch.Generator().manual_seed(0)
    words = torch.arange(7, len(vocab))
    ids = words[torch.randint(len(words), (400, 50), generator=g)]
    specials = torch.tensor([vocab.unk_id, *special_ids(vocab).values()])
    ids[:, ::7] = specials[torch.randint(len(specials), (400, 8), generator=g)]
    ids[:, 0] = special_ids(vocab)["cls"]
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[:200, 40:] = False  # padding
    ids[~mask] = vocab.pad_id
    inputs, targets = mask_tokens(ids, mask, vocab, g, 0.15)
    chosen = targets != IGNORE_INDEX
    candidate = mask & torch.isin(ids, words)
    assert not chosen[~candidate].any()  # specials, <unk> and padding are never chosen
    assert torch.equal(inputs[~chosen], ids[~chosen])  # only chosen positions change
    assert torch.equal(targets[chosen], ids[chosen])
    n = int(candidate.sum())
    bound = agreement_bound(4)
    assert _z(chosen.sum().item(), n, 0.15) < bound
    c = int(chosen.sum())
    to_mask = int((inputs[chosen] == special_ids(vocab)["mask"]).sum())
    unchanged = int((inputs[chosen] == ids[chosen]).sum())
    # a random word equals the original with probability 1/|words|: part of "unchanged"
    p_same = 0.1 + 0.1 / len(words)
    assert _z(to_mask, c, 0.8) < bound
    assert _z(unchanged, c, p_same) < bound
    assert _z(c - to_mask - unchanged, c, 0.1 - 0.1 / len(words)) < bound
    assert torch.isin(inputs[chosen], words).sum() == c - to_mask  # random ones are words


def test_salient_masking_raises_the_content_words_rate(vocab: Vocabulary) -> None:
    g = torch.Generator().manual_seed(1)
    words = torch.arange(7, len(vocab))
    ids = words[torch.randint(len(words), (400, 50), generator=g)]
    mask = torch.ones_like(ids, dtype=torch.bool)
    content = words[: len(words) // 2]
    _, targets = mask_tokens(ids, mask, vocab, g, 0.15, content_ids=content, content_p=0.4)
    chosen = targets != IGNORE_INDEX
    is_content = torch.isin(ids, content)
    bound = agreement_bound(2)
    n_c, n_f = int(is_content.sum()), int((~is_content).sum())
    assert _z(chosen[is_content].sum().item(), n_c, 0.4) < bound
    assert _z(chosen[~is_content].sum().item(), n_f, 0.15) < bound
    with pytest.raises(ValueError, match="together"):
        mask_tokens(ids, mask, vocab, g, content_ids=content)
    with pytest.raises(ValueError, match="content_p"):
        mask_tokens(ids, mask, vocab, g, content_ids=content, content_p=1.5)
    with pytest.raises(Exception, match="content_mask_prob"):
        BertSettings(content_mask_prob=0.0)


def test_mask_tokens_rejects_bad_arguments(vocab: Vocabulary) -> None:
    ids = torch.full((2, 3), 8)
    g = torch.Generator()
    with pytest.raises(ValueError, match="p must"):
        mask_tokens(ids, ids > 0, vocab, g, 0.0)
    with pytest.raises(ValueError, match="mask_frac"):
        mask_tokens(ids, ids > 0, vocab, g, mask_frac=0.95, random_frac=0.1)
    with pytest.raises(ValueError, match="BERT tokens"):
        mask_tokens(ids, ids > 0, Vocabulary(["a", "b"]), g)


def test_pair_batch_layout(vocab: Vocabulary) -> None:
    pairs = [(["a", "dog"], ["then", "it", "."]), (["so"], ["later", "the"])]
    ids, segments, mask, labels = make_pair_batch(pairs, vocab, torch.Generator(), 16)
    sp = special_ids(vocab)
    for i, (first, second) in enumerate(pairs):
        a, b = (second, first) if labels[i] else (first, second)
        row = [sp["cls"], *vocab.encode(a), sp["sep"], *vocab.encode(b), sp["sep"]]
        assert ids[i, : len(row)].tolist() == row and not mask[i, len(row) :].any()
        assert segments[i, : len(row)].tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    swaps = make_pair_batch(pairs * 500, vocab, torch.Generator().manual_seed(1), 16)[3]
    assert abs(swaps.float().mean().item() - 0.5) < 0.05  # random order


def test_too_long_inputs_are_refused(vocab: Vocabulary) -> None:
    with pytest.raises(ValueError, match="max_len = 6"):
        make_pair_batch([(["a"] * 3, ["the"] * 2)], vocab, torch.Generator(), 6)
    with pytest.raises(ValueError, match="max_len = 4"):
        encode_single([["a", "dog", "is"]], vocab, 4)
    model = Bert(len(vocab), TINY)
    with pytest.raises(ValueError, match="longer than the model's max_len"):
        model(torch.full((1, TINY.max_len + 1), 8))


def test_model_shapes_padding_and_features(vocab: Vocabulary) -> None:
    torch.manual_seed(0)
    model = Bert(len(vocab), TINY).eval()
    ids, segments, mask = encode_single([["a", "dog", "is"], ["a"]], vocab, 16)
    hidden, weights = model.encode(ids, segments, mask)
    assert hidden.shape == (2, 5, 16) and weights[0].shape == (2, 2, 5, 5)
    assert torch.allclose(weights[0].sum(-1), torch.ones(2, 2, 5))
    assert weights[0][1, :, :, 3:].abs().max() == 0  # no attention to padding
    alone = model(*encode_single([["a"]], vocab, 16))
    assert torch.allclose(hidden[1, :3], alone[0], atol=1e-5)  # padding changes nothing
    assert model.mlm_logits(hidden).shape == (2, 5, len(vocab))
    assert model.order_logits(hidden).shape == (2, 2)
    assert torch.allclose(cls_features(model, ids, segments, mask), hidden[:, 0])
    mean = mean_features(model, ids, segments, mask)
    assert torch.allclose(mean[1], alone[0].mean(0), atol=1e-5)
    feats = sentence_features(model, [["a", "dog", "is"], ["a"]], vocab, "mean")
    assert torch.allclose(feats, mean, atol=1e-6)
    with pytest.raises(ValueError, match="pool"):
        sentence_features(model, [["a"]], vocab, "max")


def test_no_causal_mask_every_token_sees_the_future(vocab: Vocabulary) -> None:
    model = Bert(len(vocab), TINY).eval()
    a = torch.tensor([[4, 8, 9, 10, 5]])
    b = a.clone()
    b[0, 3] = 11
    assert not torch.allclose(model(a)[0, 1], model(b)[0, 1])  # position 1 reads position 3


def test_train_bert_learns_the_order_task(tmp_path: Path, corpus, vocab: Vocabulary) -> None:
    ctx = RunContext("t", 0, torch.device("cpu"), tmp_path, show_progress=False)
    settings = BertSettings(
        d_model=16, num_heads=2, num_layers=1, dim_feedforward=32, dropout=0.0, steps=60,
        batch=16, every=20, lr=3e-3, warmup=5,
    )  # fmt: skip
    fit = train_bert(corpus, vocab, settings, ctx, tag="b")
    assert fit["steps"] == [20, 40, 60]
    assert fit["mlm_loss"][-1] < fit["mlm_loss"][0]
    assert fit["order_acc"][-1] > 0.8  # the first word decides the order
    model = bert_from_state(fit["state"], len(vocab), settings)
    assert not model.training
    assert torch.equal(model.token_embed.weight, fit["state"]["token_embed.weight"])
