"""rl.dqn: the replay buffer, the TD target on terminated vs truncated transitions, the losses,
target updates, exploration, and training through the engine (autoreset, resume, early stop)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepnotes.core.checkpoint import from_safe, load_checkpoint, to_safe
from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError
from deepnotes.rl import dqn
from deepnotes.rl.dqn import (
    DQNConfig,
    ReplayBuffer,
    Transitions,
    boltzmann,
    dqn_loss,
    epsilon_greedy,
    linear_schedule,
    train_dqn,
    update_target,
)
from deepnotes.rl.models import QNetwork

TINY = DQNConfig(
    hidden=(16,),
    total_steps=512,
    num_envs=2,
    batch_size=16,
    buffer_size=1000,
    learning_starts=64,
    train_freq=64,
    gradient_steps=4,
    target_update_interval=4,
    exploration_steps=256,
    eval_every=128,
    eval_episodes=2,
    target_return=None,
)


def context(tmp_path: Path, resume: bool = False) -> RunContext:
    return RunContext(
        name="test.dqn", seed=0, device=torch.device("cpu"), out_dir=tmp_path, resume=resume
    )


def filled(capacity: int, n: int) -> ReplayBuffer:
    buf = ReplayBuffer(capacity, (2,))
    obs = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    buf.add(obs, np.arange(n) % 2, np.arange(n, dtype=np.float32), obs + 1, np.arange(n) % 3 == 0)
    return buf


# ------------------------------------------------------------------------------- replay buffer
def test_buffer_overwrites_the_oldest_first() -> None:
    buf = filled(4, 6)  # rewards 0..5 into 4 slots: 4, 5 overwrite 0, 1
    assert len(buf) == 4 and buf.pos == 2
    assert sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0]
    batch = buf.take(np.array([0, 1, 2, 3]))
    assert batch.rewards.tolist() == [4.0, 5.0, 2.0, 3.0]
    assert batch.obs.shape == (4, 2) and batch.actions.dtype == torch.int64
    assert batch.terminated.tolist() == [0.0, 0.0, 0.0, 1.0]  # rewards 4, 5, 2, 3: 3 % 3 == 0
    with pytest.raises(ValueError, match="indices"):
        buf.take(np.array([4]))
    with pytest.raises(ValueError, match="shape"):
        buf.add(np.zeros((2, 3)), np.zeros(2), np.zeros(2), np.zeros((2, 3)), np.zeros(2))


def test_buffer_state_round_trips_through_a_checkpoint() -> None:
    buf = filled(8, 5)
    state = from_safe(to_safe(buf.state_dict()))  # what the engine stores and reads back
    other = ReplayBuffer(8, (2,))
    other.load_state_dict(state)
    assert (other.pos, other.size) == (buf.pos, buf.size)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    a, b = buf.sample(16, rng_a), other.sample(16, rng_b)
    for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(4, (2,)).load_state_dict(state)


def test_sampling_is_uniform_over_the_filled_part() -> None:
    buf = filled(100, 10)
    draws = buf.sample(20_000, np.random.default_rng(0)).rewards.numpy()
    counts = np.bincount(draws.astype(int), minlength=10)
    assert counts.sum() == 20_000 and counts.min() > 0
    se = math.sqrt(20_000 * 0.1 * 0.9)
    assert np.abs(counts - 2000).max() < 4.5 * se


# ------------------------------------------------------------------------------- the update
def crafted(terminated: float) -> tuple[nn.Module, Transitions]:
    """One transition whose Q-values are known: Q(s) = (1, 2), Q(s') = (3, 5)."""
    q = nn.Linear(1, 2, bias=True)
    with torch.no_grad():
        q.weight.copy_(torch.tensor([[2.0], [3.0]]))
        q.bias.copy_(torch.tensor([-1.0, -1.0]))
    batch = Transitions(
        obs=torch.tensor([[1.0]]),
        actions=torch.tensor([1]),
        rewards=torch.tensor([1.0]),
        next_obs=torch.tensor([[2.0]]),
        terminated=torch.tensor([terminated]),
    )
    return q, batch


def test_a_truncated_transition_bootstraps_and_a_terminated_one_does_not() -> None:
    gamma = 0.9
    # truncated by the time limit (terminated = 0): y = 1 + 0.9 * max(3, 5) = 5.5
    q, batch = crafted(terminated=0.0)
    assert dqn_loss(q, q, batch, gamma, "mse").item() == pytest.approx((2.0 - 5.5) ** 2)
    # terminated: y = r = 1
    q, batch = crafted(terminated=1.0)
    assert dqn_loss(q, q, batch, gamma, "mse").item() == pytest.approx((2.0 - 1.0) ** 2)


def test_huber_is_quadratic_near_zero_and_linear_beyond_one() -> None:
    q, batch = crafted(terminated=1.0)  # error Q - y = 1: the boundary, 0.5
    assert dqn_loss(q, q, batch, 0.9, "huber").item() == pytest.approx(0.5)
    q, batch = crafted(terminated=0.0)  # error -3.5: |d| - 0.5 = 3
    assert dqn_loss(q, q, batch, 0.9, "huber").item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="huber"):
        dqn_loss(q, q, batch, 0.9, "l1")  # type: ignore[arg-type]


