r"""The notes' behaviour cloning problem, answered numerically on a tabular MDP.

Discussion 8, section 2.2, problem 2 ("Behavior cloning maximizes likelihood of expert
trajectories"): with the trajectory decomposition of problem 1,

.. math::
    \log \pi_\theta(\tau) = \log p(s_1) + \sum_t \log \pi_\theta(a_t|s_t)
    + \sum_t \log P(s_{t+1}|s_t, a_t),

so the summed log-likelihood of the expert's trajectories differs from the behaviour cloning
objective :math:`\sum_{(s,a) \in \mathcal{D}} \log \pi_\theta(a|s)` by the initial-state and
dynamics terms, which do not depend on :math:`\theta`: maximising one maximises the other.

Numerically: expert trajectories are sampled on slippery FrozenLake-v1 (the exact dynamics of
:func:`deepnotes.rl.mdp.from_gymnasium`) from a stochastic expert :math:`\beta` (a softmax of
:math:`Q^*` from :func:`~deepnotes.rl.mdp.value_iteration`); for two unrelated tabular softmax
policies :math:`\pi_{\theta_1}, \pi_{\theta_2}` the gap "trajectory log-likelihood minus BC
objective" is computed with :func:`~deepnotes.rl.mdp.trajectory_log_prob` and is the same number
for both, equal to the dynamics terms computed directly. The BC maximiser (the expert's empirical
action frequencies in each visited state) then also has the largest trajectory log-likelihood.
Only the choices below are literals (environment, discount, temperature, sample sizes, seed).
"""

from __future__ import annotations

import numpy as np

from deepnotes.core.catalog import Answer, problem
from deepnotes.rl.mdp import TabularMDP, from_gymnasium, trajectory_log_prob, value_iteration

ENV_ID = "FrozenLake-v1"
GAMMA = 0.95
TEMPERATURE = 0.05
"""The expert beta is softmax(Q* / TEMPERATURE): near-optimal but stochastic."""
TRAJECTORIES = 50
HORIZON = 30
"""Trajectories stop at a terminal state or after this many actions."""
SEED = 0


def softmax_policy(theta: np.ndarray) -> np.ndarray:
    r"""The tabular policy :math:`\pi_\theta(a|s) = \mathrm{softmax}(\theta_s)_a`, ``(S, A)``."""
    z = np.exp(theta - theta.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def sample_trajectory(
    mdp: TabularMDP, pi: np.ndarray, horizon: int, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """States ``(s_1..s_{T+1})`` and actions ``(a_1..a_T)`` of one episode of ``pi``, stopped
    at a terminal state or after ``horizon`` actions."""
    s = mdp.reset(rng)
    states, actions = [s], []
    for _ in range(horizon):
        a = int(rng.choice(mdp.n_actions, p=pi[s]))
        s, _, done = mdp.step(s, a, rng)
        states.append(s)
        actions.append(a)
        if done:
            break
    return states, actions


def bc_objective(pi: np.ndarray, trajectories: list[tuple[list[int], list[int]]]) -> float:
    r""":math:`\sum_{(s,a) \in \mathcal{D}} \log \pi(a|s)` over every pair of the
    trajectories."""
    return float(sum(np.log(pi[s[:-1], a]).sum() for s, a in trajectories))


def dynamics_terms(mdp: TabularMDP, trajectories: list[tuple[list[int], list[int]]]) -> float:
    r""":math:`\sum_\tau [\log p(s_1) + \sum_t \log P(s_{t+1}|s_t,a_t)]`: what the trajectory
    log-likelihood adds to the BC objective."""
    total = 0.0
    for s, a in trajectories:
        s, a = np.asarray(s), np.asarray(a)
        total += np.log(mdp.initial[s[0]]) + np.log(mdp.P[s[:-1], a, s[1:]]).sum()
    return float(total)


@problem(
    "Behavior cloning maximizes the likelihood of expert trajectories",
    topic="rl",
    source="discussion 8, section 2.2, problem 2",
)
def _bc_trajectory_likelihood() -> Answer:
    mdp = from_gymnasium(ENV_ID, gamma=GAMMA)
    q_star, _ = value_iteration(mdp)
    beta = softmax_policy(q_star / TEMPERATURE)
    rng = np.random.default_rng(SEED)
    data = [sample_trajectory(mdp, beta, HORIZON, rng) for _ in range(TRAJECTORIES)]
    thetas = {name: rng.normal(size=(mdp.n_states, mdp.n_actions)) for name in ("1", "2")}
    rows, gaps = [], []
    for name, theta in thetas.items():
        pi = softmax_policy(theta)
        log_lik = sum(trajectory_log_prob(mdp, pi, s, a) for s, a in data)
        bc = bc_objective(pi, data)
        rows.append((name, log_lik, bc, log_lik - bc))
        gaps.append(log_lik - bc)
    # the BC maximiser: empirical action frequencies of the expert in each visited state
    counts = np.zeros((mdp.n_states, mdp.n_actions))
    for s, a in data:
        np.add.at(counts, (np.asarray(s[:-1]), np.asarray(a)), 1.0)
    seen = counts.sum(-1, keepdims=True) > 0
    uniform = 1.0 / mdp.n_actions  # unvisited states: any distribution, they never appear
    pi_ml = np.where(seen, counts / np.maximum(counts.sum(-1, keepdims=True), 1), uniform)
    ml_log_lik = sum(trajectory_log_prob(mdp, pi_ml, s, a) for s, a in data)
    pairs = sum(len(a) for _, a in data)
    return Answer(
        [
            ("expert trajectories, (state, action) pairs", [len(data), pairs]),
            (
                "[theta, sum log pi_theta(tau), BC objective sum log pi_theta(a|s), difference]",
                rows,
            ),
            ("|difference(theta_1) - difference(theta_2)|", abs(gaps[0] - gaps[1])),
            ("dynamics terms sum [log p(s_1) + sum_t log P(s'|s,a)]", dynamics_terms(mdp, data)),
            (
                "max |difference - dynamics terms|",
                max(abs(g - dynamics_terms(mdp, data)) for g in gaps),
            ),
            ("sum log pi(tau) at the BC maximiser (expert's action frequencies)", ml_log_lik),
            (
                "BC maximiser beats theta_1 and theta_2 on trajectory log-likelihood",
                bool(ml_log_lik > max(r[1] for r in rows)),
            ),
        ],
        note=f"{TRAJECTORIES} trajectories (at most {HORIZON} actions) of beta = softmax(Q*/"
        f"{TEMPERATURE}) on slippery {ENV_ID} (gamma {GAMMA}), sampled with mdp.step; "
        "trajectory_log_prob for sum log pi_theta(tau); theta_1, theta_2 ~ N(0, 1) per entry. "
        "The difference does not depend on theta: it is the initial-state and dynamics terms.",
    )
