r"""MAML's meta-gradient in closed form against autograd, and what first-order MAML drops. Notes:
discussion 12, section 2.3, problem 1 "Gradient Update of MAML" (derive ``g_MAML`` for ``k``
inner steps); anchor: the chain rule (:mod:`deepnotes.meta.meta_gradient`) and Finn et al.
(2017, section 5.2) for the first-order approximation.

With ``theta_{j+1} = theta_j - alpha grad L0(theta_j)``, ``j < k``, and the outer loss ``L1``
on a new batch,

    g_MAML = (I - alpha H_0) (I - alpha H_1) ... (I - alpha H_{k-1}) grad L1(theta_k),
    H_j = Hessian of L0 at theta_j;   first-order MAML: g_FO = grad L1(theta_k).

Setup: a small tanh MLP (``hidden``, smooth so every Hessian is informative) in float64; each of
``tasks`` sinusoid tasks (:func:`deepnotes.data.tasks.sample_sinusoids`) gives ``L0`` (MSE on its
``shots`` support points) and ``L1`` (MSE on its query points); initial weights from
``ctx.seeded("init", task)``.

Checks (identities of the implementation, float64, tolerance fixed before the run):

- ``closed_form``: for ``k = 1, 2, 3`` (``steps``) the closed form with Hessians from
  :func:`torch.func.hessian` equals autograd's meta-gradient through
  :func:`deepnotes.meta.maml.adapt` (second order, ``create_graph=True``) within
  :data:`TOLERANCE` = 1e-10 (largest absolute difference over tasks, ``k`` and entries).
- ``first_order_gap``: autograd's second-order meta-gradient minus its first-order one
  (``adapt(..., first_order=True)``) equals exactly the dropped Hessian terms,
  ``(prod_j (I - alpha H_j) - I) grad L1(theta_k)``, within the same tolerance.

Reported (no threshold: the notes make no claim about its size): the angle between ``g_MAML``
and ``g_FO``, mean over tasks, for each ``k`` at ``inner_lr`` and over a grid of inner step sizes
``inner_lrs`` (the figure).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import mean_and_se
from deepnotes.data.tasks import sample_sinusoids
from deepnotes.meta.meta_gradient import (
    TOLERANCE,
    angle_degrees,
    autograd_meta_gradient,
    closed_form_meta_gradient,
    first_order_meta_gradient,
    flat_loss,
    flatten,
    tanh_mlp,
)


@dataclass(frozen=True)
class GradientConfig:
    """Closed-form MAML meta-gradients against autograd on a small tanh MLP in float64."""

    hidden: tuple[int, ...] = (16, 16)
    shots: int = 10
    queries: int = 10
    tasks: int = 20
    steps: tuple[int, ...] = (1, 2, 3)
    inner_lr: float = 0.1
    inner_lrs: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3)

    def __post_init__(self) -> None:
        require(len(self.hidden) >= 1 and min(self.hidden) >= 1, "hidden widths must be >= 1")
        require(self.shots >= 1 and self.queries >= 1, "shots and queries must be >= 1")
        require(self.tasks >= 2, f"tasks must be >= 2, got {self.tasks}")
        require(
            len(self.steps) >= 1 and min(self.steps) >= 1,
            f"steps must be one or more counts >= 1, got {self.steps}",
        )
        require(self.inner_lr > 0, f"inner_lr must be > 0, got {self.inner_lr}")
        require(
            len(self.inner_lrs) >= 1 and min(self.inner_lrs) > 0,
            f"inner_lrs must be one or more step sizes > 0, got {self.inner_lrs}",
        )

    @classmethod
    def quick(cls) -> GradientConfig:
        """8 tasks instead of 20, k = 1, 2, 3."""
        return cls(tasks=8)


@dataclass(frozen=True)
class GradientMeasurements:
    """Errors of the closed forms and the angles between second- and first-order gradients."""

    steps: tuple[int, ...]
    inner_lrs: tuple[float, ...]
    closed_form_error: np.ndarray
    """(len(steps), tasks) max |closed form - autograd| at ``inner_lr``."""
    gap_error: np.ndarray
    """(len(steps), tasks) max |(g_MAML - g_FO) autograd - Hessian terms closed form|."""
    angle: np.ndarray
    """(len(steps), len(inner_lrs), tasks) angle between g_MAML and g_FO in degrees."""
    angle_at_lr: np.ndarray
    """(len(steps), tasks) the angle at ``inner_lr``."""
    gradient_norm: float
    """Mean norm of g_MAML at ``inner_lr`` (the scale the errors are measured against)."""

    def metrics(self) -> dict[str, Any]:
        return {
            "closed_form_max_error": float(self.closed_form_error.max()),
            "first_order_gap_max_error": float(self.gap_error.max()),
            "gradient_norm": self.gradient_norm,
            **{
                f"angle_deg_k{k}": float(self.angle_at_lr[i].mean())
                for i, k in enumerate(self.steps)
            },
        }


def measure(cfg: GradientConfig, ctx: RunContext) -> GradientMeasurements:
    """Closed forms and autograd on every task, for every k and inner step size."""
    xs, ys, xq, yq, _, _ = sample_sinusoids(
        cfg.tasks, cfg.shots, ctx.stream("tasks"), queries=cfg.queries
    )
    xs, ys, xq, yq = (t.double() for t in (xs, ys, xq, yq))
    ns, nl = len(cfg.steps), len(cfg.inner_lrs)
    err, gap = np.zeros((ns, cfg.tasks)), np.zeros((ns, cfg.tasks))
    angle, angle_lr = np.zeros((ns, nl, cfg.tasks)), np.zeros((ns, cfg.tasks))
    norms = []
    with ctx.progress(cfg.tasks, "tasks") as bar:
        for t in range(cfg.tasks):
            with ctx.seeded("init", t):
                model = tanh_mlp(cfg.hidden)
            support, query = (xs[t], ys[t]), (xq[t], yq[t])
            loss0, loss1 = (
                flat_loss(model, F.mse_loss, *support),
                flat_loss(model, F.mse_loss, *query),
            )
            theta = flatten({k: v.detach() for k, v in model.named_parameters()})
            for i, k in enumerate(cfg.steps):
                closed = closed_form_meta_gradient(loss0, loss1, theta, cfg.inner_lr, k)
                first = first_order_meta_gradient(loss0, loss1, theta, cfg.inner_lr, k)
                auto2 = autograd_meta_gradient(
                    model, support, query, inner_lr=cfg.inner_lr, steps=k, first_order=False
                )
                auto1 = autograd_meta_gradient(
                    model, support, query, inner_lr=cfg.inner_lr, steps=k, first_order=True
                )
                err[i, t] = float((closed - auto2).abs().max())
                gap[i, t] = float(((auto2 - auto1) - (closed - first)).abs().max())
                angle_lr[i, t] = angle_degrees(closed, first)
                norms.append(float(closed.norm()))
                for j, lr in enumerate(cfg.inner_lrs):
                    a = autograd_meta_gradient(
                        model, support, query, inner_lr=lr, steps=k, first_order=False
                    )
                    b = autograd_meta_gradient(
                        model, support, query, inner_lr=lr, steps=k, first_order=True
                    )
                    angle[i, j, t] = angle_degrees(a, b)
            bar.advance()
    return GradientMeasurements(
        steps=cfg.steps,
        inner_lrs=cfg.inner_lrs,
        closed_form_error=err,
        gap_error=gap,
        angle=angle,
        angle_at_lr=angle_lr,
        gradient_norm=float(np.mean(norms)),
    )


def draw(m: GradientMeasurements, cfg: GradientConfig, ctx: RunContext) -> list[Path]:
    fig, ax = figure(ncols=1, size=(5.4, 3.8))
    for i, k in enumerate(m.steps):
        mean, se = mean_and_se(m.angle[i], axis=1)
        ax.errorbar(
            cfg.inner_lrs,
            mean,
            yerr=1.96 * se,
            marker="o",
            ms=3,
            capsize=2,
            label=f"k = {k} inner step{'s' if k > 1 else ''}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("inner step size alpha")
    ax.set_ylabel("angle(g_MAML, g_FO) in degrees")
    ax.set_title(f"what first-order MAML drops ({cfg.tasks} tasks, 95% CI)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return [ctx.savefig(fig, "angle_over_inner_lr")]


def claims(m: GradientMeasurements, cfg: GradientConfig) -> list[Claim]:
    angles = ", ".join(f"k={k}: {m.angle_at_lr[i].mean():.2f} deg" for i, k in enumerate(m.steps))
    return [
        Claim.at_most(
            f"the closed form prod_j (I - a H_j) grad L1(theta_k) equals autograd's MAML "
            f"meta-gradient for k = {', '.join(map(str, m.steps))} (float64)",
            float(m.closed_form_error.max()),
            TOLERANCE,
            f"max abs difference over {cfg.tasks} tasks, inner_lr {cfg.inner_lr:g}; "
            f"mean |g_MAML| {m.gradient_norm:.3g}",
            key="closed_form",
            kind="check",
        ),
        Claim.at_most(
            "second-order minus first-order MAML's gradient is exactly the dropped Hessian "
            "terms (prod_j (I - a H_j) - I) grad L1(theta_k)",
            float(m.gap_error.max()),
            TOLERANCE,
            f"max abs difference over {cfg.tasks} tasks and k; angle(g_MAML, g_FO) at "
            f"inner_lr {cfg.inner_lr:g}: {angles}",
            key="first_order_gap",
            kind="check",
        ),
    ]


@experiment(
    "meta.maml_gradient",
    topic="meta",
    config=GradientConfig,
    checks=("closed_form", "first_order_gap"),
)
def maml_gradient(cfg: GradientConfig, ctx: RunContext) -> Outcome:
    """MAML's meta-gradient is the product of the inner steps' Jacobians (I - alpha H_j) applied
    to the outer gradient; first-order MAML drops exactly those Hessian terms."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
