"""GAN losses: closed forms in float64, the per-sample gradient-penalty norm, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepnotes.core.errors import ConfigError, UsageError
from deepnotes.gans.losses import (
    LOSSES,
    annealed_std,
    clip_weights,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    instance_noise,
)


def _outputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(7, 1, generator=g, dtype=torch.float64) * 3,
        torch.randn(5, 1, generator=g, dtype=torch.float64) * 3,
    )


def test_discriminator_losses_match_closed_forms() -> None:
    real, fake = _outputs()
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    minus_value = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    expected = {
        "minimax": minus_value,
        "nonsaturating": minus_value,
        "wgan": fake.mean() - real.mean(),
        "wgan_gp": fake.mean() - real.mean(),
        "lsgan": 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean(),
    }
    assert set(expected) == set(LOSSES)
    for kind, value in expected.items():
        torch.testing.assert_close(discriminator_loss(kind, real, fake), value, rtol=0, atol=1e-12)


def test_generator_losses_match_closed_forms() -> None:
    _, fake = _outputs()
    d_fake = torch.sigmoid(fake)
    expected = {
        "minimax": torch.log(1 - d_fake).mean(),
        "nonsaturating": -torch.log(d_fake).mean(),
        "wgan": -fake.mean(),
        "wgan_gp": -fake.mean(),
        "lsgan": 0.5 * ((fake - 1) ** 2).mean(),
    }
    for kind, value in expected.items():
        torch.testing.assert_close(generator_loss(kind, fake), value, rtol=0, atol=1e-12)


def test_minimax_generator_gradient_vanishes_where_nonsaturating_does_not() -> None:
    """At a confident 'fake' logit l, d/dl log(1 - sigmoid(l)) = -sigmoid(l) ~ 0 while
    d/dl -log sigmoid(l) = -(1 - sigmoid(l)) ~ -1."""
    logit = torch.tensor([-12.0], dtype=torch.float64, requires_grad=True)
    (g_minimax,) = torch.autograd.grad(generator_loss("minimax", logit), logit)
    (g_ns,) = torch.autograd.grad(generator_loss("nonsaturating", logit), logit)
    torch.testing.assert_close(g_minimax, -torch.sigmoid(logit.detach()))
    torch.testing.assert_close(g_ns, torch.sigmoid(logit.detach()) - 1)
    assert abs(g_minimax.item()) < 1e-5 * abs(g_ns.item())


def test_losses_are_stable_at_extreme_logits() -> None:
    big = torch.tensor([200.0, -200.0])
    for kind in ("minimax", "nonsaturating"):
        assert torch.isfinite(discriminator_loss(kind, big, big))
        assert torch.isfinite(generator_loss(kind, big))


def test_unknown_loss_is_a_config_error() -> None:
    x = torch.zeros(3)
    with pytest.raises(ConfigError, match="wgan_gp"):
        discriminator_loss("hinge", x, x)
    with pytest.raises(ConfigError, match="expected one of"):
        generator_loss("hinge", x)


class _Linear(nn.Module):
    """f(x) = w . x on flattened inputs."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def test_penalty_of_a_linear_critic_is_closed_form() -> None:
    """f = w.x has grad w everywhere: penalty (||w|| - 1)^2, zero when ||w|| = 1, and its
    gradient in w is 2 (||w|| - 1) w / ||w|| (create_graph=True trains the critic)."""
    g = torch.Generator().manual_seed(1)
    real = torch.randn(16, 2, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(16, 2, 3, generator=g, dtype=torch.float64)
    w = torch.randn(6, generator=g, dtype=torch.float64)
    unit = _Linear(w / w.norm())
    zero = gradient_penalty(unit, real, fake, torch.Generator().manual_seed(2))
    assert abs(zero.item()) < 1e-24
    critic = _Linear(3 * w / w.norm())
    penalty = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(2), weight=10.0)
    torch.testing.assert_close(penalty, torch.tensor(10 * 4.0, dtype=torch.float64))
    penalty.backward()
    torch.testing.assert_close(critic.w.grad, 10 * 2 * (3 - 1) * w / w.norm())


