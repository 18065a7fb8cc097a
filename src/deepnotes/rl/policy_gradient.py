r"""Policy gradients on a tabular MDP: the exact gradient and the REINFORCE estimators.

Notes: discussion 9, section 1 "Policy Gradients" (1.1 the score-function identity, 1.2.1
reward-to-go, 1.2.2 baselines and problem 1 "State-dependent baselines") and section 2.3 (the
exact values as a baseline). Williams (1992), "Simple statistical gradient-following algorithms
for connectionist reinforcement learning"; Sutton et al. (2000) for the policy gradient theorem.

The policy is a table of logits, :math:`\pi_\theta(a|s) = \mathrm{softmax}(\theta_{s,\cdot})_a`
with :math:`\theta \in \mathbb{R}^{S \times A}`, so that everything is exact:

- the objective :math:`J(\theta) = \sum_s p(s_1 = s) V^{\pi_\theta}(s)`
  (:func:`exact_objective`);
- its gradient two independent ways: autograd through a torch linear solve of the Bellman
  equation :math:`(I - \gamma P^\pi) V = r^\pi` (:func:`exact_gradient_autograd`), and the policy
  gradient theorem :math:`\partial J / \partial \theta_{s,b} = d^\pi(s)\, \pi(b|s)\,(Q^\pi(s,b) -
  V^\pi(s))` with the discounted visitation :math:`d^\pi = p_1^\top (I - \gamma P^\pi)^{-1}`
  (:func:`exact_gradient_theorem`).

A single-episode REINFORCE estimate is :math:`\hat g = \sum_t \psi_t \nabla_\theta \log
\pi_\theta(a_t|s_t)` with the per-step weight :math:`\psi_t` (:func:`reinforce_weights`):

==================  =========================================  ============================
``total``           :math:`R(\tau) = \sum_{t'} \gamma^{t'} r_{t'}`  notes eq. 1.1
``total_baseline``  :math:`R(\tau) - b`                         notes 1.2.2 (constant b)
``reward_to_go``    :math:`\gamma^t G_t`, :math:`G_t = \sum_{t' \ge t} \gamma^{t'-t} r_{t'}`  1.2.1
``rtg_baseline``    :math:`\gamma^t (G_t - b)`                  1.2.1 + 1.2.2
``state_baseline``  :math:`\gamma^t (G_t - V^\pi(s_t))`         problem 1, section 2.3
==================  =========================================  ============================

Every one has expectation :math:`\nabla J` for any constant ``b`` (tests/rl: Monte Carlo against
the exact gradient). Time steps count from 0 here (the notes count from 1).

Deviation: with :math:`\gamma < 1` the reward-to-go weights keep the factor :math:`\gamma^t`,
which makes them unbiased for the gradient of the discounted objective; deep-RL code usually
drops it (a biased estimator of that gradient). With :math:`\gamma = 1`, the notes' setting, the
factor is 1.

:func:`sample_episodes` draws tens of thousands of episodes at once (NumPy, vectorised over
episodes); :func:`per_episode_gradients` turns them into one gradient estimate per episode, and
:func:`reinforce_surrogate` is the same estimator for a network policy: the loss whose autograd
gradient is :math:`\hat g`.

Example:
    >>> mdp = random_mdp(4, 2, np.random.default_rng(0))
    >>> theta = np.zeros((mdp.n_states, mdp.n_actions))
    >>> episodes = sample_episodes(mdp, softmax_policy(theta), 1000, np.random.default_rng(1))
    >>> psi = reinforce_weights(episodes, mdp.gamma, "reward_to_go")
    >>> grads = per_episode_gradients(episodes, softmax_policy(theta), psi)  # (1000, S, A)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.rl.mdp import TabularMDP, policy_evaluation, q_from_v

ESTIMATORS = ("total", "total_baseline", "reward_to_go", "rtg_baseline", "state_baseline")
"""The REINFORCE weightings of :func:`reinforce_weights` (see the module docstring)."""


def softmax_policy(theta: np.ndarray) -> np.ndarray:
    r""":math:`\pi(a|s) = \mathrm{softmax}(\theta_{s,\cdot})_a` of a logit table ``(S, A)``."""
    theta = np.asarray(theta, dtype=float)
    if theta.ndim != 2:
        raise ConfigError(f"theta must be a table (S, A), got shape {theta.shape}")
    z = np.exp(theta - theta.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _check_theta(mdp: TabularMDP, theta: np.ndarray) -> np.ndarray:
    theta = np.asarray(theta, dtype=float)
    if theta.shape != (mdp.n_states, mdp.n_actions):
        raise ConfigError(
            f"theta must have shape (S, A) = {(mdp.n_states, mdp.n_actions)}, got {theta.shape}"
        )
    return theta


def exact_objective(mdp: TabularMDP, theta: np.ndarray) -> float:
    r""":math:`J(\theta) = p_1^\top V^{\pi_\theta}`, the expected (discounted) return."""
    pi = softmax_policy(_check_theta(mdp, theta))
    return float(mdp.initial @ policy_evaluation(mdp, pi))


def exact_gradient_autograd(mdp: TabularMDP, theta: np.ndarray) -> np.ndarray:
    r""":math:`\nabla_\theta J` by autograd (float64) through ``torch.linalg.solve`` of
    :math:`(I - \gamma P^\pi) V = r^\pi` on the non-terminal states, shape ``(S, A)``."""
    theta_t = torch.tensor(_check_theta(mdp, theta), dtype=torch.float64, requires_grad=True)
    live = torch.as_tensor(~mdp.terminal)
    P = torch.tensor(mdp.P, dtype=torch.float64)  # (S, A, S)
    r = torch.as_tensor(mdp.reward(), dtype=torch.float64)  # (S, A): E[r | s, a]
    pi = torch.softmax(theta_t, dim=-1)  # (S, A)
    p_pi = torch.einsum("sa,sat->st", pi, P)[live][:, live]  # (L, L): P^pi on live states
    r_pi = (pi * r).sum(-1)[live]  # (L,): r^pi
    eye = torch.eye(int(live.sum()), dtype=torch.float64)
    v = torch.linalg.solve(eye - mdp.gamma * p_pi, r_pi)  # (L,): V^pi
    J = torch.tensor(mdp.initial, dtype=torch.float64)[live] @ v  # p_1^T V
    (grad,) = torch.autograd.grad(J, theta_t)
    return grad.numpy()


def discounted_visitation(mdp: TabularMDP, pi: np.ndarray) -> np.ndarray:
    r""":math:`d^\pi(s) = \sum_{t \ge 0} \gamma^t P(s_t = s)`, i.e. :math:`p_1^\top (I - \gamma
    P^\pi)^{-1}` on the non-terminal states (0 on terminal ones), shape ``(S,)``."""
    pi = mdp.check_policy(pi)
    live = ~mdp.terminal
    p_pi = np.einsum("sa,sat->st", pi, mdp.P)[np.ix_(live, live)]  # (L, L)
    system = np.eye(int(live.sum())) - mdp.gamma * p_pi
    d = np.zeros(mdp.n_states)
    d[live] = np.linalg.solve(system.T, mdp.initial[live])  # d^T (I - gamma P) = p_1^T
    return d


def exact_gradient_theorem(mdp: TabularMDP, theta: np.ndarray) -> np.ndarray:
    r""":math:`\nabla_\theta J` by the policy gradient theorem, shape ``(S, A)``:
    :math:`\sum_s d^\pi(s) \sum_a \pi(a|s) Q^\pi(s,a) \nabla \log \pi(a|s)`, which for the
    softmax table is :math:`d^\pi(s)\, \pi(b|s)\, (Q^\pi(s,b) - V^\pi(s))` at
    :math:`\theta_{s,b}`."""
    pi = softmax_policy(_check_theta(mdp, theta))
    v = policy_evaluation(mdp, pi)  # (S,)
    q = q_from_v(mdp, v)  # (S, A)
    d = discounted_visitation(mdp, pi)  # (S,)
    return d[:, None] * pi * (q - v[:, None])


@dataclass(frozen=True)
class Episodes:
    """A batch of ``N`` complete episodes padded to the longest one, ``T`` steps.

    Step ``t`` of episode ``i`` is real when ``mask[i, t]``; padded entries hold state 0,
    action 0 and reward 0.
    """

    states: np.ndarray
    """:math:`s_t`, int ``(N, T)``."""
    actions: np.ndarray
    """:math:`a_t`, int ``(N, T)``."""
    rewards: np.ndarray
    """:math:`r(s_t, a_t, s_{t+1})`, float ``(N, T)``."""
    mask: np.ndarray
    """Real steps, bool ``(N, T)``."""

    @property
    def lengths(self) -> np.ndarray:
        """Number of steps of each episode, ``(N,)``."""
        return self.mask.sum(-1)


def _inverse_cdf(cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of the cumulative distributions ``cdf`` (N, K): ``#{k: cdf_k < u}``
    with ``u ~ U(0, cdf_K)``, so that an entry of probability 0 is never drawn, even when
    the last cumulative sum rounds below 1."""
    u = rng.random(cdf.shape[0]) * cdf[:, -1]  # (N,)
    return (u[:, None] > cdf).sum(-1)


