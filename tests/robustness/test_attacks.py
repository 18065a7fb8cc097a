"""The attacks: closed forms, brute force, autograd, and the hygiene users report most (model
mode, parameter gradients, the input tensor, eps = 0)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.errors import ConfigError
from deepnotes.robustness.attacks import (
    accuracy,
    attacking,
    brightness,
    check_inputs,
    fgsm,
    input_gradient,
    pgd,
    project,
    robust_accuracy,
    steepest_step,
)


def _net(seed: int = 0) -> nn.Module:
    """A tiny classifier with BatchNorm and Dropout (the mode matters): (B,1,4,4) -> (B,3)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(16, 12),
        nn.BatchNorm1d(12),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(12, 3),
    )


def _data(n: int = 32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def _attacks() -> dict[str, object]:
    return {
        "fgsm-linf": lambda m, x, y, e: fgsm(m, x, y, e),
        "fgsm-l2": lambda m, x, y, e: fgsm(m, x, y, e, norm="l2"),
        "pgd-linf": lambda m, x, y, e: pgd(
            m, x, y, e, steps=3, generator=torch.Generator().manual_seed(0)
        ),
        "pgd-l2": lambda m, x, y, e: pgd(
            m, x, y, e, norm="l2", steps=3, restarts=2, generator=torch.Generator().manual_seed(0)
        ),
        "pgd-targeted": lambda m, x, y, e: pgd(
            m, x, (y + 1) % 3, e, steps=2, targeted=True, random_start=False
        ),
        "input_gradient": lambda m, x, y, e: input_gradient(m, x, y),
    }


ATTACKS = list(_attacks())


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("train", [True, False])
def test_attack_restores_modes_grads_and_flags(name: str, train: bool) -> None:
    net = _net()
    net.train(train)
    net[2].train(not train)  # a mixed state must come back exactly
    x, y = _data()
    net(x).sum().backward()  # existing gradients on every parameter ...
    net[5].bias.grad = None  # ... except one, which must stay None
    net[1].bias.requires_grad_(False)  # and a frozen parameter stays frozen
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in net.named_parameters()}
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    modes = [m.training for m in net.modules()]
    stats = net[2].running_mean.clone()
    _attacks()[name](net, x, y, 0.1)
    assert [m.training for m in net.modules()] == modes
    for n, p in net.named_parameters():
        assert p.requires_grad == flags[n], n
        if grads[n] is None:
            assert p.grad is None, n
        else:
            assert torch.equal(p.grad, grads[n]), n
    assert torch.equal(net[2].running_mean, stats)  # eval mode inside: BN statistics untouched


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_leaves_input_untouched(name: str) -> None:
    net, (x, y) = _net(), _data()
    x0, y0 = x.clone(), y.clone()
    _attacks()[name](net, x, y, 0.2)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert not x.requires_grad and x.grad is None


@pytest.mark.parametrize("name", [n for n in ATTACKS if n != "input_gradient"])
def test_eps_zero_returns_x_exactly(name: str) -> None:
    net, (x, y) = _net(), _data()
    out = _attacks()[name](net, x, y, 0.0)
    assert torch.equal(out, x) and out is not x


@pytest.mark.parametrize("name", [n for n in ATTACKS if n != "input_gradient"])
@pytest.mark.parametrize("eps", [0.05, 0.3, 2.0])
def test_outputs_in_ball_and_pixel_range(name: str, eps: float) -> None:
    net, (x, y) = _net(), _data()
    net.eval()
    out = _attacks()[name](net, x, y, eps)
    assert out.shape == x.shape and not out.requires_grad
    assert out.min() >= 0 and out.max() <= 1
    delta = (out - x).flatten(1)
    if "l2" in name:
        assert (delta.norm(dim=1) <= eps + 1e-6).all()
    else:
        assert (delta.abs().max(dim=1).values <= eps + 1e-6).all()


def test_attacking_restores_on_exception() -> None:
    net = _net().train()
    with pytest.raises(RuntimeError, match="boom"), attacking(net):
        assert not net.training and not any(p.requires_grad for p in net.parameters())
        raise RuntimeError("boom")
    assert net.training and all(p.requires_grad for p in net.parameters())


