r"""REINFORCE on CartPole-v1: reward-to-go with a learned baseline solves it, and without the
baseline it needs more episodes. Notes: discussion 9, "Policy gradients" (REINFORCE,
reward-to-go, baselines); issue 13, experiment 3. Anchor: CartPole-v1's "solved" bar, a mean
return of 475 (gymnasium's ``reward_threshold``).

Two agents per seed, paired (the same initial policy weights, the same environment seeds per
batch, their own action streams): REINFORCE with the discounted reward-to-go (``gamma``) and a
learned state-dependent baseline :math:`V_\phi(s)` (:mod:`deepnotes.rl.reinforce`), and the
same without the baseline. Each collects ``batch_episodes`` whole episodes per update from a
vectorised CartPole (advantages divided by their batch standard deviation, not centred, so the
agent without baseline has none), trains through the engine's Loop, and every ``eval_every``
updates evaluates the greedy policy (most probable action) on ``eval_episodes`` fresh episodes;
it stops at the first evaluation whose mean return is >= 475 and records the training
episodes used so far. A run that never reaches 475 within ``max_batches`` updates is
*censored*: its count is set to the budget, ``max_batches * batch_episodes`` (a lower bound on
its true count; the number of censored runs per agent is reported).

Claims (fixed before the run):

- ``baseline_reaches``: REINFORCE with reward-to-go and the baseline reaches a greedy evaluation
  mean return >= 475 in every seed (measured: the worst seed's best evaluation mean).
- ``no_baseline_needs_more``: over seeds, the agent without baseline needs more training
  episodes to reach 475 than the agent with it: paired one-sided test (house policy,
  :func:`deepnotes.core.stats.paired`, t with ``seeds - 1`` df) of the censored counts.

Pilots (6 seeds, 16 episodes per batch, evaluation every 5 batches) gave 320-560 episodes with
the baseline and 400-960 without, the difference 0 to 400: a consistent but small effect, so
the full preset uses 10 seeds. The quick preset's 3 seeds give the t test 2 degrees of freedom
(critical value 4.30): known failure in the quick preset only, see :data:`QUICK_SHORTFALL`
(full preset, seed 0: both claims hold; every seed reached 475 with the baseline, in 320-512
episodes; without it 320-576; the effect is modest, about 15% more episodes).

Deviation: the evaluation is greedy (as stable-baselines3's ``evaluate_policy`` with
``deterministic=True``); the sampled policy's training returns are drawn too, and are lower.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import paired
from deepnotes.rl.reinforce import FullState, ReinforceSettings, agent_for, train

ENV_ID = "CartPole-v1"
TARGET = 475.0
"""CartPole-v1's solved bar (gymnasium's reward_threshold)."""
AGENTS = ("baseline", "no_baseline")
QUICK_SEEDS = 3
QUICK_SHORTFALL = (
    "measured: with the quick preset's 3 seeds the paired t test has 2 df (critical 4.30); the "
    "effect is tens to a hundred-odd episodes with a spread of the same size between seeds "
    "(quick, seed 0: 512/480/352 episodes without the baseline vs 352/352/320 with it, "
    "t = 2.77, p = 0.055); the full preset (10 seeds) decides it: mean 57.6 +- 19 episodes "
    "more without the baseline, t = 3.04 with 9 df, p = 0.007"
)
"""Why the quick preset does not decide ``no_baseline_needs_more`` (measured)."""


@dataclass(frozen=True)
class ReinforceCartpoleConfig:
    """REINFORCE with and without a learned baseline on CartPole-v1, paired over seeds."""

    seeds: int = 10
    batch_episodes: int = 16
    max_batches: int = 150
    """Updates before a run is censored."""
    eval_every: int = 2
    eval_episodes: int = 16
    gamma: float = 0.99
    lr: float = 1e-2
    value_lr: float = 1e-2
    value_steps: int = 5
    hidden: int = 32
    normalize: bool = True

    def __post_init__(self) -> None:
        require(self.seeds >= 2, f"seeds must be >= 2 (a paired test), got {self.seeds}")
        require(self.batch_episodes >= 2, f"batch_episodes must be >= 2, got {self.batch_episodes}")
        require(
            self.max_batches >= 1 and 1 <= self.eval_every <= self.max_batches,
            "need max_batches >= 1 and 1 <= eval_every <= max_batches",
        )
        require(self.eval_episodes >= 1, f"eval_episodes must be >= 1, got {self.eval_episodes}")
        require(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        require(self.lr > 0 and self.value_lr > 0, "lr and value_lr must be > 0")
        require(self.value_steps >= 1 and self.hidden >= 1, "value_steps and hidden must be >= 1")

    @classmethod
    def quick(cls) -> ReinforceCartpoleConfig:
        """3 seeds, at most 60 updates of 16 episodes (about 20 s on one idle thread)."""
        return cls(seeds=QUICK_SEEDS, max_batches=60)

    @property
    def budget(self) -> int:
        """Training episodes at which a run is censored."""
        return self.max_batches * self.batch_episodes


@dataclass(frozen=True)
class ReinforceCartpoleMeasurements:
    """Per agent in :data:`AGENTS` and seed: learning curves and episodes to reach 475."""

    episodes: dict[str, list[np.ndarray]]
    """Training episodes used at each evaluation, per seed."""
    eval_mean: dict[str, list[np.ndarray]]
    train_return: dict[str, list[np.ndarray]]
    reached: dict[str, np.ndarray]
    """Episodes used when 475 was first reached, (seeds,); -1 if never (censored)."""
    diverged: dict[str, list[str]]
    budget: int

    def counts(self, agent: str) -> np.ndarray:
        """Episodes to reach 475, censored at the budget, (seeds,)."""
        r = self.reached[agent].astype(float)
        return np.where(r < 0, float(self.budget), r)

    def best_eval(self, agent: str) -> np.ndarray:
        """Best evaluation mean per seed (NaN for a run that diverged before evaluating)."""
        return np.array([c.max() if len(c) else np.nan for c in self.eval_mean[agent]])

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"budget_episodes": self.budget}
        for agent in AGENTS:
            out[f"episodes_to_475_{agent}"] = self.reached[agent].tolist()
            out[f"best_eval_{agent}"] = self.best_eval(agent).tolist()
        return out


def _fit(cfg: ReinforceCartpoleConfig, ctx: RunContext, agent_kind: str, seed: int) -> Any:
    settings = ReinforceSettings(
        returns="reward_to_go",
        baseline=agent_kind == "baseline",
        gamma=cfg.gamma,
        normalize=cfg.normalize,
        lr=cfg.lr,
        value_lr=cfg.value_lr,
        value_steps=cfg.value_steps,
        hidden=(cfg.hidden,),
    )
    view = FullState(4)
    with ctx.seeded("init", seed):  # the policy's weights shared by both agents of a seed
        agent = agent_for(ENV_ID, view, settings, ctx.device)
    return train(
        ctx,
        agent,
        tag=f"{agent_kind}-{seed}",
        env_id=ENV_ID,
        view=view,
        batch_episodes=cfg.batch_episodes,
        max_batches=cfg.max_batches,
        eval_every=cfg.eval_every,
        eval_episodes=cfg.eval_episodes,
        target=TARGET,
        keys=(seed,),
    )


def measure(cfg: ReinforceCartpoleConfig, ctx: RunContext) -> ReinforceCartpoleMeasurements:
    """Train both agents in every seed (each fit cached)."""
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in AGENTS}
    with ctx.progress(cfg.seeds * len(AGENTS), "fits") as bar:
        for seed in range(cfg.seeds):
            for kind in AGENTS:
                key = {"agent": kind, "seed": seed, **cfg.__dict__}
                key.pop("seeds")
                runs[kind].append(
                    ctx.cached("fit", key, lambda kind=kind, seed=seed: _fit(cfg, ctx, kind, seed))
                )
                bar.advance()
    return ReinforceCartpoleMeasurements(
        episodes={a: [np.asarray(r["episodes"]) for r in runs[a]] for a in AGENTS},
        eval_mean={a: [np.asarray(r["eval_mean"]) for r in runs[a]] for a in AGENTS},
        train_return={a: [np.asarray(r["train_return"]) for r in runs[a]] for a in AGENTS},
        reached={a: np.array([r["reached"] for r in runs[a]]) for a in AGENTS},
        diverged={a: [r["diverged"] for r in runs[a]] for a in AGENTS},
        budget=cfg.budget,
    )


LABELS = {"baseline": "reward-to-go + V(s) baseline", "no_baseline": "reward-to-go, no baseline"}
COLORS = {"baseline": "C0", "no_baseline": "C3"}


def draw(
    m: ReinforceCartpoleMeasurements, cfg: ReinforceCartpoleConfig, ctx: RunContext
) -> list[Path]:
    fig, (ax, bx) = figure(ncols=2, size=(5.6, 4.2))
    for agent in AGENTS:
        for s, (x, y) in enumerate(zip(m.episodes[agent], m.eval_mean[agent], strict=True)):
            ax.plot(
                x,
                y,
                color=COLORS[agent],
                lw=1.2,
                alpha=0.8,
                label=LABELS[agent] if s == 0 else None,
            )
    ax.axhline(TARGET, color="grey", ls="--", lw=1, label=f"{TARGET:g} (solved)")
    ax.set_xlabel("training episodes")
    ax.set_ylabel("greedy evaluation mean return")
    ax.set_title(
        f"REINFORCE on {ENV_ID} ({cfg.seeds} seeds, {cfg.batch_episodes} episodes/update)",
        fontsize=10,
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    seeds = np.arange(cfg.seeds)
    for s in seeds:
        bx.plot([0, 1], [m.counts("baseline")[s], m.counts("no_baseline")[s]], color="grey", lw=0.8)
    for i, agent in enumerate(AGENTS):
        c = m.counts(agent)
        censored = m.reached[agent] < 0
        bx.scatter(np.full(cfg.seeds, i)[~censored], c[~censored], color=COLORS[agent], zorder=3)
        bx.scatter(
            np.full(cfg.seeds, i)[censored],
            c[censored],
            color=COLORS[agent],
            marker="^",
            zorder=3,
            label="censored (never reached)" if censored.any() and i == 1 else None,
        )
    bx.set_xticks([0, 1], [LABELS[a] for a in AGENTS], fontsize=8)
    bx.set_xlim(-0.5, 1.5)
    bx.set_ylabel("training episodes to greedy mean >= 475")
    bx.set_title("paired by seed")
    bx.grid(alpha=0.3)
    if (m.reached["no_baseline"] < 0).any() or (m.reached["baseline"] < 0).any():
        bx.legend(fontsize=7)
    return [ctx.savefig(fig, "learning_curves")]


def claims(m: ReinforceCartpoleMeasurements, cfg: ReinforceCartpoleConfig) -> list[Claim]:
    best = m.best_eval("baseline")
    worst = float(best.min()) if not np.isnan(best).any() else float("nan")
    diverged = {a: sum(1 for d in m.diverged[a] if d) for a in AGENTS}
    censored = {a: int((m.reached[a] < 0).sum()) for a in AGENTS}
    test = paired(m.counts("no_baseline"), m.counts("baseline"), "greater")
    quick = cfg.seeds <= QUICK_SEEDS
    return [
        Claim.at_least(
            f"REINFORCE with reward-to-go and a learned baseline reaches a greedy evaluation "
            f"mean return >= {TARGET:g} on {ENV_ID} (worst of {cfg.seeds} seeds)",
            worst,
            TARGET,
            f"best evaluation mean per seed {np.round(best, 1).tolist()}; episodes used "
            f"{m.reached['baseline'].tolist()} (-1: not within {m.budget}); "
            f"{diverged['baseline']} diverged",
            key="baseline_reaches",
        ),
        Claim.from_test(
            "without the baseline REINFORCE needs more episodes to reach 475 (paired over seeds)",
            test,
            detail=(
                f"episodes to 475 without baseline {m.counts('no_baseline').astype(int).tolist()}"
                f", with {m.counts('baseline').astype(int).tolist()}; censored at {m.budget} "
                f"episodes: {censored['no_baseline']} without, {censored['baseline']} with"
            ),
            key="no_baseline_needs_more",
            known_failure=QUICK_SHORTFALL if quick else "",
        ),
    ]


@experiment(
    "rl.reinforce_cartpole",
    topic="rl",
    config=ReinforceCartpoleConfig,
    claims=("baseline_reaches", "no_baseline_needs_more"),
)
def reinforce_cartpole(cfg: ReinforceCartpoleConfig, ctx: RunContext) -> Outcome:
    """REINFORCE with reward-to-go and a learned baseline solves CartPole-v1 (greedy mean
    return >= 475), and without the baseline it needs more episodes (paired over seeds)."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
