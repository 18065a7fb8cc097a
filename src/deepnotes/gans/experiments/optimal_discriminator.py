r"""A discriminator trained to convergence between two fixed 1-D densities is the optimal one,
and the game's value there is :math:`2\,\mathrm{JSD} - \log 4`. Notes: discussion 11, section 1.2
"GANS with the 'perfect' discriminator" and problem 1 "Optimal Discriminator"; the anchor is
Goodfellow et al. (2014, https://arxiv.org/abs/1406.2661), proposition 1 and theorem 1.

The data density is :math:`p = \tfrac12 \mathcal N(-1, 0.45^2) + \tfrac12 \mathcal N(1.2, 0.6^2)`
and the (fixed) generator's :math:`p_G = \mathcal N(0.3, 1.1^2)`
(:data:`deepnotes.gans.problems.PAIRS` "overlapping"). A leaky-ReLU MLP discriminator
(:class:`~deepnotes.gans.models.MLPCritic` on 1-D inputs, a logit per point) minimises the
minimax discriminator loss (:func:`~deepnotes.gans.losses.discriminator_loss`, binary
cross-entropy) on ``batch`` fresh draws of each density per step, with Adam whose step size
decays linearly to 0 over ``steps`` (so the last iterates average out the sampling noise),
through the engine's :class:`~deepnotes.core.engine.Loop`. Every ``every`` steps the game's
value :math:`V(D) = \int p \log D + p_G \log(1 - D)\,dx` of the current discriminator is
integrated on a grid (:func:`~deepnotes.gans.problems.game_value`, trapezoid rule on
``[-8, 8]``, ``grid_points`` points).

Claims (thresholds from the issue, fixed before the run):

- ``matches_d_star``: :math:`\max_x |D(x) - D^*(x)| \le` :data:`MAX_ERROR` = 0.05 over the grid
  points where either density is non-negligible, :math:`\max(p, p_G) \ge`
  :data:`NON_NEGLIGIBLE` = 0.02 (5 % of the densities' peak of about 0.4; 2 % of each density's
  mass lies outside).
- ``value_is_jsd``: the trained discriminator's value is within :data:`VALUE_TOLERANCE` = 0.01
  nats of :math:`2\,\mathrm{JSD}(p \| p_G) - \log 4` (both integrated numerically; the value at
  any :math:`D` is at most that, the gap being a weighted KL divergence, second order in
  :math:`D - D^*`).

Check (an identity of the implementation): ``value_identity``, :math:`V(D^*)` equals
:math:`2\,\mathrm{JSD} - \log 4` to 1e-9 on the grid.

Deviation: none from the issue; the discriminator sees samples (not the densities), as in a GAN.
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
from deepnotes.gans.divergences import PAIRS, game_value, grid_1d, jensen_shannon, optimal_logit
from deepnotes.gans.losses import discriminator_loss
from deepnotes.gans.models import MLPCritic

MAX_ERROR = 0.05
"""Largest allowed :math:`|D - D^*|` where either density is non-negligible (the issue)."""
NON_NEGLIGIBLE = 0.02
"""A grid point counts when :math:`\\max(p, p_G)` is at least this."""
VALUE_TOLERANCE = 0.01
"""Allowed :math:`|V(D) - (2\\,\\mathrm{JSD} - \\log 4)|`, in nats."""
IDENTITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class OptimalDiscriminatorConfig:
    """Train a discriminator between two fixed 1-D densities."""

    hidden: int = 64
    """Width of the discriminator's hidden layers."""
    depth: int = 3
    """Hidden layers of the discriminator."""
    batch: int = 1024
    """Fresh draws of each density per step."""
    lr: float = 3e-3
    """Adam's initial step size (decays linearly to 0)."""
    steps: int = 4000
    every: int = 200
    """Steps between evaluations of the game's value."""
    grid_points: int = 4001
    """Points of the integration grid on [-8, 8]."""

    def __post_init__(self) -> None:
        require(self.hidden >= 1 and self.depth >= 1, "hidden and depth must be >= 1")
        require(self.batch >= 2, f"batch must be >= 2, got {self.batch}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")
        require(self.grid_points >= 101, f"grid_points must be >= 101, got {self.grid_points}")

    @classmethod
    def quick(cls) -> OptimalDiscriminatorConfig:
        """1,500 steps (about 8 s on one thread)."""
        return cls(steps=1500, every=100)


