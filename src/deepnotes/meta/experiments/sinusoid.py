r"""Few-shot sinusoid regression: MAML, first-order MAML and a pretrained network, adapted by
gradient steps on ``K = 10`` points. Notes: discussion 12, section 2.3 "Model-Agnostic
Meta-Learning (MAML)" (algorithm 1); the setup and anchor are Finn, Abbeel & Levine (2017,
"Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", section 5.1, figure 2).

Tasks ``y = A sin(x - phi)``, ``A ~ U[0.1, 5]``, ``phi ~ U[0, pi]``, ``x ~ U[-5, 5]``
(:func:`deepnotes.data.tasks.sample_sinusoids`). As in the paper: a 1-40-40-1 ReLU MLP, MSE,
``K = 10`` support and 10 query points per training task, one inner step of size
``alpha = 0.01``, meta-batches of 25 tasks, Adam with meta learning rate ``1e-3``. Three fits
from the same initialisation and the same task stream (:mod:`deepnotes.meta.regression`):

- ``maml``: second-order MAML (backward through the inner gradient);
- ``fomaml``: first-order MAML (the inner gradient a constant);
- ``pretrained``: the network trained by Adam to regress all sampled tasks at once (support and
  query points pooled), the paper's "pretrained" baseline, for the same number of Adam steps.

Each is evaluated on ``test_tasks`` fresh tasks (own stream, the same for the three, so the
comparisons are paired): ``K`` support points, ``test_points`` query points, MSE on the query
points after 0..``eval_steps`` gradient steps of size ``alpha`` on the support points.

Claims (thresholds from the issue, fixed before the run; "after one step" = one step of size
``alpha`` from each method's parameters, mean over test tasks):

- ``maml_mse``: MAML's test MSE after one step is ``<=`` :data:`MAML_MSE` = 0.6 (the issue;
  reimplementations report 0.67-0.72, Meta-SGD about 0.53). Finn et al. train 70,000
  meta-iterations (the full preset); the quick preset runs :data:`QUICK_ITERATIONS`, far fewer,
  and when the claim fails there it is a known failure "quick preset only" carrying the measured
  value; the full preset decides it (it holds there: 0.333 at seed 0; the quick preset's 4,000
  iterations measured 0.569).
- ``fomaml_close``: first-order MAML's MSE after one step is within 15% of MAML's,
  ``|MSE_FO / MSE_MAML - 1| <= 0.15`` (the issue; Finn et al. report nearly the same
  performance on MiniImagenet). It does not hold, at the full preset either: a known failure
  with the measurement (:data:`FOMAML_FAILS`).
- ``pretrained_worse``: the pretrained network fine-tuned the same way is much worse, stated as
  at least :data:`PRETRAINED_FACTOR` = 2 times MAML's MSE after one step, decided by a paired
  one-sided t-test over the same test tasks of ``MSE_pre - 2 MSE_MAML > 0``
  (:func:`deepnotes.core.stats.paired`).

Deviations: the quick preset trains fewer meta-iterations (see above); the evaluation MSE is on
``test_points`` uniform query points per task rather than the paper's plotted grid.
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
from deepnotes.core.stats import mean_se, paired
from deepnotes.data.tasks import INPUT_RANGE, sample_sinusoids
from deepnotes.meta.maml import adapt
from deepnotes.meta.regression import METHODS, evaluate_curves, fit_sinusoid, mlp

MAML_MSE = 0.6
"""MAML's test MSE after one step must not exceed this (the issue)."""
FOMAML_TOLERANCE = 0.15
"""First-order MAML's MSE after one step within this fraction of MAML's (the issue)."""
PRETRAINED_FACTOR = 2.0
""""Much worse": the pretrained network's MSE after one step at least this many times MAML's."""
FULL_ITERATIONS = 70_000
"""Meta-iterations of Finn et al. (and of the full preset)."""
QUICK_ITERATIONS = 4_000
"""Meta-iterations of the quick preset."""
FOMAML_FAILS = (
    "measured at the full preset (Finn et al.'s 70,000 meta-iterations, seed 0, 1,000 test "
    "tasks): first-order MAML's MSE after one step 0.457 +- 0.017 vs MAML's 0.333 +- 0.013, "
    "ratio 1.37 (after 10 steps 0.134 vs 0.112); at 4,000 iterations (quick) 1.68: the gap "
    "narrows with training but stays above the issue's 15%"
)
"""Why ``fomaml_close`` does not hold, measured (the issue's 15% has no sinusoid anchor: Finn et
al. compare first-order MAML on MiniImagenet, not here)."""
LABELS = {"maml": "MAML", "fomaml": "first-order MAML", "pretrained": "pretrained"}
COLORS = {"maml": "C0", "fomaml": "C2", "pretrained": "C3"}
_FIT_FIELDS = (  # the config fields a fit depends on (its cache key)
    "hidden",
    "shots",
    "inner_lr",
    "inner_steps",
    "meta_lr",
    "meta_batch",
    "iterations",
    "every",
)


