r"""Tabular sampling, TD(0), Q-learning and expected SARSA, with epsilon-greedy and Boltzmann
exploration, vectorised over replicates and parallel walkers with NumPy.

Notes: discussion 9, section 2.2 "Learning Value Functions via the Bellman Equations" (TD(0)
for :math:`V^\pi` from on-policy transitions; the Q update with
:math:`\mathbb{E}_{a' \sim \pi} Q(s', a')` that learns from off-policy data), section 3
"Q-Learning" (the target :math:`r + \gamma \max_{a'} Q(s', a')`) and section 3.1 "Exploration in
Q-Learning" (epsilon-greedy; Boltzmann :math:`\pi(a|s) \propto \exp(Q(s,a) / \tau)`, the notes'
form at :math:`\tau = 1`). Sutton & Barto (2018), *Reinforcement Learning: An Introduction*,
sections 6.1 (TD(0)), 6.5 (Q-learning) and 6.6 (expected SARSA).

Every table carries a leading replicate axis ``R``: ``V`` is ``(R, S)``, ``Q`` is ``(R, S, A)``,
and ``R x N`` walkers (:class:`Walkers`) step at once, so that independent replicates of an
experiment are one NumPy computation. The updates, with :math:`\delta` the TD error:

- TD(0): :math:`V(s) \leftarrow V(s) + \alpha [r + \gamma (1 - \text{term}) V(s') - V(s)]`;
- Q-learning: :math:`Q(s,a) \leftarrow Q(s,a) + \alpha [r + \gamma (1 - \text{term})
  \max_{a'} Q(s',a') - Q(s,a)]`;
- expected SARSA with target policy :math:`\pi`: the same with
  :math:`\sum_{a'} \pi(a'|s') Q(s',a')` in place of the max (off-policy evaluation of
  :math:`Q^\pi` from any behaviour's data).

Step sizes are Robbins-Monro (:func:`robbins_monro`): the ``n``-th update of an entry has
:math:`\alpha_n = (c / (c + n - 1))^\omega`, :math:`\omega \in (1/2, 1]`. When ``k`` walkers
update the same entry in one batch, their TD errors are averaged and the step is
:math:`\min(1, k \alpha_n)`, ``n`` counting the batch's updates: with :math:`c = \omega = 1`
that is exactly the running mean of the targets.

Deviation: the notes write the TD update as :math:`V(s) \leftarrow V(s) - \alpha(r + \gamma
V(s') - V(s))`; the minus sign is a typo (it moves away from the target), we add.

Bootstrapping follows gymnasium: a ``terminated`` transition has no future value; a walker cut by
its ``horizon`` (``truncated``) still bootstraps from :math:`V(s')`
(:func:`deepnotes.rl.returns.td_target`).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.rl.mdp import TabularMDP

# --------------------------------------------------------------------------------------------
# Sampling


def sample_categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``probs`` (``(..., K)``, rows summing to one) by inverse CDF:
    indices of shape ``probs.shape[:-1]``."""
    return draw_from_cdf(np.cumsum(probs, axis=-1), rng)