def sample_episodes(
    mdp: TabularMDP,
    pi: np.ndarray,
    n: int,
    rng: np.random.Generator,
    max_steps: int = 10_000,
) -> Episodes:
    """Run ``n`` episodes of ``pi`` from the initial distribution until each reaches a terminal
    state, all at once (inverse-CDF sampling of actions and next states).

    An episode still running after ``max_steps`` steps is a ConfigError: cutting it would bias
    every estimator (the policy is improper or ``max_steps`` too small).
    """
    pi = mdp.check_policy(pi)
    if n < 1:
        raise ConfigError(f"need n >= 1 episodes, got {n}")
    cdf_pi = np.cumsum(pi, -1)  # (S, A)
    cdf_p = np.cumsum(mdp.P, -1)  # (S, A, S)
    s = _inverse_cdf(np.broadcast_to(np.cumsum(mdp.initial), (n, mdp.n_states)), rng)  # (N,)
    alive = ~mdp.terminal[s]
    columns: list[tuple[np.ndarray, ...]] = []
    for _ in range(max_steps):
        if not alive.any():
            break
        a = _inverse_cdf(cdf_pi[s], rng)  # (N,): a_t ~ pi(.|s_t)
        s2 = _inverse_cdf(cdf_p[s, a], rng)  # (N,): s_{t+1} ~ P(.|s_t, a_t)
        r = mdp.R[s, a, s2]
        columns.append(
            (np.where(alive, s, 0), np.where(alive, a, 0), np.where(alive, r, 0.0), alive.copy())
        )
        alive &= ~mdp.terminal[s2]
        s = s2
    else:
        if alive.any():
            raise ConfigError(
                f"{int(alive.sum())} of {n} episodes did not terminate in max_steps = "
                f"{max_steps} steps; raise max_steps or use a policy that terminates"
            )
    if not columns:
        raise ConfigError("every episode starts in a terminal state: nothing to sample")
    states, actions, rewards, mask = (np.stack(c, axis=1) for c in zip(*columns, strict=True))
    return Episodes(states, actions, rewards, mask)


