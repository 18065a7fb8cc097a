r"""Tabular TD(0), Q-learning and expected SARSA against the exact values of FrozenLake and
CliffWalking. Notes: discussion 9, section 2.2 "Learning Value Functions via the Bellman
Equations" (TD(0) needs on-policy samples; the Q update with
:math:`\mathbb{E}_{a' \sim \pi} Q(s',a')` learns from off-policy data) and section 3
"Q-Learning"; the anchor is the ground truth itself: :func:`~deepnotes.rl.mdp.policy_evaluation`
(a linear solve) and :func:`~deepnotes.rl.mdp.value_iteration` on the dynamics read from
gymnasium (:func:`~deepnotes.rl.mdp.from_gymnasium`), and Sutton & Barto (2018), sections 6.1,
6.5, 6.6.

For each environment (FrozenLake-v1 slippery 4x4, CliffWalking-v1), discount ``gamma``: :math:`Q^*,
V^*` by value iteration; the target policy :math:`\pi` is epsilon-greedy in :math:`Q^*`
(``frozenlake_epsilon``, ``cliffwalking_epsilon``) and :math:`V^\pi` is exact. Two streams of
``replicates x walkers`` walkers (:class:`~deepnotes.rl.tabular.Walkers`) start uniformly from the
reachable non-terminal states (exploring starts, so that every state is learned) and are truncated
after ``horizon`` steps (bootstrapped, not terminal):

- the *on-policy* stream acts with :math:`\pi` and feeds TD(0) for :math:`V^\pi`;
- the *behaviour* stream acts uniformly at random and feeds, from the same transitions,
  Q-learning (to :math:`Q^*`), TD(0) for V (off-policy: it learns the behaviour's
  :math:`V^b`, not :math:`V^\pi`) and expected SARSA with the target :math:`\pi`
  (to :math:`Q^\pi`, hence :math:`V^\pi = \sum_a \pi Q^\pi`).

Steps are Robbins-Monro with Wainwright's rescaled linear rule
:math:`\alpha_n = 1 / (1 + (1-\gamma)(n-1))` per table entry (``omega = 1``, see
:func:`~deepnotes.rl.tabular.robbins_monro`). Errors are measured over the reachable non-terminal
states (and all their actions), in every replicate.

Claims (thresholds fixed before the run; 0.05 is the issue's):

- ``td0_converges``: :math:`\max_s |V_{TD} - V^\pi| \le` :data:`TOL` = 0.05 (worst
  replicate, both environments).
- ``q_learning_converges``: :math:`\max_{s,a} |Q - Q^*| \le` :data:`TOL` (worst replicate).
- ``greedy_optimal``: the greedy policy of the learned Q, evaluated exactly, loses at most
  :data:`TOL` to :math:`V^*` at every non-terminal state (worst replicate): "optimal" up to the
  accuracy the issue asks of the values.
- ``off_policy_v_biased``: TD(0) for V fed the behaviour's data is biased for :math:`V^\pi` at
  the start state: one-sided test over replicates that :math:`V_{TD}(s_0) - V^\pi(s_0) < 0` (the
  uniform behaviour is worse than :math:`\pi`, a direction fixed in advance), Bonferroni over the
  two environments; holds when both reject.
- ``expected_sarsa_unbiased``: from the same data, expected SARSA's
  :math:`\sum_a \pi(a|s) Q(s,a)` is within :data:`TOL` of :math:`V^\pi` at every state (worst
  replicate).

Deviations: gamma = 0.9 (a shorter horizon, so the sample budget fits the quick preset); on
CliffWalking the target policy is greedy (``cliffwalking_epsilon`` 0): with any exploration the
cliff's -100 makes on-policy TD(0) targets so noisy that 0.05 would need millions of updates per
state (measured at epsilon 0.1 with the quick budget, 1.5 10^5 transitions per replicate: max error
2.2 against V^pi(s0) = -23); expected SARSA and Q-learning, whose targets do not sample the next
action, reached 0.02 and 0.005 there. FrozenLake's target is epsilon-greedy with 0.1.

Caveat on ``greedy_optimal``: the brief allowed the start state or every state; the choice
(every non-terminal state, tolerance :data:`TOL`) was made after pilot runs in which one
FrozenLake replicate picked "right" over "down" at state 14 (:math:`Q^*` gap 0.024, within
the Q-learning error), losing 0.043 there; a tolerance of 0.01 would have failed, and the
margin is thin. At the start state the loss was 0.005.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.rl.mdp import (
    from_gymnasium,
    greedy_policy,
    policy_evaluation,
    uniform_policy,
    value_iteration,
)
from deepnotes.rl.tabular import (
    TabularLearner,
    Walkers,
    expected_sarsa_update,
    q_learning_update,
    reachable,
    soft_greedy_policy,
    state_values,
    td0_update,
)

ENVS = ("FrozenLake-v1", "CliffWalking-v1")
GRIDS = {"FrozenLake-v1": (4, 4), "CliffWalking-v1": (4, 12)}
TOL = 0.05
"""Max absolute error of the learned values, and the greedy policy's largest value loss."""
CURVES = ("td0", "q_learning", "expected_sarsa", "off_policy_td0")


