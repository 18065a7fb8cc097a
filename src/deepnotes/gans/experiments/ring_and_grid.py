r"""Mode collapse on the 8-Gaussian ring and the 25-Gaussian grid: seven GAN variants scored by
the VEEGAN / PacGAN protocol. Notes: discussion 11, part 1 (the minimax game, the
non-saturating loss, WGAN, WGAN-GP, spectral normalisation, LSGAN, instance noise); issue 15,
item 4.

Anchor: PacGAN's table 1 (Lin et al., 2018, https://arxiv.org/abs/1712.04086) on the ring,
2,500 samples per evaluation, a sample high-quality within 3 standard deviations of its nearest
mode, a mode covered with at least one (:mod:`deepnotes.gans.metrics`): plain GAN 6.3 modes /
98.2% high-quality, PacGAN4 7.8 / 95.9%, VEEGAN 8.0 / 52.9%.

Data (:mod:`deepnotes.data.toy2d`): the ring of 8 Gaussians of std 0.02 at radius 2 (VEEGAN's;
PacGAN's is the same shape at half the scale) and the 5 x 5 grid of std 0.05 with spacing 2
(PacGAN's). Models: generator and discriminator MLPs with two hidden layers of ``hidden``
units (ReLU in G, LeakyReLU(0.2) in D), latent :math:`z \sim \mathcal N(0, I_{\text{latent}})`,
Adam (``lr``, betas (0.5, 0.9) for every variant, as WGAN-GP's toy code; both learning rates
decayed linearly to 0, as WGAN-GP's and SN-GAN's code do), ``batch`` real and ``batch``
generated samples per step, ``steps`` generator steps, all through
:func:`deepnotes.gans.training.train_gan`.

One variant's fits (both datasets, every seed) train at once as one stacked network
(:func:`deepnotes.gans.models.stack_mlps`, ``train_gan(..., members=)``): member ``k`` starts
from the weights it would have alone and sees only its own data, latent codes and gradients,
so the members are independent fits (tests/gans/test_training.py pins it), at about the cost of
one: 7 runs instead of 70 fits. The variants (:data:`VARIANTS`):

- ``minimax``: the original game, G minimises :math:`E[\log(1 - D(G(z)))]`;
- ``nonsaturating``: G minimises :math:`-E[\log D(G(z))]`;
- ``wgan``: critic and generator of WGAN, weights clipped to ``[-clip, clip]``, ``n_critic``
  critic steps per generator step;
- ``wgan_gp``: WGAN with the gradient penalty of weight ``gp_weight`` (0.1: the value of
  Gulrajani et al.'s ``gan_toy.py`` for the toy densities, "smaller lambda seems to help for toy
  tasks"), ``n_critic`` critic steps;
- ``spectral``: the non-saturating loss with spectral normalisation (Miyato et al., 2018) on
  every linear layer of D (:func:`deepnotes.gans.spectral.spectral_norm`, one power iteration
  per step), the loss of Miyato et al.'s main experiments;
- ``lsgan``: least squares with targets 0 and 1 (Mao et al., 2017);
- ``instance_noise``: the non-saturating loss with Gaussian noise of std ``noise_std`` added to
  every input of D, annealed linearly to 0 over the run.

Every fit is scored on 2,500 fresh generator samples. Claims (thresholds from the issue, fixed
before the run):

- ``stabilised_ring``: WGAN-GP and the spectral-norm GAN cover all 8 ring modes with >= 95%
  high-quality samples at every seed (the value: the lowest high-quality share over both
  variants and every seed, counted 0 for a seed that misses a mode; >= 0.95);
- ``stabilised_grid``: the same two variants cover >= 24 of the 25 grid modes with >= 90%
  high-quality samples at every seed (the same value, a seed counted 0 below 24 modes; >= 0.90);
- ``minimax_drops``: the plain minimax GAN drops modes that WGAN-GP or the spectral-norm GAN
  covers on the same data at the same seed while meeting the goal above (the value: the largest
  such gap in modes, >= 1; 0 when no stabilised fit meets the goal). A first version counted
  the minimax GAN's missed modes alone; in an undertrained quick run, whose samples are 1%
  high-quality, every variant "misses" modes and that claim held vacuously, so it became a
  comparison with a fit that succeeds (changed before the full preset of all variants ran).

The quick preset (2 seeds, 600 steps of width-64 nets, about 50 s) is far from converged on a
CPU budget: its samples are 1-4% high-quality. The full preset (3 seeds, 5,000 steps of
width-128 nets, 880 s for all variants on one CPU thread) was run: none of the three claims
holds there (:data:`FULL_PRESET_FAILS` says what it measured). Every variant but WGAN with
clipping covers the ring (8/8 modes, 71-88% high-quality, the minimax GAN included) and 22-25
grid modes with 12-28% high-quality samples; WGAN with clipping (Adam 1e-3, clip 0.01) learns
neither. The claims stay as the issue states them and are reported as known failures. The
first full-preset design (5 seeds, 10,000 steps, batch 256, no decay) was measured on one
fit per stabilised variant (ring, seed 0): 8/8 modes with 79.5% (WGAN-GP) and 82.6%
(spectral norm) high-quality samples; with the decay, 2,000 steps of the spectral-norm GAN
went from 36% to 59% on the ring.

Deviations: PacGAN's generator has 4 hidden layers of 400 units and its D a maxout net trained
with Adam 1e-4 for 400 epochs of 100,000 samples; here small MLPs and a few thousand steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import mean_se
from deepnotes.data import toy2d
from deepnotes.gans.metrics import SAMPLES, mode_coverage
from deepnotes.gans.models import StackedLinear, stack_mlps
from deepnotes.gans.spectral import spectral_norm
from deepnotes.gans.training import GANSettings, train_gan

DATASETS = ("ring", "grid")
VARIANTS = (
    "minimax",
    "nonsaturating",
    "wgan",
    "wgan_gp",
    "spectral",
    "lsgan",
    "instance_noise",
)
STABILISED = ("wgan_gp", "spectral")
"""The variants the issue expects to cover every mode with high-quality samples."""
GOALS = {"ring": (8, 0.95), "grid": (24, 0.90)}
"""Per dataset: (modes covered at least, high-quality share at least) at every seed (issue)."""
LABELS = {
    "minimax": "minimax",
    "nonsaturating": "non-saturating",
    "wgan": "WGAN (clip)",
    "wgan_gp": "WGAN-GP",
    "spectral": "NS + spectral norm",
    "lsgan": "LSGAN",
    "instance_noise": "NS + instance noise",
}
MIXTURES = {"ring": toy2d.ring, "grid": toy2d.grid}


@dataclass(frozen=True)
class RingGridConfig:
    """Seven GAN variants on the ring and the grid, over seeds."""

    seeds: int = 3
    steps: int = 5000
    """Generator steps per fit."""
    hidden: int = 128
    """Units per hidden layer of G and D (two hidden layers each)."""
    latent_dim: int = 2
    batch: int = 128
    lr: float = 1e-3
    n_critic: int = 5
    """Critic steps per generator step for WGAN and WGAN-GP (the others: 1)."""
    clip: float = 0.01
    gp_weight: float = 0.1
    noise_std: float = 0.2
    every: int = 500
    """Steps per round of the engine (a record and a checkpoint)."""
    lr_decay: bool = True
    """Both learning rates decay linearly to 0 over the run (every variant)."""

    def __post_init__(self) -> None:
        require(self.seeds >= 2, f"seeds must be >= 2 (mean +- SE over seeds), got {self.seeds}")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")
        require(self.hidden >= 1 and self.latent_dim >= 1, "hidden and latent_dim must be >= 1")
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.n_critic >= 1, f"n_critic must be >= 1, got {self.n_critic}")
        require(self.clip > 0, f"clip must be > 0, got {self.clip}")
        require(self.gp_weight >= 0, f"gp_weight (the penalty) must be >= 0, got {self.gp_weight}")
        require(self.noise_std >= 0, f"noise_std must be >= 0, got {self.noise_std}")

    @classmethod
    def quick(cls) -> RingGridConfig:
        """2 seeds, 600 steps of width-64 nets, batch 128, n_critic 2 (about 50 s)."""
        return cls(seeds=2, steps=600, hidden=64, batch=128, n_critic=2, every=300)

    @property
    def decisive(self) -> bool:
        """Whether the run is at least as long and wide as the full preset (the claims on the
        stabilised variants are decided there)."""
        full = RingGridConfig()
        return self.steps >= full.steps and self.hidden >= full.hidden and self.seeds >= full.seeds

    def settings(self, variant: str) -> GANSettings:
        """The :class:`GANSettings` of ``variant``."""
        common: dict[str, Any] = dict(
            steps=self.steps, batch=self.batch, lr_g=self.lr, lr_d=self.lr, betas=(0.5, 0.9)
        )
        common["every"] = self.every
        common["lr_decay"] = self.lr_decay
        by_variant: dict[str, dict[str, Any]] = {
            "minimax": dict(loss="minimax"),
            "nonsaturating": dict(loss="nonsaturating"),
            "wgan": dict(loss="wgan", clip=self.clip, n_critic=self.n_critic),
            "wgan_gp": dict(loss="wgan_gp", gp_weight=self.gp_weight, n_critic=self.n_critic),
            "spectral": dict(loss="nonsaturating"),
            "lsgan": dict(loss="lsgan"),
            "instance_noise": dict(loss="nonsaturating", noise_std=self.noise_std),
        }
        return GANSettings(**common, **by_variant[variant])


@dataclass(frozen=True)
class RingGridMeasurements:
    """Modes covered and high-quality shares per dataset, variant and seed."""

    modes: dict[str, dict[str, np.ndarray]]
    """[dataset][variant] -> modes covered per seed, (seeds,); NaN for a diverged fit."""
    high_quality: dict[str, dict[str, np.ndarray]]
    """[dataset][variant] -> share of high-quality samples per seed, (seeds,); NaN if diverged."""
    samples: dict[str, dict[str, np.ndarray]]
    """[dataset][variant] -> seed 0's 2,500 samples, (2500, 2) (NaN-filled if it diverged)."""
    diverged: dict[str, dict[str, list[str]]]
    """[dataset][variant] -> the engine's message per seed ('' when it did not diverge)."""
    total_modes: dict[str, int]

    def table(self) -> dict[str, dict[str, tuple[float, float, float, float]]]:
        """[dataset][variant] -> (modes mean, SE, high-quality % mean, SE) over seeds."""
        out: dict[str, dict[str, tuple[float, float, float, float]]] = {}
        for ds in self.modes:
            out[ds] = {}
            for v in self.modes[ds]:
                modes = mean_se(self.modes[ds][v])
                hq = mean_se(100 * self.high_quality[ds][v])
                out[ds][v] = (*modes, *hq)
        return out

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"samples_per_evaluation": SAMPLES}
        for ds in self.modes:
            for v in self.modes[ds]:
                out[f"{ds}_{v}_modes"] = self.modes[ds][v].tolist()
                out[f"{ds}_{v}_high_quality"] = np.round(self.high_quality[ds][v], 4).tolist()
        return out


