"""rl.actor_critic: n-step TD targets (truncation bootstraps, termination does not) against
brute force, the critic's fit, and the gradient-variance estimator's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.rl.actor_critic import (
    ESTIMATORS,
    ActorCritic,
    ActorCriticSettings,
    gradient_variance,
    n_step_targets,
)
from deepnotes.rl.models import CategoricalPolicy, ValueNet
from deepnotes.rl.reinforce import (
    EpisodeBatch,
    FullState,
    flat_grad,
    returns_per_step,
    surrogate,
)
from deepnotes.rl.returns import reward_to_go, td_target


def synthetic_batch(lengths: tuple[int, ...]) -> EpisodeBatch:
    """Terminated episodes with rewards 1, 2, 3, ... in order and random observations."""
    m = sum(lengths)
    g = torch.Generator().manual_seed(0)
    episode = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
    rewards = torch.arange(1, m + 1, dtype=torch.float32)
    last = torch.zeros(m, dtype=torch.bool)
    last[np.cumsum(lengths) - 1] = True
    return EpisodeBatch(
        obs=torch.randn(m, 4, generator=g),
        actions=torch.randint(0, 2, (m,), generator=g),
        rewards=rewards,
        next_obs=torch.randn(m, 4, generator=g),
        terminated=last,
        truncated=torch.zeros(m, dtype=torch.bool),
        episode=episode,
        returns=np.bincount(episode.numpy(), weights=rewards.numpy()),
        lengths=np.asarray(lengths),
    )


def brute_force(
    rewards: list[float],
    next_values: list[float],
    terminated: list[float],
    lengths: tuple[int, ...],
    gamma: float,
    n: int,
) -> list[float]:
    """y_t = sum_{k<m} gamma^k r_{t+k} + gamma^m (1 - term_end) V(s'_end), episode by episode."""
    out, start = [], 0
    for length in lengths:
        for t in range(start, start + length):
            end = min(t + n - 1, start + length - 1)
            y = sum(gamma ** (j - t) * rewards[j] for j in range(t, end + 1))
            y += gamma ** (end - t + 1) * (1 - terminated[end]) * next_values[end]
            out.append(y)
        start += length
    return out


def test_a_truncated_last_step_bootstraps_and_a_terminated_one_does_not() -> None:
    # two one-step episodes: the first cut by the time limit, the second terminated
    y = n_step_targets(
        torch.tensor([1.0, 1.0]),
        torch.tensor([5.0, 5.0]),
        torch.tensor([False, True]),
        torch.tensor([0, 1]),
        gamma=0.9,
        n=3,
    )
    assert y.tolist() == pytest.approx([1.0 + 0.9 * 5.0, 1.0])


def test_one_step_targets_are_td_targets() -> None:
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(7, generator=g), torch.randn(7, generator=g)
    term = torch.tensor([False, False, True, False, False, False, False])
    episode = torch.tensor([0, 0, 0, 1, 1, 1, 1])  # episode 1 truncated at its end
    got = n_step_targets(r, v, term, episode, 0.97, 1)
    assert torch.equal(got, td_target(r, v, term, 0.97))


@pytest.mark.parametrize("n", [2, 3, 10])
def test_n_step_targets_match_brute_force(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    lengths = (4, 1, 5)
    r, v = torch.randn(10, generator=g), torch.randn(10, generator=g)
    term = torch.zeros(10, dtype=torch.bool)
    term[3] = True  # episode 0 terminated; episodes 1 and 2 truncated
    episode = torch.cat([torch.full((k,), i) for i, k in enumerate(lengths)])
    got = n_step_targets(r, v, term, episode, 0.9, n)
    want = brute_force(r.tolist(), v.tolist(), term.float().tolist(), lengths, 0.9, n)
    assert got.tolist() == pytest.approx(want, abs=1e-6)


def test_a_long_horizon_on_a_terminated_episode_is_the_reward_to_go() -> None:
    r = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = n_step_targets(r, torch.full((4,), 100.0), torch.tensor([0, 0, 0, 1]).bool(),
                       torch.zeros(4, dtype=torch.long), 0.8, 50)  # fmt: skip
    assert y.tolist() == pytest.approx(reward_to_go(r.numpy(), 0.8).tolist(), abs=1e-6)


def test_update_fits_the_critic_to_the_targets() -> None:
    torch.manual_seed(0)
    agent = ActorCritic(4, 2, ActorCriticSettings(value_steps=300, value_lr=1e-2))
    batch = synthetic_batch((6, 5))
    before = (agent.value(batch.obs) - agent.targets(batch)).pow(2).mean().item()
    out = agent.update(batch)
    assert set(out) == {"pg_loss", "value_loss"} and out["value_loss"] < 0.2 * before


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="n_step"):
        ActorCriticSettings(n_step=0)
    with pytest.raises(ConfigError, match="n_step"):
        n_step_targets(torch.ones(1), torch.ones(1), torch.ones(1).bool(), torch.zeros(1), 0.9, 0)


def test_gradient_variance_bookkeeping() -> None:
    torch.manual_seed(0)
    policy, value = CategoricalPolicy(4, 2, hidden=(8,)), ValueNet(4, hidden=(8,))
    spread = gradient_variance(
        policy,
        value,
        "CartPole-v1",
        FullState(4),
        batches=3,
        episodes=2,
        gamma=0.99,
        seed=7,
        generator=torch.Generator().manual_seed(0),
    )
    assert set(spread.sq_dev) == set(ESTIMATORS)
    for name in ESTIMATORS:
        d = spread.sq_dev[name]
        assert d.shape == (3,) and (d >= 0).all()
        assert spread.total_variance(name) == pytest.approx(d.sum() / 2)
    with pytest.raises(ConfigError, match="batches >= 2"):
        gradient_variance(
            policy, value, "CartPole-v1", FullState(4), batches=1, episodes=2, gamma=0.99,
            seed=0, generator=torch.Generator(),
        )  # fmt: skip


def test_reinforce_gradient_is_the_surrogates() -> None:
    # the per-batch REINFORCE estimate gradient_variance uses is +grad of -surrogate
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, hidden=(8,))
    batch = synthetic_batch((3, 3))
    rtg = returns_per_step(batch, 0.9, "reward_to_go")
    g = flat_grad(-surrogate(policy, batch, rtg), list(policy.parameters()))
    logp = policy.log_prob(batch.obs, batch.actions)
    want = flat_grad((logp * rtg).sum() / 2, list(policy.parameters()))
    assert np.allclose(g.numpy(), want.numpy(), atol=1e-6)