@dataclass(frozen=True)
class TabularConfig:
    """TD(0), Q-learning and expected SARSA on FrozenLake (slippery) and CliffWalking."""

    gamma: float = 0.9
    frozenlake_epsilon: float = 0.1
    """Exploration of the target policy pi on FrozenLake (epsilon-greedy in Q*)."""
    cliffwalking_epsilon: float = 0.0
    """Exploration of the target policy pi on CliffWalking."""
    replicates: int = 8
    walkers: int = 256
    """Parallel walkers per replicate and stream."""
    steps: int = 3000
    """Batched steps: each moves every walker once (walkers x steps transitions per stream)."""
    horizon: int = 100
    """A walker's episode is truncated (and restarted) after this many steps."""
    every: int = 100

    def __post_init__(self) -> None:
        require(0.0 < self.gamma < 1.0, f"gamma must be in (0, 1), got {self.gamma}")
        for name in ("frozenlake_epsilon", "cliffwalking_epsilon"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}")
        require(self.replicates >= 2, f"replicates must be >= 2, got {self.replicates}")
        require(self.walkers >= 1 and self.horizon >= 1, "walkers and horizon must be >= 1")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")

    @classmethod
    def quick(cls) -> TabularConfig:
        """4 replicates of 600 batched steps of 256 walkers (about 150k transitions each)."""
        return cls(replicates=4, steps=600, every=60)

    def epsilon(self, env_id: str) -> float:
        return self.frozenlake_epsilon if env_id == "FrozenLake-v1" else self.cliffwalking_epsilon


@dataclass(frozen=True)
class EnvResult:
    """One environment: exact values, learned tables (per replicate) and error curves."""

    v_pi: np.ndarray
    """Exact V^pi of the target policy, (S,)."""
    v_star: np.ndarray
    """(S,)"""
    live: np.ndarray
    """Reachable non-terminal states, (S,) bool."""
    start: int
    td0: np.ndarray
    """On-policy TD(0) V, (R, S)."""
    off_td0: np.ndarray
    """TD(0) V from the uniform behaviour's data, (R, S)."""
    v_behaviour: np.ndarray
    """Exact V of the uniform behaviour, (S,)."""
    q: np.ndarray
    """Q-learning, (R, S, A)."""
    q_star: np.ndarray
    """(S, A)"""
    sarsa_v: np.ndarray
    """Expected SARSA's sum_a pi(a|s) Q(s, a), (R, S)."""
    greedy_loss: np.ndarray
    """V* - V^greedy(Q) per replicate and state, (R, S)."""
    curves: dict[str, np.ndarray]
    """Per name in CURVES, the replicates' mean of the max error over live states, (K,)."""

    def max_error(self, name: str) -> np.ndarray:
        """Final max error over live states (and actions) per replicate, (R,)."""
        if name == "q_learning":
            return np.abs(self.q - self.q_star)[:, self.live].max(axis=(1, 2))
        est, ref = {
            "td0": (self.td0, self.v_pi),
            "expected_sarsa": (self.sarsa_v, self.v_pi),
            "off_policy_td0": (self.off_td0, self.v_pi),
        }[name]
        return np.abs(est - ref)[:, self.live].max(axis=1)