def test_penalty_norm_is_per_sample_not_over_the_batch() -> None:
    """f(x) = ||x||^2 / 2 has grad x_hat: the penalty is mean_i (||x_hat_i|| - 1)^2 with one
    eps_i per sample, which differs from (||grad over the whole batch|| - 1)^2."""

    class HalfSquare(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x.pow(2).flatten(1).sum(1)

    g = torch.Generator().manual_seed(3)
    real = torch.randn(8, 3, generator=g, dtype=torch.float64)
    fake = torch.randn(8, 3, generator=g, dtype=torch.float64) + 2
    penalty = gradient_penalty(HalfSquare(), real, fake, torch.Generator().manual_seed(4))
    eps = torch.rand(8, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x_hat = eps * real + (1 - eps) * fake
    per_sample = ((x_hat.norm(dim=1) - 1) ** 2).mean()
    over_batch = (x_hat.norm() - 1) ** 2
    torch.testing.assert_close(penalty, per_sample, rtol=0, atol=1e-12)
    assert abs(penalty.item() - over_batch.item()) > 1.0


def test_penalty_over_a_members_axis_is_per_member_and_sample() -> None:
    """With ``sample_dims=2`` (stacked critics), one eps and one norm per (member, sample)."""

    class HalfSquare(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x.pow(2).sum(-1)  # (E, N)

    g = torch.Generator().manual_seed(5)
    real = torch.randn(3, 8, 2, generator=g, dtype=torch.float64)
    fake = torch.randn(3, 8, 2, generator=g, dtype=torch.float64) + 2
    penalty = gradient_penalty(
        HalfSquare(), real, fake, torch.Generator().manual_seed(6), sample_dims=2
    )
    eps = torch.rand(3, 8, 1, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    x_hat = eps * real + (1 - eps) * fake
    torch.testing.assert_close(penalty, ((x_hat.norm(dim=-1) - 1) ** 2).mean(), rtol=0, atol=1e-12)
    with pytest.raises(UsageError, match="sample_dims"):
        gradient_penalty(HalfSquare(), real, fake, g, sample_dims=3)


def test_penalty_errors() -> None:
    critic = _Linear(torch.ones(2))
    x = torch.zeros(4, 2)
    with pytest.raises(ConfigError, match=">= 0"):
        gradient_penalty(critic, x, x, torch.Generator(), weight=-1.0)
    with pytest.raises(UsageError, match="same shape"):
        gradient_penalty(critic, x, torch.zeros(4, 3), torch.Generator())


def test_clip_weights_clamps_every_parameter_in_place() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10)
    before = [p.clone() for p in net.parameters()]
    clip_weights(net, 0.01)
    for old, new in zip(before, net.parameters(), strict=True):
        torch.testing.assert_close(new, old.clamp(-0.01, 0.01))
    with pytest.raises(ConfigError, match="> 0"):
        clip_weights(net, 0.0)


def test_instance_noise_has_the_requested_std() -> None:
    x = torch.full((20000, 2), 3.0)
    noisy = instance_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert noisy.shape == x.shape
    assert abs((noisy - x).mean().item()) < 0.02
    assert abs((noisy - x).std().item() - 0.5) < 0.01
    assert instance_noise(x, 0.0, torch.Generator()) is x
    with pytest.raises(ConfigError, match=">= 0"):
        instance_noise(x, -0.1, torch.Generator())


def test_annealed_std_is_linear_to_zero() -> None:
    assert annealed_std(0, 100, 0.4) == 0.4
    assert math.isclose(annealed_std(25, 100, 0.4), 0.3)
    assert annealed_std(100, 100, 0.4) == 0.0
    assert annealed_std(150, 100, 0.4) == 0.0
    with pytest.raises(ConfigError, match="steps >= 1"):
        annealed_std(0, 0, 0.4)
