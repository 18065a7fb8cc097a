r"""MAML for RL on 2-D point navigation: after one policy-gradient step, the meta-learned policy
improves more than a policy pretrained on all tasks. Notes: discussion 12, section 3, "MAML for
RL" (algorithm 3); setup and anchor: Finn, Abbeel & Levine (2017, section 5.3, figure 4, "2D
navigation": MAML's return after one gradient step far above the pretrained policy's).

A task is a hidden goal uniform in ``[-0.5, 0.5]^2``; the point starts at the origin, actions are
clipped to ``[-0.1, 0.1]``, the reward is minus the distance to the goal
(:class:`deepnotes.data.bandits.PointNavigation`), for ``horizon`` steps. Two
:class:`~deepnotes.meta.maml_rl.GaussianPolicy` from the same initialisation are trained for
``iterations`` iterations of Adam (``lr``) on the same stream of ``tasks`` goals per iteration,
``per_task`` trajectories each (:mod:`deepnotes.meta.maml_rl`), through the engine's
:class:`~deepnotes.core.engine.Loop`:

- ``maml``: algorithm 3 with one inner REINFORCE step of size ``inner_lr`` = 0.1 (Finn et al.'s),
  second-order (``first_order=False``, backward through the inner step) or first-order;
- ``pretrained``: REINFORCE on the pooled trajectories of all tasks, no adaptation (the paper's
  "pretrained" baseline).

Test: ``test_tasks`` fresh goals (own stream), the same for both, and the same action noise
(one generator seeded alike per method): ``per_task`` trajectories with the trained parameters
(return *before*), one REINFORCE step of size ``inner_lr`` on them, ``per_task`` trajectories
with the adapted parameters (return *after*); a return is the mean over the task's trajectories.

Claims (fixed before the run; paired over the test tasks, one-sided tests of
:func:`deepnotes.core.stats.paired`):

- ``maml_improves_more``: MAML's improvement (after - before) exceeds the pretrained policy's.
- ``maml_adapted_better``: MAML's return after the step exceeds the pretrained policy's after
  the same step (the comparison of Finn et al.'s figure 4).

Deviations: Adam on the meta-objective instead of TRPO; a per-task time baseline instead of a
linear feature baseline; the policy's output layer starts small (mean action near 0, see
:class:`~deepnotes.meta.maml_rl.GaussianPolicy`). The quick preset uses a horizon of 25 steps
(a goal is at most 8 steps away) instead of 100, 10 trajectories per task instead of 20, a
(32, 32) network and 120 iterations. Both presets use second-order MAML: in a pilot at seed 0
with the quick budget, first-order MAML showed no clear advantage over the pretrained policy
after 100 iterations, second order did. The full preset (500 iterations at horizon 100) was not
run when this was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import mean_se, paired
from deepnotes.data.bandits import HORIZON, sample_goals
from deepnotes.meta.maml_rl import GaussianPolicy, meta_step, pretrain_step

METHODS = ("maml", "pretrained")
LABELS = {"maml": "MAML", "pretrained": "pretrained"}


@dataclass(frozen=True)
class MamlRLConfig:
    """Meta-train a Gaussian policy by MAML for RL and pretrain one; test one PG step each."""

    horizon: int = HORIZON
    hidden: tuple[int, ...] = (64, 64)
    init_std: float = 0.1
    tasks: int = 20
    per_task: int = 20
    iterations: int = 500
    every: int = 25
    lr: float = 1e-2
    inner_lr: float = 0.1
    gamma: float = 0.99
    first_order: bool = False
    test_tasks: int = 200

    def __post_init__(self) -> None:
        require(self.horizon >= 1, f"horizon must be >= 1, got {self.horizon}")
        require(len(self.hidden) >= 1 and min(self.hidden) >= 1, "hidden widths must be >= 1")
        require(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")
        require(self.tasks >= 1 and self.per_task >= 2, "need tasks >= 1 and per_task >= 2")
        require(
            self.iterations >= 1 and 1 <= self.every <= self.iterations,
            "need iterations >= 1 and 1 <= every <= iterations",
        )
        require(self.lr > 0 and self.inner_lr > 0, "lr and inner_lr must be > 0")
        require(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        require(self.test_tasks >= 2, f"test_tasks must be >= 2, got {self.test_tasks}")

    @classmethod
    def quick(cls) -> MamlRLConfig:
        """Horizon 25, (32, 32), 10 trajectories per task, 120 iterations (second order)."""
        return cls(
            horizon=25, hidden=(32, 32), per_task=10, iterations=120, every=10, test_tasks=100
        )


@dataclass(frozen=True)
class MamlRLMeasurements:
    """Test returns before / after one PG step per method ``(test_tasks,)`` and the curves."""

    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    iteration: np.ndarray
    train_before: dict[str, np.ndarray]
    """Per method, the mean return of the training tasks with theta, per round."""
    train_after: np.ndarray
    """MAML's mean return of the training tasks after the inner step, per round."""
    diverged: dict[str, str]

    def improvement(self, method: str) -> np.ndarray:
        """Return after the step minus before, per test task."""
        return self.after[method] - self.before[method]

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for method in METHODS:
            out[f"return_before_{method}"] = list(mean_se(self.before[method]))
            out[f"return_after_{method}"] = list(mean_se(self.after[method]))
        out["diverged"] = self.diverged
        return out


