r"""Derivation checks of the tabular RL room: the Bellman equations as fixed points, and the
gradient of a trajectory's log-probability.

Notes: discussion 9, section 2.2 (the Bellman equations
:math:`V^\pi(s) = \mathbb{E}_\pi[r_0] + \gamma \mathbb{E}[V^\pi(s_1)]` and
:math:`Q^\pi(s,a) = r(s,a) + \gamma \mathbb{E}_{s_1}\mathbb{E}_{a_1 \sim \pi} Q^\pi(s_1,a_1)`,
with :math:`V^\pi = \mathbb{E}_{a \sim \pi} Q^\pi`), section 3 (the optimality equation
:math:`Q^* = r + \gamma \mathbb{E}_{s'} \max_{a'} Q^*(s',a')`), and section 1 ("expanding out
the log probability of a trajectory and ignoring terms that don't depend on theta": the
dynamics drop out of :math:`\nabla_\theta \log p_\theta(\tau)`).

The Bellman entries solve for the values one way (the linear solve of
:func:`~deepnotes.rl.mdp.policy_evaluation`, the iteration of
:func:`~deepnotes.rl.mdp.value_iteration`) and evaluate the right-hand side of the equation
written out here with ``einsum`` on FrozenLake-v1's exact dynamics (slippery, gamma 0.95, a
random policy): the largest absolute difference is the check. The gradient entry compares the
closed form :math:`\sum_t (e_{a_t} - \pi_\theta(\cdot|s_t))` in the rows :math:`s_t` of a tabular
softmax policy with torch autograd through the *whole* :math:`\log p_\theta(\tau)`, initial
state and transition terms included.
"""

from __future__ import annotations

import numpy as np
import torch

from deepnotes.core.catalog import Check, derivation
from deepnotes.rl.mdp import TabularMDP, from_gymnasium, policy_evaluation, value_iteration
from deepnotes.rl.problems_tabular import small_mdp
from deepnotes.rl.tabular import sample_episodes

SEED = 0
GAMMA = 0.95


def _frozenlake_and_policy() -> tuple[TabularMDP, np.ndarray]:
    mdp = from_gymnasium("FrozenLake-v1", gamma=GAMMA)
    pi = np.random.default_rng(SEED).dirichlet(np.ones(mdp.n_actions), size=mdp.n_states)
    return mdp, pi


def _expected_next(mdp: TabularMDP, values: np.ndarray) -> np.ndarray:
    """:math:`\\sum_{s'} P(s'|s,a) [r(s,a,s') + \\gamma V(s')]`, ``(S, A)``, written out."""
    return np.einsum("sat,sat->sa", mdp.P, mdp.R + mdp.gamma * values[None, None, :])


@derivation(
    "Bellman expectation equations for V^pi and Q^pi",
    topic="rl",
    closed_form="V^pi(s) = sum_a pi(a|s) sum_s' P(s'|s,a) [r + gamma V^pi(s')]; "
    "Q^pi(s,a) = sum_s' P(s'|s,a) [r + gamma sum_a' pi(a'|s') Q^pi(s',a')]; "
    "V^pi(s) = sum_a pi(a|s) Q^pi(s,a)",
)
def _bellman_expectation() -> Check:
    mdp, pi = _frozenlake_and_policy()
    v = policy_evaluation(mdp, pi)  # (S,): the linear solve
    q = _expected_next(mdp, v)  # (S, A): Q^pi from V^pi
    live = ~mdp.terminal
    rhs_v = np.einsum("sa,sa->s", pi, _expected_next(mdp, v))
    rhs_q = _expected_next(mdp, np.einsum("sa,sa->s", pi, q))
    tower = np.einsum("sa,sa->s", pi, q)
    return Check.compare(
        [v[live], q[live], v[live]],
        [rhs_v[live], rhs_q[live], tower[live]],
        tolerance=1e-10,
        detail=f"FrozenLake-v1 slippery, gamma {GAMMA}, random policy (seed {SEED}); "
        "V^pi by linear solve against the V equation, the Q equation and the tower property "
        "over the non-terminal states",
    )


@derivation(
    "Bellman optimality equation for Q*",
    topic="rl",
    closed_form="Q*(s,a) = sum_s' P(s'|s,a) [r + gamma max_a' Q*(s',a')]; V* = max_a Q*",
)
def _bellman_optimality() -> Check:
    mdp, _ = _frozenlake_and_policy()
    q, v = value_iteration(mdp, tol=1e-12)
    live = ~mdp.terminal
    rhs = _expected_next(mdp, np.where(mdp.terminal, 0.0, q.max(-1)))
    greedy = np.eye(mdp.n_actions)[np.argmax(q, axis=-1)]
    return Check.compare(
        [q[live], policy_evaluation(mdp, greedy)[live]],
        [rhs[live], v[live]],
        tolerance=1e-9,
        detail=f"FrozenLake-v1 slippery, gamma {GAMMA}; value iteration to 1e-12 against the "
        "equation's right-hand side, and V* against the exact value of the greedy policy",
    )


@derivation(
    "gradient of log p_theta(tau): the dynamics drop out",
    topic="rl",
    closed_form="grad_theta log p(tau) = sum_t grad log pi_theta(a_t|s_t); for a tabular "
    "softmax, d/dtheta[s, :] = sum_{t: s_t = s} (onehot(a_t) - pi_theta(.|s))",
)
def _trajectory_gradient() -> Check:
    mdp, _ = small_mdp()
    rng = np.random.default_rng(SEED)
    theta = rng.normal(size=(mdp.n_states, mdp.n_actions))  # softmax logits, (S, A)
    pi = np.exp(theta) / np.exp(theta).sum(-1, keepdims=True)
    episodes = sample_episodes(mdp, pi, 4, rng, max_steps=6)
    closed, auto = [], []
    for states, actions in zip(episodes.states, episodes.actions, strict=True):
        s, a, s2 = states[:-1], actions, states[1:]
        grad = np.zeros_like(theta)  # (S, A): sum_t (e_{a_t} - pi(.|s_t)) in row s_t
        np.add.at(grad, s, np.eye(mdp.n_actions)[a] - pi[s])
        closed.append(grad)
        t_theta = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        log_pi = torch.log_softmax(t_theta, dim=-1)
        P = torch.tensor(mdp.P, dtype=torch.float64)
        log_p = (
            torch.log(torch.tensor(mdp.initial[states[0]], dtype=torch.float64))
            + log_pi[s, a].sum()
            + torch.log(P[s, a, s2]).sum()
        )  # the whole log p(tau), dynamics included
        (g,) = torch.autograd.grad(log_p, t_theta)
        auto.append(g)
    return Check.compare(
        closed,
        auto,
        detail=f"4 sampled trajectories of 6 steps on a random {mdp.n_states}-state, "
        f"{mdp.n_actions}-action MDP, float64",
    )
