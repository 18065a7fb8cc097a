r"""DQN solves CartPole-v1; without a target network or without replay it needs more steps.
Notes: discussion 9, section 2.2.1 "Learning with Function Approximation" (the moving target is
unstable, so the target parameters are frozen for several updates; experience replay "can
potentially make reinforcement learning much more sample-efficient") and section 3
"Q-Learning". Anchors: Mnih et al. (2015); CleanRL's ``dqn.py`` on CartPole-v1 (488.7 +- 16.1
at 500k steps); rl-baselines3-zoo's CartPole-v1 hyperparameters (SB3 solves it in about 15k
steps), which :class:`~deepnotes.rl.dqn.DQNConfig` takes as defaults.

Three variants of :func:`~deepnotes.rl.dqn.train_dqn`, paired by seed (same initial weights,
environment resets, action and minibatch streams): ``dqn`` (frozen target network copied every
``target_update_interval`` updates, replay buffer of 100k transitions), ``no_target`` (the
bootstrap uses the online network itself: :math:`\bar\phi = \phi`), and ``no_replay`` (each
transition used once, right after it was collected, then discarded). A run that diverges (the
engine's divergence guard: the TD loss beyond 10^4 times its first value) counts as unsolved.
Every ``eval_every`` environment steps the greedy policy plays ``eval_episodes`` episodes; a run
stops when their mean reaches :data:`SOLVED` = 475 (gymnasium's reward threshold) or after its
step budget. The outcome of a run is the number of environment steps to 475, *censored* at the
budget (a run that never reached it counts as the budget, which can only understate a
difference).

Claims (thresholds fixed before the run, from the issue and the notes):

- ``solves``: every ``dqn`` seed reaches an evaluation mean >= 475 within :data:`STEP_GOAL` =
  50,000 environment steps (the issue's goal; the worst seed is measured).
- ``replay_helps``: replay is more sample-efficient: ``no_replay`` needs more environment steps
  to 475 than ``dqn`` (paired one-sided t over the ablation seeds, level 0.025, both censored at
  the shorter budget).
- ``target_helps``: the moving target is unstable: ``no_target`` needs more environment steps
  to 475 than ``dqn`` (same test). The spread across seeds (SD of the steps, the worst seed) is
  reported in each detail and drawn.

Presets: the full preset is rl-zoo's configuration (net 256x256, 128 updates per 256 steps)
with 5 seeds of each variant and a 50k budget. The quick preset keeps the algorithm (an update
costs 1-4 ms on the shared CPU whatever the width: it is dispatch-bound, so a smaller net does
not buy time, and fewer updates per step cost sample efficiency: 64x64 with 32 updates of 128
per 256 steps did not reach 475 in 50k steps at seed 0) and cuts the replicates: 2 seeds of
each variant, ablations stopped at 8,192 steps. With 2 seeds the paired t test has 1 degree of
freedom (critical value 12.7), so the two ablation claims are known failures of the quick
preset (:data:`QUICK_SHORTFALL`); the full preset decides them.

Deviation: CleanRL trains 500k steps with one update per 10 steps; we use rl-zoo's schedule
(the issue's goal is 50k steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepnotes.core.checkpoint import load_checkpoint
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import paired
from deepnotes.rl.dqn import DQNConfig, DQNRun, train_dqn

SOLVED = 475.0
"""CartPole-v1's reward threshold: the greedy evaluation mean that counts as solved."""
STEP_GOAL = 50_000
"""The issue's goal: environment steps within which every seed must reach :data:`SOLVED`."""
VARIANTS = ("dqn", "no_target", "no_replay")
ABLATIONS = {"no_target": "target_helps", "no_replay": "replay_helps"}
"""Each ablation and the key of the claim comparing it with ``dqn``."""
QUICK_SHORTFALL = (
    "quick preset: 2 seeds per ablation give the paired t test 1 degree of freedom (critical "
    "value 12.7 at level 0.025), too few to decide the claim; the full preset (5 seeds) does"
)
"""Why the ablation claims are not decided in the quick preset."""
MIN_DECISIVE_SEEDS = 3
"""Below this many ablation seeds an ablation claim is a known failure (:data:`QUICK_SHORTFALL`)."""


