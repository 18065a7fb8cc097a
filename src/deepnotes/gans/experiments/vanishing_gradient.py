r"""A near-perfect discriminator gives the minimax generator almost no gradient; a Lipschitz critic
gives one that points from the generated samples toward the data. Notes: discussion 11, section
1.3 "Training GANs in Practice", figures 1 and 2 (reproduced); the anchors are Arjovsky & Bottou
(2017, "Towards principled methods for training GANs", https://arxiv.org/abs/1701.04862,
theorem 2.4: the minimax generator's gradient vanishes as the discriminator approaches the
perfect one on disjoint supports) and Gulrajani et al. (2017, WGAN-GP) and Miyato et al. (2018,
spectral normalisation) for the Lipschitz critics.

Disjoint supports in 1-D: the data are :math:`U[1.5, 2.5]`, the generator
:math:`G_\theta(z) = \theta + z`, :math:`z \sim U[-\tfrac12, \tfrac12]`, held at
:math:`\theta = -2` (so its samples fill :math:`[-2.5, -1.5]`). Three critics, leaky-ReLU MLPs
(:class:`~deepnotes.gans.models.MLPCritic`), are trained against these fixed samples for
``steps`` Adam steps of ``batch`` draws each, through the engine's
:class:`~deepnotes.core.engine.Loop`:

- ``perfect``: a discriminator (logits) on the minimax loss (binary cross-entropy), trained until
  it separates the supports with near certainty (the notes' figure 1, red);
- ``wgan_gp``: a WGAN critic with the gradient penalty, weight ``gp_weight``
  (:func:`~deepnotes.gans.losses.gradient_penalty`);
- ``spectral``: a WGAN critic with every layer spectrally normalised
  (:func:`~deepnotes.gans.spectral.spectral_norm`) (both: the notes' figure 2, green).

Then, on ``eval_size`` fresh generated samples, the generator's gradient in :math:`\theta` of
:func:`~deepnotes.gans.losses.generator_loss` is taken by autograd: the minimax and the
non-saturating losses against ``perfect``, the WGAN loss against the Lipschitz critics, whose
per-sample push :math:`-\partial L_G / \partial \tilde x_i \propto f'(\tilde x_i)` is
measured in the direction of the data (+x).

Claims (thresholds from the issue, fixed before the run):

- ``minimax_vanishes``: :math:`|\partial_\theta L_{\text{minimax}}| \le 10^{-3}\,
  |\partial_\theta L_{\text{non-saturating}}|` against the near-perfect discriminator.
- ``gp_points_to_data`` and ``sn_points_to_data``: every generated sample is pushed toward the
  data by the Lipschitz critic, with slope :math:`f'(\tilde x_i) \ge` :data:`MIN_PUSH` = 0.1 (a
  tenth of the 1-Lipschitz bound; the minimum over the samples is measured).

Deviation: none from the issue. The generator is held fixed (the figures' setting: the
discriminator is trained to convergence for one generator); only its gradient is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.gans.losses import discriminator_loss, generator_loss, gradient_penalty
from deepnotes.gans.models import MLPCritic

CRITICS = ("perfect", "wgan_gp", "spectral")
DATA = (1.5, 2.5)
"""Support of the data, U[1.5, 2.5]."""
THETA = -2.0
"""The generator's location: its samples fill [-2.5, -1.5]."""
MAX_RATIO = 1e-3
"""Largest allowed |minimax gradient| / |non-saturating gradient| (the issue)."""
MIN_PUSH = 0.1
"""Smallest allowed slope toward the data of a Lipschitz critic at a generated sample."""


