r"""FGSM's step is the exact maximiser of a linear loss over the ball, and a network's loss is
linear enough at small eps for it to matter. Notes: discussion 11, part 2, "Adversarial Attacks"
(FGSM's first-order approximation :math:`L(x + \delta) \approx L(x) + \nabla_x L^\top \delta`,
the optimal perturbations :math:`\epsilon\, g / \|g\|_2` and :math:`\epsilon\,\mathrm{sign}(g)`),
and its problem 3 ("Show that the optimal perturbation given a linear loss and infinity-norm
constraint is given by the expression above"), answered by measurement.

For a linear loss :math:`L(x) = w^\top x + b` in dimension d (``dims``), ``trials`` random
``(w, eps)`` per dimension (own stream):

- L-inf: the gain of ``steepest_step(w, eps, "linf")`` (:math:`\epsilon\|w\|_1`) is compared
  with the brute-force maximum of :math:`w^\top v` over the :math:`2^d` vertices of the box (the
  maximum of a linear function over a polytope is attained at a vertex, so this is the maximum
  over the box); ``box_samples`` uniform points of the box never exceed it.
- L2: the gain of ``steepest_step(w, eps, "l2")`` equals the closed form :math:`\epsilon\|w\|_2`
  (Cauchy-Schwarz), ``l2_samples`` (a grid of sizes) uniform points of the sphere never exceed
  it, and the relative gap between it and the best sampled point shrinks as the samples grow.

For a real network (the standard digits MLP,
:func:`~deepnotes.robustness.models.fit_classifier` tag ``"standard-mlp"``, evaluated in
float64): on ``n_examples`` test digits, the true increase of the
mean cross-entropy :math:`\bar L(x + \delta) - \bar L(x)` for the steepest step
:math:`\delta` of radius eps is divided by its first-order prediction :math:`\overline{g^\top
\delta}` (:math:`\epsilon\|g\|_1` or :math:`\epsilon\|g\|_2`) over the grid ``net_eps``.

Checks (identities of the implementation, fixed tolerances): ``linf_vertex_max`` (|FGSM gain -
vertex max| <= 1e-12, largest over trials), ``box_never_exceeds`` and ``sphere_never_exceeds``
(no sample beats the step by more than 1e-12), ``l2_closed_form`` (|gain - eps ||w||_2| <=
1e-12), ``l2_gap_shrinks`` (the mean relative gap at the most samples is below the one at the
fewest, every dimension: the largest ratio of the two is measured, < 1).

Claim (threshold fixed before the run): ``small_eps_linearisation``: at the smallest eps of
``net_eps`` (1e-3) the first-order gain predicts the true gain of the network's loss to 1%
(:math:`|\text{ratio} - 1| \le 0.01`, both norms, the larger deviation measured): the remainder
of the Taylor expansion is :math:`O(\epsilon^2)`, so the ratio tends to 1 as eps -> 0; the
figure shows how far it drifts at the eps that break the digits.

Measured (seed 0, quick and full presets alike): the claim does NOT hold for the L-inf step.
The L2 ratio is 1.003 at eps 1e-3, but the L-inf ratio is 1.018 (SE 0.002): the loss curves
upward along sign(g), and the relative remainder falls only linearly in eps (1.19 at 1e-2, 1.05
at 3e-3, 1.018 at 1e-3), so 1% would need eps near 5e-4. Reported as a known failure
(:data:`LINEARISATION_FAILS`); the grid and the threshold were not changed after the run.

Deviation: the network's perturbation is not clipped to [0, 1] (the statement is about the loss
as a function on the whole space; clipping would change the step near black pixels).
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import mean_se
from deepnotes.data import image_splits
from deepnotes.robustness.attacks import NORMS, input_gradient, steepest_step
from deepnotes.robustness.models import ClassifierSettings, fit_classifier

IDENTITY_TOL = 1e-12
"""Tolerance of the float64 identities."""
LINEAR_TOL = 0.01
"""The network's gain ratio must be within 1% of 1 at the smallest eps."""
LINEARISATION_FAILS = (
    "measured at seed 0: the L-inf ratio is 1.018 at eps 1e-3 (L2: 1.003); the L-inf step "
    "moves every pixel by eps and the loss curves upward along sign(g), so the relative "
    "remainder (1.19 at 1e-2, 1.05 at 3e-3, 1.018 at 1e-3) shrinks only linearly in eps and "
    "reaches 1% near eps 5e-4, below the grid fixed in advance (a first model, trained under "
    "another seed stream, measured 1.024)"
)
"""Why ``small_eps_linearisation`` fails (measured; the threshold stands)."""


