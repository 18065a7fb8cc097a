"""Scripted experts, rollouts, behaviour cloning and DAgger (deepnotes.rl.imitation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError
from deepnotes.data.envs import evaluate
from deepnotes.rl import imitation as il
from deepnotes.rl.models import CategoricalPolicy


def make_ctx(tmp_path: Path, resume: bool = False) -> RunContext:
    return RunContext(name="t", seed=0, device=torch.device("cpu"), out_dir=tmp_path, resume=resume)


def always(action: int) -> Callable[[np.ndarray], np.ndarray]:
    """A policy that always takes ``action``."""
    return lambda obs: np.full(len(obs), action)


@pytest.mark.parametrize(
    ("env_id", "lowest_mean"),
    [("CartPole-v1", 500.0), ("MountainCar-v0", -199.0), ("Acrobot-v1", -150.0)],
)
def test_scripted_experts_solve_their_tasks(env_id: str, lowest_mean: float) -> None:
    expert = il.expert_for(env_id)
    returns = evaluate(expert, env_id, episodes=4, seed=0)
    assert returns.mean() >= lowest_mean  # CartPole: the maximum, 500, on every episode
    # a constant action is far worse: the law is doing the work
    assert evaluate(always(0), env_id, episodes=2, seed=0).mean() < returns.mean()


def test_unknown_environment_and_bad_batch_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="experts exist for"):
        il.expert_for("Pong-v5")
    with pytest.raises(ConfigError, match=r"batch \(n, obs_size\)"):
        il.expert_for("CartPole-v1")(np.zeros(4))


def test_cartpole_expert_is_the_linear_law() -> None:
    obs = np.random.default_rng(0).normal(size=(64, 4))
    want = (obs @ il.CARTPOLE_GAINS > 0).astype(int)
    assert np.array_equal(il.expert_for("CartPole-v1")(obs), want)


def test_normalised_return_maps_floor_to_zero_and_expert_to_one() -> None:
    got = il.normalised_return(np.array([-200.0, -120.0, -160.0]), -120.0, -200.0)
    np.testing.assert_allclose(got, [0.0, 1.0, 0.5])
    with pytest.raises(ConfigError, match="not above the floor"):
        il.normalised_return(np.zeros(2), -200.0, -200.0)


def test_rollout_records_every_state_once_episode_by_episode() -> None:
    run = il.rollout(always(1), "CartPole-v1", 3, seed=0)
    # CartPole pays 1 per step: each episode's state count equals its return
    counts = np.bincount(run.episode, minlength=3)
    np.testing.assert_array_equal(counts, run.returns)
    assert np.all(np.diff(run.episode) >= 0) and run.states.shape == (counts.sum(), 4)
    short = il.rollout(il.expert_for("CartPole-v1"), "CartPole-v1", 2, seed=0, max_steps=7)
    assert short.states.shape == (14, 4) and short.returns.tolist() == [7.0, 7.0]


def test_mixture_with_beta_one_executes_the_expert() -> None:
    expert = il.expert_for("CartPole-v1")
    rng = np.random.default_rng(0)
    run = il.rollout(always(0), "CartPole-v1", 2, seed=0, expert=expert, beta=1.0, rng=rng)
    assert run.returns.tolist() == [500.0, 500.0]
    with pytest.raises(ConfigError, match="needs the expert and an rng"):
        il.rollout(always(0), "CartPole-v1", 1, seed=0, beta=0.5)


def test_disagreement_is_the_fraction_of_differing_actions() -> None:
    states = np.array([[0.0, 0, 1, 0], [0, 0, -1, 0], [0, 0, 2, 0], [0, 0, -2, 0]])
    expert = il.expert_for("CartPole-v1")  # actions 1, 0, 1, 0
    assert il.disagreement(always(1), expert, states) == 0.5
    assert il.disagreement(expert, expert, states) == 0.0
    assert np.isnan(il.disagreement(expert, expert, np.zeros((0, 4))))


def test_demonstrations_check_shapes_and_round_trip() -> None:
    data = il.Demonstrations(4)
    data.add(np.ones((3, 4)), np.array([0, 1, 1]))
    assert len(data) == 3
    with pytest.raises(ConfigError, match=r"states \(n, 4\)"):
        data.add(np.ones((2, 3)), np.array([0, 1]))
    copy = il.Demonstrations(4)
    copy.load_state_dict(data.state_dict())
    assert torch.equal(copy.states, data.states) and torch.equal(copy.actions, data.actions)


def test_bc_loss_is_torch_cross_entropy() -> None:
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, (8,))
    data = il.Demonstrations(4)
    data.add(np.random.default_rng(1).normal(size=(16, 4)), np.arange(16) % 2)
    want = F.cross_entropy(policy.logits(data.states), data.actions)
    torch.testing.assert_close(il.bc_loss(policy, data), want, rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="at least one labelled state"):
        il.bc_loss(policy, il.Demonstrations(4))


def test_behaviour_cloning_fits_the_expert_on_its_states(tmp_path: Path) -> None:
    expert = il.expert_for("CartPole-v1")
    demo = il.rollout(expert, "CartPole-v1", 1, seed=0, max_steps=100).states
    data = il.Demonstrations(4)
    data.add(demo, expert(demo))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        policy = CategoricalPolicy(4, 2, (32,))
    history = il.behaviour_cloning(
        policy, data, make_ctx(tmp_path), tag="bc", steps=150, lr=1e-2, every=50
    )
    assert len(history) == 3 and history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert il.disagreement(il.greedy(policy), expert, demo) < 0.1


def test_dagger_aggregates_labels_and_resumes_with_them(tmp_path: Path) -> None:
    expert = il.expert_for("CartPole-v1")
    demo = il.rollout(expert, "CartPole-v1", 1, seed=0, max_steps=10).states

    def run(resume: bool) -> tuple[list[dict], il.Demonstrations, CategoricalPolicy]:
        data = il.Demonstrations(4)
        data.add(demo, expert(demo))
        with torch.random.fork_rng():
            torch.manual_seed(0)
            policy = CategoricalPolicy(4, 2, (8,))
        history = il.dagger(
            policy, expert, data, make_ctx(tmp_path, resume), tag="dagger", rounds=3,
            labels_per_round=5, steps_per_round=10, lr=1e-2, seed=0,
        )  # fmt: skip
        return history, data, policy

    history, data, policy = run(resume=False)
    assert [rec["labels"] for rec in history] == [15.0, 20.0, 20.0]  # none after the last
    assert len(data) == 20
    assert torch.equal(data.actions, torch.as_tensor(expert(data.states.numpy())))
    _, restored, again = run(resume=True)  # the finished checkpoint: nothing is retrained
    assert torch.equal(restored.states, data.states)
    for a, b in zip(policy.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="beta"):
        il.dagger(
            policy, expert, data, make_ctx(tmp_path), tag="x", rounds=1, labels_per_round=1,
            steps_per_round=1, lr=1e-2, seed=0, beta=2.0,
        )  # fmt: skip
