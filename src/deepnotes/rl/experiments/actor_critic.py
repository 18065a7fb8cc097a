r"""Actor-critic on CartPole-v1: the TD advantage solves it, and its policy-gradient estimate
varies far less than REINFORCE's at the same parameters. Notes: discussion 9, "Actor-critic"
(the critic :math:`V_\phi` replaces the Monte Carlo return: :math:`A \approx r + \gamma
V(s') - V(s)`, "lower variance, some bias"); issue 13, experiment 5. Anchor: CartPole-v1's
solved bar, a mean return of 475.

Training (:mod:`deepnotes.rl.actor_critic`): per seed, batches of ``batch_episodes`` whole
episodes from a vectorised CartPole, the critic fitted by ``value_steps`` Adam steps on the
``n_step``-step TD targets (1: the TD advantage; the target bootstraps from :math:`V(s')` on
the time-limit truncation at 500 steps, not on termination), one policy step with the TD
advantages (divided by their standard deviation), through the engine's Loop; the greedy policy
is evaluated on ``eval_episodes`` fresh episodes every ``eval_every`` updates and training stops
at the first mean >= 475.

Variance (:func:`deepnotes.rl.actor_critic.gradient_variance`): at the final parameters of seed
0 (actor and critic frozen), ``var_batches`` independent batches of ``var_episodes`` episodes,
each giving three estimates of :math:`\nabla_\theta J` on the same episodes: REINFORCE
(discounted reward-to-go, no baseline, the notes' estimator), REINFORCE with the critic as a
baseline, and the actor-critic estimate; none normalised. The spread of an estimator is its
total variance :math:`\mathrm{tr\,Cov}(\hat g)`, estimated from each batch's squared distance to
the estimators' mean over batches.

Claims (fixed before the run):

- ``reaches_475``: actor-critic reaches a greedy evaluation mean return >= 475 on CartPole-v1
  (worst seed's best evaluation mean).
- ``lower_variance``: the actor-critic estimate has a lower total variance than REINFORCE's at
  the same parameters: paired one-sided test (house policy, z with ``var_batches`` >= 30) of
  the per-batch squared deviations, REINFORCE minus actor-critic.

Check: ``truncation_bootstraps``: the TD target of a truncated last step equals
:math:`r + \gamma V(s')` and that of a terminated one equals :math:`r` (max error 0).

The variance ratio and the relative variances :math:`\mathrm{tr\,Cov}(\hat g) / \lVert
\bar g\rVert^2` are reported: the actor-critic's mean gradient is also smaller (its critic
is biased), so the relative figure says the reduction is not only a change of scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import paired
from deepnotes.rl.actor_critic import (
    ESTIMATORS,
    ActorCriticSettings,
    GradientSpread,
    agent_for,
    gradient_variance,
    n_step_targets,
)
from deepnotes.rl.reinforce import FullState, train

ENV_ID = "CartPole-v1"
TARGET = 475.0
"""CartPole-v1's solved bar (gymnasium's reward_threshold)."""
LABELS = {
    "reinforce": "REINFORCE (reward-to-go)",
    "reinforce_baseline": "REINFORCE - V(s)",
    "actor_critic": "actor-critic (TD)",
}


@dataclass(frozen=True)
class ActorCriticConfig:
    """Batch actor-critic on CartPole-v1, then the gradient estimators' variance."""

    seeds: int = 3
    batch_episodes: int = 16
    max_batches: int = 150
    eval_every: int = 2
    eval_episodes: int = 16
    gamma: float = 0.99
    n_step: int = 1
    lr: float = 1e-2
    value_lr: float = 1e-2
    value_steps: int = 20
    hidden: int = 32
    var_batches: int = 64
    """Independent batches for the variance estimate (>= 30: a z test)."""
    var_episodes: int = 16
    """Episodes per batch in the variance estimate (the training batch size)."""

    def __post_init__(self) -> None:
        require(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        require(self.batch_episodes >= 2, f"batch_episodes must be >= 2, got {self.batch_episodes}")
        require(
            self.max_batches >= 1 and 1 <= self.eval_every <= self.max_batches,
            "need max_batches >= 1 and 1 <= eval_every <= max_batches",
        )
        require(self.eval_episodes >= 1, f"eval_episodes must be >= 1, got {self.eval_episodes}")
        require(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        require(self.n_step >= 1, f"n_step must be >= 1, got {self.n_step}")
        require(self.lr > 0 and self.value_lr > 0, "lr and value_lr must be > 0")
        require(self.value_steps >= 1 and self.hidden >= 1, "value_steps and hidden must be >= 1")
        require(self.var_batches >= 2, f"var_batches must be >= 2, got {self.var_batches}")
        require(self.var_episodes >= 1, f"var_episodes must be >= 1, got {self.var_episodes}")

    @classmethod
    def quick(cls) -> ActorCriticConfig:
        """One seed, at most 80 updates; 32 variance batches of 8 episodes."""
        return cls(seeds=1, max_batches=80, var_batches=32, var_episodes=8)


@dataclass(frozen=True)
class ActorCriticMeasurements:
    """Learning curves per seed, and the estimators' spread at seed 0's final parameters."""

    episodes: list[np.ndarray]
    eval_mean: list[np.ndarray]
    train_return: list[np.ndarray]
    reached: np.ndarray
    """Training episodes used when 475 was first reached, (seeds,); -1 if never."""
    diverged: list[str]
    spread: GradientSpread
    truncation_error: float
    """Max |TD target - expected| over a truncated and a terminated last step."""

    def best_eval(self) -> np.ndarray:
        return np.array([c.max() if len(c) else np.nan for c in self.eval_mean])

    def relative_variance(self, estimator: str) -> float:
        return self.spread.total_variance(estimator) / self.spread.mean_norm[estimator] ** 2

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "episodes_to_475": self.reached.tolist(),
            "best_eval": self.best_eval().tolist(),
            "variance_mean_return": self.spread.mean_return,
            "truncation_error": self.truncation_error,
        }
        for name in ESTIMATORS:
            out[f"total_variance_{name}"] = self.spread.total_variance(name)
            out[f"relative_variance_{name}"] = self.relative_variance(name)
        return out


def _fit(cfg: ActorCriticConfig, ctx: RunContext, seed: int) -> dict[str, Any]:
    settings = ActorCriticSettings(
        gamma=cfg.gamma,
        n_step=cfg.n_step,
        lr=cfg.lr,
        value_lr=cfg.value_lr,
        value_steps=cfg.value_steps,
        hidden=(cfg.hidden,),
    )
    view = FullState(4)
    with ctx.seeded("init", seed):
        agent = agent_for(ENV_ID, view, settings, ctx.device)
    return train(
        ctx,
        agent,
        tag=f"ac-{seed}",
        env_id=ENV_ID,
        view=view,
        batch_episodes=cfg.batch_episodes,
        max_batches=cfg.max_batches,
        eval_every=cfg.eval_every,
        eval_episodes=cfg.eval_episodes,
        target=TARGET,
        keys=(seed,),
    )


def _variance(cfg: ActorCriticConfig, ctx: RunContext, run: dict[str, Any]) -> dict[str, Any]:
    settings = ActorCriticSettings(gamma=cfg.gamma, n_step=cfg.n_step, hidden=(cfg.hidden,))
    agent = agent_for(ENV_ID, FullState(4), settings, ctx.device)
    agent.policy.load_state_dict(run["policy"])
    agent.value.load_state_dict(run["value"])
    spread = gradient_variance(
        agent.policy,
        agent.value,
        ENV_ID,
        FullState(4),
        batches=cfg.var_batches,
        episodes=cfg.var_episodes,
        gamma=cfg.gamma,
        seed=ctx.seed_for("variance-env"),
        generator=ctx.stream("variance-act"),
        n_step=cfg.n_step,
        device=ctx.device,
    )
    return {
        "sq_dev": {k: torch.as_tensor(v) for k, v in spread.sq_dev.items()},
        "mean_norm": spread.mean_norm,
        "mean_return": spread.mean_return,
    }


def truncation_error(gamma: float = 0.9) -> float:
    """Max error of the TD targets of two one-step episodes against :math:`r + \\gamma V(s')`
    (truncated) and :math:`r` (terminated)."""
    rewards = torch.tensor([1.0, 1.0])
    next_values = torch.tensor([5.0, 5.0])
    terminated = torch.tensor([False, True])  # episode 0 truncated, episode 1 terminated
    y = n_step_targets(rewards, next_values, terminated, torch.tensor([0, 1]), gamma, 1)
    expected = torch.tensor([1.0 + gamma * 5.0, 1.0])
    return float((y - expected).abs().max())


def measure(cfg: ActorCriticConfig, ctx: RunContext) -> ActorCriticMeasurements:
    """Train every seed (cached), then measure the spread at seed 0's parameters (cached)."""
    runs = []
    with ctx.progress(cfg.seeds + 1, "fits") as bar:
        for seed in range(cfg.seeds):
            key = {"seed": seed, **cfg.__dict__}
            for k in ("seeds", "var_batches", "var_episodes"):
                key.pop(k)
            runs.append(ctx.cached("fit", key, lambda seed=seed: _fit(cfg, ctx, seed)))
            bar.advance()
        vkey = {**cfg.__dict__}
        vkey.pop("seeds")
        v = ctx.cached("variance", vkey, lambda: _variance(cfg, ctx, runs[0]))
        bar.advance()
    spread = GradientSpread(
        sq_dev={k: np.asarray(t) for k, t in v["sq_dev"].items()},
        mean_norm=dict(v["mean_norm"]),
        batches=cfg.var_batches,
        episodes=cfg.var_episodes,
        mean_return=float(v["mean_return"]),
    )
    return ActorCriticMeasurements(
        episodes=[np.asarray(r["episodes"]) for r in runs],
        eval_mean=[np.asarray(r["eval_mean"]) for r in runs],
        train_return=[np.asarray(r["train_return"]) for r in runs],
        reached=np.array([r["reached"] for r in runs]),
        diverged=[r["diverged"] for r in runs],
        spread=spread,
        truncation_error=truncation_error(cfg.gamma),
    )


def draw(m: ActorCriticMeasurements, cfg: ActorCriticConfig, ctx: RunContext) -> list[Path]:
    fig, (ax, bx) = figure(ncols=2, size=(5.6, 4.2))
    for s, (x, y) in enumerate(zip(m.episodes, m.eval_mean, strict=True)):
        ax.plot(x, y, color="C0", lw=1.2, label="greedy evaluation" if s == 0 else None)
    for s, (x, y) in enumerate(zip(m.episodes, m.train_return, strict=True)):
        ax.plot(x, y, color="C1", lw=1, alpha=0.7, label="training (sampled)" if s == 0 else None)
    ax.axhline(TARGET, color="grey", ls="--", lw=1, label=f"{TARGET:g} (solved)")
    ax.set_xlabel("training episodes")
    ax.set_ylabel("mean return")
    ax.set_title(f"actor-critic on {ENV_ID} ({cfg.seeds} seed(s), n-step {cfg.n_step})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    variances = [m.spread.total_variance(k) for k in ESTIMATORS]
    bars = bx.bar(range(len(ESTIMATORS)), variances, color=["C3", "C1", "C0"])
    for bar, k in zip(bars, ESTIMATORS, strict=True):
        bx.annotate(
            f"rel. {m.relative_variance(k):.2g}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    bx.set_yscale("log")
    bx.set_xticks(range(len(ESTIMATORS)), [LABELS[k] for k in ESTIMATORS], fontsize=8)
    bx.set_ylabel("total variance tr Cov(g) of one batch's estimate")
    bx.set_title(
        f"same parameters, {m.spread.batches} batches x {m.spread.episodes} episodes "
        f"(mean return {m.spread.mean_return:.0f})",
        fontsize=9,
    )
    bx.grid(alpha=0.3, axis="y")
    return [ctx.savefig(fig, "actor_critic")]


def claims(m: ActorCriticMeasurements, cfg: ActorCriticConfig) -> list[Claim]:
    best = m.best_eval()
    worst = float(best.min()) if not np.isnan(best).any() else float("nan")
    d = m.spread.sq_dev
    test = paired(d["reinforce"], d["actor_critic"], "greater")
    ratio = m.spread.total_variance("reinforce") / m.spread.total_variance("actor_critic")
    n_div = sum(1 for x in m.diverged if x)
    return [
        Claim.at_least(
            f"actor-critic reaches a greedy evaluation mean return >= {TARGET:g} on {ENV_ID} "
            f"(worst of {cfg.seeds} seed(s))",
            worst,
            TARGET,
            f"best evaluation mean per seed {np.round(best, 1).tolist()}; training episodes "
            f"used {m.reached.tolist()} (-1: not within {cfg.max_batches * cfg.batch_episodes})"
            f"; {n_div} diverged",
            key="reaches_475",
        ),
        Claim.from_test(
            "the actor-critic policy-gradient estimate has lower variance than REINFORCE's at "
            "the same policy parameters",
            test,
            detail=(
                f"total variance REINFORCE {m.spread.total_variance('reinforce'):.4g}, with "
                f"V baseline {m.spread.total_variance('reinforce_baseline'):.4g}, actor-critic "
                f"{m.spread.total_variance('actor_critic'):.4g} (ratio {ratio:.3g}); relative "
                f"to the squared mean gradient {m.relative_variance('reinforce'):.3g} vs "
                f"{m.relative_variance('actor_critic'):.3g}; per-batch squared deviations, "
                f"REINFORCE minus actor-critic"
            ),
            key="lower_variance",
        ),
        Claim.at_most(
            "the TD target bootstraps from V(s') after a truncation and not after a termination",
            m.truncation_error,
            0.0,
            "one-step episodes, r = 1, V(s') = 5: targets r + gamma V(s') and r",
            key="truncation_bootstraps",
            kind="check",
        ),
    ]


@experiment(
    "rl.actor_critic",
    topic="rl",
    config=ActorCriticConfig,
    claims=("reaches_475", "lower_variance"),
    checks=("truncation_bootstraps",),
)
def actor_critic(cfg: ActorCriticConfig, ctx: RunContext) -> Outcome:
    """Actor-critic with the TD advantage solves CartPole-v1 (greedy mean return >= 475), and
    its policy-gradient estimate varies less than REINFORCE's at the same parameters."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