@dataclass(frozen=True)
class LinearOptimalityConfig:
    """Linear losses in small dimension (brute force) and a network's loss at small eps."""

    data: Literal["digits", "mnist"] = "digits"
    """The network's data: the bundled digits, or MNIST files in ``data_root``."""
    data_root: str = ""
    """Folder of the MNIST files (not used for the digits)."""
    dims: tuple[int, ...] = (2, 3, 4, 6, 8, 10)
    """Dimensions of the linear losses (2^d vertices are enumerated)."""
    trials: int = 20
    """Random (w, eps) per dimension."""
    box_samples: int = 20000
    """Uniform points of the L-inf box per trial."""
    l2_samples: tuple[int, ...] = (10, 100, 1000, 10000, 100000)
    """Sizes of the uniform samples of the L2 sphere (increasing)."""
    epochs: int = 30
    """Training epochs of the standard MLP."""
    n_examples: int = 200
    """Test digits whose loss is linearised."""
    net_eps: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
    """Radii of the network's steps (increasing; the first is the claim's)."""

    def __post_init__(self) -> None:
        require(
            (self.data == "digits") == (self.data_root == ""),
            f"data_root names the folder of the {self.data} files"
            if self.data != "digits"
            else f"data_root is only for mnist, got data_root={self.data_root!r}",
        )
        require(
            len(self.dims) >= 1 and all(1 <= d <= 16 for d in self.dims),
            f"dims must be in 1..16 (2^d vertices), got {self.dims}",
        )
        require(self.trials >= 1 and self.box_samples >= 1, "trials, box_samples must be >= 1")
        require(
            len(self.l2_samples) >= 2
            and all(n >= 1 for n in self.l2_samples)
            and list(self.l2_samples) == sorted(set(self.l2_samples)),
            f"l2_samples must be >= 2 increasing sizes >= 1, got {self.l2_samples}",
        )
        require(self.epochs >= 1 and self.n_examples >= 1, "epochs, n_examples must be >= 1")
        require(
            len(self.net_eps) >= 2
            and all(math.isfinite(e) and e > 0 for e in self.net_eps)
            and list(self.net_eps) == sorted(set(self.net_eps)),
            f"net_eps must be >= 2 increasing radii > 0, got {self.net_eps}",
        )

    @classmethod
    def quick(cls) -> LinearOptimalityConfig:
        """The full preset with 10 trials per dimension (about 10 s on one thread)."""
        return cls(trials=10)


@dataclass(frozen=True)
class LinearOptimalityMeasurements:
    """Errors of the identities per dimension and the network's gain ratios per eps."""

    dims: np.ndarray
    linf_error: np.ndarray
    """(D,) largest |eps ||w||_1 - max over vertices| over the trials."""
    box_excess: np.ndarray
    """(D,) largest (best box sample - FGSM gain); <= 0 when no sample beats it."""
    l2_error: np.ndarray
    """(D,) largest |gain of the L2 step - eps ||w||_2|."""
    sphere_excess: np.ndarray
    """(D,) largest (best sphere sample - L2 step gain)."""
    l2_samples: np.ndarray
    """(S,) sample sizes."""
    l2_gap: np.ndarray
    """(D, S) mean relative gap (eps||w|| - best sample) / (eps||w||) over trials."""
    net_eps: np.ndarray
    """(E,) radii of the network's steps."""
    ratio: dict[str, np.ndarray]
    """Per norm, (E,) true mean gain / first-order mean gain."""
    ratio_se: dict[str, np.ndarray]
    """Per norm, (E,) standard error of the ratio (delta method over the examples)."""
    n_examples: int

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dims": self.dims.tolist(),
            "linf_error": self.linf_error.tolist(),
            "l2_error": self.l2_error.tolist(),
            "l2_gap": self.l2_gap.tolist(),
            "net_eps": self.net_eps.tolist(),
        }
        for norm in NORMS:
            out[f"ratio_{norm}"] = self.ratio[norm].tolist()
        return out