@dataclass(frozen=True)
class VanishingGradientConfig:
    """Train a near-perfect discriminator and two Lipschitz critics on disjoint 1-D supports."""

    hidden: int = 64
    depth: int = 3
    batch: int = 256
    lr: float = 1e-2
    """Adam's step size for the near-perfect discriminator."""
    critic_lr: float = 1e-3
    """Adam's step size for the Lipschitz critics."""
    steps: int = 1000
    gp_weight: float = 10.0
    """:math:`\\lambda` of the gradient penalty (Gulrajani et al.'s)."""
    eval_size: int = 4096

    def __post_init__(self) -> None:
        require(self.hidden >= 1 and self.depth >= 1, "hidden and depth must be >= 1")
        require(self.batch >= 2 and self.eval_size >= 2, "batch and eval_size must be >= 2")
        require(self.lr > 0 and self.critic_lr > 0, "lr and critic_lr must be > 0")
        require(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        require(self.gp_weight >= 0, f"gp_weight must be >= 0, got {self.gp_weight}")

    @classmethod
    def quick(cls) -> VanishingGradientConfig:
        """300 steps per critic (about 6 s on one thread)."""
        return cls(steps=300, eval_size=2048)


def sample_data(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` data points ``(n, 1)`` from :math:`U[1.5, 2.5]`."""
    lo, hi = DATA
    return lo + (hi - lo) * torch.rand(n, 1, generator=generator)


def sample_generator(theta: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """:math:`G_\\theta(z) = \\theta + z`, :math:`z \\sim U[-1/2, 1/2]`: ``(n, 1)``."""
    return theta + torch.rand(n, 1, generator=generator) - 0.5


@dataclass(frozen=True)
class VanishingGradientMeasurements:
    """Critic curves on a plotting grid, and the generator's gradients."""

    x: np.ndarray
    """Plotting grid, (G,)."""
    curves: dict[str, np.ndarray]
    """Per critic: D(x) (``perfect``, a probability) or f(x), (G,)."""
    fake: np.ndarray
    """The generated samples the gradients were taken at, (M,)."""
    push: dict[str, np.ndarray]
    """Per critic, the per-sample slope toward the data (+x), (M,): f'(x_i) for the Lipschitz
    critics, d/dx log D(x_i) for ``perfect`` (the non-saturating generator's)."""
    grad_theta: dict[str, float]
    """d L_G / d theta: ``minimax`` and ``nonsaturating`` (against ``perfect``), ``wgan_gp``
    and ``spectral`` (the WGAN generator loss)."""
    d_fake_max: float
    """The largest D(G(z)) of the near-perfect discriminator on the samples."""

    @property
    def ratio(self) -> float:
        """|minimax gradient| / |non-saturating gradient|."""
        return abs(self.grad_theta["minimax"]) / abs(self.grad_theta["nonsaturating"])

    def metrics(self) -> dict[str, Any]:
        return {
            "gradient_ratio": self.ratio,
            "d_fake_max": self.d_fake_max,
            **{f"grad_theta_{k}": v for k, v in self.grad_theta.items()},
            **{f"min_push_{k}": float(self.push[k].min()) for k in ("wgan_gp", "spectral")},
        }


def _train(cfg: VanishingGradientConfig, ctx: RunContext, kind: str) -> nn.Module:
    """The critic ``kind`` trained against the fixed generator (its checkpointed loop)."""
    with ctx.seeded("init", kind):
        critic = MLPCritic(
            in_features=1, hidden=cfg.hidden, depth=cfg.depth, spectral=kind == "spectral"
        )
    lr = cfg.lr if kind == "perfect" else cfg.critic_lr
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    data, noise = ctx.stream("data", kind), ctx.stream("penalty", kind)
    theta = torch.tensor(THETA)
    loss_kind = "minimax" if kind == "perfect" else "wgan"

    def step(_: int) -> dict[str, float]:
        real = sample_data(cfg.batch, data)
        fake = sample_generator(theta, cfg.batch, data)
        loss = discriminator_loss(loss_kind, critic(real), critic(fake))
        if kind == "wgan_gp":
            loss = loss + gradient_penalty(critic, real, fake, noise, weight=cfg.gp_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    # a WGAN critic's loss starts near 0 and settles at minus a distance: only finiteness is a
    # sign of divergence there
    explode = 1e4 if kind == "perfect" else None
    loop = Loop(
        ctx,
        tag=kind,
        track={"critic": critic, "opt": opt, "data": data, "noise": noise},
        explode_factor=explode,
        progress=False,
    )
    loop.run(step, steps=cfg.steps, every=cfg.steps)
    return critic


def _gradients(cfg: VanishingGradientConfig, ctx: RunContext) -> dict[str, Any]:
    x = torch.linspace(-4, 4, 801)[:, None]
    theta = torch.tensor(THETA, requires_grad=True)
    fake = sample_generator(theta, cfg.eval_size, ctx.stream("eval"))  # (M, 1), depends on theta
    out: dict[str, Any] = {"x": x.squeeze(1), "fake": fake.detach().squeeze(1)}
    curves, push, grad_theta = {}, {}, {}
    for kind in CRITICS:
        critic = _train(cfg, ctx, kind)
        critic.eval()  # spectral norm: use the trained estimate of sigma, no more iterations
        with torch.no_grad():
            value = critic(x)
        points = fake.detach().requires_grad_(True)
        if kind == "perfect":
            curves[kind] = torch.sigmoid(value)
            logits = critic(points)
            (slope,) = torch.autograd.grad(torch.nn.functional.logsigmoid(logits).sum(), points)
            push[kind] = slope.squeeze(1)
            for loss_kind in ("minimax", "nonsaturating"):
                (g,) = torch.autograd.grad(generator_loss(loss_kind, critic(fake)), theta)
                grad_theta[loss_kind] = float(g)
            out["d_fake_max"] = float(torch.sigmoid(logits.detach()).max())
        else:
            curves[kind] = value
            (slope,) = torch.autograd.grad(critic(points).sum(), points)
            push[kind] = slope.squeeze(1)  # f'(x_i): the data lie at +x
            (g,) = torch.autograd.grad(generator_loss("wgan", critic(fake)), theta)
            grad_theta[kind] = float(g)
    out.update(curves=curves, push=push, grad_theta=grad_theta)
    return out


def measure(cfg: VanishingGradientConfig, ctx: RunContext) -> VanishingGradientMeasurements:
    """Train the three critics and take the generator's gradients (cached as one unit)."""
    key = {
        name: getattr(cfg, name)
        for name in ("hidden", "depth", "batch", "lr", "critic_lr", "steps", "gp_weight")
    } | {"eval_size": cfg.eval_size}
    got = ctx.cached("gradients", key, lambda: _gradients(cfg, ctx))
    return VanishingGradientMeasurements(
        x=got["x"].numpy(),
        curves={k: v.numpy() for k, v in got["curves"].items()},
        fake=got["fake"].numpy(),
        push={k: v.numpy() for k, v in got["push"].items()},
        grad_theta=dict(got["grad_theta"]),
        d_fake_max=float(got["d_fake_max"]),
    )


def _rug(ax: Any, m: VanishingGradientMeasurements, real: np.ndarray) -> None:
    """Real (blue) and generated (orange) samples as ticks along the bottom of ``ax``."""
    transform = ax.get_xaxis_transform()  # x in data units, y in axes units
    ax.plot(real, np.full_like(real, 0.03), "|", color="C0", ms=10, transform=transform)
    fake = m.fake[:: max(1, m.fake.size // 60)]
    ax.plot(fake, np.full_like(fake, 0.03), "|", color="C1", ms=10, transform=transform)


def draw(
    m: VanishingGradientMeasurements, cfg: VanishingGradientConfig, ctx: RunContext
) -> list[Path]:
    fig, (left, right) = figure(ncols=2, size=(5.2, 3.8))
    real = np.linspace(*DATA, 60)
    left.plot(m.x, m.curves["perfect"], color="C3", lw=2, label="near-perfect D(x)")
    _rug(left, m, real)
    left.plot([], [], "|", color="C0", label="real samples")
    left.plot([], [], "|", color="C1", label="generated samples")
    left.set_ylim(-0.05, 1.05)
    left.set_xlabel("x")
    left.set_title(
        f"notes' figure 1: max D(G(z)) = {m.d_fake_max:.1e}\n"
        f"|grad minimax| / |grad non-saturating| = {m.ratio:.1e}",
        fontsize=9,
    )
    left.legend(fontsize=7, loc="center left")
    styles = {
        "wgan_gp": ("C2", "-", "WGAN-GP critic f(x)"),
        "spectral": ("darkgreen", "--", "spectrally normalised critic f(x)"),
    }
    for kind, (color, ls, label) in styles.items():
        curve = m.curves[kind] - m.curves[kind].mean()  # a critic is defined up to a constant
        right.plot(m.x, curve, color=color, ls=ls, lw=2, label=label)
        idx = np.linspace(0, m.fake.size - 1, 6).astype(int)
        xs = np.sort(m.fake[idx])
        ys = np.interp(xs, m.x, curve)
        pushes = np.interp(xs, m.fake[np.argsort(m.fake)], m.push[kind][np.argsort(m.fake)])
        right.quiver(
            xs, ys, pushes, np.zeros_like(xs), color=color, angles="xy", scale_units="xy", scale=1
        )
    _rug(right, m, real)
    right.set_xlabel("x")
    right.set_title(
        "notes' figure 2: Lipschitz critics (arrows: f'(x) at generated samples)\n"
        f"min push toward the data: GP {m.push['wgan_gp'].min():.2f}, "
        f"SN {m.push['spectral'].min():.2f}",
        fontsize=9,
    )
    right.legend(fontsize=7, loc="upper left")
    right.grid(alpha=0.3)
    return [ctx.savefig(fig, "vanishing_gradient")]


def claims(m: VanishingGradientMeasurements, cfg: VanishingGradientConfig) -> list[Claim]:
    def pushes(kind: str, name: str, key: str) -> Claim:
        push = m.push[kind]
        return Claim.at_least(
            f"the {name} critic pushes every generated sample toward the data "
            f"(slope >= {MIN_PUSH:g})",
            float(push.min()),
            MIN_PUSH,
            f"f'(x) on {push.size} generated samples: min {push.min():.3f}, mean "
            f"{push.mean():.3f}; d L_G / d theta = {m.grad_theta[kind]:.3f} (descent moves "
            "theta toward the data when negative)",
            key=key,
        )

    return [
        Claim.at_most(
            "against a near-perfect discriminator the minimax generator's gradient is at most "
            f"{MAX_RATIO:g} of the non-saturating one's",
            m.ratio,
            MAX_RATIO,
            f"d L_G / d theta: minimax {m.grad_theta['minimax']:.3e}, non-saturating "
            f"{m.grad_theta['nonsaturating']:.3e}; max D(G(z)) = {m.d_fake_max:.2e} after "
            f"{cfg.steps} steps",
            key="minimax_vanishes",
        ),
        pushes("wgan_gp", f"WGAN-GP (lambda = {cfg.gp_weight:g})", "gp_points_to_data"),
        pushes("spectral", "spectrally normalised", "sn_points_to_data"),
    ]


@experiment(
    "gans.vanishing_gradient",
    topic="gans",
    config=VanishingGradientConfig,
    claims=("minimax_vanishes", "gp_points_to_data", "sn_points_to_data"),
)
def vanishing_gradient(cfg: VanishingGradientConfig, ctx: RunContext) -> Outcome:
    """With disjoint supports a near-perfect discriminator leaves the minimax generator almost
    no gradient, while a Lipschitz critic (WGAN-GP, spectral norm) pushes the generated samples
    toward the data."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