def mlp(inputs: int, outputs: int, hidden: int, activation: Callable[[], nn.Module]) -> nn.Module:
    """``inputs -> hidden -> hidden -> outputs`` with ``activation`` between the layers."""
    return nn.Sequential(
        nn.Linear(inputs, hidden),
        activation(),
        nn.Linear(hidden, hidden),
        activation(),
        nn.Linear(hidden, outputs),
    )


def build(cfg: RingGridConfig, variant: str) -> tuple[nn.Module, nn.Module]:
    """Generator ``(B, latent) -> (B, 2)`` and discriminator ``(B, 2) -> (B, 1)`` of one fit
    of ``variant`` (spectral norm is applied to the stacked discriminator, see
    :func:`stacked_pair`)."""
    generator = mlp(cfg.latent_dim, 2, cfg.hidden, nn.ReLU)
    discriminator = mlp(2, 1, cfg.hidden, lambda: nn.LeakyReLU(0.2))
    return generator, discriminator


def members(cfg: RingGridConfig) -> list[tuple[str, int]]:
    """The fits of one variant, trained together: ``(dataset, seed)`` for every dataset and
    seed, datasets first."""
    return [(ds, seed) for ds in DATASETS for seed in range(cfg.seeds)]


def stacked_pair(cfg: RingGridConfig, ctx: RunContext, variant: str) -> tuple[nn.Module, nn.Module]:
    """Every fit of ``variant`` as one stacked generator and discriminator
    (:func:`deepnotes.gans.models.stack_mlps`): member ``k`` is fit ``members(cfg)[k]``,
    initialised under its own seed exactly as it would be alone."""
    pairs = []
    for ds, seed in members(cfg):
        with ctx.seeded("init", ds, variant, seed):
            pairs.append(build(cfg, variant))
    generator = stack_mlps([g for g, _ in pairs])
    discriminator = stack_mlps([d for _, d in pairs])
    if variant == "spectral":
        with ctx.seeded("spectral", variant):  # the power iterations' start vectors
            for layer in discriminator:
                if isinstance(layer, StackedLinear):
                    spectral_norm(layer)
    return generator.to(ctx.device), discriminator.to(ctx.device)


