"""deepnotes.rl.tabular: sampling against the exact dynamics, the updates against their
equations and exact values, exploration policies against torch, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.data.envs import make_env
from deepnotes.rl.mdp import (
    TabularMDP,
    from_gymnasium,
    policy_evaluation,
    q_from_v,
    uniform_policy,
    value_iteration,
)
from deepnotes.rl.returns import discounted_return
from deepnotes.rl.tabular import (
    TabularLearner,
    Transitions,
    Walkers,
    boltzmann_probs,
    chain_mdp,
    epsilon_greedy_probs,
    expected_sarsa_update,
    greedy_probs,
    linear_anneal,
    q_learning_update,
    reachable,
    robbins_monro,
    rollout_env,
    sample_categorical,
    sample_episodes,
    soft_greedy_policy,
    state_values,
    td0_update,
)


def tiny_mdp(gamma: float = 0.9) -> TabularMDP:
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(4), size=(4, 2))
    R = rng.normal(size=(4, 2, 4))
    return TabularMDP(P, R, np.array([0.5, 0.3, 0.2, 0.0]), np.array([0, 0, 0, 1], bool), gamma)


def test_sample_categorical_matches_its_probabilities() -> None:
    probs = np.array([[0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
    draws = sample_categorical(np.broadcast_to(probs, (20_000, 2, 3)), np.random.default_rng(0))
    freq = np.stack([np.bincount(draws[:, k], minlength=3) / 20_000 for k in range(2)])
    np.testing.assert_allclose(freq, probs, atol=0.015)
    assert (draws[:, 1] == 2).all()


def test_walkers_step_with_the_exact_transition_frequencies() -> None:
    mdp = tiny_mdp()
    starts = np.array([1.0, 0.0, 0.0, 0.0])
    walkers = Walkers(mdp, 2, 5000, np.random.default_rng(0), starts=starts)
    assert (walkers.states == 0).all()
    batch = walkers.step(np.ones((2, 5000), dtype=int))
    freq = np.bincount(batch.s2.ravel(), minlength=4) / 10_000
    np.testing.assert_allclose(freq, mdp.P[0, 1], atol=0.015)
    np.testing.assert_allclose(batch.r, mdp.R[0, 1][batch.s2])
    np.testing.assert_array_equal(batch.terminated, batch.s2 == 3)
    # walkers that reached the terminal state restart from the start distribution
    assert (walkers.states[batch.terminated] == 0).all()
    assert (walkers.states[~batch.terminated] == batch.s2[~batch.terminated]).all()


def test_walkers_truncate_at_the_horizon_and_resume_from_their_state() -> None:
    mdp = chain_mdp(4)
    walkers = Walkers(mdp, 1, 3, np.random.default_rng(0), horizon=2)
    forward = np.ones((1, 3), dtype=int)
    first, second = walkers.step(forward), walkers.step(forward)
    assert not first.truncated.any() and second.truncated.all()
    assert not second.terminated.any() and (walkers.states == 0).all()  # restarted
    state = walkers.state_dict()
    rng_state = walkers.rng.bit_generator.state
    a = walkers.step(forward)
    walkers.load_state_dict(state)
    walkers.rng.bit_generator.state = rng_state
    b = walkers.step(forward)
    np.testing.assert_array_equal(a.s2, b.s2)


def test_walkers_reject_bad_arguments() -> None:
    mdp = tiny_mdp()
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="replicates, walkers >= 1"):
        Walkers(mdp, 0, 1, rng)
    with pytest.raises(ConfigError, match="horizon"):
        Walkers(mdp, 1, 1, rng, horizon=0)
    with pytest.raises(ConfigError, match="no mass on terminal"):
        Walkers(mdp, 1, 1, rng, starts=np.array([0.0, 0.0, 0.0, 1.0]))
    with pytest.raises(ConfigError, match="distribution of shape"):
        Walkers(mdp, 1, 1, rng, starts=np.ones(4))


def test_sample_episodes_returns_are_the_discounted_rewards_and_average_to_v() -> None:
    mdp = tiny_mdp(gamma=0.8)
    pi = uniform_policy(mdp)
    episodes = sample_episodes(mdp, pi, 20_000, np.random.default_rng(1), max_steps=300)
    assert episodes.terminated.all()
    g = episodes.returns(0.8)
    for e in range(5):
        n = episodes.lengths[e]
        assert g[e] == pytest.approx(discounted_return(episodes.rewards[e, :n], 0.8))
        assert (episodes.rewards[e, n:] == 0).all() and mdp.terminal[episodes.states[e, n]]
    assert episodes.returns(np.array([0.8, 0.5])).shape == (2, 20_000)
    exact = mdp.initial @ policy_evaluation(mdp, pi)
    se = g.std(ddof=1) / np.sqrt(g.size)
    assert abs(g.mean() - exact) < 4 * se


def test_sample_episodes_truncates_at_max_steps() -> None:
    episodes = sample_episodes(chain_mdp(3), np.ones((3, 2)) / 2, 10, np.random.default_rng(0), 5)
    assert episodes.lengths.tolist() == [5] * 10 and not episodes.terminated.any()
    with pytest.raises(ConfigError, match="episodes >= 1"):
        sample_episodes(chain_mdp(3), np.ones((3, 2)) / 2, 0, np.random.default_rng(0))


def test_rollout_env_follows_the_tabular_dynamics() -> None:
    mdp = from_gymnasium("FrozenLake-v1")
    env = make_env("FrozenLake-v1", seed=0)
    rng = np.random.default_rng(0)
    for episode in range(20):
        states, actions, rewards, terminated = rollout_env(env, uniform_policy(mdp), rng, episode)
        assert len(states) == len(actions) + 1 == len(rewards) + 1
        s, a, s2 = states[:-1], actions, states[1:]
        assert (mdp.P[s, a, s2] > 0).all()
        np.testing.assert_array_equal(rewards, mdp.R[s, a, s2])
        assert terminated == bool(mdp.terminal[states[-1]])


def test_exploration_policies() -> None:
    q = np.array([[1.0, 3.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(greedy_probs(q), [[0, 0.5, 0.5, 0], [0.25] * 4])
    eps = epsilon_greedy_probs(q, 0.2)
    np.testing.assert_allclose(eps[0], [0.05, 0.45, 0.45, 0.05])
    np.testing.assert_allclose(eps.sum(-1), 1.0)
    ref = torch.softmax(torch.tensor(q, dtype=torch.float64) / 0.5, dim=-1).numpy()
    np.testing.assert_allclose(boltzmann_probs(q, 0.5), ref, atol=1e-15)
    big = boltzmann_probs(np.array([1000.0, 0.0]))  # stable for large values
    assert np.isfinite(big).all() and big[0] == pytest.approx(1.0)
    assert linear_anneal(1.0, 0.1, 10, 0) == 1.0 and linear_anneal(1.0, 0.1, 10, 5) == 0.55
    assert linear_anneal(1.0, 0.1, 10, 50) == pytest.approx(0.1)
    pi = soft_greedy_policy(q, 0.4)
    np.testing.assert_allclose(pi, [[0.1, 0.7, 0.1, 0.1], [0.7, 0.1, 0.1, 0.1]])
    np.testing.assert_allclose(state_values(q[None], pi)[0], (pi * q).sum(-1))
    with pytest.raises(ConfigError, match="epsilon"):
        epsilon_greedy_probs(q, 1.5)
    with pytest.raises(ConfigError, match="temperature"):
        boltzmann_probs(q, 0.0)


def test_robbins_monro_steps() -> None:
    n = np.array([0, 1, 2, 10])
    np.testing.assert_allclose(robbins_monro(n), [0, 1, 1 / 2, 1 / 10])
    np.testing.assert_allclose(robbins_monro(n, scale=10.0), [0, 1, 10 / 11, 10 / 19])
    np.testing.assert_allclose(robbins_monro(n, omega=0.5), [0, 1, 2**-0.5, 10**-0.5])
    with pytest.raises(ConfigError, match="omega"):
        TabularLearner((2,), omega=0.5)
    with pytest.raises(ConfigError, match="scale"):
        TabularLearner((2,), scale=0.0)


def test_learner_with_unit_steps_is_the_running_mean_of_its_targets() -> None:
    learner = TabularLearner((1, 3))
    targets = [np.array([[2.0, 4.0, 6.0]]), np.array([[8.0]]), np.array([[5.0, 7.0]])]
    seen: list[float] = []
    for t in targets:
        index = (np.zeros(t.shape, dtype=int), np.zeros(t.shape, dtype=int))
        learner.update(index, t - learner.table[index])
        seen.extend(t.ravel())
        assert learner.table[0, 0] == pytest.approx(np.mean(seen))
    assert learner.counts[0].tolist() == [6, 0, 0] and learner.table[0, 1:].tolist() == [0, 0]


def _one(s: int, a: int, r: float, s2: int, terminated: bool) -> Transitions:
    def arr(x):  # type: ignore[no-untyped-def]
        return np.array([[x]])

    return Transitions(arr(s), arr(a), arr(r), arr(s2), arr(terminated), arr(not terminated))


def test_one_step_targets_are_the_equations() -> None:
    gamma = 0.5
    v = TabularLearner((1, 3))
    v.table[:] = [[0.0, 4.0, 0.0]]
    v.counts[0, 0] = 1.0  # the next update of state 0 takes alpha = 1/2
    td0_update(v, _one(0, 0, 1.0, 1, False), gamma)  # target 1 + 0.5 * 4 = 3
    assert v.table[0, 0] == pytest.approx(1.5)
    td0_update(v, _one(2, 0, 1.0, 1, True), gamma)  # terminated: target 1, first update
    assert v.table[0, 2] == pytest.approx(1.0)

    q = TabularLearner((1, 2, 2))
    q.table[0, 1] = [2.0, 6.0]
    q_learning_update(q, _one(0, 1, 1.0, 1, False), gamma)  # 1 + 0.5 * max(2, 6) = 4
    assert q.table[0, 0, 1] == pytest.approx(4.0)
    sarsa = TabularLearner((1, 2, 2))
    sarsa.table[0, 1] = [2.0, 6.0]
    pi = np.array([[0.5, 0.5], [0.75, 0.25]])
    expected_sarsa_update(sarsa, _one(0, 1, 1.0, 1, False), gamma, pi)  # 1 + 0.5 * 3 = 2.5
    assert sarsa.table[0, 0, 1] == pytest.approx(2.5)
    # a truncated transition (terminated False) bootstraps; a terminated one does not
    cut = TabularLearner((1, 2, 2))
    cut.table[0, 1] = [2.0, 6.0]
    q_learning_update(cut, _one(0, 0, 1.0, 1, True), gamma)
    assert cut.table[0, 0, 0] == pytest.approx(1.0)


def test_state_dict_round_trip() -> None:
    learner = TabularLearner((2, 3))
    learner.update((np.array([0, 1]), np.array([2, 2])), np.array([1.0, 3.0]))
    other = TabularLearner((2, 3))
    other.load_state_dict(learner.state_dict())
    np.testing.assert_array_equal(other.table, learner.table)
    np.testing.assert_array_equal(other.counts, learner.counts)


def test_td0_q_learning_and_expected_sarsa_converge_on_a_small_mdp() -> None:
    mdp = tiny_mdp(gamma=0.8)
    live = ~mdp.terminal
    pi = soft_greedy_policy(value_iteration(mdp)[0], 0.2)
    starts = live / live.sum()
    rng = np.random.default_rng(0)
    on = Walkers(mdp, 2, 64, rng, starts, horizon=30)
    off = Walkers(mdp, 2, 64, rng, starts, horizon=30)
    v = TabularLearner((2, 4), scale=5.0)
    q = TabularLearner((2, 4, 2), scale=5.0)
    sarsa = TabularLearner((2, 4, 2), scale=5.0)
    cdf = np.cumsum(pi, -1)
    for _ in range(400):
        a = np.minimum((rng.random((2, 64, 1)) >= cdf[on.states]).sum(-1), 1)
        td0_update(v, on.step(a), mdp.gamma)
        batch = off.step(rng.integers(2, size=(2, 64)))
        q_learning_update(q, batch, mdp.gamma)
        expected_sarsa_update(sarsa, batch, mdp.gamma, pi)
    v_pi = policy_evaluation(mdp, pi)
    assert np.abs(v.table - v_pi)[:, live].max() < 0.1
    assert np.abs(q.table - value_iteration(mdp)[0])[:, live].max() < 0.1
    q_pi = q_from_v(mdp, v_pi)
    assert np.abs(sarsa.table - q_pi)[:, live].max() < 0.1


def test_chain_mdp_values_and_reachability() -> None:
    mdp = chain_mdp(6, small=0.2, big=1.0, gamma=0.9)
    _, v_star = value_iteration(mdp)
    np.testing.assert_allclose(v_star, 0.9 ** np.arange(5, -1, -1) / 0.1, atol=1e-8)
    assert reachable(mdp).all()
    with pytest.raises(ConfigError, match="n >= 2"):
        chain_mdp(1)
    cliff = from_gymnasium("CliffWalking-v1")
    ok = reachable(cliff)
    assert not ok[37:47].any() and ok[:37].all() and ok[47]  # the cliff cells are never occupied