@dataclass(frozen=True)
class OptimalDiscriminatorMeasurements:
    """Densities, optimal and trained discriminators on the grid, and the game's values."""

    x: np.ndarray
    """The grid, (G,)."""
    p: np.ndarray
    p_g: np.ndarray
    d_star: np.ndarray
    d_trained: np.ndarray
    steps: np.ndarray
    """Steps at which the value was integrated, (K,)."""
    values: np.ndarray
    """:math:`V(D)` of the discriminator during training, (K,)."""
    value_star: float
    """:math:`V(D^*)` on the grid."""
    jsd: float

    @property
    def region(self) -> np.ndarray:
        """Grid points where either density is non-negligible, (G,) bool."""
        return np.maximum(self.p, self.p_g) >= NON_NEGLIGIBLE

    @property
    def max_error(self) -> float:
        return float(np.max(np.abs(self.d_trained - self.d_star)[self.region]))

    @property
    def target(self) -> float:
        """:math:`2\\,\\mathrm{JSD} - \\log 4`."""
        return 2 * self.jsd - math.log(4)

    def metrics(self) -> dict[str, Any]:
        return {
            "max_error": self.max_error,
            "value_trained": float(self.values[-1]),
            "value_star": self.value_star,
            "jsd": self.jsd,
            "two_jsd_minus_log4": self.target,
        }