def _fit(cfg: RingGridConfig, ctx: RunContext, variant: str) -> dict:
    """Every fit of ``variant`` trained at once, each scored on 2,500 fresh samples; a
    diverged run scores NaN for all its members."""
    fits = members(cfg)
    generator, discriminator = stacked_pair(cfg, ctx, variant)
    mixtures = {ds: MIXTURES[ds]() for ds in DATASETS}

    def data(n: int, g: torch.Generator) -> torch.Tensor:  # (members, n, 2)
        return torch.stack([mixtures[ds].sample(n, g) for ds, _ in fits])

    try:
        train_gan(
            generator,
            discriminator,
            data,
            cfg.settings(variant),
            ctx,
            latent_dim=cfg.latent_dim,
            tag=variant,
            members=len(fits),
        )
    except DivergenceError as err:
        nan = [math.nan] * len(fits)
        samples = {ds: torch.full((SAMPLES, 2), math.nan) for ds in DATASETS}
        return {"modes": nan, "high_quality": nan, "samples": samples, "diverged": str(err)}
    z = torch.randn(len(fits), SAMPLES, cfg.latent_dim, generator=ctx.stream("eval", variant))
    with torch.no_grad():
        x = generator(z.to(ctx.device)).cpu()  # (members, 2500, 2)
    scores = [
        mode_coverage(x[k], mixtures[ds].means, mixtures[ds].std) for k, (ds, _) in enumerate(fits)
    ]
    return {
        "modes": [float(s.modes) for s in scores],
        "high_quality": [s.high_quality for s in scores],
        "samples": {ds: x[fits.index((ds, 0))] for ds in DATASETS},
        "diverged": "",
    }


