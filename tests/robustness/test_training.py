"""Adversarial-training perturbations and the containment arithmetic, against autograd and
brute force."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.errors import ConfigError
from deepnotes.robustness import attacks
from deepnotes.robustness import training as tr


def net() -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(5, 1, 4, 4, generator=gen), torch.tensor([0, 1, 2, 0, 1])


def test_fgsm_rs_equals_its_definition_by_autograd() -> None:
    model, (x, y) = net(), batch()
    eps = 0.1
    got = tr.fgsm_rs_perturb(eps, generator=torch.Generator().manual_seed(3))(model, x, y)
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    start = (x + eps * (2 * u - 1)).clamp(0, 1).requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(start), y, reduction="sum"), start)
    delta = (start.detach() - x + 1.25 * eps * g.sign()).clamp(-eps, eps)
    torch.testing.assert_close(got, (x + delta).clamp(0, 1), rtol=0, atol=1e-7)
    assert float((got - x).abs().max()) <= eps + 1e-7 and got.min() >= 0 and got.max() <= 1


def test_pgd_perturb_is_the_library_pgd_with_random_start() -> None:
    model, (x, y) = net(), batch()
    got = tr.pgd_perturb(0.1, 5, generator=torch.Generator().manual_seed(4))(model, x, y)
    ref = attacks.pgd(model, x, y, 0.1, steps=5, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    l2 = tr.pgd_perturb(0.5, 3, norm="l2", generator=torch.Generator().manual_seed(4))
    assert float(tr.norm_of(l2(model, x, y) - x, "l2").max()) <= 0.5 + 1e-6


@pytest.mark.parametrize("make", [lambda: tr.fgsm_rs_perturb(0.1), lambda: tr.pgd_perturb(0.1, 2)])
def test_perturbations_leave_mode_grads_and_input_alone(make) -> None:
    model, (x, y) = net(), batch()
    model.train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    x0 = x.clone()
    make()(model, x, y)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())
    assert torch.equal(x, x0)


def test_zero_eps_returns_the_input_and_timing_counts_calls() -> None:
    model, (x, y) = net(), batch()
    timed = tr.TimedPerturb(tr.fgsm_rs_perturb(0.0))
    assert torch.equal(timed(model, x, y), x) and timed.calls == 1 and timed.seconds >= 0


def test_bad_arguments_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="eps"):
        tr.pgd_perturb(-0.1)
    with pytest.raises(ConfigError, match="norm"):
        tr.pgd_perturb(0.1, norm="l1")
    with pytest.raises(ConfigError, match="steps"):
        tr.pgd_perturb(0.1, steps=0)
    with pytest.raises(ConfigError, match="alpha"):
        tr.fgsm_rs_perturb(0.1, alpha=math.nan)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        tr.fgsm_rs_perturb(0.1)(net(), batch()[0] + 2, batch()[1])
    with pytest.raises(ConfigError, match="dim"):
        tr.enclosing_radius("l2", 1.0, "linf", 0)


def test_containment_arithmetic_against_samples() -> None:
    d, r = 64, 0.15
    assert tr.enclosing_radius("linf", r, "l2", d) == pytest.approx(r * 8)
    assert tr.enclosing_radius("l2", r, "linf", d) == r
    assert tr.ball_inside("l2", r, "linf", r, d) and not tr.ball_inside("l2", 2 * r, "linf", r, d)
    assert tr.ball_inside("linf", r / 5, "linf", r, d)
    assert not tr.ball_inside("linf", r, "l2", r, d)
    # witnesses attain the enclosing radius; samples of the balls never exceed it
    assert float(tr.farthest_point("linf", r, "l2", d).norm()) == pytest.approx(r * 8)
    assert float(tr.farthest_point("l2", r, "linf", d).abs().max()) == pytest.approx(r)
    gen = torch.Generator().manual_seed(0)
    sphere = torch.randn(10_000, d, generator=gen, dtype=torch.float64)
    sphere = r * sphere / sphere.norm(dim=1, keepdim=True)  # the L2 sphere of radius r
    assert float(tr.norm_of(sphere, "linf").max()) <= r
    box = r * torch.sign(torch.randn(10_000, d, generator=gen, dtype=torch.float64))
    assert float(tr.norm_of(box, "l2").max()) == pytest.approx(r * 8)


def test_correct_under_the_identity_is_the_accuracy() -> None:
    model, (x, y) = net(), batch()
    correct, same = tr.correct_under(model, lambda xb, yb: xb, x, y, batch_size=2)
    assert correct.shape == (5,) and torch.equal(same, x)
    assert float(correct.mean()) == attacks.accuracy(model, x, y)
