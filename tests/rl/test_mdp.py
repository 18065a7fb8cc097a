"""deepnotes.rl.mdp: exact values against iteration, Monte Carlo and brute force; Bellman fixed
points; trajectory probabilities against enumeration; FrozenLake's dynamics; bad inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepnotes.core.errors import ConfigError
from deepnotes.data.envs import make_env
from deepnotes.rl.mdp import (
    TabularMDP,
    bellman_optimality,
    bellman_q,
    bellman_v,
    from_gymnasium,
    greedy_policy,
    policy_evaluation,
    q_from_v,
    trajectory_log_prob,
    uniform_policy,
    value_iteration,
)
from deepnotes.rl.tabular import sample_episodes


def tiny_mdp(gamma: float = 0.9, seed: int = 0) -> TabularMDP:
    """4 states (the last terminal), 2 actions, random dynamics and rewards."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(4), size=(4, 2))
    R = rng.normal(size=(4, 2, 4))
    return TabularMDP(P, R, np.array([0.5, 0.3, 0.2, 0.0]), np.array([0, 0, 0, 1], bool), gamma)


def random_policy(mdp: TabularMDP, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(mdp.n_actions), size=mdp.n_states)


def test_terminal_states_absorb_with_zero_reward() -> None:
    mdp = tiny_mdp()
    assert mdp.P[3, :, 3].tolist() == [1.0, 1.0] and (mdp.R[3] == 0).all()
    assert not mdp.P.flags.writeable
    np.testing.assert_allclose(mdp.reward(), np.einsum("sat,sat->sa", mdp.P, mdp.R))
    other = mdp.with_gamma(0.5)
    assert other.gamma == 0.5 and np.array_equal(other.P, mdp.P)


def test_policy_evaluation_equals_iterated_bellman_operator() -> None:
    mdp = tiny_mdp()
    pi = random_policy(mdp)
    v = np.zeros(mdp.n_states)
    for _ in range(500):  # gamma^500 ~ 1e-23
        v = bellman_v(mdp, pi, v)
    np.testing.assert_allclose(policy_evaluation(mdp, pi), v, atol=1e-12)


def test_policy_evaluation_equals_monte_carlo_returns() -> None:
    mdp = tiny_mdp(gamma=0.8)
    pi = random_policy(mdp)
    start = np.array([0.0, 1.0, 0.0, 0.0])  # every episode from state 1
    episodes = sample_episodes(mdp, pi, 20_000, np.random.default_rng(0), 200, starts=start)
    g = episodes.returns(mdp.gamma)
    se = g.std(ddof=1) / np.sqrt(g.size)
    assert abs(g.mean() - policy_evaluation(mdp, pi)[1]) < 4 * se


def test_bellman_fixed_points() -> None:
    mdp = tiny_mdp()
    pi = random_policy(mdp)
    v = policy_evaluation(mdp, pi)
    q = q_from_v(mdp, v)
    np.testing.assert_allclose(bellman_v(mdp, pi, v), v, atol=1e-12)
    live = ~mdp.terminal
    np.testing.assert_allclose(bellman_q(mdp, pi, q)[live], q[live], atol=1e-12)
    np.testing.assert_allclose(np.einsum("sa,sa->s", pi, q)[live], v[live], atol=1e-12)
    q_star, v_star = value_iteration(mdp)
    np.testing.assert_allclose(bellman_optimality(mdp, q_star), q_star, atol=1e-9)
    np.testing.assert_allclose(v_star, q_star.max(-1))


def test_value_iteration_equals_brute_force_over_deterministic_policies() -> None:
    mdp = tiny_mdp()
    q_star, v_star = value_iteration(mdp)
    values = []
    for actions in itertools.product(range(mdp.n_actions), repeat=mdp.n_states):
        values.append(policy_evaluation(mdp, np.eye(mdp.n_actions)[list(actions)]))
    np.testing.assert_allclose(np.max(values, axis=0), v_star, atol=1e-9)
    np.testing.assert_allclose(policy_evaluation(mdp, greedy_policy(q_star)), v_star, atol=1e-9)


def test_greedy_and_uniform_policies() -> None:
    q = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 3.0]])
    np.testing.assert_array_equal(greedy_policy(q), [[1, 0, 0], [0, 0, 1]])  # ties: lowest
    mdp = tiny_mdp()
    assert np.allclose(uniform_policy(mdp), 0.5)