def measure(cfg: RingGridConfig, ctx: RunContext) -> RingGridMeasurements:
    """Every variant's fits (all datasets and seeds stacked), each variant cached."""
    fits = members(cfg)
    key = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    runs: dict[str, dict] = {}
    with ctx.progress(len(VARIANTS), "variants") as bar:
        for v in VARIANTS:
            runs[v] = ctx.cached("fit", {**key, "variant": v}, lambda v=v: _fit(cfg, ctx, v))
            bar.advance()

    def per_dataset(field: str, ds: str, v: str) -> np.ndarray:
        return np.array([runs[v][field][k] for k, (d, _) in enumerate(fits) if d == ds])

    return RingGridMeasurements(
        modes={ds: {v: per_dataset("modes", ds, v) for v in VARIANTS} for ds in DATASETS},
        high_quality={
            ds: {v: per_dataset("high_quality", ds, v) for v in VARIANTS} for ds in DATASETS
        },
        samples={ds: {v: np.asarray(runs[v]["samples"][ds]) for v in VARIANTS} for ds in DATASETS},
        diverged={ds: {v: [runs[v]["diverged"]] * cfg.seeds for v in VARIANTS} for ds in DATASETS},
        total_modes={ds: len(MIXTURES[ds]().means) for ds in DATASETS},
    )