def batch_reward_to_go(rewards: np.ndarray, mask: np.ndarray, gamma: float) -> np.ndarray:
    r""":math:`G_t = \sum_{t' \ge t} \gamma^{t'-t} r_{t'}` for every step of every episode,
    ``(N, T)`` (0 on padding); the batched :func:`deepnotes.rl.returns.reward_to_go`."""
    rewards = np.where(mask, rewards, 0.0)
    out = np.zeros_like(rewards, dtype=float)
    running = np.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return np.where(mask, out, 0.0)


def reinforce_weights(
    episodes: Episodes,
    gamma: float,
    estimator: str,
    baseline: float | np.ndarray | None = None,
) -> np.ndarray:
    r"""The per-step weights :math:`\psi_t` of a REINFORCE estimator, ``(N, T)`` (0 on padding).

    Arguments:
        episodes: the sampled batch.
        gamma: the discount (1 for the notes' undiscounted return).
        estimator: one of :data:`ESTIMATORS`.
        baseline: the constant ``b`` (``total_baseline``, ``rtg_baseline``) or the table
            :math:`V(s)` of shape ``(S,)`` (``state_baseline``); ignored otherwise.
    """
    if estimator not in ESTIMATORS:
        raise ConfigError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    mask = episodes.mask
    rtg = batch_reward_to_go(episodes.rewards, mask, gamma)  # (N, T): G_t
    discount = gamma ** np.arange(mask.shape[1])  # (T,): gamma^t
    if estimator in ("total_baseline", "rtg_baseline", "state_baseline") and baseline is None:
        raise ConfigError(f"estimator {estimator!r} needs a baseline")
    if estimator == "total":
        psi = np.broadcast_to(rtg[:, :1], mask.shape)  # R(tau) = G_0 at every step
    elif estimator == "total_baseline":
        psi = np.broadcast_to(rtg[:, :1] - float(baseline), mask.shape)  # R(tau) - b
    elif estimator == "reward_to_go":
        psi = discount * rtg  # gamma^t G_t
    elif estimator == "rtg_baseline":
        psi = discount * (rtg - float(baseline))  # gamma^t (G_t - b)
    else:
        v = np.asarray(baseline, dtype=float)
        if v.ndim != 1 or v.shape[0] <= episodes.states.max():
            raise ConfigError(f"a state baseline is a table V (S,), got shape {v.shape}")
        psi = discount * (rtg - v[episodes.states])  # gamma^t (G_t - V(s_t))
    return np.where(mask, psi, 0.0)