def _linear(cfg: LinearOptimalityConfig, ctx: RunContext) -> dict[str, np.ndarray]:
    """The brute-force and sampling side, float64."""
    keys = ("linf_error", "box_excess", "l2_error", "sphere_excess")
    out: dict[str, Any] = {k: np.zeros(len(cfg.dims)) for k in keys}
    out["l2_gap"] = np.zeros((len(cfg.dims), len(cfg.l2_samples)))
    for i, d in enumerate(cfg.dims):
        gen = ctx.stream("linear", d)
        vertices = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d)), dtype=torch.float64)
        linf_err, box_ex, l2_err, sph_ex = [], [], [], []
        gaps = np.zeros((cfg.trials, len(cfg.l2_samples)))
        for t in range(cfg.trials):
            w = torch.randn(1, d, generator=gen, dtype=torch.float64)  # L(x) = w.x + b: g = w
            eps = float(torch.empty(()).uniform_(0.01, 1.0, generator=gen))
            gain = float((w * steepest_step(w, eps, "linf")).sum())
            linf_err.append(abs(gain - float((eps * vertices @ w[0]).max())))
            box = (2 * torch.rand(cfg.box_samples, d, generator=gen, dtype=torch.float64) - 1) * eps
            box_ex.append(float((box @ w[0]).max()) - gain)
            closed = eps * float(w.norm())
            l2_gain = float((w * steepest_step(w, eps, "l2")).sum())
            l2_err.append(abs(l2_gain - closed))
            for j, n in enumerate(cfg.l2_samples):
                s = torch.randn(n, d, generator=gen, dtype=torch.float64)
                s = eps * s / s.norm(dim=1, keepdim=True)  # uniform on the sphere of radius eps
                best = float((s @ w[0]).max())
                gaps[t, j] = (closed - best) / closed
                sph_ex.append(best - l2_gain)
        out["linf_error"][i], out["box_excess"][i] = max(linf_err), max(box_ex)
        out["l2_error"][i], out["sphere_excess"][i] = max(l2_err), max(sph_ex)
        out["l2_gap"][i] = gaps.mean(axis=0)
    return out


