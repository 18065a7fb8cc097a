r"""The notes' trajectory-probability problem, answered on a small tabular MDP.

Discussion 8, section 2.1, problem 1 "Probability of a trajectory under a Markovian policy":
for :math:`\tau = ((s_0, a_0), \ldots, (s_T, a_T))`, the Markov property gives

.. math:: \log p_\pi(\tau) = \log p(s_0) + \sum_{t=0}^{T} \log \pi(a_t | s_t)
          + \sum_{t=0}^{T-1} \log P(s_{t+1} | s_t, a_t).

The answer computes it with :func:`~deepnotes.rl.mdp.trajectory_log_prob` (which ends at the
state :math:`s_T`) plus the last action's :math:`\log \pi(a_T|s_T)`, and checks it against
enumeration: the probabilities of all :math:`(S A)^{T+1}` trajectories sum to one, their marginal
of :math:`s_T` equals :math:`p_0 (P^\pi)^T` (a matrix power, an independent computation), and
the Monte Carlo frequency of the trajectory in :data:`SAMPLES` sampled episodes agrees with
:math:`p_\pi(\tau)`. The MDP (3 states, 2 actions), its policy and the seed are chosen here.
"""

from __future__ import annotations

import itertools

import numpy as np

from deepnotes.core import stats
from deepnotes.core.catalog import Answer, problem
from deepnotes.rl.mdp import TabularMDP, trajectory_log_prob
from deepnotes.rl.tabular import sample_categorical, sample_episodes

SEED = 0
STATES, ACTIONS, HORIZON = 3, 2, 3
"""The small MDP's sizes and the last time index T (T + 1 state-action pairs)."""
SAMPLES = 200_000


def small_mdp(seed: int = SEED) -> tuple[TabularMDP, np.ndarray]:
    """A random 3-state, 2-action MDP without terminal states and a random policy ``(S, A)``."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(STATES), size=(STATES, ACTIONS))  # (S, A, S)
    R = rng.normal(size=(STATES, ACTIONS, STATES))
    initial = rng.dirichlet(np.ones(STATES))
    pi = rng.dirichlet(np.ones(ACTIONS), size=STATES)  # (S, A)
    return TabularMDP(P, R, initial, np.zeros(STATES, dtype=bool), gamma=0.9), pi


def notes_log_prob(
    mdp: TabularMDP, pi: np.ndarray, states: np.ndarray, actions: np.ndarray
) -> float:
    """The notes' :math:`\\log p(\\tau)` for ``T + 1`` states and ``T + 1`` actions."""
    return trajectory_log_prob(mdp, pi, states, actions[:-1]) + float(
        np.log(pi[states[-1], actions[-1]])
    )


def enumerate_trajectories(
    mdp: TabularMDP, pi: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every trajectory ``(s_0, a_0, ..., s_T, a_T)``: states ``(M, T+1)``, actions
    ``(M, T+1)`` and their probabilities ``(M,)`` by the formula."""
    S, A = mdp.n_states, mdp.n_actions
    states, actions, probs = [], [], []
    for seq in itertools.product(range(S * A), repeat=horizon + 1):
        s, a = np.array(seq) // A, np.array(seq) % A
        states.append(s)
        actions.append(a)
        probs.append(np.exp(notes_log_prob(mdp, pi, s, a)))
    return np.array(states), np.array(actions), np.array(probs)


@problem(
    "Probability of a trajectory under a Markovian policy",
    topic="rl",
    source="discussion 8, section 2.1, problem 1",
)
def _trajectory_probability() -> Answer:
    mdp, pi = small_mdp()
    states, actions, probs = enumerate_trajectories(mdp, pi, HORIZON)
    top = int(np.argmax(probs))
    s, a = states[top], actions[top]
    log_p = notes_log_prob(mdp, pi, s, a)
    terms = [float(np.log(mdp.initial[s[0]]))]  # log p(s_0), then per step
    for t in range(HORIZON + 1):
        terms.append(float(np.log(pi[s[t], a[t]])))
        if t < HORIZON:
            terms.append(float(np.log(mdp.P[s[t], a[t], s[t + 1]])))
    marginal = np.bincount(states[:, -1], weights=probs, minlength=mdp.n_states)
    p_pi = np.einsum("sa,sat->st", pi, mdp.P)  # (S, S)
    power = mdp.initial @ np.linalg.matrix_power(p_pi, HORIZON)
    # Monte Carlo: sample T steps (truncated at T, then the last action a_T ~ pi)
    rng = np.random.default_rng(SEED)
    episodes = sample_episodes(mdp, pi, SAMPLES, rng, max_steps=HORIZON)
    last = sample_categorical(pi[episodes.states[:, -1]], rng)  # (SAMPLES,): a_T ~ pi(.|s_T)
    hits = (
        (episodes.states == s).all(axis=1)
        & (episodes.actions == a[:-1]).all(axis=1)
        & (last == a[-1])
    ).astype(float)
    freq, se = stats.mean_se(hits)
    return Answer(
        [
            (
                "formula",
                "log p(tau) = log p(s_0) + sum_{t=0}^{T} log pi(a_t|s_t) + "
                "sum_{t=0}^{T-1} log P(s_{t+1}|s_t, a_t)",
            ),
            ("T, |S|, |A|", [HORIZON, mdp.n_states, mdp.n_actions]),
            ("most likely trajectory: states s_0..s_T", s),
            ("its actions a_0..a_T", a),
            ("its terms [log p(s0), log pi, log P, log pi, ...]", np.array(terms)),
            ("log p(tau)", log_p),
            ("sum of the terms - log p(tau)", float(np.sum(terms)) - log_p),
            ("p(tau)", float(np.exp(log_p))),
            ("sum of p over all (S A)^(T+1) trajectories", float(probs.sum())),
            (
                "max |marginal of s_T by enumeration - p_0 (P^pi)^T|",
                float(np.max(np.abs(marginal - power))),
            ),
            (f"Monte Carlo frequency of tau ({SAMPLES} episodes)", freq),
            ("its standard error", se),
            ("z = (frequency - p(tau)) / SE", (freq - float(np.exp(log_p))) / se),
        ],
        note="trajectory_log_prob (states s_0..s_T, actions a_0..a_{T-1}) plus log pi(a_T|s_T); "
        "enumeration of every trajectory of a random 3-state, 2-action MDP; marginal by "
        "matrix power; frequency from sample_episodes.",
    )