@dataclass(frozen=True)
class SinusoidConfig:
    """MAML, first-order MAML and a pretrained MLP on few-shot sinusoid regression."""

    hidden: tuple[int, ...] = (40, 40)
    shots: int = 10
    inner_lr: float = 0.01
    inner_steps: int = 1
    meta_lr: float = 1e-3
    meta_batch: int = 25
    iterations: int = FULL_ITERATIONS
    every: int = 1000
    test_tasks: int = 1000
    test_points: int = 100
    eval_steps: int = 10
    shown_tasks: int = 3

    def __post_init__(self) -> None:
        require(len(self.hidden) >= 1 and min(self.hidden) >= 1, "hidden widths must be >= 1")
        require(self.shots >= 1 and self.meta_batch >= 1, "shots and meta_batch must be >= 1")
        require(self.inner_lr > 0 and self.meta_lr > 0, "inner_lr and meta_lr must be > 0")
        require(self.inner_steps >= 1, f"inner_steps must be >= 1, got {self.inner_steps}")
        require(
            self.iterations >= 1 and 1 <= self.every <= self.iterations,
            f"need 1 <= every <= iterations, got {self.every} and {self.iterations}",
        )
        require(self.test_tasks >= 2, f"test_tasks must be >= 2, got {self.test_tasks}")
        require(self.test_points >= 1, f"test_points must be >= 1, got {self.test_points}")
        require(self.eval_steps >= 1, f"eval_steps must be >= 1, got {self.eval_steps}")
        require(
            1 <= self.shown_tasks <= self.test_tasks,
            f"shown_tasks must be in 1..test_tasks, got {self.shown_tasks}",
        )

    @classmethod
    def quick(cls) -> SinusoidConfig:
        """4,000 meta-iterations instead of 70,000, 300 test tasks."""
        return cls(iterations=QUICK_ITERATIONS, every=500, test_tasks=300)


@dataclass(frozen=True)
class SinusoidMeasurements:
    """Test MSE over gradient steps per method, and adapted curves of a few test tasks."""

    mse: dict[str, np.ndarray]
    """Per method in :data:`METHODS`, (test_tasks, eval_steps + 1): query MSE after j steps."""
    train_loss: dict[str, np.ndarray]
    """Per method, the mean training loss per round."""
    grid: np.ndarray
    """(G,) inputs of the drawn curves."""
    truth: np.ndarray
    """(shown, G) the shown tasks' sinusoids."""
    support: np.ndarray
    """(shown, K, 2) the shown tasks' support points (x, y)."""
    curves: dict[str, np.ndarray]
    """Per method, (shown, 3, G): predictions after 0, 1 and eval_steps steps."""
    iterations: int

    def after(self, method: str, steps: int = 1) -> np.ndarray:
        """Per-task query MSE of ``method`` after ``steps`` gradient steps."""
        return self.mse[method][:, steps]

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"iterations": self.iterations}
        for m in METHODS:
            curve = self.mse[m].mean(axis=0)
            out[f"mse_{m}"] = [round(float(v), 5) for v in curve]
            mean, se = mean_se(self.after(m))
            out[f"mse_1step_{m}"] = mean
            out[f"mse_1step_se_{m}"] = se
            out[f"final_train_loss_{m}"] = float(self.train_loss[m][-1])
        return out


def _fit(cfg: SinusoidConfig, ctx: RunContext, method: str) -> dict[str, Any]:
    with ctx.seeded("init"):
        model = mlp(cfg.hidden)
    history = fit_sinusoid(
        model,
        ctx,
        method=method,
        tag=method,
        iterations=cfg.iterations,
        meta_batch=cfg.meta_batch,
        shots=cfg.shots,
        inner_lr=cfg.inner_lr,
        inner_steps=cfg.inner_steps,
        meta_lr=cfg.meta_lr,
        every=cfg.every,
        data=ctx.stream("tasks"),  # the same task stream for every method
    )
    return {"state": model.state_dict(), "loss": [rec["loss"] for rec in history]}


