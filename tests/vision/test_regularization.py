"""The project's inverted dropout (torch) against the notes' formula ``U = (rand < p) / p``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnotes.mechanics.normalization import dropout_forward
from deepnotes.vision.regularization import (
    DropoutMLP,
    InvertedDropout,
    dropout_mask,
    inverted_dropout,
)


def test_mask_is_the_notes_formula_on_the_same_uniforms() -> None:
    h = torch.randn(4, 7, dtype=torch.float64)
    mask = dropout_mask(h, 0.3, torch.Generator().manual_seed(5))
    u = torch.rand(h.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = (u < 0.3).double() / 0.3  # the notes: U = (rand < p) / p
    assert torch.equal(mask, expected)
    out = inverted_dropout(h, 0.3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out, h * expected)  # H *= U


def test_mask_values_and_keep_rate() -> None:
    h = torch.ones(200, 500)
    mask = dropout_mask(h, 0.8, torch.Generator().manual_seed(0))
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / 0.8)]
    kept = (mask != 0).double().mean().item()
    se = (0.8 * 0.2 / h.numel()) ** 0.5
    assert abs(kept - 0.8) < 4 * se


def test_expected_activation_is_kept_like_the_numpy_version() -> None:
    # the same statistics as mechanics' NumPy dropout: the mean over many masks is h
    h = torch.rand(3, 5, dtype=torch.float64) + 0.5
    gen = torch.Generator().manual_seed(1)
    draws = torch.stack([inverted_dropout(h, 0.5, generator=gen) for _ in range(4000)])
    se = (h**2 * (1 - 0.5) / (0.5 * 4000)).sqrt()
    assert ((draws.mean(0) - h).abs() / se).max() < 4.5
    rng = np.random.default_rng(1)
    numpy_draws = np.stack([dropout_forward(h.numpy(), 0.5, rng)[0] for _ in range(4000)])
    assert np.abs((numpy_draws.mean(0) - h.numpy()) / se.numpy()).max() < 4.5


def test_identity_at_test_time_and_with_p_one() -> None:
    h = torch.randn(8, 6)
    layer = InvertedDropout(0.5).eval()
    assert layer(h) is h
    assert inverted_dropout(h, 1.0) is h
    assert "p_keep=0.5" in repr(layer)


def test_gradient_flows_through_the_same_mask() -> None:
    h = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    out = inverted_dropout(h, 0.6, generator=torch.Generator().manual_seed(3))
    out.sum().backward()
    mask = dropout_mask(h.detach(), 0.6, torch.Generator().manual_seed(3))
    assert torch.equal(h.grad, mask)  # dL/dH = dL/dout * U


@pytest.mark.parametrize("p_keep", [0.0, -0.1, 1.5])
def test_bad_keep_probabilities_are_rejected(p_keep: float) -> None:
    with pytest.raises(ValueError, match="p_keep"):
        InvertedDropout(p_keep)


def test_mlp_with_and_without_dropout_share_weights_from_one_seed() -> None:
    torch.manual_seed(0)
    plain = DropoutMLP(64, (32, 16), 10)
    torch.manual_seed(0)
    dropped = DropoutMLP(64, (32, 16), 10, p_keep=0.5)
    for a, b in zip(plain.state_dict().values(), dropped.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert plain.dropout_layers == [] and len(dropped.dropout_layers) == 2
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(plain.eval()(x), dropped.eval()(x))  # eval: the same function
    dropped.train()
    assert not torch.equal(dropped(x), plain(x))
    assert not any(isinstance(m, torch.nn.Dropout) for m in dropped.modules())
    with pytest.raises(ValueError, match="sizes"):
        DropoutMLP(64, (0,), 10)