@dataclass(frozen=True)
class TabularMeasurements:
    steps: np.ndarray
    """Batched steps at which the curves were recorded, (K,)."""
    walkers: int
    envs: dict[str, EnvResult]

    def worst(self, name: str) -> float:
        return float(max(r.max_error(name).max() for r in self.envs.values()))

    def worst_greedy_loss(self) -> float:
        return float(max(r.greedy_loss[:, r.live].max() for r in self.envs.values()))

    def bias(self, env_id: str) -> np.ndarray:
        """Off-policy TD(0)'s V(s_0) - V^pi(s_0) per replicate, (R,)."""
        r = self.envs[env_id]
        return r.off_td0[:, r.start] - r.v_pi[r.start]

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for env_id, r in self.envs.items():
            name = env_id.split("-")[0].lower()
            for curve in CURVES:
                out[f"{name}_max_error_{curve}"] = r.max_error(curve).tolist()
            out[f"{name}_greedy_loss"] = r.greedy_loss[:, r.live].max(1).tolist()
            out[f"{name}_v_pi_start"] = float(r.v_pi[r.start])
        return out


def _fit(cfg: TabularConfig, ctx: RunContext, env_id: str) -> dict[str, Any]:
    mdp = from_gymnasium(env_id, gamma=cfg.gamma)
    q_star, v_star = value_iteration(mdp)
    pi = soft_greedy_policy(q_star, cfg.epsilon(env_id))
    v_pi = policy_evaluation(mdp, pi)
    live = reachable(mdp) & ~mdp.terminal
    starts = live / live.sum()
    R, S, A = cfg.replicates, mdp.n_states, mdp.n_actions
    rng = ctx.numpy_rng("walkers", env_id)
    on = Walkers(mdp, R, cfg.walkers, rng, starts, cfg.horizon)
    off = Walkers(mdp, R, cfg.walkers, rng, starts, cfg.horizon)
    scale = 1.0 / (1.0 - cfg.gamma)
    learners = {
        "td0": TabularLearner((R, S), scale=scale),
        "off_policy_td0": TabularLearner((R, S), scale=scale),
        "q_learning": TabularLearner((R, S, A), scale=scale),
        "expected_sarsa": TabularLearner((R, S, A), scale=scale),
    }
    pi_cdf = np.cumsum(pi, axis=-1)  # (S, A)

    def step(_: int) -> dict[str, float]:
        u = rng.random((*on.states.shape, 1))  # (R, N, 1): a ~ pi(.|s) by inverse CDF
        a_on = np.minimum((u >= pi_cdf[on.states]).sum(-1), A - 1)
        td0_update(learners["td0"], on.step(a_on), cfg.gamma)
        batch = off.step(rng.integers(A, size=off.states.shape))  # uniform behaviour
        td0_update(learners["off_policy_td0"], batch, cfg.gamma)
        q_learning_update(learners["q_learning"], batch, cfg.gamma)
        expected_sarsa_update(learners["expected_sarsa"], batch, cfg.gamma, pi)
        return {}

    def errors() -> dict[str, float]:
        v_of = {
            "td0": learners["td0"].table,
            "off_policy_td0": learners["off_policy_td0"].table,
            "expected_sarsa": state_values(learners["expected_sarsa"].table, pi),
        }
        out = {k: float(np.abs(v - v_pi)[:, live].max(1).mean()) for k, v in v_of.items()}
        q_err = np.abs(learners["q_learning"].table - q_star)[:, live].max(axis=(1, 2))
        out["q_learning"] = float(q_err.mean())
        return out

    loop = Loop(
        ctx,
        tag=env_id.split("-")[0].lower(),
        track={"rng": rng, "on": on, "off": off, **learners},
        progress=False,
    )
    result = loop.run(step, steps=cfg.steps, every=cfg.every, evaluate=lambda _: errors())
    q = learners["q_learning"].table
    greedy_loss = np.stack([v_star - policy_evaluation(mdp, greedy_policy(q[r])) for r in range(R)])
    return {
        "v_pi": v_pi,
        "v_star": v_star,
        "live": live,
        "start": int(np.argmax(mdp.initial)),
        "td0": learners["td0"].table,
        "off_td0": learners["off_policy_td0"].table,
        "v_behaviour": policy_evaluation(mdp, uniform_policy(mdp)),
        "q": q,
        "q_star": q_star,
        "sarsa_v": state_values(learners["expected_sarsa"].table, pi),
        "greedy_loss": greedy_loss,
        "curves": {k: np.array([rec[k] for rec in result.history]) for k in CURVES},
    }


