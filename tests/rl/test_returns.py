"""deepnotes.rl.returns against closed forms; td_target bootstraps on truncation, not on
termination."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnotes.rl.returns import discounted_return, reward_to_go, td_target


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 1.0])
def test_constant_rewards_give_the_geometric_sum(gamma: float) -> None:
    T = 7
    closed = T if gamma == 1.0 else (1 - gamma**T) / (1 - gamma)
    assert discounted_return(np.ones(T), gamma) == pytest.approx(closed, abs=1e-12)
    togo = reward_to_go(np.ones(T), gamma)
    remaining = np.arange(T, 0, -1)  # T - t steps left at step t
    expected = remaining if gamma == 1.0 else (1 - gamma**remaining) / (1 - gamma)
    np.testing.assert_allclose(togo, expected, atol=1e-12)


def test_reward_to_go_is_the_tail_return_and_obeys_its_recursion() -> None:
    rewards = np.random.default_rng(0).normal(size=12)
    gamma = 0.8
    togo = reward_to_go(rewards, gamma)
    for t in range(12):
        assert togo[t] == pytest.approx(discounted_return(rewards[t:], gamma), abs=1e-12)
    np.testing.assert_allclose(togo[:-1], rewards[:-1] + gamma * togo[1:], atol=1e-12)
    assert togo[0] == pytest.approx(sum(r * gamma**t for t, r in enumerate(rewards)))


def test_empty_episode() -> None:
    assert discounted_return([], 0.9) == 0.0
    assert reward_to_go([], 0.9).shape == (0,)


def test_td_target_bootstraps_on_truncation_not_on_termination() -> None:
    reward = torch.tensor([1.0, 1.0, 1.0])
    next_value = torch.tensor([10.0, 10.0, 10.0])
    # transition 0 reached a terminal state; transition 1 was cut by the time limit
    # (terminated False, truncated True): its target still bootstraps; transition 2 goes on
    terminated = torch.tensor([True, False, False])
    target = td_target(reward, next_value, terminated, gamma=0.9)
    assert target.tolist() == pytest.approx([1.0, 10.0, 10.0])
    # the bug td_target guards against: passing "terminated or truncated" drops the value
    truncated = torch.tensor([False, True, False])
    wrong = td_target(reward, next_value, terminated | truncated, gamma=0.9)
    assert wrong[1].item() == pytest.approx(1.0) and wrong[1] != target[1]


def test_td_target_accepts_float_flags_and_keeps_the_value_dtype() -> None:
    target = td_target(
        torch.tensor([0.5], dtype=torch.float64),
        torch.tensor([2.0], dtype=torch.float64),
        torch.tensor([0.0]),
        gamma=0.5,
    )
    assert target.dtype == torch.float64 and target.item() == pytest.approx(1.5)
