r"""The notes' baseline problems, answered by :mod:`deepnotes.rl.policy_gradient`.

Discussion 9, section 1.2.2 "Baselines": (a) a constant baseline leaves the policy gradient
unbiased, :math:`E[\nabla \log \pi_\theta(\tau)\, b] = 0`, and (b) under the (untrue) assumption
that :math:`\nabla \log \pi_\theta(\tau)` and :math:`R(\tau)` are independent, :math:`b = E[R]`
minimises the second moment :math:`E[\|\nabla \log \pi_\theta(\tau)\|^2 (R - b)^2]`; and
problem 1 "State-dependent baselines": subtracting :math:`b(s_t)` from the reward-to-go adds no
bias. Each is answered on a small random MDP (:func:`~deepnotes.rl.policy_gradient.random_mdp`)
at a fixed softmax policy, by Monte Carlo next to the exact values; the experiment
``rl.policy_gradient_variance`` makes the same point with every estimator and many more
episodes. Only the MDP's size, the sample size and the seed are chosen here; every number is
computed by the library.
"""

from __future__ import annotations

import numpy as np

from deepnotes.core import stats
from deepnotes.core.catalog import Answer, problem
from deepnotes.rl import policy_gradient as pg
from deepnotes.rl.mdp import TabularMDP, policy_evaluation

SEED = 0
EPISODES = 20_000
N_STATES, N_ACTIONS = 4, 3
BASELINE_SCALE = 5.0
"""Spread of the arbitrary state baseline b(s) of problem 1."""
GRID = 2001
"""Points of the grid of constant baselines b searched for the minimiser."""


def _setting() -> tuple[TabularMDP, np.ndarray, pg.Episodes]:
    """The MDP, the policy's logits (S, A) and the sampled episodes."""
    rng = np.random.default_rng(SEED)
    mdp = pg.random_mdp(N_STATES, N_ACTIONS, rng, end_prob=0.25, level_scale=2.0)
    theta = rng.standard_normal((mdp.n_states, mdp.n_actions))
    episodes = pg.sample_episodes(mdp, pg.softmax_policy(theta), EPISODES, rng)
    return mdp, theta, episodes


def _max_abs_z(grads: np.ndarray, expected: np.ndarray, live: np.ndarray) -> float:
    """Largest |z| of the Monte Carlo mean of per-episode gradients (N, S, A) against
    ``expected`` (S, A), over the coordinates of the live states."""
    mean, se = stats.mean_and_se(grads)
    return float(np.max(np.abs(stats.standardized_deviation(mean, se, expected)[live])))