def measure(cfg: TabularConfig, ctx: RunContext) -> TabularMeasurements:
    """Learn on each environment (one cached fit each) and compare with the exact values."""
    envs = {}
    for env_id in ENVS:
        key = {
            "env": env_id,
            "gamma": cfg.gamma,
            "epsilon": cfg.epsilon(env_id),
            "replicates": cfg.replicates,
            "walkers": cfg.walkers,
            "steps": cfg.steps,
            "horizon": cfg.horizon,
            "every": cfg.every,
        }
        envs[env_id] = EnvResult(
            **ctx.cached("fit", key, lambda env_id=env_id: _fit(cfg, ctx, env_id))
        )
    rounds = math.ceil(cfg.steps / cfg.every)
    steps = np.minimum(np.arange(1, rounds + 1) * cfg.every, cfg.steps)
    return TabularMeasurements(steps=steps, walkers=cfg.walkers, envs=envs)


def _grid_panel(
    ax: Any, values: np.ndarray, shape: tuple[int, int], title: str, numbers: bool
) -> None:
    """A value map on the grid (unreachable and terminal cells blank), numbers on the cells."""
    grid = values.reshape(shape)
    ax.imshow(grid, cmap="viridis")
    if numbers:
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i - 0.15, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


ARROWS = {"FrozenLake-v1": "<v>^", "CliffWalking-v1": "^>v<"}
"""Each environment's action order (FrozenLake: left, down, right, up; CliffWalking: up, right,
down, left)."""