def _fit(cfg: OptimalDiscriminatorConfig, ctx: RunContext) -> dict[str, Any]:
    p, p_g = PAIRS["overlapping"]
    x = grid_1d(n=cfg.grid_points)
    dens_p, dens_g = p.pdf(x), p_g.pdf(x)
    with ctx.seeded("init"):
        disc = MLPCritic(in_features=1, hidden=cfg.hidden, depth=cfg.depth)
    opt = torch.optim.Adam(disc.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / cfg.steps)
    data = ctx.stream("data")

    def logits_on_grid() -> torch.Tensor:
        with torch.no_grad():
            return disc(x.float()[:, None]).double()  # (G,)

    def step(_: int) -> dict[str, float]:
        real, fake = p.sample(cfg.batch, data), p_g.sample(cfg.batch, data)  # (B, 1) each
        loss = discriminator_loss("minimax", disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        return {"loss_D": float(loss.detach())}

    def evaluate(_: int) -> dict[str, float]:
        return {"value": game_value(logits_on_grid(), dens_p, dens_g, x)}

    loop = Loop(
        ctx,
        tag="discriminator",
        track={"D": disc, "opt": opt, "schedule": schedule, "data": data},
        progress=False,
    )
    result = loop.run(step, steps=cfg.steps, every=cfg.every, evaluate=evaluate)
    return {
        "values": [rec["value"] for rec in result.history],
        "d_trained": torch.sigmoid(logits_on_grid()),
    }


def measure(cfg: OptimalDiscriminatorConfig, ctx: RunContext) -> OptimalDiscriminatorMeasurements:
    """Train the discriminator (cached), then compare it with the closed forms on the grid."""
    p, p_g = PAIRS["overlapping"]
    x = grid_1d(n=cfg.grid_points)
    dens_p, dens_g = p.pdf(x), p_g.pdf(x)
    logit_star = optimal_logit(p.log_pdf(x), p_g.log_pdf(x))
    key = {
        name: getattr(cfg, name)
        for name in ("hidden", "depth", "batch", "lr", "steps", "every", "grid_points")
    }
    fit = ctx.cached("fit", key, lambda: _fit(cfg, ctx))
    rounds = math.ceil(cfg.steps / cfg.every)
    return OptimalDiscriminatorMeasurements(
        x=x.numpy(),
        p=dens_p.numpy(),
        p_g=dens_g.numpy(),
        d_star=torch.sigmoid(logit_star).numpy(),
        d_trained=fit["d_trained"].numpy(),
        steps=np.minimum(np.arange(1, rounds + 1) * cfg.every, cfg.steps),
        values=np.array(fit["values"], dtype=float),
        value_star=game_value(logit_star, dens_p, dens_g, x),
        jsd=jensen_shannon(dens_p, dens_g, x),
    )


def draw(
    m: OptimalDiscriminatorMeasurements, cfg: OptimalDiscriminatorConfig, ctx: RunContext
) -> list[Path]:
    fig, (left, right) = figure(ncols=2, size=(5.2, 3.8))
    shown = (m.x >= -4) & (m.x <= 4)
    x = m.x[shown]
    left.fill_between(x, m.p[shown], color="C0", alpha=0.25, label="data p(x)")
    left.fill_between(x, m.p_g[shown], color="C1", alpha=0.25, label="generator p_G(x)")
    left.plot(x, m.d_star[shown], color="C3", lw=2, label="D*(x) = p / (p + p_G)")
    left.plot(x, m.d_trained[shown], color="k", lw=1.2, ls="--", label="trained D(x)")
    outside = ~m.region[shown]
    left.fill_between(
        x, 0, 1, where=outside, color="grey", alpha=0.12, lw=0, label="both densities < 0.02"
    )
    left.set_ylim(0, 1)
    left.set_xlabel("x")
    left.set_title(f"trained D vs D*: max error {m.max_error:.3f} (bar {MAX_ERROR:g})")
    left.legend(fontsize=7, loc="upper left")
    right.plot(m.steps, m.values, color="k", marker="o", ms=3, label="V(D) of the trained D")
    right.axhline(m.target, color="C3", ls="--", label=f"2 JSD - log 4 = {m.target:.4f}")
    right.axhline(-math.log(4), color="grey", ls=":", label="-log 4 (p = p_G)")
    right.set_ylim(-math.log(4) - 0.05, m.target + 0.05)
    right.set_xlabel("training step")
    right.set_ylabel("value of the game (nats)")
    right.set_title("the game's value rises to 2 JSD - log 4")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    return [ctx.savefig(fig, "optimal_discriminator")]


def claims(m: OptimalDiscriminatorMeasurements, cfg: OptimalDiscriminatorConfig) -> list[Claim]:
    gap = abs(float(m.values[-1]) - m.target)
    return [
        Claim.at_most(
            f"the trained discriminator matches D* = p / (p + p_G) to {MAX_ERROR:g} wherever "
            f"either density is >= {NON_NEGLIGIBLE:g}",
            m.max_error,
            MAX_ERROR,
            f"max |D - D*| over {int(m.region.sum())} of {m.x.size} grid points; "
            f"{cfg.steps} Adam steps of {cfg.batch} draws per density",
            key="matches_d_star",
        ),
        Claim.at_most(
            "the game's value at the trained discriminator equals 2 JSD(p || p_G) - log 4 "
            f"(within {VALUE_TOLERANCE:g} nats)",
            gap,
            VALUE_TOLERANCE,
            f"V(D) = {m.values[-1]:.5f}, 2 JSD - log 4 = {m.target:.5f} (JSD = {m.jsd:.5f} "
            "nats), trapezoid rule on [-8, 8]",
            key="value_is_jsd",
        ),
        Claim.at_most(
            "V(D*) = 2 JSD - log 4 on the integration grid",
            abs(m.value_star - m.target),
            IDENTITY_TOLERANCE,
            f"V(D*) = {m.value_star:.12f}",
            key="value_identity",
            kind="check",
        ),
    ]


@experiment(
    "gans.optimal_discriminator",
    topic="gans",
    config=OptimalDiscriminatorConfig,
    claims=("matches_d_star", "value_is_jsd"),
    checks=("value_identity",),
)
def optimal_discriminator(cfg: OptimalDiscriminatorConfig, ctx: RunContext) -> Outcome:
    """A discriminator trained between two fixed 1-D densities converges to
    D* = p / (p + p_G), and the game's value there is 2 JSD(p || p_G) - log 4."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
