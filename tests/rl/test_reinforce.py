"""rl.reinforce: episode collection under next-step autoreset, the views, the estimator against
a per-step autograd sum, the baseline's fit, and a resumed training equal to an uninterrupted
one."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError
from deepnotes.data.envs import HiddenVelocities
from deepnotes.rl.models import CategoricalPolicy
from deepnotes.rl.reinforce import (
    CARTPOLE_TAU,
    EpisodeBatch,
    FullState,
    HiddenVelocityView,
    Reinforce,
    ReinforceSettings,
    StackedHistory,
    agent_for,
    collect_episodes,
    make_view,
    returns_per_step,
    sampler,
    surrogate,
    train,
)


def synthetic_batch(lengths: tuple[int, ...] = (3, 2), obs_size: int = 4) -> EpisodeBatch:
    """Episodes with rewards 1, 2, 3, ... in order and random observations."""
    m = sum(lengths)
    g = torch.Generator().manual_seed(0)
    episode = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
    rewards = torch.arange(1, m + 1, dtype=torch.float32)
    last = torch.zeros(m, dtype=torch.bool)
    last[np.cumsum(lengths) - 1] = True
    return EpisodeBatch(
        obs=torch.randn(m, obs_size, generator=g),
        actions=torch.randint(0, 2, (m,), generator=g),
        rewards=rewards,
        next_obs=torch.randn(m, obs_size, generator=g),
        terminated=last,
        truncated=torch.zeros(m, dtype=torch.bool),
        episode=episode,
        returns=np.bincount(episode.numpy(), weights=rewards.numpy()),
        lengths=np.asarray(lengths),
    )


def test_returns_per_step_match_hand_sums() -> None:
    batch = synthetic_batch((3, 2))  # rewards [1, 2, 3] and [4, 5]
    g = 0.5
    rtg = returns_per_step(batch, g, "reward_to_go").tolist()
    assert rtg == pytest.approx([1 + g * 2 + g * g * 3, 2 + g * 3, 3, 4 + g * 5, 5])
    total = returns_per_step(batch, g, "total").tolist()
    assert total == pytest.approx([2.75] * 3 + [6.5] * 2)
    with pytest.raises(ConfigError, match="returns must be one of"):
        returns_per_step(batch, g, "monte_carlo")


def test_surrogate_gradient_is_the_policy_gradient_estimate() -> None:
    torch.manual_seed(0)
    batch = synthetic_batch((3, 4, 2))
    policy = CategoricalPolicy(4, 2, hidden=(5,)).double()
    batch.obs = batch.obs.double()
    adv = torch.randn(len(batch.rewards), dtype=torch.float64)
    surrogate(policy, batch, adv).backward()
    got = torch.cat([p.grad.reshape(-1) for p in policy.parameters()])
    # independent: (1/N) sum_t grad log pi(a_t|s_t) A_t, one autograd call per step, negated
    want = torch.zeros_like(got)
    for t in range(len(adv)):
        lp = torch.log_softmax(policy.logits(batch.obs[t : t + 1]), -1)[0, batch.actions[t]]
        grads = torch.autograd.grad(lp, list(policy.parameters()))
        want += torch.cat([gr.reshape(-1) for gr in grads]) * adv[t]
    assert torch.allclose(got, -want / 3, atol=1e-12)


def test_collect_episodes_drops_the_autoreset_steps() -> None:
    policy = CategoricalPolicy(4, 2, hidden=(8,))
    batch = collect_episodes(
        sampler(policy, torch.Generator().manual_seed(1)), "CartPole-v1", 5, 123, FullState(4)
    )
    assert batch.episodes == 5 and int(batch.lengths.sum()) == len(batch.rewards)
    # CartPole pays 1 per step: each return is its episode's length; no reward-0 reset step
    assert np.array_equal(batch.returns, batch.lengths.astype(float))
    assert bool((batch.rewards == 1).all())
    ends = np.cumsum(batch.lengths) - 1
    done = (batch.terminated | batch.truncated).numpy()
    assert done[ends].all() and done.sum() == 5  # exactly one end per episode, at its last step
    # within an episode, the next observation is the following step's observation
    inner = np.setdiff1d(np.arange(len(done)), ends)
    assert torch.equal(batch.next_obs[inner], batch.obs[inner + 1])
    # the same seed and action stream give the same episodes (a resumed run's batches)
    again = collect_episodes(
        sampler(policy, torch.Generator().manual_seed(1)), "CartPole-v1", 5, 123, FullState(4)
    )
    assert torch.equal(again.obs, batch.obs) and torch.equal(again.actions, batch.actions)


def test_hidden_velocity_view_equals_the_wrapper() -> None:
    env = HiddenVelocities(gym.make("CartPole-v1"))
    obs, _ = gym.make("CartPole-v1").reset(seed=3)
    assert np.array_equal(HiddenVelocityView().step(obs[None])[0], env.observation(obs))
    with pytest.raises(ConfigError, match=r"\(n, 4\)"):
        HiddenVelocityView().step(np.zeros((2, 3)))


def test_stacked_history_is_newest_frame_and_scaled_differences() -> None:
    view = StackedHistory(HiddenVelocityView(), k=3, scale=0.5)
    o0, o1, o2 = (np.random.default_rng(i).normal(size=(2, 4)) for i in range(3))
    x0 = view.reset(o0)
    assert view.size == 6 and x0.shape == (2, 6)
    assert np.allclose(x0[:, :2], o0[:, [0, 2]]) and np.allclose(x0[:, 2:], 0)  # no motion yet
    view.step(o1)
    x2 = view.step(o2)
    h = [o[:, [0, 2]] for o in (o2, o1, o0)]  # newest first
    want = np.concatenate([h[0], (h[0] - h[1]) / 0.5, (h[1] - h[2]) / 0.5], axis=1)
    assert np.allclose(x2, want, atol=1e-6)
    assert make_view("stacked", 4, 2).scale == CARTPOLE_TAU
    with pytest.raises(ConfigError, match="view must be one of"):
        make_view("pixels", 4)


def test_no_baseline_has_no_value_net_and_scales_without_centring() -> None:
    torch.manual_seed(0)
    agent = Reinforce(4, 2, ReinforceSettings(baseline=False))
    assert agent.value is None and set(agent.track()) == {"policy", "opt"}
    adv, value_loss = agent.advantages(synthetic_batch())
    assert np.isnan(value_loss)
    assert bool((adv > 0).all())  # positive returns stay positive: no hidden constant baseline
    psi = returns_per_step(synthetic_batch(), 0.99, "reward_to_go")
    assert torch.allclose(adv, psi / psi.std(), atol=1e-5)


def test_the_baseline_is_fitted_to_the_returns() -> None:
    torch.manual_seed(0)
    agent = Reinforce(4, 2, ReinforceSettings(baseline=True, value_steps=1, value_lr=1e-2))
    batch = synthetic_batch((6, 5))
    psi = returns_per_step(batch, 0.99, "reward_to_go")
    losses = [agent.fit_value(batch, psi) for _ in range(200)]
    assert losses[-1] < 0.2 * losses[0]
    assert set(agent.update(batch)) == {"pg_loss", "value_loss"}


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="gamma"):
        ReinforceSettings(gamma=0.0)
    with pytest.raises(ConfigError, match="returns"):
        ReinforceSettings(returns="gae")
    with pytest.raises(ConfigError, match="k must be >= 1"):
        StackedHistory(HiddenVelocityView(), 0)
    with pytest.raises(ConfigError, match="discrete"):
        agent_for("Pendulum-v1", FullState(3), ReinforceSettings(), "cpu")


def _train(tmp_path: Path, resume: bool, fail_at: int | None = None) -> dict:
    ctx = RunContext(name="t", seed=0, device=torch.device("cpu"), out_dir=tmp_path, resume=resume)
    with ctx.seeded("init"):
        agent = agent_for("CartPole-v1", FullState(4), ReinforceSettings(hidden=(8,)), "cpu")
    if fail_at is not None:
        update, calls = agent.update, [0]

        def failing(batch: EpisodeBatch) -> dict[str, float]:
            calls[0] += 1
            if calls[0] == fail_at:
                raise KeyboardInterrupt
            return update(batch)

        agent.update = failing  # type: ignore[method-assign]
    return train(
        ctx,
        agent,
        tag="r",
        env_id="CartPole-v1",
        view=FullState(4),
        batch_episodes=4,
        max_batches=4,
        eval_every=1,
        eval_episodes=2,
        target=1e9,
        keys=(0,),
    )


def test_a_killed_training_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    whole = _train(tmp_path / "a", resume=False)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", resume=False, fail_at=3)  # killed in the third batch
    resumed = _train(tmp_path / "b", resume=True)
    assert resumed["eval_mean"] == whole["eval_mean"] and resumed["reached"] == -1
    assert resumed["episodes"] == [4.0, 8.0, 12.0, 16.0]
    for k, v in whole["policy"].items():
        assert torch.equal(v, resumed["policy"][k])