def test_no_gradient_flows_through_the_target() -> None:
    """With the online net as its own target (no target network), the gradient is the
    semi-gradient: the same as regressing on the target computed beforehand as a constant."""
    torch.manual_seed(0)
    net = QNetwork(3, 2, (8,)).double()
    batch = Transitions(
        obs=torch.randn(5, 3, dtype=torch.float64),
        actions=torch.tensor([0, 1, 1, 0, 1]),
        rewards=torch.randn(5, dtype=torch.float64),
        next_obs=torch.randn(5, 3, dtype=torch.float64),
        terminated=torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0], dtype=torch.float64),
    )
    dqn_loss(net, net, batch, 0.99, "mse").backward()
    got = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    with torch.no_grad():
        y = batch.rewards + 0.99 * (1 - batch.terminated) * net(batch.next_obs).max(-1).values
    q = net(batch.obs)[torch.arange(5), batch.actions]
    ((q - y) ** 2).mean().backward()
    for a, p in zip(got, net.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-12, atol=1e-12)
    target = copy.deepcopy(net).requires_grad_(False)
    dqn_loss(net, target, batch, 0.99).backward()
    assert all(p.grad is None for p in target.parameters())


def test_target_updates_copy_or_average() -> None:
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    before = [p.detach().clone() for p in a.parameters()]
    update_target(a, b, tau=0.25)
    for p, p0, q in zip(a.parameters(), before, b.parameters(), strict=True):
        torch.testing.assert_close(p, 0.75 * p0 + 0.25 * q)
    update_target(a, b)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# ------------------------------------------------------------------------------- exploration
def test_linear_schedule() -> None:
    assert linear_schedule(0, 1.0, 0.04, 8000) == 1.0
    assert linear_schedule(4000, 1.0, 0.04, 8000) == pytest.approx(0.52)
    assert linear_schedule(9000, 1.0, 0.04, 8000) == 0.04
    assert linear_schedule(5, 1.0, 0.1, 0) == 0.1


def test_epsilon_greedy_explores_with_probability_epsilon() -> None:
    q = torch.tensor([[0.0, 1.0, 0.5]]).repeat(30_000, 1)  # greedy action 1
    gen = torch.Generator().manual_seed(0)
    assert epsilon_greedy(q, 0.0, gen).eq(1).all()
    actions = epsilon_greedy(q, 0.3, gen)
    freq = torch.bincount(actions, minlength=3).double() / len(actions)
    expected = torch.tensor([0.1, 0.8, 0.1], dtype=torch.float64)  # 0.7 + 0.3 / 3 on action 1
    se = (expected * (1 - expected) / len(actions)).sqrt()
    assert ((freq - expected).abs() < 4.5 * se).all()


def test_boltzmann_samples_the_softmax_of_q_over_t() -> None:
    q = torch.tensor([[0.0, 1.0, 2.0]]).repeat(30_000, 1)
    gen = torch.Generator().manual_seed(1)
    actions = boltzmann(q, 2.0, gen)
    freq = torch.bincount(actions, minlength=3).double() / len(actions)
    expected = torch.softmax(q[0].double() / 2.0, -1)
    se = (expected * (1 - expected) / len(actions)).sqrt()
    assert ((freq - expected).abs() < 4.5 * se).all()
    assert boltzmann(q[:100], 1e-3, gen).eq(2).all()  # T -> 0: greedy
    with pytest.raises(ValueError, match="temperature"):
        boltzmann(q, 0.0, gen)


