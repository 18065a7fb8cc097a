"""Spectral normalisation against torch.linalg.matrix_norm(ord=2) and torch's parametrization."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

from deepnotes.core.errors import UsageError
from deepnotes.gans.models import StackedLinear
from deepnotes.gans.spectral import SpectralNorm, largest_singular_value, spectral_norm


@pytest.mark.parametrize("shape", [(5, 3), (3, 7), (16, 16), (8, 3, 3, 3)])
def test_largest_singular_value_matches_matrix_norm(shape: tuple[int, ...]) -> None:
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = torch.linalg.matrix_norm(weight.reshape(shape[0], -1), ord=2)
    estimate = largest_singular_value(weight, iters=500)
    torch.testing.assert_close(estimate, exact, rtol=1e-8, atol=0)


def test_transposed_conv_uses_output_channels() -> None:
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(4, 6, 3, 3, generator=g, dtype=torch.float64)
    exact = torch.linalg.matrix_norm(weight.transpose(0, 1).reshape(6, -1), ord=2)
    torch.testing.assert_close(largest_singular_value(weight, iters=500, dim=1), exact)


def _pair(make: type[nn.Module], *args: int) -> tuple[nn.Module, nn.Module]:
    """The same layer twice, one with torch's spectral norm, one with ours, sharing u and v."""
    torch.manual_seed(0)
    theirs = make(*args).double()
    ours = make(*args).double()
    ours.load_state_dict(theirs.state_dict())
    parametrizations.spectral_norm(theirs)
    spectral_norm(ours)
    torch_sn = theirs.parametrizations.weight[0]
    our_sn = ours.parametrizations.weight[0]
    our_sn._u.copy_(torch_sn._u)
    our_sn._v.copy_(torch_sn._v)
    return theirs, ours


@pytest.mark.parametrize(
    ("make", "args", "in_shape"),
    [
        (nn.Linear, (6, 4), (5, 6)),
        (nn.Conv2d, (3, 5, 3), (2, 3, 8, 8)),
        (nn.ConvTranspose2d, (3, 5, 4), (2, 3, 6, 6)),
    ],
)
def test_matches_torch_spectral_norm_with_same_u(
    make: type[nn.Module], args: tuple[int, ...], in_shape: tuple[int, ...]
) -> None:
    """Same u, v: same outputs and weight gradients over several training steps, and in eval."""
    theirs, ours = _pair(make, *args)
    x = torch.randn(in_shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (theirs, ours)]
    for _ in range(4):
        outs = []
        for module, opt in zip((theirs, ours), opts, strict=True):
            opt.zero_grad()
            out = module(x)
            out.pow(2).sum().backward()
            opt.step()
            outs.append(out)
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        ours.parametrizations.weight.original, theirs.parametrizations.weight.original
    )
    theirs.eval()
    ours.eval()
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-10, atol=1e-12)


def test_normalised_weight_has_unit_spectral_norm() -> None:
    torch.manual_seed(2)
    layer = spectral_norm(nn.Linear(20, 30).double())
    with torch.no_grad():
        layer.parametrizations.weight.original.mul_(7)
    for _ in range(50):  # training-mode forwards refine u, v
        layer(torch.zeros(1, 20, dtype=torch.float64))
    sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
    assert abs(sigma.item() - 1) < 1e-6


def test_u_is_updated_in_training_mode_only() -> None:
    torch.manual_seed(3)
    layer = spectral_norm(nn.Linear(4, 6))
    sn = layer.parametrizations.weight[0]
    with torch.no_grad():
        layer.parametrizations.weight.original.add_(torch.randn(6, 4))
    u = sn._u.clone()
    layer.eval()
    layer(torch.zeros(1, 4))
    torch.testing.assert_close(sn._u, u, rtol=0, atol=0)
    layer.train()
    layer(torch.zeros(1, 4))
    assert not torch.equal(sn._u, u)


def test_errors() -> None:
    with pytest.raises(UsageError, match=">= 2 dimensions"):
        largest_singular_value(torch.ones(3))
    with pytest.raises(UsageError, match="n_power_iterations"):
        SpectralNorm(torch.ones(2, 2), n_power_iterations=0)
    with pytest.raises(UsageError, match="no tensor parameter"):
        spectral_norm(nn.ReLU())


def test_stacked_members_are_each_normalised_by_their_own_sigma() -> None:
    """Spectral norm on a stacked layer equals spectral norm on each member alone (same u, v):
    same outputs and weight gradients over training steps; sigma differs per member."""
    torch.manual_seed(0)
    layers = [nn.Linear(6, 4).double() for _ in range(3)]
    with torch.no_grad():
        layers[2].weight.mul_(5.0)  # a member with a larger sigma
    stacked = spectral_norm(StackedLinear.stack(layers))
    alone = [spectral_norm(copy.deepcopy(layer)) for layer in layers]
    batched_sn = stacked.parametrizations.weight[0]
    for k, layer in enumerate(alone):
        layer.parametrizations.weight[0]._u.copy_(batched_sn._u[k])
        layer.parametrizations.weight[0]._v.copy_(batched_sn._v[k])
    x = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (stacked, *alone)]
    for _ in range(3):
        for opt in opts:
            opt.zero_grad()
        out = stacked(x)
        (3 * out.pow(2).mean()).backward()
        outs = []
        for k, layer in enumerate(alone):
            outs.append(layer(x[k]))
            outs[-1].pow(2).mean().backward()
        for opt in opts:
            opt.step()
        torch.testing.assert_close(out, torch.stack(outs), rtol=1e-10, atol=1e-12)
    for k, layer in enumerate(alone):
        torch.testing.assert_close(
            stacked.parametrizations.weight.original[k], layer.parametrizations.weight.original
        )
    stacked.eval()
    sigmas = [torch.linalg.matrix_norm(stacked.weight[k], ord=2).item() for k in range(3)]
    assert all(abs(s - 1) < 0.05 for s in sigmas), sigmas