def _fit(cfg: MamlRLConfig, ctx: RunContext, method: str) -> dict[str, Any]:
    with ctx.seeded("init"):  # the same initialisation for both methods
        model = GaussianPolicy(cfg.hidden, cfg.init_std)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    tasks, act = ctx.stream("tasks"), ctx.stream("act", method)

    def step(i: int) -> dict[str, float]:
        goals = sample_goals(cfg.tasks, tasks)
        if method == "maml":
            loss, before, after = meta_step(
                model,
                goals,
                per_task=cfg.per_task,
                horizon=cfg.horizon,
                inner_lr=cfg.inner_lr,
                gamma=cfg.gamma,
                first_order=cfg.first_order,
                generator=act,
            )
            extra = {"return_after": float(after.mean())}
        else:
            loss, before = pretrain_step(
                model,
                goals,
                per_task=cfg.per_task,
                horizon=cfg.horizon,
                gamma=cfg.gamma,
                generator=act,
            )
            extra = {}
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"pg_loss": float(loss.detach()), "return_before": float(before.mean()), **extra}

    loop = Loop(
        ctx,
        tag=method,
        track={"model": model, "opt": opt, "tasks": tasks, "act": act},
        watch=("pg_loss",),
        explode_factor=None,
        progress=False,
    )
    diverged = ""
    try:
        history = loop.run(step, steps=cfg.iterations, every=cfg.every).history
    except DivergenceError as err:
        history, diverged = loop.history, str(err)
    return {
        "iteration": [rec["step"] for rec in history],
        "return_before": [rec["return_before"] for rec in history],
        "return_after": [rec.get("return_after", float("nan")) for rec in history],
        "diverged": diverged,
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }


def measure(cfg: MamlRLConfig, ctx: RunContext) -> MamlRLMeasurements:
    """Train both (each fit cached), then one PG step on the same test goals and noise."""
    goals = sample_goals(cfg.test_tasks, ctx.stream("test"))
    fits, before, after = {}, {}, {}
    for method in METHODS:
        key = {f: getattr(cfg, f) for f in cfg.__dataclass_fields__ if f != "test_tasks"}
        fits[method] = ctx.cached(
            "fit", {**key, "method": method}, lambda m=method: _fit(cfg, ctx, m)
        )
        model = GaussianPolicy(cfg.hidden, cfg.init_std)
        model.load_state_dict(fits[method]["state"])
        _, b, a = meta_step(
            model,
            goals,
            per_task=cfg.per_task,
            horizon=cfg.horizon,
            inner_lr=cfg.inner_lr,
            gamma=cfg.gamma,
            first_order=True,
            generator=ctx.stream("eval"),
        )
        before[method], after[method] = b.numpy(), a.detach().numpy()
    return MamlRLMeasurements(
        before=before,
        after=after,
        iteration=np.asarray(fits["maml"]["iteration"], dtype=float),
        train_before={m: np.asarray(fits[m]["return_before"]) for m in METHODS},
        train_after=np.asarray(fits["maml"]["return_after"]),
        diverged={m: fits[m]["diverged"] for m in METHODS},
    )


def draw(m: MamlRLMeasurements, cfg: MamlRLConfig, ctx: RunContext) -> list[Path]:
    fig, axes = figure(ncols=2, size=(5.5, 4.2))
    ax = axes[0]
    ax.plot(m.iteration, m.train_before["maml"], color="C0", ls="--", label="MAML, before step")
    ax.plot(m.iteration, m.train_after, color="C0", label="MAML, after one PG step")
    ax.plot(m.iteration, m.train_before["pretrained"], color="C3", label="pretrained")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"mean return (horizon {cfg.horizon})")
    ax.set_title(f"training: {cfg.tasks} goals x {cfg.per_task} trajectories")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for i, method in enumerate(METHODS):
        means = [m.before[method].mean(), m.after[method].mean()]
        ses = [mean_se(m.before[method])[1], mean_se(m.after[method])[1]]
        ax.errorbar(
            [0, 1], means, yerr=ses, marker="o", capsize=4, color=f"C{3 * i}", label=LABELS[method]
        )
    ax.set_xticks([0, 1], ["0 steps", "1 PG step"])
    ax.set_ylabel("mean return on test goals (+- SE)")
    ax.set_title(f"adaptation to {len(m.before['maml'])} new goals")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return [ctx.savefig(fig, "maml_rl_navigation")]


def claims(m: MamlRLMeasurements, cfg: MamlRLConfig) -> list[Claim]:
    gain_m, gain_p = m.improvement("maml"), m.improvement("pretrained")
    bad = [f"{k}: {v}" for k, v in m.diverged.items() if v]
    note = f"; diverged: {bad}" if bad else ""
    return [
        Claim.from_test(
            "after one policy-gradient step MAML's return improves more than the pretrained "
            "policy's (paired over test goals)",
            paired(gain_m, gain_p, "greater"),
            f"improvement MAML {gain_m.mean():.3f}, pretrained {gain_p.mean():.3f}" + note,
            key="maml_improves_more",
        ),
        Claim.from_test(
            "after the step MAML's return is above the pretrained policy's (paired)",
            paired(m.after["maml"], m.after["pretrained"], "greater"),
            f"after one step MAML {m.after['maml'].mean():.3f}, pretrained "
            f"{m.after['pretrained'].mean():.3f}" + note,
            key="maml_adapted_better",
        ),
    ]


@experiment(
    "meta.maml_rl",
    topic="meta",
    config=MamlRLConfig,
    claims=("maml_improves_more", "maml_adapted_better"),
)
def maml_rl(cfg: MamlRLConfig, ctx: RunContext) -> Outcome:
    """On 2-D point navigation with a hidden goal, a policy meta-trained by MAML improves more
    from one policy-gradient step on a new goal than a policy pretrained on all goals."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