def draw_from_cdf(cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of cumulative distributions ``cdf`` (``(..., K)``), shape ``(...)``."""
    u = rng.random((*cdf.shape[:-1], 1)) * cdf[..., -1:]  # (..., 1), scaled for round-off
    return np.minimum((u >= cdf).sum(-1), cdf.shape[-1] - 1)


def sample_next_state(
    mdp: TabularMDP, s: np.ndarray, a: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``s' ~ P(. | s, a)`` elementwise for integer arrays ``s``, ``a`` of one shape."""
    return sample_categorical(mdp.P[s, a], rng)


def reachable(mdp: TabularMDP, starts: np.ndarray | None = None) -> np.ndarray:
    """States reachable with positive probability from the support of ``starts`` (default:
    ``mdp.initial``) under some sequence of actions, ``(S,)`` bool."""
    start = mdp.initial if starts is None else np.asarray(starts, dtype=float)
    seen = start > 0
    step = mdp.P.sum(1) > 0  # (S, S): s -> s' possible under some action
    while True:
        new = seen | (seen @ step).astype(bool)
        if (new == seen).all():
            return seen
        seen = new


def chain_mdp(n: int = 10, small: float = 0.2, big: float = 1.0, gamma: float = 0.9) -> TabularMDP:
    """A chain where greedy exploration locks onto a small reward (after Strens, 2000).

    States ``0..n-1``, start at 0; action 0 ("back") pays ``small`` and returns to 0, action 1
    ("forward") moves one state right, paying nothing except at the last state, where it pays
    ``big`` and stays. Nothing terminates. Going forward is optimal when
    ``gamma^(n-1) big > small``; a learner that takes "back" once and then acts greedily never
    walks far enough right to see ``big``.
    """
    if n < 2 or not 0 < gamma < 1:
        raise ConfigError(f"need n >= 2 and gamma in (0, 1), got n={n}, gamma={gamma}")
    P, R = np.zeros((n, 2, n)), np.zeros((n, 2, n))
    P[:, 0, 0] = 1.0
    R[:, 0, 0] = small
    for s in range(n):
        P[s, 1, min(s + 1, n - 1)] = 1.0
    R[n - 1, 1, n - 1] = big
    return TabularMDP(P, R, np.eye(n)[0], np.zeros(n, dtype=bool), gamma)


@dataclass(frozen=True)
class Episodes:
    """Whole episodes padded to a common length ``T`` (the longest, at most ``max_steps``).

    Attributes:
        states: ``(E, T + 1)``, ``states[:, t]`` is :math:`s_t` (the last state repeats after
            the end).
        actions: ``(E, T)``; entries after the end are 0.
        rewards: ``(E, T)``; entries after the end are 0.
        lengths: ``(E,)`` steps taken in each episode.
        terminated: ``(E,)`` True when the episode reached a terminal state (else truncated by
            ``max_steps``).
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray

    def returns(self, gamma: float | np.ndarray) -> np.ndarray:
        r""":math:`G = \sum_t \gamma^t r_t` of each episode; ``(E,)`` for a scalar ``gamma``,
        ``(G, E)`` for an array of ``G`` discounts."""
        gammas = np.atleast_1d(np.asarray(gamma, dtype=float))  # (G,)
        powers = gammas[:, None] ** np.arange(self.rewards.shape[1])  # (G, T)
        out = powers @ self.rewards.T  # (G, E)
        return out[0] if np.ndim(gamma) == 0 else out


def sample_episodes(
    mdp: TabularMDP,
    pi: np.ndarray,
    episodes: int,
    rng: np.random.Generator,
    max_steps: int = 1000,
    starts: np.ndarray | None = None,
) -> Episodes:
    """``episodes`` episodes of policy ``pi`` (``(S, A)``) on ``mdp``, all stepped together.

    Each starts from ``starts`` (default ``mdp.initial``) and ends at a terminal state or after
    ``max_steps`` steps (truncation).
    """
    pi = mdp.check_policy(pi)
    if episodes < 1 or max_steps < 1:
        raise ConfigError(f"need episodes >= 1 and max_steps >= 1, got {episodes}, {max_steps}")
    start = mdp.initial if starts is None else _check_starts(mdp, starts)
    s = sample_categorical(np.broadcast_to(start, (episodes, mdp.n_states)), rng)  # (E,)
    states, actions, rewards = [s], [], []
    live = ~mdp.terminal[s]
    lengths = np.zeros(episodes, dtype=int)
    for _ in range(max_steps):
        if not live.any():
            break
        a = sample_categorical(pi[s], rng)  # (E,)
        s2 = sample_next_state(mdp, s, a, rng)
        r = mdp.R[s, a, s2]
        actions.append(np.where(live, a, 0))
        rewards.append(np.where(live, r, 0.0))
        lengths += live
        s = np.where(live, s2, s)
        states.append(s)
        live = live & ~mdp.terminal[s]
    T = len(actions)
    return Episodes(
        states=np.stack(states, axis=1),
        actions=np.stack(actions, axis=1) if T else np.zeros((episodes, 0), dtype=int),
        rewards=np.stack(rewards, axis=1) if T else np.zeros((episodes, 0)),
        lengths=lengths,
        terminated=mdp.terminal[s],
    )


def rollout_env(
    env: gym.Env, pi: np.ndarray, rng: np.random.Generator, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """One episode of the tabular policy ``pi`` (``(S, A)``) in a gymnasium toy-text ``env``.

    Returns ``(states (T+1,), actions (T,), rewards (T,), terminated)``; the episode ends at
    termination or at the environment's own time limit (truncation).
    """
    s, _ = env.reset(seed=seed)
    states, actions, rewards = [int(s)], [], []
    while True:
        a = int(sample_categorical(pi[int(s)], rng))
        s, r, terminated, truncated, _ = env.step(a)
        states.append(int(s))
        actions.append(a)
        rewards.append(float(r))
        if terminated or truncated:
            return np.array(states), np.array(actions), np.array(rewards), bool(terminated)


def _check_starts(mdp: TabularMDP, starts: np.ndarray) -> np.ndarray:
    starts = np.asarray(starts, dtype=float)
    if starts.shape != (mdp.n_states,) or (starts < 0).any() or not np.isclose(starts.sum(), 1):
        raise ConfigError(f"starts must be a distribution of shape ({mdp.n_states},)")
    if starts[mdp.terminal].sum() > 0:
        raise ConfigError("starts must put no mass on terminal states")
    return starts


@dataclass(frozen=True)
class Transitions:
    """One step of ``R x N`` walkers: every field has shape ``(R, N)``."""

    s: np.ndarray
    a: np.ndarray
    r: np.ndarray
    s2: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class Walkers:
    """``replicates x walkers`` copies of ``mdp`` stepped together; each restarts from
    ``starts`` when it reaches a terminal state or after ``horizon`` steps (truncation).

    Arguments:
        mdp: the dynamics.
        replicates: ``R``, independent experiments (each with its own tables).
        walkers: ``N``, parallel walkers feeding each replicate's tables.
        rng: the generator of every draw (the caller tracks it for checkpoints).
        starts: distribution of the start states, ``(S,)``; default ``mdp.initial``
            (a spread ``starts`` gives the "exploring starts" that cover every state).
        horizon: steps after which an episode is truncated; None for no limit.

    ``state_dict``/``load_state_dict`` hold the positions so that a loop can resume.
    """

    def __init__(
        self,
        mdp: TabularMDP,
        replicates: int,
        walkers: int,
        rng: np.random.Generator,
        starts: np.ndarray | None = None,
        horizon: int | None = None,
    ) -> None:
        if replicates < 1 or walkers < 1:
            raise ConfigError(f"need replicates, walkers >= 1, got {replicates}, {walkers}")
        if horizon is not None and horizon < 1:
            raise ConfigError(f"horizon must be >= 1 or None, got {horizon}")
        self.mdp, self.rng, self.horizon = mdp, rng, horizon
        # each (s, a) has few successors: keep their ids and cumulative probabilities, (S, A, K)
        k = int((mdp.P > 0).sum(-1).max())
        order = np.argsort(-mdp.P, axis=-1, kind="stable")[..., :k]  # (S, A, K)
        self._next = order
        self._cdf = np.cumsum(np.take_along_axis(mdp.P, order, axis=-1), axis=-1)
        self.starts = mdp.initial if starts is None else _check_starts(mdp, starts)
        self.states = self._draw_starts((replicates, walkers))  # (R, N)
        self.t = np.zeros((replicates, walkers), dtype=int)  # steps into the episode

    def _draw_starts(self, shape: tuple[int, ...]) -> np.ndarray:
        cdf = np.cumsum(self.starts)  # (S,)
        u = self.rng.random(shape) * cdf[-1]
        return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)

    def step(self, actions: np.ndarray) -> Transitions:
        """Take ``actions`` (``(R, N)``) and restart the walkers whose episode ended."""
        s = self.states
        pick = draw_from_cdf(self._cdf[s, actions], self.rng)  # (R, N), index into K
        s2 = np.take_along_axis(self._next[s, actions], pick[..., None], axis=-1)[..., 0]
        r = self.mdp.R[s, actions, s2]
        terminated = self.mdp.terminal[s2]
        self.t = self.t + 1
        truncated = ~terminated & (self.t >= self.horizon if self.horizon else False)
        done = terminated | truncated
        self.states = s2.copy()
        self.states[done] = self._draw_starts((int(done.sum()),))
        self.t = np.where(done, 0, self.t)
        return Transitions(s, actions, r, s2, terminated, truncated)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"states": torch.from_numpy(self.states.copy()), "t": torch.from_numpy(self.t)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.states = state["states"].numpy().copy()
        self.t = state["t"].numpy().copy()


# --------------------------------------------------------------------------------------------
# Exploration


def greedy_probs(q: np.ndarray) -> np.ndarray:
    """The greedy policy of ``q`` (``(..., A)``), ties split evenly (so that acting greedily
    on an all-zero table is a uniform choice, not "always action 0")."""
    best = q >= q.max(-1, keepdims=True)  # (..., A)
    return best / best.sum(-1, keepdims=True)


def epsilon_greedy_probs(q: np.ndarray, epsilon: float) -> np.ndarray:
    """:math:`\\pi(a|s) = (1-\\epsilon)\\,\\text{greedy} + \\epsilon / A`, shape of ``q``."""
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
    return (1.0 - epsilon) * greedy_probs(q) + epsilon / q.shape[-1]


def boltzmann_probs(q: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """:math:`\\pi(a|s) \\propto \\exp(Q(s,a) / \\tau)` (the notes' Boltzmann at ``tau = 1``)."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    z = q / temperature
    z = np.exp(z - z.max(-1, keepdims=True))  # (..., A), stable softmax
    return z / z.sum(-1, keepdims=True)


def linear_anneal(start: float, end: float, steps: int, step: int) -> float:
    """``start`` moving linearly to ``end`` over ``steps`` steps, then ``end``."""
    if steps < 1:
        return end
    return start + (end - start) * min(step, steps) / steps


def soft_greedy_policy(q: np.ndarray, epsilon: float) -> np.ndarray:
    """The epsilon-greedy policy of a table ``q`` (``(S, A)``), lowest action on ties (a fixed
    target policy for evaluation)."""
    best = np.eye(q.shape[-1])[np.argmax(q, axis=-1)]  # (S, A)
    return (1.0 - epsilon) * best + epsilon / q.shape[-1]


# --------------------------------------------------------------------------------------------
# Learners


def robbins_monro(counts: np.ndarray, omega: float = 1.0, scale: float = 1.0) -> np.ndarray:
    r""":math:`\alpha_n = (c / (c + n - 1))^\omega` for the ``n``-th update of an entry (0 where
    ``n = 0``), ``c = scale``: the first update copies its target (:math:`\alpha_1 = 1`),
    :math:`\sum \alpha = \infty` and :math:`\sum \alpha^2 < \infty` for ``omega`` in (1/2, 1].
    With ``c = omega = 1`` it is :math:`1/n`, the running mean of the targets; with
    ``omega = 1`` and ``c = 1 / (1 - gamma)`` it is the "rescaled linear" step
    :math:`1 / (1 + (1-\gamma)(n-1))` of Wainwright (2019, "Stochastic approximation with
    cone-contractive operators: sharp l_inf-bounds for Q-learning"), which forgets the initial
    table within about ``c`` updates and then averages like ``1 / n``."""
    return np.where(counts > 0, (scale / (scale + np.maximum(counts, 1) - 1)) ** omega, 0.0)


class TabularLearner:
    """A table with a leading replicate axis (``V``: ``(R, S)`` or ``Q``: ``(R, S, A)``) and a
    visit count per entry, updated by averaged TD errors with Robbins-Monro steps.

    ``state_dict``/``load_state_dict`` make it trackable by the engine's Loop.
    """

    def __init__(self, shape: tuple[int, ...], omega: float = 1.0, scale: float = 1.0) -> None:
        if not 0.5 < omega <= 1.0:
            raise ConfigError(f"omega must be in (0.5, 1], got {omega}")
        if scale <= 0:
            raise ConfigError(f"scale must be > 0, got {scale}")
        self.table = np.zeros(shape)
        self.counts = np.zeros(shape)
        self.omega, self.scale = omega, scale

    def update(self, index: tuple[np.ndarray, ...], delta: np.ndarray) -> None:
        """Move each entry ``table[index]`` by its averaged TD error ``delta`` (arrays of one
        shape); an entry hit ``k`` times in the batch steps by ``min(1, k / n^omega)``."""
        flat = np.ravel_multi_index(index, self.table.shape).ravel()
        size = self.table.size
        k = np.bincount(flat, minlength=size).reshape(self.table.shape)
        total = np.bincount(flat, weights=delta.ravel(), minlength=size).reshape(self.table.shape)
        self.counts += k
        hit = k > 0
        step = np.minimum(1.0, k * robbins_monro(self.counts, self.omega, self.scale))
        self.table[hit] += step[hit] * total[hit] / k[hit]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"table": torch.from_numpy(self.table), "counts": torch.from_numpy(self.counts)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.table = state["table"].numpy().copy()
        self.counts = state["counts"].numpy().copy()


def _rows(tr: Transitions) -> np.ndarray:
    return np.broadcast_to(np.arange(tr.s.shape[0])[:, None], tr.s.shape)  # (R, N)


def td0_update(v: TabularLearner, tr: Transitions, gamma: float) -> None:
    """TD(0) for ``V`` (``(R, S)``): target :math:`r + \\gamma (1 - term) V(s')`."""
    rows = _rows(tr)
    target = tr.r + gamma * (1.0 - tr.terminated) * v.table[rows, tr.s2]  # (R, N)
    v.update((rows, tr.s), target - v.table[rows, tr.s])


def q_learning_update(q: TabularLearner, tr: Transitions, gamma: float) -> None:
    """Q-learning (``(R, S, A)``): target :math:`r + \\gamma (1 - term) \\max_{a'} Q(s', a')`."""
    rows = _rows(tr)
    target = tr.r + gamma * (1.0 - tr.terminated) * q.table[rows, tr.s2].max(-1)  # (R, N)
    q.update((rows, tr.s, tr.a), target - q.table[rows, tr.s, tr.a])


def expected_sarsa_update(
    q: TabularLearner, tr: Transitions, gamma: float, target_pi: np.ndarray
) -> None:
    """Expected SARSA with a fixed target policy ``target_pi`` (``(S, A)``): target
    :math:`r + \\gamma (1 - term) \\sum_{a'} \\pi(a'|s') Q(s', a')`; learns :math:`Q^\\pi`
    from any behaviour's transitions."""
    rows = _rows(tr)
    v_next = np.einsum("rna,rna->rn", target_pi[tr.s2], q.table[rows, tr.s2])  # (R, N)
    target = tr.r + gamma * (1.0 - tr.terminated) * v_next
    q.update((rows, tr.s, tr.a), target - q.table[rows, tr.s, tr.a])


def state_values(q: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """:math:`V(s) = \\sum_a \\pi(a|s) Q(s, a)` for tables ``q`` (``(..., S, A)``)."""
    return np.einsum("sa,...sa->...s", pi, q)