def draw(m: RingGridMeasurements, cfg: RingGridConfig, ctx: RunContext) -> list[Path]:
    """Seed 0's samples over the modes per variant, and the PacGAN-style table."""
    fig, axes = figure(ncols=len(VARIANTS), nrows=len(DATASETS), size=(2.3, 2.3))
    for row, ds in enumerate(DATASETS):
        means = MIXTURES[ds]().means.numpy()
        lim = 3.0 if ds == "ring" else 5.5
        for col, v in enumerate(VARIANTS):
            ax = axes[row * len(VARIANTS) + col]
            x = m.samples[ds][v]
            ax.plot(x[:, 0], x[:, 1], ".", ms=1.5, alpha=0.3, color="C0")
            ax.plot(means[:, 0], means[:, 1], "x", ms=4, color="C3", mew=1)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            modes, hq = m.modes[ds][v][0], 100 * m.high_quality[ds][v][0]
            ax.set_title(
                f"{LABELS[v]}\n{modes:.0f}/{m.total_modes[ds]} modes, {hq:.1f}% HQ", fontsize=7
            )
    fig.suptitle(
        f"seed 0: {SAMPLES} generator samples (blue) and the modes (red x), {cfg.steps} steps",
        fontsize=9,
    )
    paths = [ctx.savefig(fig, "samples")]

    table = m.table()
    fig, ax = figure(size=(9.0, 0.3 * (len(VARIANTS) + 1)))
    ax.axis("off")
    rows = []
    for v in VARIANTS:
        row = [LABELS[v]]
        for ds in DATASETS:
            mo, mo_se, hq, hq_se = table[ds][v]
            row += [f"{mo:.2f} ± {mo_se:.2f}", f"{hq:.1f} ± {hq_se:.1f}"]
        rows.append(row)
    columns = ["variant"]
    for ds in DATASETS:
        columns += [f"{ds}: modes (of {m.total_modes[ds]})", f"{ds}: % high-quality"]
    cell = ax.table(cellText=rows, colLabels=columns, cellLoc="center", bbox=[0, 0, 1, 1])
    cell.auto_set_font_size(False)
    cell.set_fontsize(8)
    cell.scale(1.0, 1.3)
    ax.set_title(
        f"PacGAN-style table: mean ± SE over {cfg.seeds} seeds, {SAMPLES} samples each, "
        "high-quality = within 3 std of the nearest mode",
        fontsize=9,
    )
    paths.append(ctx.savefig(fig, "table"))
    return paths


FULL_PRESET_FAILS = {
    "stabilised_ring": (
        "measured at the full preset (3 seeds, 5,000 steps of width-128 nets, batch 128; all "
        "7 variants in 880 s on one CPU thread): WGAN-GP and the spectral-norm GAN cover 8/8 "
        "ring modes at every seed but with 87-89% and 80-86% high-quality samples; PacGAN's "
        "95-98% come from a 4 x 400-unit generator trained on 400 epochs of 100,000 samples, a "
        "budget far beyond this preset"
    ),
    "stabilised_grid": (
        "measured at the full preset: 22-25 of the 25 grid modes but 12-28% high-quality "
        "samples for both variants; after 5,000 steps the generators still spread their mass "
        "along lines between the modes (see the samples figure)"
    ),
    "minimax_drops": (
        "measured at the full preset: the minimax GAN covered 8/8 ring modes at all 3 seeds "
        "(83% high-quality; PacGAN's plain GAN averages 6.3 modes) and 22-25 grid modes, and no "
        "stabilised fit met the goal, so there was nothing to compare with"
    ),
}
"""Why each claim fails at the full preset (measured, seed 0, before these texts were written)."""