def test_trajectory_log_prob_against_enumeration() -> None:
    mdp = tiny_mdp()
    pi = random_policy(mdp)
    T = 3
    total, marginal = 0.0, np.zeros(mdp.n_states)
    for seq in itertools.product(range(mdp.n_states), repeat=T + 1):
        for acts in itertools.product(range(mdp.n_actions), repeat=T):
            p = np.exp(trajectory_log_prob(mdp, pi, seq, acts))
            total += p
            marginal[seq[-1]] += p
    assert abs(total - 1.0) < 1e-12
    p_pi = np.einsum("sa,sat->st", pi, mdp.P)
    np.testing.assert_allclose(marginal, mdp.initial @ np.linalg.matrix_power(p_pi, T), atol=1e-12)
    # by hand for one trajectory
    s, a = [0, 2, 1], [1, 0]
    by_hand = np.log(mdp.initial[0] * pi[0, 1] * mdp.P[0, 1, 2] * pi[2, 0] * mdp.P[2, 0, 1])
    assert trajectory_log_prob(mdp, pi, s, a) == pytest.approx(by_hand, abs=1e-12)
    assert trajectory_log_prob(mdp, pi, [3, 3], [0]) == -np.inf  # initial mass 0 on state 3


def test_from_gymnasium_frozenlake_matches_the_environment() -> None:
    mdp = from_gymnasium("FrozenLake-v1", gamma=0.95)
    assert (mdp.n_states, mdp.n_actions, mdp.gamma) == (16, 4, 0.95)
    assert mdp.terminal.nonzero()[0].tolist() == [5, 7, 11, 12, 15]  # holes and goal
    assert mdp.initial.tolist() == np.eye(16)[0].tolist()
    # slippery: the intended direction and its two perpendiculars, 1/3 each (state 6, down)
    np.testing.assert_allclose(mdp.P[6, 1][[5, 10, 7]], [1 / 3] * 3)
    assert mdp.R[14, 2, 15] == 1.0 and mdp.reward()[14, 2] == pytest.approx(1 / 3)
    # stepping the environment from state 6 lands where P says, with its frequencies
    env = make_env("FrozenLake-v1", seed=0)
    counts = np.zeros(16)
    for _ in range(3000):
        env.reset()
        env.unwrapped.s = 6
        s2, *_ = env.step(1)
        counts[s2] += 1
    z = (counts / 3000 - mdp.P[6, 1]) / np.sqrt(
        np.maximum(mdp.P[6, 1] * (1 - mdp.P[6, 1]), 1e-12) / 3000
    )
    assert np.abs(z).max() < 4.5 and counts[mdp.P[6, 1] == 0].sum() == 0


def test_from_gymnasium_cliffwalking_cliff_returns_to_start() -> None:
    mdp = from_gymnasium("CliffWalking-v1")
    assert mdp.terminal.nonzero()[0].tolist() == [47]
    # actions: up 0, right 1, down 2, left 3; stepping right from the start falls off the cliff
    assert mdp.P[36, 1, 36] == 1.0 and mdp.R[36, 1, 36] == -100.0
    assert mdp.P[35, 2, 47] == 1.0 and mdp.R[35, 2, 47] == -1.0  # down into the goal


def test_bad_inputs_raise_config_errors() -> None:
    mdp = tiny_mdp()
    P, R, init, term = mdp.P, mdp.R, mdp.initial, mdp.terminal
    with pytest.raises(ConfigError, match=r"P must have shape \(S, A, S\)"):
        TabularMDP(P[:, :, :3], R, init, term)
    with pytest.raises(ConfigError, match="probability distribution"):
        TabularMDP(P * 2, R, init, term)
    with pytest.raises(ConfigError, match="R must have shape"):
        TabularMDP(P, R[:, :1], init, term)
    with pytest.raises(ConfigError, match="initial"):
        TabularMDP(P, R, init[:3], term)
    with pytest.raises(ConfigError, match="gamma"):
        TabularMDP(P, R, init, term, gamma=1.5)
    with pytest.raises(ConfigError, match=r"shape \(S, A\)"):
        policy_evaluation(mdp, np.ones((4, 3)) / 3)
    with pytest.raises(ConfigError, match="T\\+1 states and T actions"):
        trajectory_log_prob(mdp, uniform_policy(mdp), [0, 1], [0, 1])
    with pytest.raises(ConfigError, match="no tabular dynamics"):
        from_gymnasium("CartPole-v1")
    # gamma = 1 with a policy that never terminates: a 2-state loop
    loop = TabularMDP(
        np.array([[[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]]),
        np.zeros((3, 1, 3)),
        np.array([1.0, 0.0, 0.0]),
        np.array([False, False, True]),
        gamma=1.0,
    )
    with pytest.raises(ConfigError, match="never reaches"):
        policy_evaluation(loop, np.ones((3, 1)))
