"""MAML: the inner step, second- and first-order meta-gradients, the vmapped paths, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.errors import ConfigError
from deepnotes.meta.maml import MAML, adapt, adaptation_curve


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # test-only weights; library code never seeds globally
    return nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 1)).double()


def _task(seed: int, n: int = 5) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, 1, generator=g, dtype=torch.float64)
    return x[0], torch.sin(x[0]), x[1], torch.sin(x[1])


def test_one_step_equals_a_hand_sgd_step() -> None:
    net = _net()
    xs, ys, _, _ = _task(1)
    params = dict(net.named_parameters())
    phi = adapt(net, params, xs, ys, F.mse_loss, inner_lr=0.3, steps=1, first_order=False)
    net.zero_grad()
    F.mse_loss(net(xs), ys).backward()
    for name, p in net.named_parameters():
        torch.testing.assert_close(phi[name], p - 0.3 * p.grad)
    assert (
        adapt(net, params, xs, ys, F.mse_loss, inner_lr=0.3, steps=0, first_order=False) == params
    )


def _post_adaptation_loss(net: nn.Module, theta: torch.Tensor, task, steps: int) -> torch.Tensor:
    """The query loss after ``steps`` inner steps, as a function of the flat parameters."""
    xs, ys, xq, yq = task
    like = dict(net.named_parameters())
    params, i = {}, 0
    for name, p in like.items():
        params[name] = theta[i : i + p.numel()].reshape(p.shape)
        i += p.numel()
    phi = adapt(net, params, xs, ys, F.mse_loss, inner_lr=0.2, steps=steps, first_order=False)
    return F.mse_loss(torch.func.functional_call(net, phi, (xq,)), yq)


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_equals_finite_differences(steps: int) -> None:
    net = _net()
    task = _task(2)
    maml = MAML(net, inner_lr=0.2, inner_steps=steps, loss_fn=F.mse_loss)
    maml.meta_loss([task]).backward()
    auto = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    h, numeric = 1e-6, torch.zeros_like(theta)
    for i in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[i] = h
        plus = _post_adaptation_loss(net, theta + e, task, steps)
        minus = _post_adaptation_loss(net, theta - e, task, steps)
        numeric[i] = (plus - minus) / (2 * h)
    torch.testing.assert_close(auto, numeric, atol=1e-7, rtol=1e-6)


def test_first_order_ignores_the_inner_graph() -> None:
    net = _net()
    xs, ys, xq, yq = _task(3)
    fo = MAML(net, inner_lr=0.2, inner_steps=2, first_order=True, loss_fn=F.mse_loss)
    fo.meta_loss([(xs, ys, xq, yq)]).backward()
    first = [p.grad.clone() for p in net.parameters()]
    # the gradient of the query loss at phi, phi taken as a leaf
    phi = {k: v.detach().requires_grad_() for k, v in fo.adapt(xs, ys).items()}
    expected = torch.autograd.grad(F.mse_loss(fo(phi, xq), yq), list(phi.values()))
    for a, b in zip(first, expected, strict=True):
        torch.testing.assert_close(a, b)
    net.zero_grad()
    MAML(net, inner_lr=0.2, inner_steps=2, loss_fn=F.mse_loss).meta_loss(
        [(xs, ys, xq, yq)]
    ).backward()
    assert (
        max(float((a - p.grad).abs().max()) for a, p in zip(first, net.parameters(), strict=True))
        > 1e-6
    )


@pytest.mark.parametrize("path", ["vmap", "bmm"])
@pytest.mark.parametrize("first_order", [False, True])
def test_batched_meta_loss_equals_the_loop(first_order: bool, path: str) -> None:
    net = _net()
    tasks = [_task(s) for s in range(4)]
    maml = MAML(net, inner_lr=0.1, inner_steps=2, first_order=first_order, loss_fn=F.mse_loss)
    loop = maml.meta_loss(tasks)
    g_loop = torch.autograd.grad(loop, list(net.parameters()))
    stacked = [torch.stack(t) for t in zip(*tasks, strict=True)]
    batched = maml.meta_loss_batched(*stacked, path=path)
    g_batched = torch.autograd.grad(batched, list(net.parameters()))
    torch.testing.assert_close(batched, loop)
    for a, b in zip(g_loop, g_batched, strict=True):
        torch.testing.assert_close(a, b)


def test_the_bmm_path_handles_cross_entropy() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 6, 3, generator=g, dtype=torch.float64)  # (task, support/query, n, d)
    y = torch.randint(0, 2, (3, 2, 6), generator=g)
    maml = MAML(net, inner_lr=0.5, inner_steps=1, loss_fn=F.cross_entropy)
    loop = maml.meta_loss([(x[t, 0], y[t, 0], x[t, 1], y[t, 1]) for t in range(3)])
    batched = maml.meta_loss_batched(x[:, 0], y[:, 0], x[:, 1], y[:, 1], path="bmm")
    torch.testing.assert_close(batched, loop)


def test_adaptation_curve_matches_adapt() -> None:
    net = _net()
    tasks = [_task(s) for s in range(3)]
    stacked = [torch.stack(t) for t in zip(*tasks, strict=True)]
    params = dict(net.named_parameters())
    curve = adaptation_curve(net, params, *stacked, F.mse_loss, inner_lr=0.1, steps=2)
    assert curve.shape == (3, 3) and not curve.requires_grad
    xs, ys, xq, yq = tasks[1]
    for j in range(3):
        phi = adapt(net, params, xs, ys, F.mse_loss, inner_lr=0.1, steps=j, first_order=True)
        expected = F.mse_loss(torch.func.functional_call(net, phi, (xq,)), yq)
        torch.testing.assert_close(curve[1, j], expected.detach())


def test_frozen_parameters_still_adapt() -> None:
    net = _net()
    xs, ys, _, _ = _task(4)
    params = {k: v.detach() for k, v in net.named_parameters()}
    phi = adapt(net, params, xs, ys, F.mse_loss, inner_lr=0.1, steps=1, first_order=True)
    assert not torch.equal(phi["0.weight"], params["0.weight"])


def test_errors() -> None:
    net = _net()
    xs, ys, xq, yq = _task(5)
    with pytest.raises(ConfigError, match="inner steps must be an integer >= 0"):
        adapt(
            net,
            dict(net.named_parameters()),
            xs,
            ys,
            F.mse_loss,
            inner_lr=0.1,
            steps=-1,
            first_order=False,
        )
    with pytest.raises(ConfigError, match="inner steps"):
        MAML(net, inner_lr=0.1, inner_steps=-2, loss_fn=F.mse_loss)
    with pytest.raises(ConfigError, match="inner_lr"):
        MAML(net, inner_lr=-0.1, inner_steps=1, loss_fn=F.mse_loss)
    maml = MAML(net, inner_lr=0.1, inner_steps=1, loss_fn=F.mse_loss)
    with pytest.raises(ConfigError, match="at least one task"):
        maml.meta_loss([])
    with pytest.raises(ConfigError, match="path must be"):
        maml.meta_loss_batched(xs[None], ys[None], xq[None], yq[None], path="fast")
    other = MAML(
        nn.Sequential(nn.Linear(1, 1), nn.Dropout()),
        inner_lr=0.1,
        inner_steps=1,
        loss_fn=F.mse_loss,
    )
    with pytest.raises(ConfigError, match="bmm"):
        other.meta_loss_batched(xs[None], ys[None], xq[None], yq[None], path="bmm")
    with pytest.raises(ConfigError, match="leading size"):
        maml.meta_loss_batched(xs[None], ys[None], torch.stack([xq, xq]), torch.stack([yq, yq]))
