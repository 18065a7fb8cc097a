r"""MAML for reinforcement learning on 2-D point navigation (notes, discussion 12, algorithm 3;
Finn, Abbeel & Levine 2017, section 5.3).

A task is a hidden goal (:class:`deepnotes.data.bandits.PointNavigation`). The policy
:class:`GaussianPolicy` is an MLP giving the mean of a Gaussian over the 2-D action with a learned
state-independent log standard deviation; its output ``(n, 4)`` is (mean, log std), so that the
whole policy is one module that :func:`torch.func.functional_call` can run with any parameters.

The task loss is the REINFORCE surrogate (the notes' equation 4 estimated by the policy
gradient) over ``K`` trajectories of the task, as a mean over all their steps (rllab's
convention, so that Finn et al.'s inner step size 0.1 applies):

.. math::
    \mathcal{L}_{\mathcal{T}_i}(\phi) = -\frac{1}{K H} \sum_{k,t}
    \log \pi_\phi(a_{k,t} | x_{k,t}) \, A_{k,t},

with :math:`A_{k,t}` the reward-to-go minus its mean over the task's ``K`` trajectories at the
same step (a time baseline per task), divided by the task's standard deviation of that
difference (rllab's ``center_adv``). :func:`pack` puts (action, advantage) into a target tensor
and :func:`surrogate_loss` is the ``loss_fn(prediction, target)`` of
:func:`deepnotes.meta.maml.adapt`, so the inner step *is* ``adapt`` with one step: one
REINFORCE gradient step on the task's own trajectories.

:func:`meta_step` is one iteration of algorithm 3: for each task sample ``K`` trajectories with
:math:`\theta`, adapt, sample ``K`` trajectories with :math:`\phi_i`, and return the mean
post-adaptation surrogate, whose backward is the meta-gradient: second order through the inner
step (``first_order=False``) or first order (``first_order=True``: :math:`\phi_i`'s dependence
on :math:`\theta` through the inner gradient dropped). Deviations from Finn et al.: Adam on the
meta-objective instead of TRPO, a per-task time baseline instead of a linear feature baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from deepnotes.core.errors import ConfigError
from deepnotes.data.bandits import PointNavigation
from deepnotes.meta.maml import adapt

__all__ = [
    "GaussianPolicy",
    "Trajectories",
    "adapt_to",
    "log_prob",
    "meta_step",
    "pack",
    "pretrain_step",
    "sample_trajectories",
    "surrogate_loss",
]

Params = dict[str, Tensor]


class GaussianPolicy(nn.Module):
    """:math:`\\pi(a|x) = \\mathcal{N}(\\mu_\\theta(x), \\mathrm{diag}(e^{2 s}))`: ``forward(x)``
    ``(n, 2)`` -> ``(n, 4)`` = (mean, log std repeated per row).

    A tanh MLP; its output layer starts at 0.01 times PyTorch's default weights and zero bias,
    so the initial policy's mean action is near 0 (with the default initialisation a random
    constant drift of up to 0.1 per step took the point far from every goal, return about
    -40 at horizon 25 against -10 for staying put, and MAML's first iterations were spent
    undoing it).
    """

    def __init__(self, hidden: Sequence[int] = (64, 64), init_std: float = 0.1) -> None:
        super().__init__()
        if init_std <= 0:
            raise ConfigError(f"init_std must be > 0, got {init_std}")
        layers: list[nn.Module] = []
        width = 2
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        head = nn.Linear(width, 2)
        with torch.no_grad():  # start near "stay put": a large initial drift costs whole runs
            head.weight.mul_(0.01)
            head.bias.zero_()
        layers.append(head)
        self.net = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.full((2,), math.log(init_std)))

    def forward(self, x: Tensor) -> Tensor:
        mean = self.net(x)
        return torch.cat([mean, self.log_std.expand_as(mean)], -1)


def log_prob(out: Tensor, actions: Tensor) -> Tensor:
    """Gaussian log density of ``actions`` ``(n, 2)`` under ``out`` = (mean, log std) ``(n, 4)``,
    summed over the two coordinates, ``(n,)``."""
    mean, log_std = out[:, :2], out[:, 2:]
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


@dataclass
class Trajectories:
    """``K`` trajectories of each of ``T`` tasks, horizon ``H``, task-major (``N = T * K``)."""

    obs: Tensor
    """``(T, K, H, 2)`` positions the actions were taken from."""
    actions: Tensor
    """``(T, K, H, 2)`` the sampled (unclipped) actions."""
    rewards: Tensor
    """``(T, K, H)``."""

    def returns(self) -> Tensor:
        """Mean undiscounted return of each task's trajectories, ``(T,)``."""
        return self.rewards.sum(-1).mean(-1)

    def advantages(self, gamma: float) -> Tensor:
        """Reward-to-go minus its per-task, per-step mean, over the per-task standard deviation,
        ``(T, K, H)`` (constants)."""
        horizon = self.rewards.shape[-1]
        discount = gamma ** torch.arange(horizon, dtype=self.rewards.dtype)
        # G_t = sum_{t' >= t} gamma^(t'-t) r_t' = (sum_{t' >= t} gamma^t' r_t') / gamma^t
        go = (self.rewards * discount).flip(-1).cumsum(-1).flip(-1) / discount
        adv = go - go.mean(1, keepdim=True)
        return adv / (adv.flatten(1).std(1)[:, None, None] + 1e-8)

    def task(self, i: int) -> Trajectories:
        """Task ``i``'s trajectories alone (``T = 1``)."""
        return Trajectories(self.obs[i : i + 1], self.actions[i : i + 1], self.rewards[i : i + 1])


