"""deepnotes.language.downstream: label budgets, the probe against a separable problem, and the
fine-tuned classifier's plumbing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import RunContext
from deepnotes.data.language import planted_corpus
from deepnotes.language.bert import Bert, BertSettings
from deepnotes.language.downstream import (
    BertClassifier,
    DownstreamSettings,
    fine_tune,
    fit_probe,
    sample_budget,
)


def _ctx(tmp_path: Path) -> RunContext:
    return RunContext("t", 0, torch.device("cpu"), tmp_path, show_progress=False)


def test_sample_budget_draws_per_class_without_replacement() -> None:
    labels = np.repeat([0, 1, 2], [5, 7, 9])
    index = sample_budget(labels, 4, np.random.default_rng(0))
    assert len(index) == len(set(index.tolist())) == 12
    assert np.bincount(labels[index]).tolist() == [4, 4, 4]
    again = sample_budget(labels, 4, np.random.default_rng(0))
    assert np.array_equal(index, again)  # the seed decides
    with pytest.raises(ValueError, match="class 0 has 5"):
        sample_budget(labels, 6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="per_class"):
        sample_budget(labels, 0, np.random.default_rng(0))


def test_probe_separates_separable_features(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 5, generator=g) * 4
    y = torch.arange(3).repeat(40)
    x = centres[y] + torch.randn(120, 5, generator=g)
    settings = DownstreamSettings(probe_steps=60)
    acc = fit_probe(x[:30], y[:30], x[30:], y[30:], _ctx(tmp_path), tag="p", settings=settings)
    assert acc > 0.95
    with pytest.raises(ValueError, match="features"):
        fit_probe(x[:30], y[:30], x[30:, :4], y[30:], _ctx(tmp_path), tag="q", settings=settings)


def test_fine_tune_runs_and_updates_every_weight(tmp_path: Path) -> None:
    corpus = planted_corpus(20, words_per_category=2, seed=0)
    vocab = corpus.vocabulary()
    sentences, topics = corpus.sentences(), torch.tensor(corpus.topics())
    torch.manual_seed(0)
    encoder = Bert(len(vocab), BertSettings(d_model=16, num_heads=2, num_layers=1, dropout=0.0))
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    settings = DownstreamSettings(steps=5, batch=8)
    acc = fine_tune(
        encoder, sentences[:16], topics[:16], sentences[16:], topics[16:], vocab,
        _ctx(tmp_path), tag="f", settings=settings,
    )  # fmt: skip
    assert 0.0 <= acc <= 1.0
    changed = [k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert "token_embed.weight" in changed and "encoder.layers.0.ff.linear1.weight" in changed


def test_classifier_pools_and_rejects_unknown_pool() -> None:
    encoder = Bert(20, BertSettings(d_model=8, num_heads=2, num_layers=1, dropout=0.0)).eval()
    ids = torch.tensor([[4, 8, 9, 5, 0], [4, 10, 5, 0, 0]])
    for pool in ("cls", "mean"):
        assert BertClassifier(encoder, 3, pool)(ids).shape == (2, 3)
    with pytest.raises(ValueError, match="pool"):
        BertClassifier(encoder, 3, "max")
    with pytest.raises(Exception, match="pool"):
        DownstreamSettings(pool="max")
