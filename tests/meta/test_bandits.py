"""Bandit tasks, the regret formula and the point-navigation environment."""

from __future__ import annotations

import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.data.bandits import (
    GOAL_RANGE,
    MAX_STEP,
    PointNavigation,
    outcomes,
    pseudo_regret,
    sample_bandits,
    sample_goals,
)


def test_bandits_are_uniform_and_reproducible() -> None:
    a = sample_bandits(4000, 5, torch.Generator().manual_seed(0))
    b = sample_bandits(4000, 5, torch.Generator().manual_seed(0))
    assert a.shape == (4000, 5) and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) < 1
    assert abs(float(a.mean()) - 0.5) < 0.01  # sd of the mean 0.29 / sqrt(20000) = 0.002
    with pytest.raises(ConfigError, match="arms >= 2"):
        sample_bandits(3, 1, torch.Generator())


def test_outcomes_have_the_arms_means() -> None:
    means = torch.tensor([[0.1, 0.9], [0.5, 0.0]])
    table = outcomes(means, 20000, torch.Generator().manual_seed(1))
    assert table.shape == (2, 20000, 2)
    assert set(table.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(table.mean(1), means, atol=0.015, rtol=0)


def test_regret_against_a_closed_form() -> None:
    # a fixed bandit: mu* = 0.8; pulling arm a costs 0.8 - mu_a per pull
    means = torch.tensor([[0.2, 0.8, 0.5]])
    actions = torch.tensor([[0, 0, 1, 2, 1]])
    assert float(pseudo_regret(means, actions)[0]) == pytest.approx(0.6 + 0.6 + 0 + 0.3 + 0)
    # uniform random pulls: expected regret n (mu* - mean(mu)) = 10 * (0.8 - 0.5)
    uniform = torch.randint(0, 3, (20000, 10), generator=torch.Generator().manual_seed(2))
    regret = pseudo_regret(means.expand(20000, 3), uniform)
    assert float(regret.mean()) == pytest.approx(3.0, abs=0.03)
    with pytest.raises(ConfigError, match=r"\(T, n\)"):
        pseudo_regret(means, torch.zeros(2, 3))


def test_navigation_reward_and_clipping() -> None:
    env = PointNavigation(torch.tensor([[0.3, 0.0], [0.0, -0.2]]))
    assert torch.equal(env.reset(), torch.zeros(2, 2))
    obs, reward = env.step(torch.tensor([[1.0, 0.0], [0.05, -0.05]]))
    torch.testing.assert_close(obs, torch.tensor([[MAX_STEP, 0.0], [0.05, -0.05]]))
    expected = torch.tensor([-0.2, -((0.05**2 + 0.15**2) ** 0.5)])
    torch.testing.assert_close(reward, expected)
    goals = sample_goals(1000, torch.Generator().manual_seed(3))
    assert goals.shape == (1000, 2) and float(goals.abs().max()) <= GOAL_RANGE
    with pytest.raises(ConfigError, match="actions must be"):
        env.step(torch.zeros(3, 2))