# ------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"eval_every": 100}, "eval_every"),
        ({"learning_starts": 2000}, "learning_starts"),
        ({"train_freq": 63}, "train_freq"),
        ({"tau": 0.0}, "tau"),
        ({"eps_end": 0.5, "eps_start": 0.1}, "eps_end"),
        ({"buffer_size": 10}, "buffer_size"),
    ],
)
def test_config_rejects_bad_values(changes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        replace(TINY, **changes)


def test_a_continuous_action_space_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="discrete action space"):
        train_dqn(replace(TINY, env_id="Pendulum-v1"), context(tmp_path))


# ------------------------------------------------------------------------------- training
def test_training_stores_no_autoreset_step_and_counts_real_steps(tmp_path: Path) -> None:
    _, run = train_dqn(TINY, context(tmp_path), tag="t")
    # a phase stores at least train_freq transitions; 2 copies may overshoot by 1 each phase
    assert 512 <= run.env_steps <= 512 + 8 and run.updates == 4 * (512 // 64 - 1)
    assert (np.diff(run.eval_steps, prepend=0) >= 128).all() and math.isnan(run.solved_at)
    assert np.isfinite(run.losses).all() and len(run.episode_returns) > 0
    state = load_checkpoint(tmp_path / "checkpoints" / "t.pt")["track"]["buffer"]
    obs, next_obs = state["obs"], state["next_obs"]
    # a stored transition is one CartPole step (|dx| <= 0.02 * |v|, ...): the autoreset step,
    # which jumps back to a fresh state near 0, would break this continuity
    assert state["size"] == run.env_steps and np.abs(next_obs - obs).max() < 0.5
    terminal = state["terminated"]
    assert terminal.any()
    angle, x = np.abs(next_obs[terminal, 2]), np.abs(next_obs[terminal, 0])
    assert ((angle > 0.2094) | (x > 2.4)).all()  # terminated = the pole fell or the cart left


def test_no_replay_uses_each_transition_once(tmp_path: Path) -> None:
    _, run = train_dqn(replace(TINY, replay=False), context(tmp_path), tag="t")
    assert run.updates == (64 // 16) * (512 // 64 - 1)  # train_freq / batch per phase


def test_training_stops_once_the_evaluation_reaches_the_target(tmp_path: Path) -> None:
    _, run = train_dqn(replace(TINY, target_return=5.0), context(tmp_path), tag="t")
    assert run.solved_at == run.env_steps == run.eval_steps[0] and len(run.eval_steps) == 1


@pytest.mark.parametrize("target", ["frozen", "ema"])
def test_a_killed_run_resumes_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """Rounds before the kill are read back bitwise; the run then continues (the episodes in
    progress restart) to the same budget."""
    cfg = replace(TINY, target=target)
    _, full = train_dqn(cfg, context(tmp_path / "a"), tag="t")

    calls = []
    original = dqn.greedy_returns

    def killed_at_round_three(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(dqn, "greedy_returns", killed_at_round_three)
    with pytest.raises(KeyboardInterrupt):
        train_dqn(cfg, context(tmp_path / "b"), tag="t")
    saved = load_checkpoint(tmp_path / "b" / "checkpoints" / "t.pt")
    assert saved["round"] == 2 and saved["track"]["counters"]["env_steps"] == full.eval_steps[1]
    monkeypatch.setattr(dqn, "greedy_returns", original)
    _, resumed = train_dqn(cfg, context(tmp_path / "b", resume=True), tag="t")
    assert resumed.eval_returns[:2].tolist() == full.eval_returns[:2].tolist()
    assert resumed.losses[:2].tolist() == full.losses[:2].tolist()
    assert resumed.eval_steps[:2].tolist() == full.eval_steps[:2].tolist()
    assert len(resumed.eval_steps) == len(full.eval_steps) and resumed.updates == full.updates