def test_project_linf_closed_form_and_l2_nearest_point() -> None:
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(64, 3, generator=g, dtype=torch.float64)
    eps = 0.7
    linf = project(delta, eps, "linf")
    assert torch.equal(linf, torch.where(delta.abs() > eps, eps * delta.sign(), delta))
    l2 = project(delta, eps, "l2")
    norms = delta.norm(dim=1, keepdim=True)
    expected = torch.where(norms > eps, delta * eps / norms, delta)
    torch.testing.assert_close(l2, expected, rtol=0, atol=1e-15)
    # brute force: no point of the ball (dense samples) is nearer than the projection, per example
    for norm, p in (("l2", 2), ("linf", float("inf"))):
        proj = project(delta, eps, norm)
        samples = torch.rand(20000, 3, generator=g, dtype=torch.float64) * 2 * eps - eps
        samples = samples[samples.norm(p=p, dim=1) <= eps]
        nearest = torch.cdist(delta, samples).min(dim=1).values
        assert ((delta - proj).norm(dim=1) <= nearest + 1e-12).all()
        assert (proj.norm(p=p, dim=1) <= eps + 1e-12).all()
    assert torch.equal(project(torch.zeros(2, 3), eps, "l2"), torch.zeros(2, 3))


def test_steepest_step_maximises_the_linear_gain_brute_force() -> None:
    g = torch.Generator().manual_seed(3)
    grad = torch.randn(5, 6, generator=g, dtype=torch.float64)
    eps = 0.3
    vertices = torch.tensor(list(itertools.product([-eps, eps], repeat=6)), dtype=torch.float64)
    best = (grad @ vertices.T).max(dim=1).values  # the linear gain's max over the box
    linf_gain = (grad * steepest_step(grad, eps, "linf")).sum(dim=1)
    torch.testing.assert_close(linf_gain, best, rtol=0, atol=1e-12)
    l2_step = steepest_step(grad, eps, "l2")
    torch.testing.assert_close(
        (grad * l2_step).sum(dim=1), eps * grad.norm(dim=1), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(l2_step.norm(dim=1), torch.full((5,), eps, dtype=torch.float64))
    zero = steepest_step(torch.zeros(2, 4), eps, "l2")
    assert torch.equal(zero, torch.zeros(2, 4))


def test_input_gradient_rows_are_each_examples_gradient() -> None:
    net, (x, y) = _net(), _data(8)
    net.eval()
    g = input_gradient(net, x, y)
    for i in range(len(x)):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(F.cross_entropy(net(xi), y[i : i + 1]), xi)
        torch.testing.assert_close(g[i : i + 1], gi, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(input_gradient(net, x, y, targeted=True), -g)
    with torch.no_grad():  # works inside no_grad too
        torch.testing.assert_close(input_gradient(net, x, y), g)


def test_fgsm_on_a_linear_model_matches_the_hand_computation() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(16, 3).double()
    net = nn.Sequential(nn.Flatten(), lin)
    x, y = _data(16)
    x = x.double()
    eps = 0.1
    # cross-entropy of softmax(W x + b): dL/dx = W^T (p - onehot(y))
    p = torch.softmax(x.flatten(1) @ lin.weight.T + lin.bias, dim=1)
    grad = (p - F.one_hot(y, 3).double()) @ lin.weight
    linf = (x.flatten(1) + eps * grad.sign()).clamp(0, 1)
    l2 = (x.flatten(1) + eps * grad / grad.norm(dim=1, keepdim=True)).clamp(0, 1)
    torch.testing.assert_close(fgsm(net, x, y, eps).flatten(1), linf, rtol=0, atol=1e-15)
    torch.testing.assert_close(fgsm(net, x, y, eps, norm="l2").flatten(1), l2, rtol=0, atol=1e-14)


def test_pgd_one_full_step_without_random_start_is_fgsm() -> None:
    net, (x, y) = _net(), _data()
    one = pgd(net, x, y, 0.1, steps=1, step_size=0.1, random_start=False)
    assert torch.equal(one, fgsm(net, x, y, 0.1))  # linf: bit for bit
    # l2: the step has norm eps up to round-off, which the projection may rescale by an ulp
    one = pgd(net, x, y, 0.1, norm="l2", steps=1, step_size=0.1, random_start=False)
    torch.testing.assert_close(one, fgsm(net, x, y, 0.1, norm="l2"), rtol=0, atol=1e-7)


def _trained_linear(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A softmax regression fitted (by full-batch Adam) to three Gaussian blobs in [0, 1]^16."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(3, 16, generator=g) * 0.6 + 0.2
    y = torch.randint(0, 3, (300,), generator=g)
    x = (centres[y] + 0.08 * torch.randn(300, 16, generator=g)).clamp(0, 1).view(-1, 1, 4, 4)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    for p in net.parameters():
        p.grad = None
    return net.eval(), x, y


def test_targeted_pgd_reaches_the_target_more_often_than_untargeted() -> None:
    net, x, y = _trained_linear()
    target = (y + 1) % 3
    kw = {"steps": 10, "random_start": False}
    towards = pgd(net, x, target, 0.15, targeted=True, **kw)
    away = pgd(net, x, y, 0.15, **kw)
    with torch.no_grad():
        hit_targeted = (net(towards).argmax(1) == target).float().mean()
        hit_untargeted = (net(away).argmax(1) == target).float().mean()
    assert hit_targeted > hit_untargeted + 0.1


def test_restarts_never_lower_the_success() -> None:
    net, x, y = _trained_linear(1)
    for norm, eps in (("linf", 0.08), ("l2", 0.4)):
        one = pgd(net, x, y, eps, norm=norm, steps=3, generator=torch.Generator().manual_seed(5))
        many = pgd(
            net,
            x,
            y,
            eps,
            norm=norm,
            steps=3,
            restarts=4,
            generator=torch.Generator().manual_seed(5),  # the same first restart
        )
        with torch.no_grad():
            fooled_one = net(one).argmax(1) != y
            fooled_many = net(many).argmax(1) != y
        assert 0 < fooled_one.float().mean() < 1  # the comparison is not trivial
        assert (fooled_many | ~fooled_one).all()  # every example fooled once stays fooled
        assert fooled_many.sum() >= fooled_one.sum()


def test_l2_random_start_is_uniform_in_the_ball() -> None:
    # steps with a tiny step size keep the start; the radius quantile r^d is uniform
    net, (x, y) = _net(), _data(400)
    x = torch.full_like(x, 0.5)
    eps = 0.4
    out = pgd(net, x, y, eps, norm="l2", steps=1, step_size=1e-9, generator=torch.Generator())
    u = ((out - x).flatten(1).norm(dim=1) / eps) ** 16
    assert abs(float(u.mean()) - 0.5) < 0.05 and float(u.max()) <= 1 + 1e-5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": -0.1}, "eps must be a finite number >= 0"),
        ({"eps": float("nan")}, "eps must be a finite number >= 0"),
        ({"norm": "l3"}, r"norm must be one of \('linf', 'l2'\), got 'l3'"),
        ({"x": 1.5}, r"inputs must lie in \[0, 1\].*max 1\.5"),
        ({"x": -0.5}, r"inputs must lie in \[0, 1\].*min -0\.5"),
    ],
)
def test_bad_inputs_raise_config_error_naming_the_expectation(kwargs: dict, match: str) -> None:
    net, (x, y) = _net(), _data(4)
    if "x" in kwargs:
        x = x.clone()
        x[0, 0, 0, 0] = kwargs["x"]
    eps, norm = kwargs.get("eps", 0.1), kwargs.get("norm", "linf")
    for call in (
        lambda: check_inputs(x, eps, norm),
        lambda: fgsm(net, x, y, eps, norm=norm),
        lambda: pgd(net, x, y, eps, norm=norm, steps=1),
    ):
        with pytest.raises(ConfigError, match=match):
            call()


def test_pgd_rejects_bad_steps_restarts_and_step_size() -> None:
    net, (x, y) = _net(), _data(4)
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        pgd(net, x, y, 0.1, steps=0)
    with pytest.raises(ConfigError, match="restarts must be an integer >= 1"):
        pgd(net, x, y, 0.1, restarts=0)
    with pytest.raises(ConfigError, match="step_size must be a finite number > 0"):
        pgd(net, x, y, 0.1, step_size=-1.0)


def test_accuracy_and_robust_accuracy() -> None:
    net, x, y = _trained_linear()
    net.train()
    with torch.no_grad():
        expected = float((net.eval()(x).argmax(1) == y).float().mean())
    net.train()
    assert accuracy(net, x, y, batch_size=7) == pytest.approx(expected, abs=1e-12)
    assert net.training
    identity = robust_accuracy(net, lambda xb, yb: xb, x, y, batch_size=64)
    assert identity == pytest.approx(expected, abs=1e-12)
    attacked = robust_accuracy(net, lambda xb, yb: fgsm(net, xb, yb, 0.2), x, y, batch_size=64)
    assert attacked < expected and net.training


def test_brightness() -> None:
    x = torch.tensor([[0.0, 0.25, 0.8]])
    assert torch.equal(brightness(x, 0.5), torch.tensor([[0.0, 0.125, 0.4]]))
    assert torch.equal(brightness(x, 2.0), torch.tensor([[0.0, 0.5, 1.0]]))
    with pytest.raises(ConfigError, match="brightness factor must be a finite number >= 0"):
        brightness(x, -1.0)
