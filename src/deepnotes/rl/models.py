"""The room's networks: a categorical policy, a state-value and an action-value network.

All three are the foundations room's :class:`~deepnotes.foundations.models.MLP` with a head of
the right width; observations are flat float vectors (a ``Discrete`` observation is fed
one-hot by :func:`as_input`). Sampling takes an explicit ``torch.Generator`` so that a seeded
run is reproducible whatever else draws random numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from deepnotes.foundations.models import MLP


def as_input(obs: np.ndarray | torch.Tensor, n_states: int | None = None) -> torch.Tensor:
    """Observations as a float32 batch ``(n, obs_size)``; integer states one-hot when
    ``n_states`` is given."""
    t = torch.as_tensor(np.asarray(obs))
    if n_states is not None:
        return nn.functional.one_hot(t.long().reshape(-1), n_states).float()
    return t.float().reshape(t.shape[0], -1) if t.ndim > 1 else t.float().reshape(1, -1)


class CategoricalPolicy(nn.Module):
    """:math:`\\pi_\\theta(a|s) = \\mathrm{softmax}(f_\\theta(s))_a` for ``n_actions`` actions.

    Example:
        >>> pi = CategoricalPolicy(4, 2, hidden=(64,))
        >>> a = pi.act(torch.zeros(3, 4), torch.Generator().manual_seed(0))  # (3,) int64
    """

    def __init__(self, obs_size: int, n_actions: int, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.logits = MLP(obs_size, hidden, n_actions, activation="tanh")

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Categorical:
        """The action distribution at each observation of the batch ``(n, obs_size)``."""
        return torch.distributions.Categorical(logits=self.logits(obs))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """:math:`\\log \\pi(a_i|s_i)`, shape ``(n,)``."""
        return torch.log_softmax(self.logits(obs), -1).gather(-1, actions.long()[:, None])[:, 0]

    @torch.no_grad()
    def act(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample one action per observation with ``generator``, shape ``(n,)``."""
        probs = torch.softmax(self.logits(obs), -1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0]

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The most probable action per observation, shape ``(n,)``."""
        return self.logits(obs).argmax(-1)


class ValueNet(nn.Module):
    """:math:`V_\\phi(s)`: observations ``(n, obs_size)`` -> values ``(n,)``."""

    def __init__(self, obs_size: int, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.net = MLP(obs_size, hidden, 1, activation="tanh")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)[:, 0]


class QNetwork(nn.Module):
    """:math:`Q_\\phi(s, \\cdot)`: observations ``(n, obs_size)`` -> action values ``(n, A)``."""

    def __init__(self, obs_size: int, n_actions: int, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.net = MLP(obs_size, hidden, n_actions, activation="relu")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)
