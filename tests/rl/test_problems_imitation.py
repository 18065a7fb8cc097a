"""The notes' behaviour cloning problem (discussion 8, problem 2), answered by the library."""

from __future__ import annotations

import numpy as np
import torch

import deepnotes.rl.problems_imitation as pi_mod
from deepnotes.core.catalog import problems, run_problems
from deepnotes.rl.mdp import TabularMDP, trajectory_log_prob

NAME = "Behavior cloning maximizes the likelihood of expert trajectories"


def answers() -> dict:
    (row,) = run_problems(["rl"], [NAME])
    assert not row.error, row.error
    return dict(row.quantities)


def chain() -> TabularMDP:
    """Three states, two actions; action 1 moves right with probability 0.8; state 2 ends."""
    P = np.zeros((3, 2, 3))
    for s in range(3):
        P[s, 0, s] = 1.0
        P[s, 1, min(s + 1, 2)] += 0.8
        P[s, 1, s] += 0.2
    return TabularMDP(P, np.zeros((3, 2, 3)), np.array([0.5, 0.5, 0.0]), np.array([0, 0, 1]))


def test_registered_with_its_source() -> None:
    ours = [p for p in problems(["rl"]) if p.fn.__module__ == pi_mod.__name__]
    assert [p.name for p in ours] == [NAME]
    assert ours[0].source == "discussion 8, section 2.2, problem 2"


def test_gap_is_the_same_constant_for_both_thetas_and_equals_the_dynamics_terms() -> None:
    got = answers()
    rows = got["[theta, sum log pi_theta(tau), BC objective sum log pi_theta(a|s), difference]"]
    (_, lik1, bc1, gap1), (_, lik2, bc2, gap2) = rows
    assert abs(lik1 - lik2) > 1.0 and abs(bc1 - bc2) > 1.0  # the thetas really differ
    assert abs(gap1 - gap2) < 1e-9
    assert got["|difference(theta_1) - difference(theta_2)|"] < 1e-9
    assert got["max |difference - dynamics terms|"] < 1e-9
    assert gap1 < 0 and got["BC maximiser beats theta_1 and theta_2 on trajectory log-likelihood"]
    n_traj, n_pairs = got["expert trajectories, (state, action) pairs"]
    assert n_traj == pi_mod.TRAJECTORIES and n_traj <= n_pairs <= n_traj * pi_mod.HORIZON


def test_softmax_policy_is_torch_softmax() -> None:
    theta = np.random.default_rng(0).normal(size=(5, 3)) * 10
    want = torch.softmax(torch.as_tensor(theta), -1).numpy()
    np.testing.assert_allclose(pi_mod.softmax_policy(theta), want, rtol=0, atol=1e-15)


def test_dynamics_terms_by_hand_on_a_chain() -> None:
    mdp = chain()
    # 0 -(1)-> 1 -(1)-> 1 -(1)-> 2: p(s1) = 0.5, then 0.8, 0.2, 0.8
    traj = ([0, 1, 1, 2], [1, 1, 1])
    want = np.log(0.5) + np.log(0.8) + np.log(0.2) + np.log(0.8)
    assert abs(pi_mod.dynamics_terms(mdp, [traj]) - want) < 1e-12
    policy = np.array([[0.3, 0.7], [0.4, 0.6], [0.5, 0.5]])
    bc = pi_mod.bc_objective(policy, [traj])
    assert abs(bc - (np.log(0.7) + 2 * np.log(0.6))) < 1e-12
    assert abs(trajectory_log_prob(mdp, policy, *traj) - (bc + want)) < 1e-12


def test_sampled_trajectories_stop_at_a_terminal_state_or_the_horizon() -> None:
    mdp, rng = chain(), np.random.default_rng(0)
    always_right = np.array([[0.0, 1.0]] * 3)
    for _ in range(20):
        states, actions = pi_mod.sample_trajectory(mdp, always_right, 50, rng)
        assert len(states) == len(actions) + 1 and states[-1] == 2 and 2 not in states[:-1]
    states, actions = pi_mod.sample_trajectory(mdp, np.array([[1.0, 0.0]] * 3), 4, rng)
    assert len(actions) == 4 and len(set(states)) == 1  # stays put until the horizon