def measure(cfg: SinusoidConfig, ctx: RunContext) -> SinusoidMeasurements:
    """Train the three methods (each fit cached), then evaluate them on the same test tasks."""
    xs, ys, xq, yq, amp, phase = sample_sinusoids(
        cfg.test_tasks, cfg.shots, ctx.stream("test"), queries=cfg.test_points
    )
    grid = torch.linspace(*INPUT_RANGE, 200)[:, None]
    shown = range(cfg.shown_tasks)
    mse, losses, curves = {}, {}, {}
    with ctx.progress(len(METHODS), "fits") as bar:
        for method in METHODS:
            key = {"method": method, **{f: getattr(cfg, f) for f in _FIT_FIELDS}}
            fit = ctx.cached("fit", key, lambda method=method: _fit(cfg, ctx, method))
            model = mlp(cfg.hidden)
            model.load_state_dict(fit["state"])
            losses[method] = np.asarray(fit["loss"], dtype=float)
            mse[method] = evaluate_curves(
                model, (xs, ys, xq, yq), inner_lr=cfg.inner_lr, steps=cfg.eval_steps
            ).numpy()
            curves[method] = np.stack([_adapted(cfg, model, xs[i], ys[i], grid) for i in shown])
            bar.advance()
    truth = amp[: cfg.shown_tasks, None] * torch.sin(grid[:, 0] - phase[: cfg.shown_tasks, None])
    return SinusoidMeasurements(
        mse=mse,
        train_loss=losses,
        grid=grid[:, 0].numpy(),
        truth=truth.numpy(),
        support=torch.cat([xs, ys], dim=-1)[: cfg.shown_tasks].numpy(),
        curves=curves,
        iterations=cfg.iterations,
    )


def _adapted(
    cfg: SinusoidConfig,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    grid: torch.Tensor,
) -> np.ndarray:
    """Predictions on ``grid`` after 0, 1 and ``eval_steps`` steps on ``(x, y)``, (3, G)."""
    params = dict(model.named_parameters())
    out = []
    for steps in (0, 1, cfg.eval_steps):
        phi = adapt(
            model,
            params,
            x,
            y,
            torch.nn.functional.mse_loss,
            inner_lr=cfg.inner_lr,
            steps=steps,
            first_order=True,
        )
        with torch.no_grad():
            out.append(torch.func.functional_call(model, phi, (grid,))[:, 0])
    return torch.stack(out).detach().numpy()


def draw(m: SinusoidMeasurements, cfg: SinusoidConfig, ctx: RunContext) -> list[Path]:
    fig, ax = figure(ncols=1, size=(5.6, 4.0))
    steps = np.arange(cfg.eval_steps + 1)
    for method in METHODS:
        mean, se = np.mean(m.mse[method], axis=0), np.std(m.mse[method], axis=0, ddof=1)
        se = se / np.sqrt(m.mse[method].shape[0])
        ax.errorbar(
            steps,
            mean,
            yerr=1.96 * se,
            marker="o",
            ms=3,
            capsize=2,
            color=COLORS[method],
            label=LABELS[method],
        )
    ax.axhline(MAML_MSE, color="grey", ls=":", lw=1, label=f"{MAML_MSE:g} (MAML bar, 1 step)")
    ax.set_yscale("log")
    ax.set_xlabel(f"gradient steps at test time (size {cfg.inner_lr:g}, K = {cfg.shots})")
    ax.set_ylabel(f"test MSE ({cfg.test_tasks} tasks, 95% CI)")
    ax.set_title(f"sinusoid regression after {m.iterations:,} meta-iterations")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    paths = [ctx.savefig(fig, "mse_over_steps")]

    fig, axes = figure(ncols=len(METHODS), nrows=cfg.shown_tasks, size=(3.4, 2.4))
    axes = np.asarray(axes).reshape(cfg.shown_tasks, len(METHODS))
    for i in range(cfg.shown_tasks):
        for j, method in enumerate(METHODS):
            ax = axes[i, j]
            ax.plot(m.grid, m.truth[i], color="black", lw=1.2, label="task")
            ax.plot(
                m.grid, m.curves[method][i, 0], color=COLORS[method], ls=":", lw=1, label="0 steps"
            )
            ax.plot(m.grid, m.curves[method][i, 1], color=COLORS[method], lw=1.5, label="1 step")
            ax.plot(
                m.grid,
                m.curves[method][i, 2],
                color=COLORS[method],
                ls="--",
                lw=1,
                label=f"{cfg.eval_steps} steps",
            )
            ax.scatter(
                m.support[i, :, 0],
                m.support[i, :, 1],
                s=12,
                color="black",
                zorder=3,
                label=f"K = {cfg.shots}",
            )
            if i == 0:
                ax.set_title(LABELS[method])
            if i == 0 and j == 0:
                ax.legend(fontsize=6)
    paths.append(ctx.savefig(fig, "adapted_curves"))
    return paths