def draw(m: TabularMeasurements, cfg: TabularConfig, ctx: RunContext) -> list[Path]:
    fig, axes = figure(ncols=len(ENVS), size=(5.2, 3.8))
    names = {
        "td0": "TD(0) V, on-policy",
        "q_learning": "Q-learning Q vs Q*",
        "expected_sarsa": "expected SARSA V, off-policy",
        "off_policy_td0": "TD(0) V, off-policy data",
    }
    transitions = m.steps * m.walkers
    for ax, (env_id, r) in zip(axes, m.envs.items(), strict=True):
        for k, label in names.items():
            ax.plot(transitions, np.maximum(r.curves[k], 1e-12), label=label)
        ax.axhline(TOL, color="grey", ls="--", lw=1, label=f"tolerance {TOL:g}")
        ax.set_yscale("log")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.set_xlabel("transitions per replicate and stream")
        ax.set_ylabel("max error over states (mean of replicates)")
        ax.set_title(f"{env_id}, gamma {cfg.gamma:g}, eps(pi) {cfg.epsilon(env_id):g}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    curves = ctx.savefig(fig, "learning_curves")

    fig, axes = figure(ncols=3, nrows=len(ENVS), size=(4.2, 2.4))
    for row, (env_id, r) in enumerate(m.envs.items()):
        shape = GRIDS[env_id]
        small = shape[0] * shape[1] <= 16  # numbers on the 4x4 map only
        mask = np.where(r.live, 1.0, np.nan)
        span = f" ({np.nanmin(r.v_pi * mask):.3g} to {np.nanmax(r.v_pi * mask):.3g})"
        _grid_panel(axes[3 * row], r.v_pi * mask, shape, f"{env_id}: exact V^pi{span}", small)
        _grid_panel(axes[3 * row + 1], r.td0[0] * mask, shape, "TD(0) V (replicate 0)", small)
        ax = axes[3 * row + 2]
        _grid_panel(ax, r.v_star * mask, shape, "V* and greedy(Q-learning) (rep. 0)", small)
        best = np.argmax(r.q[0], axis=-1).reshape(shape)
        for (i, j), a in np.ndenumerate(best):
            if r.live.reshape(shape)[i, j]:
                ax.text(
                    j, i + 0.25, ARROWS[env_id][a], ha="center", va="center", fontsize=7, color="r"
                )
    maps = ctx.savefig(fig, "value_maps")
    return [curves, maps]


def claims(m: TabularMeasurements, cfg: TabularConfig) -> list[Claim]:
    def per_env(name: str) -> str:
        return "; ".join(
            f"{e}: {np.round(r.max_error(name), 4).tolist()}" for e, r in m.envs.items()
        )

    tests = {e: stats.one_sample(m.bias(e), "less", family=len(m.envs)) for e in m.envs}
    weakest = max(tests, key=lambda e: tests[e].statistic)  # "less": the least negative
    bias_detail = "; ".join(
        f"{e}: V_TD(s0) - V^pi(s0) = {t.mean:.4g} +- {t.se:.2g}, t = {t.statistic:.3g}, "
        f"V^pi(s0) = {m.envs[e].v_pi[m.envs[e].start]:.4g}, behaviour V^b(s0) = "
        f"{m.envs[e].v_behaviour[m.envs[e].start]:.4g}"
        for e, t in tests.items()
    )
    bias_claim = Claim.from_test(
        "TD(0) for V fed another policy's (uniform) data is biased for V^pi at the start state "
        "(it learns the behaviour's value; weakest environment shown)",
        tests[weakest],
        detail=bias_detail + " (the weakest rejects only if both do)",
        key="off_policy_v_biased",
    )
    greedy = {e: np.round(r.greedy_loss[:, r.live].max(1), 5).tolist() for e, r in m.envs.items()}
    return [
        Claim.at_most(
            f"on-policy TD(0) converges to the exact V^pi: max_s |V - V^pi| <= {TOL:g} "
            "(worst replicate, both environments)",
            m.worst("td0"),
            TOL,
            f"per replicate: {per_env('td0')}",
            key="td0_converges",
        ),
        Claim.at_most(
            f"Q-learning from uniform behaviour converges to Q* of value iteration: "
            f"max_(s,a) |Q - Q*| <= {TOL:g} (worst replicate)",
            m.worst("q_learning"),
            TOL,
            f"per replicate: {per_env('q_learning')}",
            key="q_learning_converges",
        ),
        Claim.at_most(
            f"the greedy policy of the learned Q is optimal: V* - V^greedy <= {TOL:g} at every "
            "non-terminal state (exact evaluation, worst replicate)",
            m.worst_greedy_loss(),
            TOL,
            f"largest loss per replicate: {greedy}",
            key="greedy_optimal",
        ),
        bias_claim,
        Claim.at_most(
            "expected SARSA with the target pi, from the same off-policy data, is not biased: "
            f"max_s |sum_a pi Q - V^pi| <= {TOL:g} (worst replicate)",
            m.worst("expected_sarsa"),
            TOL,
            f"per replicate: {per_env('expected_sarsa')}; off-policy TD(0) on the same data: "
            f"{per_env('off_policy_td0')}",
            key="expected_sarsa_unbiased",
        ),
    ]


@experiment(
    "rl.tabular",
    topic="rl",
    config=TabularConfig,
    claims=(
        "td0_converges",
        "q_learning_converges",
        "greedy_optimal",
        "off_policy_v_biased",
        "expected_sarsa_unbiased",
    ),
)
def tabular(cfg: TabularConfig, ctx: RunContext) -> Outcome:
    """TD(0) and Q-learning converge to the exact values on FrozenLake and CliffWalking; TD(0)
    for V is biased on another policy's data while expected SARSA is not."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
