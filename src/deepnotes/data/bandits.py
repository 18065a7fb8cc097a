r"""Task distributions for meta-reinforcement learning: Bernoulli bandits and 2-D point navigation.

Notes: discussion 12, section 3 "Meta-Reinforcement Learning" (a task is an MDP
:math:`\mathcal{M}_i` drawn from :math:`p(\mathcal{M})`).

- Bernoulli bandits, the setting of RL^2 (Duan et al. 2016, "RL^2: Fast Reinforcement Learning
  via Slow Reinforcement Learning", section 4.1): a task is ``k`` arms whose success
  probabilities are drawn i.i.d. from ``U[0, 1]``; pulling arm ``a`` gives reward 1 with
  probability :math:`\mu_a`, else 0. :func:`sample_bandits` draws ``T`` tasks at once and
  :func:`outcomes` pre-draws, for every pull and arm, the reward that arm *would* give
  (``u < mu`` with one uniform per pull and arm): methods evaluated on the same outcome table
  face the same luck (common random numbers, paired comparisons). :func:`pseudo_regret` is the
  expected regret of a sequence of pulls, :math:`\sum_t (\mu^* - \mu_{a_t})`.
- 2-D point navigation with a hidden goal (Finn, Abbeel & Levine 2017, section 5.3): a point
  starts at the origin, the goal is uniform in ``[-0.5, 0.5]^2`` and unseen, an action is a
  displacement clipped to ``[-0.1, 0.1]`` per coordinate, the reward is minus the distance to
  the goal after the move, for a horizon of 100 steps. :class:`PointNavigation` runs ``B``
  copies at once (any mix of goals), in torch, without gymnasium.
"""

from __future__ import annotations

import torch
from torch import Tensor

from deepnotes.core.errors import ConfigError

__all__ = [
    "GOAL_RANGE",
    "HORIZON",
    "MAX_STEP",
    "PointNavigation",
    "outcomes",
    "pseudo_regret",
    "sample_bandits",
    "sample_goals",
]

GOAL_RANGE = 0.5
"""Goals are uniform in ``[-GOAL_RANGE, GOAL_RANGE]^2`` (Finn et al.)."""
MAX_STEP = 0.1
"""Each action coordinate is clipped to ``[-MAX_STEP, MAX_STEP]`` (Finn et al.)."""
HORIZON = 100
"""Steps per navigation episode (Finn et al.)."""


def sample_bandits(tasks: int, arms: int, generator: torch.Generator) -> Tensor:
    """Success probabilities of ``tasks`` Bernoulli bandits, i.i.d. ``U[0, 1]``, ``(tasks, arms)``.

    Raises:
        ConfigError: ``tasks < 1`` or ``arms < 2``.
    """
    if tasks < 1 or arms < 2:
        raise ConfigError(f"need tasks >= 1 and arms >= 2, got tasks={tasks}, arms={arms}")
    return torch.rand(tasks, arms, generator=generator)


def outcomes(means: Tensor, pulls: int, generator: torch.Generator) -> Tensor:
    """The reward each arm would pay at each pull, ``(T, pulls, k)`` float in {0, 1}.

    ``out[i, t, a] = 1`` with probability ``means[i, a]``, independently over ``i, t, a``; a
    method that pulls arm ``a`` at pull ``t`` of task ``i`` receives ``out[i, t, a]``.
    """
    if pulls < 1:
        raise ConfigError(f"pulls must be >= 1, got {pulls}")
    u = torch.rand(means.shape[0], pulls, means.shape[1], generator=generator)
    return (u < means[:, None, :]).float()


def pseudo_regret(means: Tensor, actions: Tensor) -> Tensor:
    r"""Expected regret of the pulls ``actions`` ``(T, n)`` on bandits ``means`` ``(T, k)``:
    :math:`\sum_{t=1}^{n} (\max_a \mu_a - \mu_{a_t})` per task, ``(T,)``.

    It is the regret's expectation over the rewards given the arms pulled (the "pseudo-regret"),
    the quantity Thompson sampling's and epsilon-greedy's bounds are stated for.
    """
    if actions.ndim != 2 or actions.shape[0] != means.shape[0]:
        raise ConfigError(
            f"actions must be (T, n) with T = {means.shape[0]} tasks, got {tuple(actions.shape)}"
        )
    chosen = means.gather(1, actions.long())
    return (means.max(1, keepdim=True).values - chosen).sum(1)


# --------------------------------------------------------------------------- navigation
def sample_goals(tasks: int, generator: torch.Generator) -> Tensor:
    """Hidden goals uniform in ``[-0.5, 0.5]^2``, ``(tasks, 2)``."""
    if tasks < 1:
        raise ConfigError(f"tasks must be >= 1, got {tasks}")
    return (torch.rand(tasks, 2, generator=generator) * 2 - 1) * GOAL_RANGE


class PointNavigation:
    """``B`` copies of the point-navigation task, stepped together.

    Arguments:
        goals: ``(B, 2)``, one hidden goal per copy (repeat a task's goal for several
            trajectories of it).

    ``reset()`` puts every point at the origin and returns the observations (the positions)
    ``(B, 2)``; ``step(actions)`` clips ``actions`` ``(B, 2)`` to ``[-0.1, 0.1]``, moves, and
    returns ``(positions (B, 2), rewards (B,))`` with reward ``-||position - goal||``.

    Example:
        >>> env = PointNavigation(torch.tensor([[0.3, 0.0]]))
        >>> obs = env.reset()
        >>> obs, r = env.step(torch.tensor([[1.0, 0.0]]))  # moves 0.1: r = -0.2
    """

    def __init__(self, goals: Tensor) -> None:
        if goals.ndim != 2 or goals.shape[1] != 2:
            raise ConfigError(f"goals must be (B, 2), got {tuple(goals.shape)}")
        self.goals = goals
        self.position = torch.zeros_like(goals)

    def reset(self) -> Tensor:
        self.position = torch.zeros_like(self.goals)
        return self.position.clone()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        if actions.shape != self.goals.shape:
            raise ConfigError(
                f"actions must be {tuple(self.goals.shape)}, got {tuple(actions.shape)}"
            )
        self.position = self.position + actions.clamp(-MAX_STEP, MAX_STEP)
        reward = -(self.position - self.goals).norm(dim=1)
        return self.position.clone(), reward