def per_episode_gradients(episodes: Episodes, pi: np.ndarray, weights: np.ndarray) -> np.ndarray:
    r"""One REINFORCE estimate per episode, :math:`\hat g_i = \sum_t \psi_{i,t}
    \nabla_\theta \log \pi_\theta(a_t|s_t)`, shape ``(N, S, A)``.

    For the softmax table :math:`\partial \log \pi(a|s) / \partial \theta_{s',b} = [s' = s]
    ([b = a] - \pi(b|s))`: step ``t`` adds to row :math:`s_t` only.
    """
    pi = np.asarray(pi, dtype=float)
    mask = episodes.mask
    n, S, A = mask.shape[0], pi.shape[0], pi.shape[1]
    if weights.shape != mask.shape:
        raise ConfigError(f"weights must have shape {mask.shape}, got {weights.shape}")
    episode = np.broadcast_to(np.arange(n)[:, None], mask.shape)[mask]  # (K,) real steps
    s, a, psi = episodes.states[mask], episodes.actions[mask], weights[mask]  # (K,) each
    score = np.eye(A)[a] - pi[s]  # (K, A): grad of log pi(a_t|s_t) wrt theta[s_t, :]
    cell = episode * S + s  # (K,): the (episode, state) row each step adds to
    grads = np.stack(
        [np.bincount(cell, psi * score[:, b], minlength=n * S) for b in range(A)], axis=-1
    )  # (N * S, A)
    return grads.reshape(n, S, A)


def reinforce_surrogate(
    log_probs: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""The loss whose gradient is minus the batch-mean REINFORCE estimate:
    :math:`L = -\frac{1}{N} \sum_i \sum_t \psi_{i,t} \log \pi_\theta(a_{i,t}|s_{i,t})`.

    Arguments:
        log_probs: :math:`\log \pi_\theta(a_t|s_t)` with grad, ``(N, T)`` (or ``(N,)`` for
            one step per episode).
        weights: :math:`\psi_t` of the same shape; detached (they are constants of the
            estimator, e.g. returns minus a learned baseline).
        mask: real steps, same shape; padded steps contribute nothing.

    Example:
        >>> loss = reinforce_surrogate(policy.log_prob(obs, act).view(N, T), psi, mask)
        >>> loss.backward()  # param.grad = -(1/N) sum_i g_i
    """
    if log_probs.shape != weights.shape:
        raise ConfigError(
            f"log_probs and weights must have the same shape, got {tuple(log_probs.shape)} "
            f"and {tuple(weights.shape)}"
        )
    terms = log_probs * weights.detach()
    if mask is not None:
        terms = torch.where(mask.bool(), terms, torch.zeros_like(terms))
    n = log_probs.shape[0] if log_probs.ndim > 0 else 1
    return -terms.sum() / n


def random_mdp(
    n_states: int,
    n_actions: int,
    rng: np.random.Generator,
    *,
    end_prob: float = 0.1,
    concentration: float = 1.0,
    reward_mean: float = 1.0,
    level_scale: float = 1.0,
    reward_scale: float = 1.0,
    gamma: float = 1.0,
) -> TabularMDP:
    r"""A random episodic MDP with dense rewards: ``n_states`` live states and one terminal.

    From every live state and action the episode ends with probability ``end_prob`` (so every
    policy terminates and :math:`\gamma = 1` is allowed; lengths are geometric with mean
    ``1 / end_prob``); otherwise the next live state is drawn from a row drawn from a symmetric
    Dirichlet(``concentration``) (small: sparse, persistent dynamics). Each
    state has its own reward level :math:`c_s \sim \mathcal{N}(\text{reward\_mean},
    \text{level\_scale}^2)`, and :math:`r(s,a,s') = c_s + \text{reward\_scale}\,
    \varepsilon_{s,a,s'}`, :math:`\varepsilon \sim \mathcal{N}(0, 1)`. The initial state is
    uniform over the live states.
    """
    if n_states < 1 or n_actions < 1:
        raise ConfigError(f"need n_states, n_actions >= 1, got {n_states}, {n_actions}")
    if not 0.0 < end_prob <= 1.0:
        raise ConfigError(f"end_prob must be in (0, 1], got {end_prob}")
    if not concentration > 0.0:
        raise ConfigError(f"concentration must be > 0, got {concentration}")
    S = n_states + 1  # the last state is terminal
    P = np.zeros((S, n_actions, S))
    P[:n_states, :, :n_states] = (1 - end_prob) * rng.dirichlet(
        np.full(n_states, concentration), size=(n_states, n_actions)
    )
    P[:n_states, :, n_states] = end_prob
    P[n_states, :, n_states] = 1.0
    level = reward_mean + level_scale * rng.standard_normal(S)  # (S,): c_s
    R = level[:, None, None] + reward_scale * rng.standard_normal((S, n_actions, S))
    initial = np.append(np.full(n_states, 1.0 / n_states), 0.0)
    terminal = np.arange(S) == n_states
    return TabularMDP(P, R, initial, terminal, gamma)
