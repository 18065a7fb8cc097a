r"""Returns, reward-to-go and one-step targets: the arithmetic every RL method shares.

Notes: discussion 9 ("the return", "reward-to-go", "discounting", TD targets). For rewards
:math:`r_1..r_T` of one episode and discount :math:`\gamma`:

- :func:`discounted_return`: :math:`G = \sum_t \gamma^{t-1} r_t`;
- :func:`reward_to_go`: :math:`G_t = \sum_{t' \ge t} \gamma^{t'-t} r_{t'}` for every ``t``;
- :func:`td_target`: :math:`y = r + \gamma (1 - \text{terminated}) V(s')`.

The last one is where the most reported RL bug lives: an episode cut by a time limit
(gymnasium's ``truncated``) did not reach a terminal state, so its target still bootstraps from
:math:`V(s')`; only ``terminated`` zeroes it. The function takes ``terminated`` alone, so that
passing ``terminated or truncated`` has to be written on purpose.
"""

from __future__ import annotations

import numpy as np
import torch


def discounted_return(rewards: np.ndarray | list[float], gamma: float) -> float:
    """:math:`\\sum_t \\gamma^{t-1} r_t` of one episode."""
    r = np.asarray(rewards, dtype=float)
    return float(np.sum(r * gamma ** np.arange(len(r))))


def reward_to_go(rewards: np.ndarray | list[float], gamma: float) -> np.ndarray:
    """:math:`G_t = r_t + \\gamma G_{t+1}` for every step of one episode, shape ``(T,)``."""
    r = np.asarray(rewards, dtype=float)
    out = np.zeros_like(r)
    running = 0.0
    for t in range(len(r) - 1, -1, -1):
        running = r[t] + gamma * running
        out[t] = running
    return out


def td_target(
    reward: torch.Tensor, next_value: torch.Tensor, terminated: torch.Tensor, gamma: float
) -> torch.Tensor:
    """:math:`r + \\gamma (1 - \\text{terminated}) V(s')`, elementwise.

    ``terminated`` is gymnasium's flag (a terminal state was reached), *not* ``terminated or
    truncated``: after a time-limit truncation the target bootstraps from ``next_value``.
    """
    return reward + gamma * (1.0 - terminated.to(next_value.dtype)) * next_value
