"""RL^2: the recurrent policy's hidden-state handling, the bandit baselines, the claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import FAILS, HOLDS
from deepnotes.data.bandits import outcomes, sample_bandits
from deepnotes.meta.experiments.rl2 import METHODS, RL2Config, RL2Measurements, claims
from deepnotes.meta.rl2 import (
    RL2Policy,
    beta_posterior,
    epsilon_greedy,
    rl2_loss,
    rollout,
    thompson,
)

KEYS = [
    "beats_epsilon_greedy",
    "near_thompson",
    "later_episodes_earn_more",
    "reset_removes_gain",
    "reset_gain_zero",
    "carry_costs",
]


def _policy(arms: int = 3) -> RL2Policy:
    torch.manual_seed(0)
    return RL2Policy(arms, hidden=8)


def _table(tasks: int = 4, n: int = 6, arms: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return outcomes(sample_bandits(tasks, arms, g), n, g)


def test_hidden_state_reset_per_episode_and_kept_per_task() -> None:
    pi, table = _policy(), _table()
    kept = rollout(pi, table, 3, torch.Generator().manual_seed(0), reset="task")
    reset = rollout(pi, table, 3, torch.Generator().manual_seed(0), reset="episode")
    starts = [0, 2, 4]  # episodes of 2 pulls
    for t in starts[1:]:
        # reset: every episode starts from the first pull's state; kept: it remembers
        torch.testing.assert_close(reset.hiddens[:, t], reset.hiddens[:, 0])
        assert not torch.allclose(kept.hiddens[:, t], kept.hiddens[:, 0])
    # a new task starts from zeros whatever the previous one did ...
    other = rollout(pi, _table(seed=1), 3, torch.Generator().manual_seed(5))
    torch.testing.assert_close(other.hiddens[:, 0], kept.hiddens[:, 0])
    # ... unless its state is carried over
    carried = rollout(pi, _table(seed=1), 3, torch.Generator().manual_seed(5), h0=kept.final)
    assert not torch.allclose(carried.hiddens[:, 0], kept.hiddens[:, 0])
    assert kept.episode_returns().shape == (4, 3)
    torch.testing.assert_close(kept.episode_returns().sum(1), kept.rewards.sum(1))


def test_rollout_reads_action_reward_and_flag() -> None:
    pi, table = _policy(), _table()
    roll = rollout(pi, table, 3, torch.Generator().manual_seed(0))
    # rewards are the table's entries of the pulled arms
    expected = table.gather(2, roll.actions[..., None])[..., 0]
    torch.testing.assert_close(roll.rewards, expected)
    # step 1's state = cell(encode(a_0, r_0, done=0), h_0)
    x = pi.encode(roll.actions[:, 0], roll.rewards[:, 0], torch.zeros(4))
    torch.testing.assert_close(pi.cell(x, roll.hiddens[:, 0]), roll.hiddens[:, 1])
    x = pi.encode(roll.actions[:, 1], roll.rewards[:, 1], torch.ones(4))  # episode ended
    torch.testing.assert_close(pi.cell(x, roll.hiddens[:, 1]), roll.hiddens[:, 2])
    with pytest.raises(ConfigError, match="equal episodes"):
        rollout(pi, table, 4, torch.Generator())
    with pytest.raises(ConfigError, match="reset must be"):
        rollout(pi, table, 3, torch.Generator(), reset="never")


def test_loss_is_reinforce_with_a_time_baseline() -> None:
    pi, table = _policy(), _table(tasks=5)
    roll = rollout(pi, table, 3, torch.Generator().manual_seed(0))
    r = roll.rewards
    go = r.flip(1).cumsum(1).flip(1)  # gamma = 1 reward-to-go
    adv = go - go.mean(0)
    adv = adv / (adv.std() + 1e-8)
    expected = -(roll.log_probs * adv).sum() / 5 - 0.1 * roll.entropy.sum() / 5
    torch.testing.assert_close(rl2_loss(roll, 1.0, 0.1), expected)


def test_beta_posterior_updates() -> None:
    actions = torch.tensor([[0, 2, 0, 0, 1]])
    rewards = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0]])
    alpha, beta = beta_posterior(actions, rewards, 3)
    torch.testing.assert_close(alpha, torch.tensor([[3.0, 1.0, 1.0]]))
    torch.testing.assert_close(beta, torch.tensor([[2.0, 2.0, 2.0]]))


def test_thompson_matches_a_hand_posterior_loop() -> None:
    table = _table(tasks=1, n=15, arms=3, seed=4)
    actions = thompson(table, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    for t in range(15):
        alpha, beta = beta_posterior(
            actions[:, :t], table[0, :t].gather(1, actions[0, :t, None]).T, 3
        )
        draw = rng.beta(alpha.numpy().astype(float), beta.numpy().astype(float))
        assert int(draw.argmax(1)[0]) == int(actions[0, t])


def test_epsilon_greedy_without_exploration() -> None:
    # deterministic arms: arm 1 always pays, the others never
    table = torch.zeros(2, 8, 3)
    table[:, :, 1] = 1.0
    actions = epsilon_greedy(table, 0.0, np.random.default_rng(0))
    assert actions[0].tolist() == [0, 1, 2, 1, 1, 1, 1, 1]
    with pytest.raises(ConfigError, match="epsilon"):
        epsilon_greedy(table, 1.5, np.random.default_rng(0))


def _record(rl2: float, keep_gain: float, carry_cost: float) -> RL2Measurements:
    rng = np.random.default_rng(0)
    n = 200
    noise = rng.normal(0, 0.1, (n, 4))
    reset = 2.5 + noise
    kept = 2.5 + noise + np.array([0, 1, 1, 1]) * keep_gain
    return RL2Measurements(
        regret={
            "rl2": rl2 + rng.normal(0, 0.1, n),
            "epsilon_greedy": 3.5 + rng.normal(0, 0.1, n),
            "thompson": 4.0 + rng.normal(0, 0.1, n),
        },
        cumulative={m: np.zeros(20) for m in METHODS},
        kept=kept,
        reset=reset,
        carried_first=3.0 - carry_cost + rng.normal(0, 0.1, n),
        fresh_first=3.0 + rng.normal(0, 0.1, n),
        train_iteration=np.arange(3.0),
        train_return=np.zeros(3),
        diverged="",
    )


def test_verdicts_on_synthetic_measurements() -> None:
    cfg = RL2Config.quick()
    good = {c.key: c.verdict for c in claims(_record(2.8, 0.5, 0.3), cfg)}
    assert list(good) == KEYS and set(good.values()) == {HOLDS}
    bad = {c.key: c.verdict for c in claims(_record(6.5, 0.0, -0.3), cfg)}
    for key in ("beats_epsilon_greedy", "near_thompson", "later_episodes_earn_more"):
        assert bad[key] == FAILS
    assert bad["reset_removes_gain"] == FAILS and bad["carry_costs"] == FAILS


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="episodes"):
        RL2Config(episodes=1)
    with pytest.raises(ConfigError, match="epsilon"):
        RL2Config(epsilon=-0.1)


def test_smoke_run(tmp_path: Path) -> None:
    tiny = {"iterations": 20, "every": 10, "batch_tasks": 16, "test_tasks": 50, "hidden": 8}
    result = run_experiment(
        "meta.rl2", overrides=tiny, out=tmp_path, show_progress=False, threads=1
    )
    record = result.record
    assert [c["key"] for c in record["claims"]] == KEYS
    assert [Path(f).name for f in record["figures"]] == ["rl2_bandits.png"]
    assert len(record["metrics"]["episode_returns_kept"]) == 4
