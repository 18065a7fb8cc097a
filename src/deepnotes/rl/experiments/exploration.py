r"""Exploration in Q-learning: acting greedily locks onto a small reward; epsilon-greedy and
Boltzmann exploration find the large one. Notes: discussion 9, section 3.1 "Exploration in
Q-Learning" ("if we always act optimally according to our beliefs, we never experience anything
new that might lead us to better returns"; epsilon-greedy; Boltzmann
:math:`\pi(a|s) \propto \exp(Q(s,a))`). The environment follows the chain of Strens (2000, "A
Bayesian framework for reinforcement learning", ICML), made deterministic:
:func:`~deepnotes.rl.tabular.chain_mdp`.

Chain of ``n`` states from state 0: "back" pays ``small`` and returns to 0, "forward" moves right
and pays ``big`` only when taken at the last state. With ``gamma^(n-1) big > small`` always going
forward is optimal (exact :math:`V^*` by value iteration). Tabular Q-learning (Robbins-Monro
steps :math:`\alpha_n = 1/(1 + (1-\gamma)(n-1))`, tables at 0) runs ``replicates`` times for each
behaviour policy, ``walkers`` walkers per table, episodes truncated after ``horizon`` steps
(bootstrapped, the chain has no terminal state):

- greedy: :math:`\arg\max_a Q(s,a)`, ties broken uniformly at random (so the first visits are a
  coin flip, not "always action 0");
- epsilon-greedy, epsilon annealed linearly from ``epsilon_start`` to ``epsilon_end`` over the
  first ``anneal_fraction`` of the steps;
- Boltzmann, :math:`\pi \propto \exp(Q / \tau)` at ``temperature`` 1 (the notes' form).

A replicate *succeeds* when the greedy policy of its learned Q is optimal from the start
state: :math:`V^{\text{greedy}(Q)}(0) \ge V^*(0) - 10^{-6}` (exact policy evaluation).

Claims (thresholds fixed before the run):

- ``greedy_fails``: at most :data:`FAIL_RATE` = 0.1 of the greedy replicates succeed (the
  notes: greedy action "never experiences anything new"; with random tie-breaking a first
  excursion can still reach the end, with probability about ``walkers 2^-(n-1)``).
- ``epsilon_greedy_succeeds``: at least :data:`SUCCESS_RATE` = 0.9 of the epsilon-greedy
  replicates succeed.
- ``boltzmann_succeeds``: at least :data:`SUCCESS_RATE` of the Boltzmann replicates succeed.

Chain length 6 (``gamma^5 = 0.59 > 0.2``): at length 10 uniform exploration needs 2^9 tries per
visit of the end, and neither explorer learned the chain in the quick budget (measured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.rl.mdp import greedy_policy, policy_evaluation, value_iteration
from deepnotes.rl.tabular import (
    TabularLearner,
    Walkers,
    boltzmann_probs,
    chain_mdp,
    epsilon_greedy_probs,
    greedy_probs,
    linear_anneal,
    q_learning_update,
    sample_categorical,
)

METHODS = ("greedy", "epsilon_greedy", "boltzmann")
FAIL_RATE = 0.1
"""Greedy Q-learning fails when at most this fraction of its replicates succeed."""
SUCCESS_RATE = 0.9
"""An explorer succeeds when at least this fraction of its replicates succeed."""
OPTIMAL_TOL = 1e-6


@dataclass(frozen=True)
class ExplorationConfig:
    """Q-learning with greedy, epsilon-greedy and Boltzmann behaviour on the chain."""

    n: int = 6
    small: float = 0.2
    big: float = 1.0
    gamma: float = 0.9
    replicates: int = 100
    walkers: int = 2
    steps: int = 8000
    horizon: int = 50
    epsilon_start: float = 1.0
    epsilon_end: float = 0.1
    anneal_fraction: float = 0.5
    temperature: float = 1.0
    every: int = 400

    def __post_init__(self) -> None:
        require(self.n >= 2, f"n must be >= 2, got {self.n}")
        require(0.0 < self.gamma < 1.0, f"gamma must be in (0, 1), got {self.gamma}")
        require(
            self.gamma ** (self.n - 1) * self.big > self.small,
            "need gamma^(n-1) big > small, else going forward is not optimal",
        )
        require(self.replicates >= 1 and self.walkers >= 1, "replicates, walkers must be >= 1")
        require(self.horizon >= 1, f"horizon must be >= 1, got {self.horizon}")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")
        for name in ("epsilon_start", "epsilon_end", "anneal_fraction"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}")
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")

    @classmethod
    def quick(cls) -> ExplorationConfig:
        """32 replicates per method, 4000 steps of 2 walkers."""
        return cls(replicates=32, steps=4000)


@dataclass(frozen=True)
class ExplorationMeasurements:
    steps: np.ndarray
    """(K,)"""
    success_curve: dict[str, np.ndarray]
    """Per method, (K,): fraction of replicates whose greedy policy is optimal from state 0."""
    farthest_curve: dict[str, np.ndarray]
    """Per method, (K,): mean over replicates of the farthest state reached (0-based)."""
    success: dict[str, np.ndarray]
    """Per method, final success per replicate, (replicates,) bool."""
    farthest: dict[str, np.ndarray]
    """Per method, final farthest state per replicate, (replicates,)."""
    v_star: np.ndarray
    """(n,)"""
    q_start: dict[str, np.ndarray]
    """Per method, the learned Q(0, .) per replicate, (replicates, 2)."""

    def rate(self, method: str) -> float:
        """Final fraction of successful replicates."""
        return float(self.success[method].mean())

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v_star_start": float(self.v_star[0])}
        for m in METHODS:
            out[f"success_rate_{m}"] = self.rate(m)
            out[f"mean_farthest_{m}"] = float(self.farthest[m].mean())
        return out


def _fit(cfg: ExplorationConfig, ctx: RunContext) -> dict[str, Any]:
    mdp = chain_mdp(cfg.n, cfg.small, cfg.big, cfg.gamma)
    _, v_star = value_iteration(mdp)
    R, M = cfg.replicates, len(METHODS)
    rng = ctx.numpy_rng("exploration")
    walkers = Walkers(mdp, M * R, cfg.walkers, rng, horizon=cfg.horizon)  # rows: method blocks
    q = TabularLearner((M * R, cfg.n, 2), scale=1.0 / (1.0 - cfg.gamma))
    reach = {"farthest": torch.zeros(M * R, dtype=torch.long)}
    rows = np.arange(M * R)[:, None]  # (M R, 1)
    anneal = int(cfg.anneal_fraction * cfg.steps)

    def step(i: int) -> dict[str, float]:
        values = q.table[rows, walkers.states]  # (M R, N, 2)
        epsilon = linear_anneal(cfg.epsilon_start, cfg.epsilon_end, anneal, i - 1)
        probs = np.concatenate(
            [
                greedy_probs(values[:R]),
                epsilon_greedy_probs(values[R : 2 * R], epsilon),
                boltzmann_probs(values[2 * R :], cfg.temperature),
            ]
        )
        batch = walkers.step(sample_categorical(probs, rng))
        q_learning_update(q, batch, cfg.gamma)
        far = torch.from_numpy(batch.s2.max(axis=1))
        reach["farthest"] = torch.maximum(reach["farthest"], far)
        return {"epsilon": epsilon}

    def successes() -> np.ndarray:
        """(M, R) bool: the greedy policy of each table is optimal from state 0."""
        ok = [
            policy_evaluation(mdp, greedy_policy(q.table[r]))[0] >= v_star[0] - OPTIMAL_TOL
            for r in range(M * R)
        ]
        return np.asarray(ok).reshape(M, R)

    def evaluate(_: int) -> dict[str, float]:
        rates = successes().mean(1)
        far = reach["farthest"].numpy().reshape(M, R).mean(1)
        out = {f"success_{m}": float(v) for m, v in zip(METHODS, rates, strict=True)}
        out.update({f"farthest_{m}": float(v) for m, v in zip(METHODS, far, strict=True)})
        return out

    loop = Loop(
        ctx,
        tag="chain",
        track={"rng": rng, "walkers": walkers, "q": q, "reach": reach},
        progress=False,
    )
    result = loop.run(step, steps=cfg.steps, every=cfg.every, evaluate=evaluate)
    return {
        "success_curve": np.array(
            [[rec[f"success_{m}"] for m in METHODS] for rec in result.history]
        ),
        "farthest_curve": np.array(
            [[rec[f"farthest_{m}"] for m in METHODS] for rec in result.history]
        ),
        "success": successes(),
        "farthest": reach["farthest"].numpy().reshape(M, R),
        "v_star": v_star,
        "q_start": q.table[:, 0].reshape(M, R, 2),
    }


def measure(cfg: ExplorationConfig, ctx: RunContext) -> ExplorationMeasurements:
    key = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    run = ctx.cached("fit", key, lambda: _fit(cfg, ctx))
    rounds = math.ceil(cfg.steps / cfg.every)
    return ExplorationMeasurements(
        steps=np.minimum(np.arange(1, rounds + 1) * cfg.every, cfg.steps),
        success_curve={m: run["success_curve"][:, i] for i, m in enumerate(METHODS)},
        farthest_curve={m: run["farthest_curve"][:, i] for i, m in enumerate(METHODS)},
        success={m: run["success"][i] for i, m in enumerate(METHODS)},
        farthest={m: run["farthest"][i] for i, m in enumerate(METHODS)},
        v_star=run["v_star"],
        q_start={m: run["q_start"][i] for i, m in enumerate(METHODS)},
    )


LABELS = {
    "greedy": "greedy",
    "epsilon_greedy": "epsilon-greedy (annealed)",
    "boltzmann": "Boltzmann",
}


def draw(m: ExplorationMeasurements, cfg: ExplorationConfig, ctx: RunContext) -> list[Path]:
    fig, (ax, bx) = figure(ncols=2, size=(5.0, 3.6))
    for method in METHODS:
        ax.plot(m.steps, m.success_curve[method], label=LABELS[method])
        bx.plot(m.steps, m.farthest_curve[method] + 1, label=LABELS[method])
    ax.axhline(SUCCESS_RATE, color="grey", ls="--", lw=1, label=f"{SUCCESS_RATE:g} (explorers)")
    ax.axhline(FAIL_RATE, color="grey", ls=":", lw=1, label=f"{FAIL_RATE:g} (greedy)")
    ax.set_xlabel("step (each moves every walker once)")
    ax.set_ylabel("fraction of replicates with an optimal greedy policy")
    ax.set_title(f"chain of {cfg.n}, {cfg.replicates} replicates per behaviour")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    bx.axhline(cfg.n, color="grey", ls="--", lw=1, label=f"the end (reward {cfg.big:g})")
    bx.set_xlabel("step")
    bx.set_ylabel("farthest state reached (1-based, mean over replicates)")
    bx.set_title(f"'back' pays {cfg.small:g}, forward at the end pays {cfg.big:g}")
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3)
    return [ctx.savefig(fig, "exploration")]


def claims(m: ExplorationMeasurements, cfg: ExplorationConfig) -> list[Claim]:
    def detail(method: str) -> str:
        q0 = m.q_start[method].mean(0)
        return (
            f"{int(m.success[method].sum())}/{m.success[method].size} replicates after "
            f"{cfg.steps} steps; mean farthest state {m.farthest[method].mean() + 1:.2f} of "
            f"{cfg.n}; mean Q(0, back/forward) = {q0[0]:.3f}/{q0[1]:.3f}, "
            f"V*(0) = {m.v_star[0]:.3f}"
        )

    return [
        Claim.at_most(
            "acting greedily, Q-learning locks onto the small reward and never learns the "
            f"optimal policy (fraction of replicates optimal <= {FAIL_RATE:g})",
            m.rate("greedy"),
            FAIL_RATE,
            detail("greedy"),
            key="greedy_fails",
        ),
        Claim.at_least(
            "epsilon-greedy exploration (annealed) finds the large reward and the optimal "
            f"policy (fraction of replicates >= {SUCCESS_RATE:g})",
            m.rate("epsilon_greedy"),
            SUCCESS_RATE,
            detail("epsilon_greedy")
            + f"; epsilon {cfg.epsilon_start:g} -> {cfg.epsilon_end:g} over "
            f"{cfg.anneal_fraction:g} of the steps",
            key="epsilon_greedy_succeeds",
        ),
        Claim.at_least(
            f"Boltzmann exploration pi ~ exp(Q / {cfg.temperature:g}) finds the optimal policy "
            f"(fraction of replicates >= {SUCCESS_RATE:g})",
            m.rate("boltzmann"),
            SUCCESS_RATE,
            detail("boltzmann"),
            key="boltzmann_succeeds",
        ),
    ]


@experiment(
    "rl.exploration",
    topic="rl",
    config=ExplorationConfig,
    claims=("greedy_fails", "epsilon_greedy_succeeds", "boltzmann_succeeds"),
)
def exploration(cfg: ExplorationConfig, ctx: RunContext) -> Outcome:
    """On a chain where acting greedily never finds the large reward, greedy Q-learning fails
    and epsilon-greedy and Boltzmann exploration succeed."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