@dataclass(frozen=True)
class DQNCartpoleConfig:
    """DQN on CartPole-v1 and its two ablations, over seeds."""

    seeds: int = 5
    """Seeds of the full ``dqn`` variant."""
    ablation_seeds: int = 5
    """Seeds of each ablation (the first ones of ``dqn``'s, paired)."""
    total_steps: int = STEP_GOAL
    """Environment-step budget of a ``dqn`` run."""
    ablation_steps: int = STEP_GOAL
    """Environment-step budget of an ablation run."""
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 2.3e-3
    batch_size: int = 64
    learning_starts: int = 1000
    train_freq: int = 256
    """Environment steps per phase."""
    gradient_steps: int = 128
    """Updates per phase (with replay)."""
    target_update_interval: int = 128
    """Updates between two copies of the frozen target."""
    eval_every: int = 1024
    eval_episodes: int = 10

    def __post_init__(self) -> None:
        require(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        require(
            2 <= self.ablation_seeds <= self.seeds,
            f"ablation_seeds must be in [2, seeds = {self.seeds}] (a paired test needs two), "
            f"got {self.ablation_seeds}",
        )
        require(self.ablation_steps >= 1, f"ablation_steps must be >= 1, got {self.ablation_steps}")
        self.dqn("dqn")  # the DQNConfig checks the rest (ConfigError naming the field)

    @classmethod
    def quick(cls) -> DQNCartpoleConfig:
        """2 seeds of each variant, ablations stopped at 4,096 steps, a 64-64 network (rl-zoo's
        256-256 one cost 43 s for seed 0 alone on one idle thread; the 64-64 one solved seeds
        0, 1, 2 in 3,072, 26,624 and 17,408 steps, 2.6 s, 27 s and 16 s)."""
        return cls(seeds=2, ablation_seeds=2, ablation_steps=4096, hidden=(64, 64))

    def dqn(self, variant: str) -> DQNConfig:
        """The :class:`DQNConfig` of one variant."""
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        return DQNConfig(
            total_steps=self.total_steps if variant == "dqn" else self.ablation_steps,
            hidden=self.hidden,
            lr=self.lr,
            batch_size=self.batch_size,
            learning_starts=self.learning_starts,
            train_freq=self.train_freq,
            gradient_steps=self.gradient_steps,
            target_update_interval=self.target_update_interval,
            target="none" if variant == "no_target" else "frozen",
            replay=variant != "no_replay",
            eval_every=self.eval_every,
            eval_episodes=self.eval_episodes,
            target_return=SOLVED,
        )

    def n_seeds(self, variant: str) -> int:
        return self.seeds if variant == "dqn" else self.ablation_seeds


@dataclass(frozen=True)
class DQNCartpoleMeasurements:
    """Per variant, one entry per seed."""

    eval_steps: dict[str, list[np.ndarray]]
    """Environment steps at each evaluation of each seed (ragged: runs stop when solved)."""
    eval_returns: dict[str, list[np.ndarray]]
    """Greedy evaluation mean return at those steps."""
    solved_at: dict[str, np.ndarray]
    """Environment steps to :data:`SOLVED` per seed, NaN when the budget ran out, (seeds,)."""
    budget: dict[str, int]
    """The environment-step budget of the variant's runs."""
    updates: dict[str, np.ndarray]
    """Gradient updates per seed."""
    seconds: dict[str, np.ndarray]
    """Training wall time per seed (NaN for a diverged run)."""
    diverged: dict[str, list[str]] = field(default_factory=dict)
    """Per variant, the engine's divergence message per seed ('' when it did not diverge)."""

    def censored(self, variant: str, budget: int) -> np.ndarray:
        """Steps to :data:`SOLVED`, an unsolved run (or one solved after ``budget``) counted
        as ``budget``."""
        s = self.solved_at[variant]
        return np.where(np.isnan(s), budget, np.minimum(s, budget))

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for v in self.solved_at:
            out[f"steps_to_{int(SOLVED)}_{v}"] = self.solved_at[v].tolist()
            out[f"best_eval_return_{v}"] = [float(np.max(r)) for r in self.eval_returns[v]]
            out[f"updates_{v}"] = self.updates[v].tolist()
            out[f"seconds_{v}"] = np.round(self.seconds[v], 2).tolist()
            out[f"diverged_{v}"] = sum(1 for d in self.diverged.get(v, []) if d)
        return out


def _fit(cfg: DQNCartpoleConfig, ctx: RunContext, variant: str, seed: int) -> dict[str, Any]:
    """One run's record; a diverged run (the engine's DivergenceError) is an unsolved one,
    with the evaluations of its last good checkpoint and the engine's message."""
    tag = f"{variant}-{seed}"
    try:
        _, run = train_dqn(cfg.dqn(variant), ctx, tag=tag, seed=seed)
    except DivergenceError as err:
        path = ctx.out_dir / "checkpoints" / f"{tag}.pt"
        history = load_checkpoint(path)["history"] if path.exists() else []
        steps = [int(rec["env_steps"]) for rec in history]
        return {
            "eval_steps": np.array(steps, dtype=np.int64),
            "eval_returns": np.array([rec["eval_return"] for rec in history], dtype=float),
            "losses": np.array([rec.get("loss", math.nan) for rec in history], dtype=float),
            "episode_returns": np.zeros(0),
            "episode_ends": np.zeros(0, dtype=np.int64),
            "solved_at": math.nan,
            "env_steps": steps[-1] if steps else 0,
            "updates": 0,
            "seconds": math.nan,
            "diverged": str(err),
        }
    return {**run.to_dict(), "diverged": ""}


def measure(cfg: DQNCartpoleConfig, ctx: RunContext) -> DQNCartpoleMeasurements:
    """Train every variant at every seed (each fit cached; ``dqn`` first)."""
    runs: dict[str, list[DQNRun]] = {v: [] for v in VARIANTS}
    diverged: dict[str, list[str]] = {v: [] for v in VARIANTS}
    total = sum(cfg.n_seeds(v) for v in VARIANTS)
    with ctx.progress(total, "fits") as bar:
        for variant in VARIANTS:
            dqn_cfg = cfg.dqn(variant)
            for seed in range(cfg.n_seeds(variant)):
                key = {"variant": variant, "seed": seed, **_plain(dqn_cfg)}
                record = ctx.cached(
                    "fit", key, lambda variant=variant, seed=seed: _fit(cfg, ctx, variant, seed)
                )
                runs[variant].append(DQNRun.from_dict(record))
                diverged[variant].append(record.get("diverged", ""))
                bar.advance()
    return DQNCartpoleMeasurements(
        eval_steps={v: [r.eval_steps for r in runs[v]] for v in VARIANTS},
        eval_returns={v: [r.eval_returns for r in runs[v]] for v in VARIANTS},
        solved_at={v: np.array([r.solved_at for r in runs[v]]) for v in VARIANTS},
        budget={v: cfg.dqn(v).total_steps for v in VARIANTS},
        updates={v: np.array([r.updates for r in runs[v]]) for v in VARIANTS},
        seconds={v: np.array([r.seconds for r in runs[v]]) for v in VARIANTS},
        diverged=diverged,
    )


def _plain(dqn_cfg: DQNConfig) -> dict[str, Any]:
    return {k: getattr(dqn_cfg, k) for k in dqn_cfg.__dataclass_fields__}


STYLE = {
    "dqn": ("C0", "DQN (target network + replay)"),
    "no_target": ("C3", "no target network"),
    "no_replay": ("C2", "no replay"),
}


def draw(m: DQNCartpoleMeasurements, cfg: DQNCartpoleConfig, ctx: RunContext) -> list[Path]:
    fig, (ax, bx) = figure(ncols=2, size=(5.4, 4.0))
    for v in VARIANTS:
        color, label = STYLE[v]
        for k, (steps, returns) in enumerate(zip(m.eval_steps[v], m.eval_returns[v], strict=True)):
            ax.plot(steps, returns, color=color, lw=1.2, alpha=0.8, label=label if k == 0 else None)
    ax.axhline(SOLVED, color="grey", ls="--", lw=1, label=f"solved ({SOLVED:g})")
    ax.axvline(STEP_GOAL, color="grey", ls=":", lw=1)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"greedy evaluation mean return ({cfg.eval_episodes} episodes)")
    ax.set_title("CartPole-v1: evaluation during training (one line per seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")

    for x, v in enumerate(VARIANTS):
        color, _ = STYLE[v]
        s = m.solved_at[v]
        solved = ~np.isnan(s)
        jitter = np.linspace(-0.12, 0.12, len(s)) if len(s) > 1 else np.zeros(1)
        bx.scatter(x + jitter[solved], s[solved], color=color, s=30, zorder=3)
        bx.scatter(
            x + jitter[~solved],
            np.full((~solved).sum(), m.budget[v]),
            facecolors="none",
            edgecolors=color,
            s=30,
            zorder=3,
            label="not solved (at its budget)" if v == "no_replay" else None,
        )
        bx.hlines(
            np.mean(m.censored(v, m.budget[v])), x - 0.25, x + 0.25, color=color, lw=2, zorder=2
        )
    bx.axhline(STEP_GOAL, color="grey", ls=":", lw=1, label=f"goal {STEP_GOAL:,} steps")
    bx.set_xticks(range(len(VARIANTS)), [STYLE[v][1] for v in VARIANTS], fontsize=8)
    bx.set_ylabel(f"environment steps to evaluation mean {SOLVED:g}")
    bx.set_title("steps to solve per seed (bar: mean, censored at the budget)")
    bx.set_ylim(0, None)
    bx.grid(alpha=0.3, axis="y")
    bx.legend(fontsize=7, loc="upper left")
    return [ctx.savefig(fig, "dqn_cartpole")]