def _network(
    cfg: LinearOptimalityConfig, ctx: RunContext
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Ratio of the true to the first-order gain of the mean loss, per norm and eps."""
    splits = image_splits(cfg.data, cfg.data_root or None, seed=ctx.seed)
    model = fit_classifier(
        ClassifierSettings("mlp", epochs=cfg.epochs), ctx, splits, tag="standard-mlp"
    )
    net = copy.deepcopy(model.model).double().eval()
    x, y = splits.test.tensors
    x, y = x[: cfg.n_examples].double().to(ctx.device), y[: cfg.n_examples].to(ctx.device)
    g = input_gradient(net, x, y)
    with torch.no_grad():
        base = F.cross_entropy(net(x), y, reduction="none")
    ratio = {n: np.zeros(len(cfg.net_eps)) for n in NORMS}
    ratio_se = {n: np.zeros(len(cfg.net_eps)) for n in NORMS}
    for norm in NORMS:
        for k, eps in enumerate(cfg.net_eps):
            step = steepest_step(g, eps, norm)
            with torch.no_grad():
                true = (F.cross_entropy(net(x + step), y, reduction="none") - base).cpu().numpy()
            first = (g * step).flatten(1).sum(dim=1).cpu().numpy()
            r = true.mean() / first.mean()
            ratio[norm][k] = r
            # delta method: SE of mean(true)/mean(first) from the residuals true - r * first
            ratio_se[norm][k] = mean_se(true - r * first)[1] / first.mean()
    return ratio, ratio_se


def measure(cfg: LinearOptimalityConfig, ctx: RunContext) -> LinearOptimalityMeasurements:
    lin = _linear(cfg, ctx)
    ratio, ratio_se = _network(cfg, ctx)
    return LinearOptimalityMeasurements(
        dims=np.array(cfg.dims),
        linf_error=lin["linf_error"],
        box_excess=lin["box_excess"],
        l2_error=lin["l2_error"],
        sphere_excess=lin["sphere_excess"],
        l2_samples=np.array(cfg.l2_samples),
        l2_gap=lin["l2_gap"],
        net_eps=np.array(cfg.net_eps),
        ratio=ratio,
        ratio_se=ratio_se,
        n_examples=cfg.n_examples,
    )


def draw(
    m: LinearOptimalityMeasurements, cfg: LinearOptimalityConfig, ctx: RunContext
) -> list[Path]:
    fig, axes = figure(ncols=3, size=(4.2, 3.8))
    ax = axes[0]  # the two balls in d = 2 and the two maximisers of w.delta
    w = np.array([0.8, 0.35])
    grid = np.linspace(-1.4, 1.4, 200)
    gx, gy = np.meshgrid(grid, grid)
    ax.contour(gx, gy, w[0] * gx + w[1] * gy, levels=12, colors="0.8", linewidths=0.7)
    ax.plot([-1, 1, 1, -1, -1], [-1, -1, 1, 1, -1], color="C0", label="L-inf ball")
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), color="C1", label="L2 ball")
    ax.plot(*np.sign(w), "o", color="C0", ms=8, label="eps sign(w)")
    ax.plot(*(w / np.linalg.norm(w)), "s", color="C1", ms=8, label="eps w / ||w||")
    ax.arrow(0, 0, *(0.6 * w), head_width=0.06, color="k")
    ax.text(*(0.62 * w + [0.0, -0.18]), "w", fontsize=9)
    ax.set_aspect("equal")
    ax.set_title("linear loss w.x: contours, balls (eps = 1)")
    ax.legend(fontsize=7, loc="lower left")

    ax = axes[1]
    for i, d in enumerate(m.dims):
        ax.loglog(m.l2_samples, m.l2_gap[i], "-o", ms=3, label=f"d = {d}")
    ax.set_xlabel("uniform samples of the sphere")
    ax.set_ylabel("(eps ||w|| - best sample) / eps ||w||")
    ax.set_title("the sampled max approaches eps ||w||_2")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)

    ax = axes[2]
    for norm, color in zip(NORMS, ("C0", "C1"), strict=True):
        ax.errorbar(
            m.net_eps,
            m.ratio[norm],
            yerr=m.ratio_se[norm],
            fmt="-o",
            ms=4,
            color=color,
            label=f"{'L-inf' if norm == 'linf' else 'L2'} step",
        )
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhspan(1 - LINEAR_TOL, 1 + LINEAR_TOL, color="C2", alpha=0.2, label="claim band (1%)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("eps")
    ax.set_ylabel("true gain / first-order gain")
    ax.set_title(f"digits MLP, mean loss over {m.n_examples} test digits")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return [ctx.savefig(fig, "linear_optimality")]


def claims(m: LinearOptimalityMeasurements, cfg: LinearOptimalityConfig) -> list[Claim]:
    gap_ratio = m.l2_gap[:, -1] / np.where(m.l2_gap[:, 0] > 0, m.l2_gap[:, 0], np.nan)
    deviation = max(abs(float(m.ratio[n][0]) - 1.0) for n in NORMS)
    per_dim = ", ".join(f"d={d}: {e:.1e}" for d, e in zip(m.dims, m.linf_error, strict=True))
    return [
        Claim.at_most(
            f"at small eps (eps = {m.net_eps[0]:g}) the first-order gain predicts the true gain "
            "of the network's loss: |true / first-order - 1|, larger over both norms",
            deviation,
            LINEAR_TOL,
            ", ".join(
                f"{n}: ratio {m.ratio[n][0]:.5f} ± {m.ratio_se[n][0]:.5f} at eps "
                f"{m.net_eps[0]:g}, {m.ratio[n][-1]:.3f} at eps {m.net_eps[-1]:g}"
                for n in NORMS
            )
            + f"; digits MLP, float64, {m.n_examples} test digits",
            key="small_eps_linearisation",
            known_failure=LINEARISATION_FAILS,
        ),
        Claim.at_most(
            "FGSM's eps sign(w) attains the max of a linear loss over the L-inf ball (brute "
            "force over the 2^d vertices): largest |difference|",
            float(m.linf_error.max()),
            IDENTITY_TOL,
            f"{cfg.trials} random (w, eps) per dimension; {per_dim}",
            key="linf_vertex_max",
            kind="check",
        ),
        Claim.at_most(
            "no uniform point of the L-inf box beats eps sign(w): largest excess",
            float(m.box_excess.max()),
            IDENTITY_TOL,
            f"{cfg.box_samples} points per trial",
            key="box_never_exceeds",
            kind="check",
        ),
        Claim.at_most(
            "the L2 step's gain equals the closed form eps ||w||_2: largest |difference|",
            float(m.l2_error.max()),
            IDENTITY_TOL,
            "float64",
            key="l2_closed_form",
            kind="check",
        ),
        Claim.at_most(
            "no uniform point of the L2 sphere beats eps w / ||w||_2: largest excess",
            float(m.sphere_excess.max()),
            IDENTITY_TOL,
            f"up to {int(m.l2_samples[-1])} points per trial",
            key="sphere_never_exceeds",
            kind="check",
        ),
        Claim.compare(
            "the gap between eps ||w||_2 and the best sphere sample shrinks with the samples: "
            "largest ratio gap(most samples) / gap(fewest) over the dimensions",
            float(np.nanmax(gap_ratio)) if np.isfinite(gap_ratio).any() else math.nan,
            "<",
            1.0,
            ", ".join(
                f"d={d}: {a:.2g} -> {b:.2g}"
                for d, a, b in zip(m.dims, m.l2_gap[:, 0], m.l2_gap[:, -1], strict=True)
            ),
            key="l2_gap_shrinks",
            kind="check",
        ),
    ]


@experiment(
    "robustness.linear_optimality",
    topic="robustness",
    config=LinearOptimalityConfig,
    claims=("small_eps_linearisation",),
    checks=(
        "linf_vertex_max",
        "box_never_exceeds",
        "l2_closed_form",
        "sphere_never_exceeds",
        "l2_gap_shrinks",
    ),
)
def linear_optimality(cfg: LinearOptimalityConfig, ctx: RunContext) -> Outcome:
    """For a linear loss FGSM's eps sign(g) and eps g / ||g|| are the exact maximisers over the
    L-inf and L2 balls (the notes' problem 3), and a trained network's loss is linear enough at
    small eps for the first-order gain to predict the true one."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
