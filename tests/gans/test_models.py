"""gans.models: output shapes and ranges, transposed-convolution arithmetic, spectral
normalisation of the critic, and clear errors for shapes that do not fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepnotes.core.errors import ConfigError
from deepnotes.gans.models import (
    ConvCritic,
    ConvGenerator,
    MLPCritic,
    MLPGenerator,
    StackedLinear,
    check_generator,
    stack_mlps,
    unstack_mlp,
)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 16, 16)])
def test_conv_generator_makes_images_in_unit_range(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    g = ConvGenerator(latent=5, width=4, image_shape=shape)
    with torch.no_grad():
        x = g(torch.randn(3, 5) * 10)  # large codes: the sigmoid still bounds the pixels
    assert x.shape == (3, *shape)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    check_generator(g, shape)


def test_each_transposed_convolution_doubles_the_side() -> None:
    g = ConvGenerator(latent=2, width=3, image_shape=(1, 8, 8), batchnorm=False)
    h = g.project(torch.zeros(1, 2)).view(1, *g.start)
    sides = [h.shape[-1]]
    for layer in g.upsample:
        h = layer(h)
        if isinstance(layer, torch.nn.ConvTranspose2d):
            sides.append(h.shape[-1])
    assert sides == [2, 4, 8]


def test_batchnorm_switch() -> None:
    with_bn = ConvGenerator(batchnorm=True)
    without = ConvGenerator(batchnorm=False)
    count = lambda m: sum(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in m.modules())  # noqa: E731
    assert count(with_bn) == 2 and count(without) == 0


def test_conv_critic_scores_one_value_per_image_and_gradients_reach_the_input() -> None:
    d = ConvCritic(width=4, image_shape=(1, 8, 8))
    x = torch.rand(5, 1, 8, 8, requires_grad=True)
    out = d(x)
    assert out.shape == (5,)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.abs().sum() > 0


def test_spectral_critic_layers_have_unit_largest_singular_value() -> None:
    torch.manual_seed(0)
    d = ConvCritic(width=4, spectral=True)
    d.train()
    for _ in range(50):  # power iterations run in training-mode forwards
        d(torch.rand(2, 1, 8, 8))
    layers = [d.features[0], d.features[2], d.head]
    for layer in layers:
        w = layer.weight  # the parametrised (normalised) weight
        sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
        assert abs(float(sigma.detach()) - 1.0) < 1e-3
    plain = ConvCritic(width=4, spectral=False)
    assert not any("parametrizations" in name for name, _ in plain.named_modules())


def test_mlp_pair_for_points() -> None:
    g, d = MLPGenerator(latent=3, hidden=8, depth=2), MLPCritic(hidden=8, depth=2, spectral=True)
    x = g(torch.randn(7, 3))
    assert x.shape == (7, 2) and d(x).shape == (7,)
    check_generator(g, (2,))


def test_wrong_shapes_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="divisible by 4"):
        ConvGenerator(image_shape=(1, 10, 10))
    with pytest.raises(ConfigError, match=r"\(C, H, W\)"):
        ConvCritic(image_shape=(8, 8))
    with pytest.raises(ConfigError, match="latent and width"):
        ConvGenerator(latent=0)
    with pytest.raises(ConfigError, match=r"generator makes samples of shape \(1, 8, 8\)"):
        check_generator(ConvGenerator(), (1, 28, 28))
    with pytest.raises(ValueError, match=r"z must be \(N, 16\)"):
        ConvGenerator()(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expects images"):
        ConvCritic()(torch.zeros(2, 1, 28, 28))


def test_stacked_linear_members_are_independent_linear_layers() -> None:
    """Member k of the stack computes layer k; the gradient of the sum of the members' mean
    losses is each member's own; Adam on the stack takes each member's own step."""
    torch.manual_seed(0)
    nets = [
        nn.Sequential(nn.Linear(3, 8), nn.LeakyReLU(0.2), nn.Linear(8, 2)).double()
        for _ in range(3)
    ]
    stacked = stack_mlps(nets)
    x = torch.randn(3, 10, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = stacked(x)  # (3, 10, 2)
    for k, net in enumerate(nets):
        torch.testing.assert_close(out[k], net(x[k]), rtol=1e-12, atol=1e-12)
    opts = [torch.optim.Adam(m.parameters(), lr=0.01) for m in (stacked, *nets)]
    for _ in range(3):
        for opt in opts:
            opt.zero_grad()
        (3 * stacked(x).pow(2).mean()).backward()  # sum of the 3 members' means
        for k, net in enumerate(nets):
            net(x[k]).pow(2).mean().backward()
        for opt in opts:
            opt.step()
    for k, net in enumerate(nets):
        torch.testing.assert_close(unstack_mlp(stacked, k)(x[k]), net(x[k]), rtol=1e-10, atol=1e-12)


def test_stacked_linear_starts_like_nn_linear_and_checks_shapes() -> None:
    torch.manual_seed(3)
    layer = StackedLinear(2, 5, 4)
    torch.manual_seed(3)
    first, second = nn.Linear(5, 4), nn.Linear(5, 4)
    torch.testing.assert_close(layer.weight[0], first.weight.detach())
    torch.testing.assert_close(layer.bias[1], second.bias.detach())
    with pytest.raises(ValueError, match=r"\(E=2, B, 5\)"):
        layer(torch.zeros(3, 7, 5))
    with pytest.raises(ConfigError, match="one shape"):
        StackedLinear.stack([nn.Linear(2, 3), nn.Linear(3, 3)])
    with pytest.raises(ConfigError, match="linear layers only"):
        stack_mlps([nn.Sequential(nn.BatchNorm1d(3))])
