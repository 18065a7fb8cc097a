r"""MAML's meta-gradient in closed form (notes, discussion 12, problem 1 "Gradient Update of MAML").

With ``k`` inner steps on the support loss :math:`\mathcal{L}^{(0)}`,

.. math:: \theta_0 = \theta_{meta}, \qquad
          \theta_{j+1} = \theta_j - \alpha \nabla \mathcal{L}^{(0)}(\theta_j),

the chain rule gives :math:`d\theta_{j+1} / d\theta_j = I - \alpha H_j` with
:math:`H_j = \nabla^2 \mathcal{L}^{(0)}(\theta_j)` (symmetric), hence

.. math:: g_{MAML} = \nabla_{\theta_{meta}} \mathcal{L}^{(1)}(\theta_k)
          = (I - \alpha H_0)(I - \alpha H_1) \cdots (I - \alpha H_{k-1})
            \, \nabla \mathcal{L}^{(1)}(\theta_k).

First-order MAML replaces every factor by ``I``:
:math:`g_{FO} = \nabla \mathcal{L}^{(1)}(\theta_k)`, so
:math:`g_{MAML} - g_{FO} = (\prod_j (I - \alpha H_j) - I)\, \nabla \mathcal{L}^{(1)}(\theta_k)`,
the Hessian terms it drops.

The functions here work on a flat parameter vector ``theta (P,)`` and losses
``loss(theta) -> scalar`` (:func:`flat_loss` builds one from a module); Hessians come from
:func:`torch.func.hessian`, so they are meant for small networks in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, hessian

from deepnotes.core.errors import ConfigError
from deepnotes.meta.maml import LossFn, adapt

__all__ = [
    "TOLERANCE",
    "FlatLoss",
    "angle_degrees",
    "autograd_meta_gradient",
    "closed_form_meta_gradient",
    "first_order_meta_gradient",
    "flat_loss",
    "flatten",
    "hessian_factors",
    "inner_trajectory",
    "tanh_mlp",
    "unflatten",
]

FlatLoss = Callable[[Tensor], Tensor]
"""``loss(theta (P,)) -> scalar``."""

TOLERANCE = 1e-10
"""Largest absolute difference allowed between the closed forms and autograd (the issue)."""


def flatten(params: dict[str, Tensor]) -> Tensor:
    """Concatenate parameters ``{name: tensor}`` into one vector ``(P,)`` (insertion order)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten(theta: Tensor, like: dict[str, Tensor]) -> dict[str, Tensor]:
    """Split ``theta (P,)`` into tensors shaped like ``like`` (same names and order)."""
    need = sum(p.numel() for p in like.values())
    if theta.numel() != need:
        raise ConfigError(f"theta has {theta.numel()} entries, the parameters need {need}")
    out, i = {}, 0
    for name, p in like.items():
        out[name] = theta[i : i + p.numel()].reshape(p.shape)
        i += p.numel()
    return out


def flat_loss(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor) -> FlatLoss:
    """``theta -> loss_fn(model_theta(x), y)`` with ``theta`` the flat parameters of ``model``."""
    like = {k: v.detach() for k, v in model.named_parameters()}

    def loss(theta: Tensor) -> Tensor:
        return loss_fn(functional_call(model, unflatten(theta, like), (x,)), y)

    return loss


def inner_trajectory(loss0: FlatLoss, theta: Tensor, inner_lr: float, steps: int) -> list[Tensor]:
    """``[theta_0, ..., theta_k]`` of ``steps`` gradient steps on ``loss0`` (no graph kept)."""
    if steps < 0:
        raise ConfigError(f"inner steps must be >= 0, got {steps}")
    thetas = [theta.detach()]
    for _ in range(steps):
        thetas.append(thetas[-1] - inner_lr * grad(loss0)(thetas[-1]))
    return thetas


def hessian_factors(loss0: FlatLoss, theta: Tensor, inner_lr: float, steps: int) -> list[Tensor]:
    """The factors ``[I - alpha H_0, ..., I - alpha H_{k-1}]``, each ``(P, P)``."""
    thetas = inner_trajectory(loss0, theta, inner_lr, steps)
    eye = torch.eye(theta.numel(), dtype=theta.dtype)
    return [eye - inner_lr * hessian(loss0)(t) for t in thetas[:-1]]


def closed_form_meta_gradient(
    loss0: FlatLoss, loss1: FlatLoss, theta: Tensor, inner_lr: float, steps: int
) -> Tensor:
    """``g_MAML = (I - a H_0) ... (I - a H_{k-1}) grad L1(theta_k)``, ``(P,)``."""
    thetas = inner_trajectory(loss0, theta, inner_lr, steps)
    g = grad(loss1)(thetas[-1])
    for t in reversed(thetas[:-1]):  # apply (I - a H_{k-1}) first, (I - a H_0) last
        g = g - inner_lr * (hessian(loss0)(t) @ g)
    return g


def first_order_meta_gradient(
    loss0: FlatLoss, loss1: FlatLoss, theta: Tensor, inner_lr: float, steps: int
) -> Tensor:
    """First-order MAML's ``g_FO = grad L1(theta_k)``, ``(P,)``."""
    return grad(loss1)(inner_trajectory(loss0, theta, inner_lr, steps)[-1])


def angle_degrees(a: Tensor, b: Tensor) -> float:
    """The angle between two vectors in degrees (0 for parallel, 90 for orthogonal)."""
    cos = float(torch.dot(a, b) / (a.norm() * b.norm()))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def tanh_mlp(hidden: tuple[int, ...]) -> nn.Sequential:
    """A float64 1-hidden...-1 tanh MLP."""
    layers: list[nn.Module] = []
    width = 1
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers).double()


def autograd_meta_gradient(
    model: nn.Module,
    support: tuple[torch.Tensor, torch.Tensor],
    query: tuple[torch.Tensor, torch.Tensor],
    *,
    inner_lr: float,
    steps: int,
    first_order: bool,
) -> torch.Tensor:
    """``d L1(adapt(theta)) / d theta`` by autograd through :func:`adapt`, flattened ``(P,)``."""
    params = dict(model.named_parameters())
    phi = adapt(
        model, params, *support, F.mse_loss, inner_lr=inner_lr, steps=steps, first_order=first_order
    )
    loss = F.mse_loss(torch.func.functional_call(model, phi, (query[0],)), query[1])
    return flatten(dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True)))