def _describe(m: DQNCartpoleMeasurements, v: str, budget: int) -> str:
    steps = m.censored(v, budget)
    sd = float(np.std(steps, ddof=1)) if len(steps) > 1 else math.nan
    unsolved = int(np.sum(np.isnan(m.solved_at[v]) | (m.solved_at[v] > budget)))
    n_diverged = sum(1 for d in m.diverged.get(v, []) if d)
    return (
        f"{v}: steps to {SOLVED:g} {steps.astype(int).tolist()} (mean {np.mean(steps):.0f}, "
        f"SD across seeds {sd:.0f}, {unsolved} not solved within {budget:,}, "
        f"{n_diverged} diverged)"
    )


def claims(m: DQNCartpoleMeasurements, cfg: DQNCartpoleConfig) -> list[Claim]:
    dqn = m.solved_at["dqn"]
    worst = float(np.max(dqn)) if not np.isnan(dqn).any() else math.nan
    out = [
        Claim.at_most(
            f"DQN reaches a greedy evaluation mean >= {SOLVED:g} on CartPole-v1 within "
            f"{STEP_GOAL:,} environment steps (worst of {len(dqn)} seeds)",
            worst,
            STEP_GOAL,
            _describe(m, "dqn", m.budget["dqn"])
            + f"; best evaluation per seed {[float(np.max(r)) for r in m.eval_returns['dqn']]}",
            key="solves",
        )
    ]
    for ablation, key in ABLATIONS.items():
        n = len(m.solved_at[ablation])
        budget = min(m.budget["dqn"], m.budget[ablation])
        with_it = m.censored("dqn", budget)[:n]
        without = m.censored(ablation, budget)
        what = "replay" if ablation == "no_replay" else "a target network"
        out.append(
            Claim.from_test(
                f"without {what} DQN needs more environment steps to reach {SOLVED:g} "
                f"(paired over {n} seeds, censored at {budget:,})",
                paired(without, with_it),
                _describe(m, ablation, budget) + "; " + _describe(m, "dqn", budget),
                known_failure=QUICK_SHORTFALL if n < MIN_DECISIVE_SEEDS else "",
                key=key,
            )
        )
    return out


@experiment(
    "rl.dqn_cartpole",
    topic="rl",
    config=DQNCartpoleConfig,
    claims=("solves", "target_helps", "replay_helps"),
)
def dqn_cartpole(cfg: DQNCartpoleConfig, ctx: RunContext) -> Outcome:
    """DQN with a target network and experience replay solves CartPole-v1 within 50k
    environment steps; without the target network or without replay it needs more."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