def _quick_note(cfg: SinusoidConfig, value: str) -> str:
    """Known-failure text for a claim that fails below the paper's iteration count."""
    if cfg.iterations >= FULL_ITERATIONS:
        return ""
    return (
        f"quick preset only: {cfg.iterations:,} meta-iterations instead of Finn et al.'s "
        f"{FULL_ITERATIONS:,} give {value}; the full preset decides the claim"
    )


def claims(m: SinusoidMeasurements, cfg: SinusoidConfig) -> list[Claim]:
    maml, fo, pre = (m.after(k) for k in METHODS)
    maml_mean, maml_se = mean_se(maml)
    fo_mean, fo_se = mean_se(fo)
    pre_mean, pre_se = mean_se(pre)
    ratio_fo = fo_mean / maml_mean
    maml_claim = Claim.at_most(
        f"MAML's test MSE after one gradient step on K = {cfg.shots} points is <= {MAML_MSE:g}",
        maml_mean,
        MAML_MSE,
        f"mean {maml_mean:.3f} +- {maml_se:.3f} (SE) over {len(maml)} test tasks after "
        f"{m.iterations:,} meta-iterations; before adapting {m.mse['maml'][:, 0].mean():.3f}",
        key="maml_mse",
    )
    fo_claim = Claim.at_most(
        f"first-order MAML's MSE after one step is within {FOMAML_TOLERANCE:.0%} of MAML's",
        abs(ratio_fo - 1),
        FOMAML_TOLERANCE,
        f"|MSE_FO / MSE_MAML - 1|: FO {fo_mean:.3f} +- {fo_se:.3f}, MAML {maml_mean:.3f} +- "
        f"{maml_se:.3f} (SE), ratio {ratio_fo:.3f}",
        key="fomaml_close",
    )
    if not maml_claim.holds:
        maml_claim = Claim.at_most(
            maml_claim.statement,
            maml_mean,
            MAML_MSE,
            maml_claim.detail,
            key="maml_mse",
            known_failure=_quick_note(cfg, f"MSE {maml_mean:.3f}"),
        )
    if not fo_claim.holds:
        fo_claim = Claim.at_most(
            fo_claim.statement,
            abs(ratio_fo - 1),
            FOMAML_TOLERANCE,
            fo_claim.detail,
            key="fomaml_close",
            known_failure=FOMAML_FAILS,
        )
    pre_claim = Claim.from_test(
        f"the pretrained network fine-tuned the same way is much worse: at least "
        f"{PRETRAINED_FACTOR:g}x MAML's MSE after one step (paired over the test tasks)",
        paired(pre, PRETRAINED_FACTOR * maml, "greater"),
        f"MSE_pre - {PRETRAINED_FACTOR:g} MSE_MAML > 0; pretrained {pre_mean:.3f} +- {pre_se:.3f}, "
        f"MAML {maml_mean:.3f}, ratio of means {pre_mean / maml_mean:.2f}",
        key="pretrained_worse",
    )
    return [maml_claim, fo_claim, pre_claim]


@experiment(
    "meta.sinusoid",
    topic="meta",
    config=SinusoidConfig,
    claims=("maml_mse", "fomaml_close", "pretrained_worse"),
)
def sinusoid(cfg: SinusoidConfig, ctx: RunContext) -> Outcome:
    """After one gradient step on ten points of a new sinusoid, MAML's initialisation fits it
    far better than a network pretrained on all tasks, and first-order MAML nearly matches it."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
