r"""Finite Markov decision processes with explicit dynamics: the ground truth of the RL room.

Notes: discussion 9 (reinforcement learning: MDPs, policies, returns, the Bellman equations) and
discussion 8 section 2 (trajectory probabilities). A :class:`TabularMDP` holds
:math:`P(s'|s,a)`, the reward of each transition :math:`r(s,a,s')`, the initial distribution
and the terminal states, so that everything a sampling method estimates (values, action values,
returns, policy gradients, trajectory probabilities) can also be computed exactly:

- :func:`policy_evaluation` solves the Bellman expectation equation
  :math:`V^\pi = r^\pi + \gamma P^\pi V^\pi` as a linear system;
- :func:`value_iteration` iterates the Bellman optimality operator to :math:`Q^*`;
- :func:`bellman_v` / :func:`bellman_q` / :func:`bellman_optimality` are the operators, so that
  a test can check a fixed point;
- :func:`trajectory_log_prob` is :math:`\log p(s_1) + \sum_t \log \pi(a_t|s_t) + \log
  P(s_{t+1}|s_t, a_t)` (discussion 8, problem 1).

Terminal states are absorbing with zero reward, and their value is zero: gymnasium's
``terminated``. A policy is an array ``(S, A)`` of action probabilities (rows sum to one).
:func:`from_gymnasium` reads the dynamics of gymnasium's toy-text environments (FrozenLake,
CliffWalking, Taxi) from their ``P`` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deepnotes.core.errors import ConfigError


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP. ``S`` states, ``A`` actions.

    Attributes:
        P: transition probabilities ``(S, A, S)``, ``P[s, a, s2] = P(s2 | s, a)``.
        R: reward of each transition ``(S, A, S)`` (only entries with ``P > 0`` matter).
        initial: initial state distribution ``(S,)``.
        terminal: ``(S,)`` bool; a terminal state is absorbing, rewards nothing, has value 0.
        gamma: the discount factor in [0, 1].
    """

    P: np.ndarray
    R: np.ndarray
    initial: np.ndarray
    terminal: np.ndarray
    gamma: float = 0.99

    def __post_init__(self) -> None:
        P, R = np.asarray(self.P, dtype=float), np.asarray(self.R, dtype=float)
        if P.ndim != 3 or P.shape[0] != P.shape[2]:
            raise ConfigError(f"P must have shape (S, A, S), got {P.shape}")
        S, A, _ = P.shape
        if R.shape != (S, A, S):
            raise ConfigError(f"R must have shape (S, A, S) = {(S, A, S)}, got {R.shape}")
        if (P < 0).any() or not np.allclose(P.sum(-1), 1.0):
            raise ConfigError("every P[s, a, :] must be a probability distribution over S")
        initial = np.asarray(self.initial, dtype=float)
        if initial.shape != (S,) or (initial < 0).any() or not np.isclose(initial.sum(), 1.0):
            raise ConfigError(f"initial must be a distribution of shape ({S},)")
        terminal = np.asarray(self.terminal, dtype=bool)
        if terminal.shape != (S,):
            raise ConfigError(f"terminal must have shape ({S},), got {terminal.shape}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"gamma must be in [0, 1], got {self.gamma}")
        # terminal states absorb with zero reward whatever the source table said
        P, R = P.copy(), R.copy()
        P[terminal] = 0.0
        for s in terminal.nonzero()[0]:
            P[s, :, s] = 1.0
        R[terminal] = 0.0
        for name, value in (("P", P), ("R", R), ("initial", initial), ("terminal", terminal)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    def reward(self) -> np.ndarray:
        """Expected reward ``r(s, a) = sum_s' P(s'|s,a) r(s,a,s')``, shape ``(S, A)``."""
        return np.einsum("sat,sat->sa", self.P, self.R)

    def with_gamma(self, gamma: float) -> TabularMDP:
        """The same dynamics with another discount factor."""
        return TabularMDP(self.P, self.R, self.initial, self.terminal, gamma)

    def check_policy(self, pi: np.ndarray) -> np.ndarray:
        """``pi`` as a float array ``(S, A)`` whose rows are distributions, or a ConfigError."""
        pi = np.asarray(pi, dtype=float)
        if pi.shape != (self.n_states, self.n_actions):
            raise ConfigError(
                f"a policy must have shape (S, A) = {(self.n_states, self.n_actions)}, "
                f"got {pi.shape}"
            )
        if (pi < 0).any() or not np.allclose(pi.sum(-1), 1.0):
            raise ConfigError("every policy row pi[s, :] must be a probability distribution")
        return pi

    def step(self, s: int, a: int, rng: np.random.Generator) -> tuple[int, float, bool]:
        """Sample ``s' ~ P(.|s, a)``: returns ``(s', r(s, a, s'), s' is terminal)``."""
        s2 = int(rng.choice(self.n_states, p=self.P[s, a]))
        return s2, float(self.R[s, a, s2]), bool(self.terminal[s2])

    def reset(self, rng: np.random.Generator) -> int:
        """Sample an initial state."""
        return int(rng.choice(self.n_states, p=self.initial))


def uniform_policy(mdp: TabularMDP) -> np.ndarray:
    """Every action with probability ``1/A`` in every state, ``(S, A)``."""
    return np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)


def greedy_policy(q: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """The deterministic policy ``argmax_a Q(s, a)`` (ties to the lowest action), ``(S, A)``."""
    q = np.asarray(q, dtype=float)
    best = np.argmax(q >= q.max(-1, keepdims=True) - tol, axis=-1)
    return np.eye(q.shape[1])[best]


def policy_evaluation(mdp: TabularMDP, pi: np.ndarray) -> np.ndarray:
    r"""Exact :math:`V^\pi` by solving :math:`(I - \gamma P^\pi) V = r^\pi`, shape ``(S,)``.

    With ``gamma = 1`` the system is solvable when every state reaches a terminal state
    under ``pi`` (a proper policy); otherwise a ConfigError says so.
    """
    pi = mdp.check_policy(pi)
    live = ~mdp.terminal
    p_pi = np.einsum("sa,sat->st", pi, mdp.P)[np.ix_(live, live)]
    r_pi = np.einsum("sa,sa->s", pi, mdp.reward())[live]
    system = np.eye(int(live.sum())) - mdp.gamma * p_pi
    try:
        v_live = np.linalg.solve(system, r_pi)
    except np.linalg.LinAlgError as err:
        raise ConfigError(
            "policy evaluation has no unique solution: with gamma = 1 some state never reaches "
            "a terminal state under this policy"
        ) from err
    v = np.zeros(mdp.n_states)
    v[live] = v_live
    return v


def q_from_v(mdp: TabularMDP, v: np.ndarray) -> np.ndarray:
    r""":math:`Q(s,a) = r(s,a) + \gamma \sum_{s'} P(s'|s,a) V(s')`, shape ``(S, A)``."""
    return mdp.reward() + mdp.gamma * mdp.P @ np.asarray(v, dtype=float)


def bellman_v(mdp: TabularMDP, pi: np.ndarray, v: np.ndarray) -> np.ndarray:
    r"""The expectation operator :math:`(T^\pi V)(s) = \sum_a \pi(a|s) Q_V(s,a)`; ``V^pi`` is
    its fixed point (terminal states stay 0)."""
    out = np.einsum("sa,sa->s", mdp.check_policy(pi), q_from_v(mdp, v))
    return np.where(mdp.terminal, 0.0, out)


def bellman_q(mdp: TabularMDP, pi: np.ndarray, q: np.ndarray) -> np.ndarray:
    r""":math:`(T^\pi Q)(s,a) = r(s,a) + \gamma \sum_{s'} P(s'|s,a) \sum_{a'} \pi(a'|s')
    Q(s',a')`; ``Q^pi`` is its fixed point."""
    v_next = np.einsum("sa,sa->s", mdp.check_policy(pi), q)
    out = q_from_v(mdp, np.where(mdp.terminal, 0.0, v_next))
    return np.where(mdp.terminal[:, None], 0.0, out)


def bellman_optimality(mdp: TabularMDP, q: np.ndarray) -> np.ndarray:
    r""":math:`(T^* Q)(s,a) = r(s,a) + \gamma \sum_{s'} P(s'|s,a) \max_{a'} Q(s',a')`."""
    out = q_from_v(mdp, np.where(mdp.terminal, 0.0, np.asarray(q).max(-1)))
    return np.where(mdp.terminal[:, None], 0.0, out)


def value_iteration(
    mdp: TabularMDP, tol: float = 1e-10, max_iter: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """:math:`Q^*` and :math:`V^*` by iterating :func:`bellman_optimality` until the sup-norm
    change is below ``tol``. With ``gamma = 1`` it converges when every policy is proper or
    the optimal one is; ``max_iter`` bounds it otherwise (ConfigError)."""
    q = np.zeros((mdp.n_states, mdp.n_actions))
    for _ in range(max_iter):
        new = bellman_optimality(mdp, q)
        if np.max(np.abs(new - q)) < tol:
            return new, new.max(-1)
        q = new
    raise ConfigError(f"value iteration did not converge to {tol:g} in {max_iter} sweeps")


def trajectory_log_prob(
    mdp: TabularMDP, pi: np.ndarray, states: list[int] | np.ndarray, actions: list[int] | np.ndarray
) -> float:
    r""":math:`\log p_\pi(\tau) = \log p(s_1) + \sum_t [\log \pi(a_t|s_t) + \log P(s_{t+1}|s_t,
    a_t)]` for ``states = (s_1..s_{T+1})`` and ``actions = (a_1..a_T)`` (``-inf`` when the
    trajectory is impossible)."""
    pi = mdp.check_policy(pi)
    states, actions = np.asarray(states, dtype=int), np.asarray(actions, dtype=int)
    if states.ndim != 1 or actions.ndim != 1 or len(states) != len(actions) + 1:
        raise ConfigError(
            f"need T+1 states and T actions, got {len(states)} states and {len(actions)} actions"
        )
    with np.errstate(divide="ignore"):
        out = np.log(mdp.initial[states[0]])
        s, a, s2 = states[:-1], actions, states[1:]
        out += np.log(pi[s, a]).sum() + np.log(mdp.P[s, a, s2]).sum()
    return float(out)


TOY_TEXT = ("FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1", "Taxi-v3")


def from_gymnasium(env_id: str, gamma: float = 0.99, **kwargs: Any) -> TabularMDP:
    """The exact dynamics of a gymnasium toy-text environment (its ``P`` table).

    ``kwargs`` go to ``gymnasium.make`` (e.g. ``is_slippery=False``, ``map_name="8x8"``). A
    transition flagged ``done`` lands in a terminal state. The time limit (truncation) is not
    part of the MDP.
    """
    import gymnasium as gym

    if env_id not in TOY_TEXT:
        raise ConfigError(f"no tabular dynamics for {env_id!r}; choose one of {TOY_TEXT}")
    env = gym.make(env_id, **kwargs).unwrapped
    S, A = env.observation_space.n, env.action_space.n
    P, R = np.zeros((S, A, S)), np.zeros((S, A, S))
    terminal = np.zeros(S, dtype=bool)
    for s in range(S):
        for a in range(A):
            for prob, s2, reward, done in env.P[s][a]:
                P[s, a, int(s2)] += prob
                R[s, a, int(s2)] = reward
                terminal[int(s2)] |= bool(done)
    initial = np.asarray(getattr(env, "initial_state_distrib", None), dtype=float)
    if initial.shape != (S,):  # FrozenLake keeps it as initial_state_distrib too; Taxi as well
        raise ConfigError(f"{env_id} exposes no initial state distribution")
    env.close()
    return TabularMDP(P, R, initial / initial.sum(), terminal, gamma)
