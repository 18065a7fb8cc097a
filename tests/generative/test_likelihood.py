"""Nats per image, bits per dimension and the independent-Bernoulli baseline."""

from __future__ import annotations

import math

import pytest
import torch

from deepnotes.core.errors import DataFormatError
from deepnotes.generative.likelihood import IndependentBernoulli, bernoulli_nll, bits_per_dim


def test_bernoulli_nll_is_the_sum_of_pixel_log_probabilities() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 2, 2, generator=g, dtype=torch.float64)
    x = torch.bernoulli(torch.full((3, 1, 2, 2), 0.5, dtype=torch.float64), generator=g)
    p = torch.sigmoid(logits)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    assert torch.allclose(bernoulli_nll(logits, x), expected, atol=1e-12)
    with pytest.raises(ValueError, match="must match"):
        bernoulli_nll(logits, x[:2])


def test_bits_per_dim_converts_nats() -> None:
    assert bits_per_dim(64 * math.log(2.0), 64) == pytest.approx(1.0)


def test_independent_bernoulli_uses_smoothed_frequencies() -> None:
    train = torch.tensor([[[[1.0, 0.0]]], [[[1.0, 0.0]]], [[[1.0, 1.0]]]])  # (3, 1, 1, 2)
    base = IndependentBernoulli(train)
    assert torch.allclose(base.p, torch.tensor([[[4 / 5, 2 / 5]]]))
    x = torch.tensor([[[[1.0, 1.0]]]])
    assert base.nll(x).item() == pytest.approx(-math.log(4 / 5) - math.log(2 / 5))
    sample = base.sample(1000, torch.Generator().manual_seed(0))
    assert sample.shape == (1000, 1, 1, 2) and abs(sample[:, 0, 0, 0].mean() - 0.8) < 0.05
    with pytest.raises(DataFormatError, match="0 or 1"):
        base.nll(torch.full((1, 1, 1, 2), 0.3))