@problem(
    "Constant baseline: unbiased, and b = E[R] minimises the second moment under independence",
    topic="rl",
    source="discussion 9, section 1.2.2 (baselines)",
)
def _constant_baseline() -> Answer:
    mdp, theta, episodes = _setting()
    pi, live = pg.softmax_policy(theta), ~mdp.terminal
    J = pg.exact_objective(mdp, theta)
    exact = pg.exact_gradient_autograd(mdp, theta)
    bound = stats.agreement_bound(int(live.sum()) * mdp.n_actions)
    ones = episodes.mask.astype(float)
    score = pg.per_episode_gradients(episodes, pi, ones)  # (N, S, A): grad log pi(tau)
    R = pg.batch_reward_to_go(episodes.rewards, episodes.mask, mdp.gamma)[:, 0]  # (N,)
    with_b = pg.per_episode_gradients(
        episodes, pi, pg.reinforce_weights(episodes, mdp.gamma, "total_baseline", J)
    )  # (N, S, A): (R - J) grad log pi(tau)
    norm2 = (score**2).sum(axis=(1, 2))  # (N,): ||grad log pi(tau)||^2
    grid = np.linspace(R.mean() - 3 * R.std(), R.mean() + 3 * R.std(), GRID)  # candidate b
    # both objectives are quadratics in b, evaluated on the grid from their moments:
    # E[(R - b)^2] = E[R^2] - 2 b E[R] + b^2, E[w (R - b)^2] = E[w R^2] - 2 b E[w R] + b^2 E[w]
    centred2 = np.mean(R**2) - 2 * grid * R.mean() + grid**2  # (GRID,)
    under_independence = norm2.mean() * centred2  # E||.||^2 E[(R - b)^2]
    second_moment = (
        np.mean(norm2 * R**2) - 2 * grid * np.mean(norm2 * R) + grid**2 * norm2.mean()
    )  # (GRID,): E[||.||^2 (R - b)^2]
    b_star = grid[np.argmin(second_moment)]

    def trace_second_moment(b: float) -> float:
        return float(np.mean(norm2 * (R - b) ** 2))

    return Answer(
        [
            ("episodes", EPISODES),
            ("E[R] = J (exact, Bellman solve)", J),
            ("mean return (Monte Carlo) +- SE", list(stats.mean_se(R))),
            (
                "max |z| of E[grad log pi(tau)] = 0 (any constant b times it)",
                _max_abs_z(score, np.zeros_like(exact), live),
            ),
            ("max |z| of E[(R - J) grad log pi(tau)] = grad J", _max_abs_z(with_b, exact, live)),
            ("agreement bound on |z| (Bonferroni over coordinates)", bound),
            (
                "argmin_b E||grad log pi||^2 E[(R - b)^2] (independence)",
                grid[np.argmin(under_independence)],
            ),
            ("argmin_b E[||grad log pi||^2 (R - b)^2] (true second moment)", b_star),
            ("grid step of b", grid[1] - grid[0]),
            (
                "corr(||grad log pi(tau)||^2, R): the assumption is untrue",
                np.corrcoef(norm2, R)[0, 1],
            ),
            ("E[||grad log pi||^2 (R - b)^2] at b = 0", trace_second_moment(0.0)),
            ("... at b = E[R]", trace_second_moment(J)),
            ("... at the true minimiser", trace_second_moment(b_star)),
        ],
        note="random_mdp(4 states, 3 actions) at a random softmax policy; sample_episodes, "
        "per_episode_gradients with weight 1 (the score of the trajectory) and with "
        "reinforce_weights('total_baseline', b = J). The independence form's minimiser on a "
        "grid of b is the sample mean return (= E[R] within MC error); the true second moment's "
        "is E[||score||^2 R] / E[||score||^2], elsewhere, as the notes warn, yet b = E[R] still "
        "lowers it well below b = 0.",
    )


@problem(
    "State-dependent baselines add no bias",
    topic="rl",
    source="discussion 9, section 1.2.2, problem 1 (state-dependent baselines)",
)
def _state_baseline() -> Answer:
    mdp, theta, episodes = _setting()
    pi, live = pg.softmax_policy(theta), ~mdp.terminal
    exact = pg.exact_gradient_autograd(mdp, theta)
    bound = stats.agreement_bound(int(live.sum()) * mdp.n_actions)
    # the hint, one timestep: E_{a ~ pi(.|s)}[grad log pi(a|s)] = grad sum_a pi(a|s) = 0 exactly
    expected_score = np.einsum("sa,sab->sb", pi, np.eye(mdp.n_actions)[None] - pi[:, None, :])
    b = BASELINE_SCALE * np.random.default_rng(SEED + 1).standard_normal(mdp.n_states)
    rows = []
    for name, table in (("arbitrary b(s)", b), ("b(s) = V^pi(s)", policy_evaluation(mdp, pi))):
        psi = pg.reinforce_weights(episodes, mdp.gamma, "state_baseline", table)
        grads = pg.per_episode_gradients(episodes, pi, psi)
        rows.append(
            (
                f"max |z| of E[sum_t (G_t - b(s_t)) grad log pi] = grad J, {name}",
                _max_abs_z(grads, exact, live),
            )
        )
    return Answer(
        [
            (
                "max_s |E_a~pi[grad log pi(a|s)]| (exact, each timestep)",
                float(np.max(np.abs(expected_score))),
            ),
            *rows,
            ("agreement bound on |z| (Bonferroni over coordinates)", bound),
            ("episodes", EPISODES),
        ],
        note="Each timestep separately: E[b(s_t) grad log pi(a_t|s_t)] = E_{s_t}[b(s_t) "
        "sum_a pi(a|s_t) grad log pi(a|s_t)] = E_{s_t}[b(s_t) grad sum_a pi(a|s_t)] = 0, the "
        "inner sum computed exactly for the softmax table; then Monte Carlo with "
        "reinforce_weights('state_baseline') for an arbitrary table b(s) and for V^pi. The "
        "variance this baseline removes is measured by the experiment rl.policy_gradient_variance.",
    )
