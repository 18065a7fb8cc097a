r"""Advantage actor-critic with the TD advantage, and the variance of policy-gradient estimates.

Notes: discussion 9, "Actor-critic" (replace the Monte Carlo return by a learned critic:
:math:`A(s, a) \approx r + \gamma V(s') - V(s)`); Sutton & Barto (2018), section 13.5 ("one-step
actor-critic"); Mnih et al. (2016), "Asynchronous methods for deep reinforcement learning" for
the n-step target. The policy-gradient estimate of a batch of :math:`N` episodes is

.. math::
    \hat g = \frac{1}{N} \sum_{i,t} \nabla_\theta \log \pi_\theta(a_{i,t}|s_{i,t})\,
    \big(y_{i,t} - V_\phi(s_{i,t})\big),\qquad
    y_t = \sum_{k=0}^{m-1} \gamma^k r_{t+k} + \gamma^{m} (1 - \text{terminated}_{t+m-1})
    V_\phi(s'_{t+m-1}),

with :math:`m = \min(n, T - t)` (``n_step``; ``n = 1`` is the TD advantage
:math:`r + \gamma V(s') - V(s)`). The target is built with
:func:`deepnotes.rl.returns.td_target`: it bootstraps from :math:`V(s')` after a time-limit
truncation and not after a termination (``tests/rl/test_actor_critic.py`` pins it).

Each update collects whole episodes from a vectorised environment as
:mod:`deepnotes.rl.reinforce` does (the batch actor-critic of the notes), fits the critic by
``value_steps`` Adam steps of MSE on the targets (computed with the critic before the fit,
then held fixed), and takes one policy step with the advantages of the fitted critic
(divided by their standard deviation when ``normalize``, not centred).

:func:`gradient_variance` measures the estimators' spread at fixed parameters: many independent
batches of the same size, each giving a REINFORCE estimate (reward-to-go, no baseline), a
REINFORCE estimate with the critic as baseline (reward-to-go minus :math:`V(s)`) and the
actor-critic estimate, all on the same episodes (paired).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.data.envs import make_vector_env, require_discrete
from deepnotes.rl.models import CategoricalPolicy, ValueNet
from deepnotes.rl.reinforce import (
    EpisodeBatch,
    ObservationView,
    collect_episodes,
    flat_grad,
    returns_per_step,
    sampler,
    surrogate,
)
from deepnotes.rl.returns import td_target

ESTIMATORS = ("reinforce", "reinforce_baseline", "actor_critic")
"""The estimators :func:`gradient_variance` compares, on the same batches."""


def n_step_targets(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    episode: torch.Tensor,
    gamma: float,
    n: int = 1,
) -> torch.Tensor:
    """The n-step targets :math:`y_t` of steps concatenated episode by episode, ``(M,)``.

    Arguments:
        rewards: :math:`r_t`, ``(M,)``.
        next_values: :math:`V(s'_t)` of each step's next observation, ``(M,)``.
        terminated: gymnasium's ``terminated`` per step ``(M,)`` (truncation is *not* passed:
            a truncated last step bootstraps from ``next_values``).
        episode: each step's episode index ``(M,)``, episodes contiguous.
        gamma: the discount.
        n: the number of rewards before bootstrapping (cut at the episode's end).
    """
    if n < 1:
        raise ConfigError(f"n_step must be >= 1, got {n}")
    m = len(rewards)
    t = torch.arange(m, device=rewards.device)
    # last index of each step's episode: the next step starts another episode (or there is none)
    is_last = torch.ones(m, dtype=torch.bool, device=rewards.device)
    is_last[:-1] = episode[1:] != episode[:-1]
    last_idx = torch.nonzero(is_last)[:, 0]
    last = last_idx[torch.searchsorted(last_idx, t)]  # (M,)
    end = torch.minimum(t + n - 1, last)  # the step whose next value is bootstrapped
    y = next_values[end]
    for k in range(n - 1, -1, -1):  # y_{t} = td_target(r_{t+k}, y, terminated_{t+k}) backwards
        idx = torch.minimum(t + k, last)
        active = t + k <= end
        y = torch.where(active, td_target(rewards[idx], y, terminated[idx], gamma), y)
    return y


@dataclass(frozen=True)
class ActorCriticSettings:
    """The knobs of one actor-critic agent."""

    gamma: float = 0.99
    n_step: int = 1
    """Rewards summed before bootstrapping; 1 is the TD advantage."""
    normalize: bool = True
    """Divide the advantages by their batch standard deviation (not centred)."""
    lr: float = 1e-2
    value_lr: float = 1e-2
    value_steps: int = 20
    hidden: tuple[int, ...] = (32,)

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.n_step < 1:
            raise ConfigError(f"n_step must be >= 1, got {self.n_step}")
        if self.lr <= 0 or self.value_lr <= 0 or self.value_steps < 1:
            raise ConfigError("lr and value_lr must be > 0 and value_steps >= 1")


class ActorCritic:
    """An actor (categorical policy) and a critic :math:`V_\\phi`, with their optimisers.

    Example:
        >>> agent = ActorCritic(4, 2, ActorCriticSettings(n_step=1))
        >>> batch = collect_episodes(sampler(agent.policy, g), "CartPole-v1", 16, 0, FullState(4))
        >>> stats = agent.update(batch)  # {"pg_loss": ..., "value_loss": ...}
    """

    def __init__(
        self,
        obs_size: int,
        n_actions: int,
        settings: ActorCriticSettings,
        device: torch.device | str = "cpu",
    ) -> None:
        self.settings = settings
        self.policy = CategoricalPolicy(obs_size, n_actions, settings.hidden).to(device)
        self.value = ValueNet(obs_size, settings.hidden).to(device)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=settings.lr)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=settings.value_lr)

    def track(self) -> dict[str, object]:
        """What a checkpoint must hold to resume this agent."""
        return {
            "policy": self.policy,
            "opt": self.opt,
            "value": self.value,
            "value_opt": self.value_opt,
        }

    def targets(self, batch: EpisodeBatch) -> torch.Tensor:
        """:math:`y_t` with the current critic (no gradient), ``(M,)``."""
        with torch.no_grad():
            next_values = self.value(batch.next_obs)
        s = self.settings
        return n_step_targets(
            batch.rewards, next_values, batch.terminated, batch.episode, s.gamma, s.n_step
        )

    def advantages(self, batch: EpisodeBatch) -> torch.Tensor:
        """:math:`y_t - V(s_t)` with the current critic, ``(M,)`` (not normalised)."""
        with torch.no_grad():
            return self.targets(batch) - self.value(batch.obs)

    def update(self, batch: EpisodeBatch) -> dict[str, float]:
        """Fit the critic to the targets, then one policy step with the TD advantages."""
        y = self.targets(batch)
        value_loss = torch.zeros(())
        for _ in range(self.settings.value_steps):
            value_loss = (self.value(batch.obs) - y).pow(2).mean()
            self.value_opt.zero_grad()
            value_loss.backward()
            self.value_opt.step()
        adv = self.advantages(batch)
        if self.settings.normalize:
            adv = adv / (adv.std() + 1e-8)
        loss = surrogate(self.policy, batch, adv)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"pg_loss": float(loss.detach()), "value_loss": float(value_loss.detach())}


def agent_for(
    env_id: str, view: ObservationView, settings: ActorCriticSettings, device: torch.device | str
) -> ActorCritic:
    """An :class:`ActorCritic` sized for ``env_id`` seen through ``view``."""
    env = make_vector_env(env_id, 1)
    n_actions = require_discrete(env.single_action_space, "actor-critic")
    env.close()
    return ActorCritic(view.size, n_actions, settings, device)


@dataclass(frozen=True)
class GradientSpread:
    """Per estimator in :data:`ESTIMATORS`, each batch's squared distance to the estimators'
    mean over batches, :math:`\\lVert \\hat g_b - \\bar g \\rVert^2`, ``(B,)``; their mean times
    ``B / (B - 1)`` is the total variance (trace of the covariance) of one batch's estimate."""

    sq_dev: dict[str, np.ndarray]
    mean_norm: dict[str, float]
    """:math:`\\lVert \\bar g \\rVert` per estimator."""
    batches: int
    episodes: int
    mean_return: float
    """Mean undiscounted return of the sampled episodes."""

    def total_variance(self, estimator: str) -> float:
        d = self.sq_dev[estimator]
        return float(d.sum() / (len(d) - 1))


def gradient_variance(
    policy: CategoricalPolicy,
    value: ValueNet,
    env_id: str,
    view: ObservationView,
    *,
    batches: int,
    episodes: int,
    gamma: float,
    seed: int,
    generator: torch.Generator,
    n_step: int = 1,
    device: torch.device | str = "cpu",
) -> GradientSpread:
    """The spread of three policy-gradient estimates at the fixed parameters of ``policy`` (and
    critic ``value``) over ``batches`` independent batches of ``episodes`` episodes each.

    All ``batches * episodes`` episodes are collected at once (one vectorised environment,
    reset with ``seed``, actions from ``generator``), then split into batches; each batch gives
    the REINFORCE estimate (reward-to-go), REINFORCE with ``value`` as baseline and the
    actor-critic estimate (n-step TD advantage with ``value``), none normalised.
    """
    if batches < 2 or episodes < 1:
        raise ConfigError(f"need batches >= 2 and episodes >= 1, got {batches}, {episodes}")
    data = collect_episodes(
        sampler(policy, generator), env_id, batches * episodes, seed, view, device
    )
    params = list(policy.parameters())
    with torch.no_grad():
        values = value(data.obs)
        next_values = value(data.next_obs)
    rtg = returns_per_step(data, gamma, "reward_to_go")
    td = n_step_targets(data.rewards, next_values, data.terminated, data.episode, gamma, n_step)
    signals = {"reinforce": rtg, "reinforce_baseline": rtg - values, "actor_critic": td - values}
    grads: dict[str, list[torch.Tensor]] = {k: [] for k in ESTIMATORS}
    for b in range(batches):
        idx = np.arange(b * episodes, (b + 1) * episodes)
        sub = data.select(idx)
        steps = torch.isin(data.episode, torch.as_tensor(idx, device=data.episode.device))
        for name in ESTIMATORS:
            loss = -surrogate(policy, sub, signals[name][steps])  # + g, the ascent direction
            grads[name].append(flat_grad(loss, params).detach().cpu().double())
    sq_dev, mean_norm = {}, {}
    for name in ESTIMATORS:
        g = torch.stack(grads[name])  # (B, P)
        mean = g.mean(0)
        sq_dev[name] = (g - mean).pow(2).sum(1).numpy()
        mean_norm[name] = float(mean.norm())
    return GradientSpread(
        sq_dev=sq_dev,
        mean_norm=mean_norm,
        batches=batches,
        episodes=episodes,
        mean_return=float(data.returns.mean()),
    )
