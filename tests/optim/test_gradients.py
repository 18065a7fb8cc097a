"""Per-example and minibatch gradients against autograd (notes 3.2), in float64."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.optim.gradients import (
    flat_gradient,
    minibatch_error_moments,
    minibatch_means,
    per_example_gradients,
)


def _problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    torch_state = torch.get_rng_state()
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    torch.set_rng_state(torch_state)
    x = torch.randn(12, 5, dtype=torch.float64, generator=gen)
    y = torch.randint(3, (12,), generator=gen)
    return model, x, y


def test_flat_gradient_is_autograd_of_the_mean_loss_and_leaves_grad_alone() -> None:
    model, x, y = _problem()
    F.cross_entropy(model(x), y).backward()
    expected = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    got = flat_gradient(model, x, y)
    assert got.shape == (sum(p.numel() for p in model.parameters()),)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)
    assert all(p.grad is None for p in model.parameters())


def test_per_example_rows_are_each_examples_gradient_and_average_to_the_full_one() -> None:
    model, x, y = _problem()
    rows = per_example_gradients(model, x, y)
    assert rows.shape == (12, sum(p.numel() for p in model.parameters()))
    for i in (0, 5, 11):
        torch.testing.assert_close(rows[i], flat_gradient(model, x[i : i + 1], y[i : i + 1]))
    # the gradient of a mean loss is the mean of the per-example gradients
    torch.testing.assert_close(rows.mean(0), flat_gradient(model, x, y), rtol=0, atol=1e-14)


def test_minibatch_means_are_the_minibatch_gradients_with_repeated_indices() -> None:
    model, x, y = _problem()
    rows = per_example_gradients(model, x, y)
    idx = torch.tensor([[0, 3, 3, 7], [11, 2, 5, 5]])  # with replacement: repeats count twice
    got = minibatch_means(rows, idx)
    assert got.shape == (2, rows.shape[1])
    for r in range(2):
        torch.testing.assert_close(got[r], flat_gradient(model, x[idx[r]], y[idx[r]]))


def test_minibatch_means_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, P\)"):
        minibatch_means(torch.zeros(3), torch.zeros(2, 2, dtype=torch.long))


def test_error_moments_match_brute_force_enumeration_of_every_minibatch() -> None:
    """Every ordered draw of |B| rows (N^|B| of them) is equally likely with replacement."""
    gen = torch.Generator().manual_seed(3)
    rows = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    deviations = rows - rows.mean(0)
    mean, variance = minibatch_error_moments(deviations, [1, 2, 3])
    for k, b in enumerate((1, 2, 3)):
        draws = torch.tensor(list(itertools.product(range(4), repeat=b)))  # (4^b, b)
        errors = minibatch_means(deviations, draws).pow(2).sum(1)  # ||g_B - g||^2 per draw
        assert mean[k].item() == pytest.approx(errors.mean().item(), rel=1e-12)
        assert variance[k].item() == pytest.approx(errors.var(unbiased=False).item(), rel=1e-10)