def pack(traj: Trajectories, gamma: float) -> tuple[Tensor, Tensor]:
    """The trajectories as ``adapt``'s ``(x, y)``: positions ``(N H, 2)`` and (action,
    advantage) ``(N H, 3)``."""
    x = traj.obs.reshape(-1, 2)
    y = torch.cat([traj.actions.reshape(-1, 2), traj.advantages(gamma).reshape(-1, 1)], 1)
    return x, y


def surrogate_loss(out: Tensor, target: Tensor) -> Tensor:
    """:math:`-\\mathrm{mean}_j \\log\\pi(a_j|x_j) A_j` from the policy's output ``(n, 4)`` and
    (action, advantage) ``(n, 3)``: the task loss whose gradient is minus the policy gradient."""
    return -(log_prob(out, target[:, :2]) * target[:, 2]).mean()


@torch.no_grad()
def sample_trajectories(
    model: nn.Module,
    params: Mapping[str, Tensor],
    goals: Tensor,
    per_task: int,
    horizon: int,
    generator: torch.Generator,
) -> Trajectories:
    """``per_task`` trajectories of ``horizon`` steps from the origin for each goal ``(T, 2)``,
    actions sampled from the policy with parameters ``params``."""
    if per_task < 1 or horizon < 1:
        raise ConfigError(f"need per_task >= 1 and horizon >= 1, got {per_task}, {horizon}")
    tasks = goals.shape[0]
    env = PointNavigation(goals.repeat_interleave(per_task, 0))
    x = env.reset()
    obs, actions, rewards = [], [], []
    params = {k: v.detach() for k, v in params.items()}
    for _ in range(horizon):
        out = functional_call(model, params, (x,))
        noise = torch.randn(x.shape, generator=generator)
        a = out[:, :2] + torch.exp(out[:, 2:]) * noise
        obs.append(x)
        actions.append(a)
        x, r = env.step(a)
        rewards.append(r)
    shape = (tasks, per_task, horizon)
    return Trajectories(
        obs=torch.stack(obs, 1).reshape(*shape, 2),
        actions=torch.stack(actions, 1).reshape(*shape, 2),
        rewards=torch.stack(rewards, 1).reshape(shape),
    )


def adapt_to(
    model: nn.Module,
    params: Mapping[str, Tensor],
    traj: Trajectories,
    *,
    inner_lr: float,
    gamma: float,
    first_order: bool,
) -> Params:
    """One REINFORCE step on one task's trajectories (``T = 1``): :func:`deepnotes.meta.maml.adapt`
    with :func:`surrogate_loss`."""
    x, y = pack(traj, gamma)
    return adapt(
        model, params, x, y, surrogate_loss, inner_lr=inner_lr, steps=1, first_order=first_order
    )


def meta_step(
    model: nn.Module,
    goals: Tensor,
    *,
    per_task: int,
    horizon: int,
    inner_lr: float,
    gamma: float,
    first_order: bool,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """Algorithm 3's lines 4-10 for the tasks ``goals`` ``(T, 2)``: the meta-loss (mean over tasks
    of the post-adaptation surrogate, differentiable w.r.t. the model's parameters) and the
    tasks' mean returns before and after adaptation ``(T,)`` each."""
    theta = dict(model.named_parameters())
    before = sample_trajectories(model, theta, goals, per_task, horizon, generator)
    losses, after = [], []
    for i in range(goals.shape[0]):
        phi = adapt_to(
            model, theta, before.task(i), inner_lr=inner_lr, gamma=gamma, first_order=first_order
        )
        post = sample_trajectories(model, phi, goals[i : i + 1], per_task, horizon, generator)
        x, y = pack(post, gamma)
        losses.append(surrogate_loss(functional_call(model, phi, (x,)), y))
        after.append(post.returns())
    return torch.stack(losses).mean(), before.returns(), torch.cat(after)


def pretrain_step(
    model: nn.Module,
    goals: Tensor,
    *,
    per_task: int,
    horizon: int,
    gamma: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """The pretrained baseline's objective: the surrogate of ``theta`` itself on trajectories of
    all the tasks ``goals`` (no adaptation), and their mean returns ``(T,)``."""
    theta = dict(model.named_parameters())
    traj = sample_trajectories(model, theta, goals, per_task, horizon, generator)
    x, y = pack(traj, gamma)
    return surrogate_loss(model(x), y), traj.returns()