def _known(key: str, cfg: RingGridConfig, value: str) -> str:
    """The known-failure text of claim ``key``: the full preset's measurement, and for a
    shorter run what it measured itself."""
    if cfg.decisive:
        return FULL_PRESET_FAILS[key]
    return (
        f"this run ({cfg.steps} steps, width {cfg.hidden}) is far from converged ({value}); "
        + FULL_PRESET_FAILS[key]
    )


def _worst_goal(m: RingGridMeasurements, dataset: str) -> tuple[float, str]:
    """The stabilised variants' worst seed on ``dataset``: its high-quality share when it
    covers the goal's modes, else 0 (NaN if it diverged); and a description per variant."""
    goal_modes, _ = GOALS[dataset]
    worst, parts = math.inf, []
    for v in STABILISED:
        modes, hq = m.modes[dataset][v], m.high_quality[dataset][v]
        value = np.where(modes >= goal_modes, hq, 0.0)  # NaN stays NaN
        worst = min(worst, float(np.min(value))) if not np.isnan(value).any() else math.nan
        parts.append(
            f"{LABELS[v]}: modes {modes.tolist()}, high-quality {np.round(100 * hq, 1).tolist()}%"
        )
    return worst, "; ".join(parts)


def claims(m: RingGridMeasurements, cfg: RingGridConfig) -> list[Claim]:
    out = []
    for ds, key in (("ring", "stabilised_ring"), ("grid", "stabilised_grid")):
        goal_modes, goal_hq = GOALS[ds]
        worst, detail = _worst_goal(m, ds)
        holds = not math.isnan(worst) and worst >= goal_hq
        known = _known(key, cfg, f"worst seed's value {worst:.3f}") if not holds else ""
        out.append(
            Claim.at_least(
                f"WGAN-GP and the spectral-norm GAN cover >= {goal_modes}/{m.total_modes[ds]} "
                f"{ds} modes with >= {100 * goal_hq:.0f}% high-quality samples at every seed "
                "(value: the worst seed's high-quality share, 0 when it misses modes)",
                worst,
                goal_hq,
                detail,
                known_failure=known,
                key=key,
            )
        )
    out.append(minimax_claim(m, cfg))
    return out


def minimax_claim(m: RingGridMeasurements, cfg: RingGridConfig) -> Claim:
    """The plain minimax GAN drops modes that a stabilised variant covers on the same data at
    the same seed, where that variant meets the issue's goal (:data:`GOALS`): the value is the
    largest such gap in modes (a diverged minimax fit covers none), >= 1. A comparison with a
    successful fit, so that an undertrained run (whose few high-quality samples land on modes
    by chance) cannot make it hold; with no successful stabilised fit the value is 0."""
    gaps, parts = [0.0], []
    for ds in DATASETS:
        goal_modes, goal_hq = GOALS[ds]
        minimax = np.nan_to_num(m.modes[ds]["minimax"], nan=0.0)
        for v in STABILISED:
            modes, hq = m.modes[ds][v], m.high_quality[ds][v]
            good = (modes >= goal_modes) & (hq >= goal_hq)  # NaN compares False
            gaps += (modes[good] - minimax[good]).tolist()
        parts.append(f"{ds}: minimax modes {m.modes[ds]['minimax'].tolist()}")
    value = float(max(gaps))
    known = _known("minimax_drops", cfg, "no stabilised fit meets the goal") if value < 1 else ""
    return Claim.at_least(
        "the plain minimax GAN drops modes that WGAN-GP or the spectral-norm GAN covers on "
        "the same data and seed while meeting the goal (value: the largest gap in modes; 0 "
        "when no stabilised fit meets the goal)",
        value,
        1.0,
        "; ".join(parts),
        known_failure=known,
        key="minimax_drops",
    )


@experiment(
    "gans.ring_and_grid",
    topic="gans",
    config=RingGridConfig,
    claims=("stabilised_ring", "stabilised_grid", "minimax_drops"),
)
def ring_and_grid(cfg: RingGridConfig, ctx: RunContext) -> Outcome:
    """WGAN-GP and spectral normalisation cover every mode of the ring and the grid with
    high-quality samples at every seed, where the plain minimax GAN drops modes."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
