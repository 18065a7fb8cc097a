"""Experiments of the optim topic (notes, discussion 2, section 3: "Optimization methods").

- ``optim.quadratic``: figures 2a-c, 3 and 4 of the notes on ``f = a1 x1^2 + a2 x2^2``, and
  iterations to a tolerance for GD, momentum and RMSProp, each with its best step from a grid.
- ``optim.adagrad_decay``: Adagrad's effective step never grows; RMSProp's does (section 3.5).
- ``optim.sgd_noise``: a minibatch gradient is unbiased and its variance falls like 1/|B| (3.2).
- ``optim.compare_digits``: the six optimisers training the same MLP on the digits (3.1-3.6).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.optim import Optimizer

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.trainer import INNER_FIT, FitResult, Trainer
from deepnotes.data import digits
from deepnotes.foundations.models import MLP
from deepnotes.optim.optimizers import SGD, Adagrad, Adam, Momentum, RMSProp
from deepnotes.optim.quadratic import (
    Quadratic,
    StepChoice,
    best_step,
    trajectory,
)

# ---------------------------------------------------------------------------------------------
# 1. The ill-conditioned quadratic (notes 3.3-3.5, figures 2a-c, 3, 4)


@dataclass(frozen=True)
class QuadraticConfig:
    """GD, momentum and RMSProp on f = a1 x1^2 + a2 x2^2 (the notes' figures 2a-c, 3 and 4)."""

    well: tuple[float, float] = (1.0, 1.0)
    """(a1, a2) of the well-conditioned problem (figure 2a)."""
    ill: tuple[float, float] = (0.025, 2.5)
    """(a1, a2) of the ill-conditioned problem (figures 2b, 2c, 3, 4); kappa = a2 / a1."""
    start: tuple[float, float] = (-9.0, 1.5)
    """theta^0 of every run."""
    large_lr: float = 0.44
    """The step of figures 2a and 2b: below 1/a2 of ``well`` (stable), above 1/a2 of ``ill``."""
    plot_steps: int = 40
    """Iterations drawn in each trajectory panel."""
    tol: float = 1e-3
    """A run has reached the optimum once ||theta^t|| <= tol ||theta^0||..."""
    stay: int = 50
    """... and stays there for this many further iterations."""
    max_steps: int = 20_000
    """A run that has not reached the tolerance after this many iterations gives up."""
    lr_range: tuple[float, float] = (1e-3, 1.0)
    """Smallest and largest step size of the (log-spaced) grid shared by every method."""
    lr_points: int = 81
    """Number of step sizes in the grid."""
    momenta: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
    """Grid of momentum coefficients m (0 is GD; 1 - m roughly log-spaced after it)."""
    betas: tuple[float, ...] = (0.9, 0.99)
    """Grid of RMSProp decays beta (0.9: Hinton's lecture; 0.99: torch's default)."""
    rmsprop_small_lr: float = 0.1
    """A smaller RMSProp step also drawn in figure 4 (the best one may overshoot at first)."""
    kappas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 3000.0)
    """Condition numbers of the sweep (a2 of ``ill`` kept, a1 = a2 / kappa)."""

    def __post_init__(self) -> None:
        require(min(*self.well, *self.ill) > 0, "all coefficients a1, a2 must be > 0")
        require(
            1 / max(self.ill) < self.large_lr < 1 / max(self.well),
            f"large_lr must make GD stable on well {self.well} and unstable on ill {self.ill}, "
            f"i.e. lie in (1/{max(self.ill)}, 1/{max(self.well)}), got {self.large_lr}",
        )
        require(any(self.start), "start must differ from the optimum (0, 0)")
        require(0 < self.tol < 1, f"tol must be in (0, 1), got {self.tol}")
        require(self.stay >= 0, f"stay must be >= 0, got {self.stay}")
        require(self.plot_steps >= 1, f"plot_steps must be >= 1, got {self.plot_steps}")
        require(self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        require(
            0 < self.lr_range[0] < self.lr_range[1] and self.lr_points >= 2,
            f"need 0 < lr_range[0] < lr_range[1] and lr_points >= 2, got {self.lr_range}, "
            f"{self.lr_points}",
        )
        require(all(0 <= m < 1 for m in self.momenta) and self.momenta, "momenta must be in [0, 1)")
        require(all(0 <= b < 1 for b in self.betas) and self.betas, "betas must be in [0, 1)")
        require(
            len(self.kappas) >= 2 and all(k >= 1 for k in self.kappas),
            f"kappas needs >= 2 condition numbers >= 1, got {self.kappas}",
        )

    @property
    def lrs(self) -> list[float]:
        """The step-size grid."""
        lo, hi = self.lr_range
        return [float(x) for x in np.logspace(math.log10(lo), math.log10(hi), self.lr_points)]

    @classmethod
    def quick(cls) -> QuadraticConfig:
        return cls(kappas=(1.0, 10.0, 100.0, 1000.0), max_steps=10_000, lr_points=41)


@dataclass(frozen=True)
class _Tuned:
    """A method's best (step, second hyperparameter) on a problem."""

    lr: float | None
    knob: float | None  # m for momentum, beta for RMSProp, a placeholder 0 for GD
    iterations: int | None


def _tune(
    make: Callable[[list[torch.Tensor], float, float], Optimizer],
    knobs: Sequence[float],
    f: Quadratic,
    cfg: QuadraticConfig,
) -> _Tuned:
    """Best (lr, knob) over the grids: the fewest iterations to ``cfg.tol``, ties to the first.

    Every (lr, knob) pair is tried with a budget that grows by 4x (16, 64, ... up to
    ``cfg.max_steps``) until one reaches the tolerance; within a round, a candidate runs only as
    long as it could still beat the best so far. A pair that fails a round needs more
    iterations than that round's budget, so the first round with a success finds the optimum
    of the grid, while slow or circling pairs never cost ``max_steps`` iterations each.
    """
    budget = 16
    while True:
        budget = min(budget, cfg.max_steps)
        best = _Tuned(None, None, None)
        for knob in knobs:
            cap = budget if best.iterations is None else best.iterations - 1
            if cap < 1:
                break
            choice: StepChoice = best_step(
                lambda p, lr, knob=knob: make(p, lr, knob),
                f,
                cfg.start,
                cfg.lrs,
                cfg.tol,
                max_steps=cap,
                stay=cfg.stay,
            )
            if choice.iterations is not None:
                best = _Tuned(choice.lr, knob, choice.iterations)
        if best.iterations is not None or budget >= cfg.max_steps:
            return best
        budget *= 4


def _gd(p: list[torch.Tensor], lr: float, _: float) -> Optimizer:
    return SGD(p, lr=lr)


def _momentum(p: list[torch.Tensor], lr: float, m: float) -> Optimizer:
    return Momentum(p, lr=lr, momentum=m)


def _rmsprop(p: list[torch.Tensor], lr: float, beta: float) -> Optimizer:
    return RMSProp(p, lr=lr, beta=beta)


@experiment("optim.quadratic", topic="optim", config=QuadraticConfig)
def quadratic(cfg: QuadraticConfig, ctx: RunContext) -> Outcome:
    """Ill-conditioning slows GD; momentum and RMSProp reach the optimum in far fewer steps.

    Deterministic: the start point and the grids are fixed, so the seed changes nothing.
    """
    well, ill = Quadratic(*cfg.well), Quadratic(*cfg.ill)
    kappa = ill.condition_number
    methods = {
        "GD": (_gd, (0.0,)),
        "momentum": (_momentum, cfg.momenta),
        "RMSProp": (_rmsprop, cfg.betas),
    }
    # iterations to the tolerance, each method with its best (step, m or beta) from the grids
    tuned: dict[tuple[Quadratic, str], _Tuned] = {}

    def tune(f: Quadratic, name: str) -> _Tuned:
        if (f, name) not in tuned:
            make, knobs = methods[name]
            tuned[f, name] = _tune(make, knobs, f, cfg)
            ctx.log(
                {
                    "a1": f.a1,
                    "a2": f.a2,
                    "kappa": f.condition_number,
                    "method": name,
                    **tuned[f, name].__dict__,
                }
            )
        return tuned[f, name]

    sweep: dict[str, list[_Tuned]] = {name: [] for name in methods}
    with ctx.progress(len(cfg.kappas), "condition numbers") as bar:
        for k in cfg.kappas:
            for name in methods:
                sweep[name].append(tune(Quadratic(ill.a2 / k, ill.a2), name))
            bar.advance()
    tuned_ill = {name: tune(ill, name) for name in methods}

    # the five trajectories of the notes' figures
    gd_small = tuned_ill["GD"].lr or ill.optimal_gd_step
    mom, rms = tuned_ill["momentum"], tuned_ill["RMSProp"]
    panels = [
        ("2a", well, f"GD, step {cfg.large_lr:g}", lambda p: SGD(p, lr=cfg.large_lr)),
        ("2b", ill, f"GD, same step {cfg.large_lr:g}", lambda p: SGD(p, lr=cfg.large_lr)),
        ("2c", ill, f"GD, best stable step {gd_small:.3g}", lambda p: SGD(p, lr=gd_small)),
    ]
    if mom.lr is not None and mom.knob is not None:
        panels.append(
            (
                "3",
                ill,
                f"momentum, step {mom.lr:.3g}, m = {mom.knob:g}",
                lambda p: Momentum(p, lr=mom.lr, momentum=mom.knob),
            )
        )
    if rms.lr is not None and rms.knob is not None:
        panels.append(
            (
                "4",
                ill,
                f"RMSProp, step {rms.lr:.3g}, beta = {rms.knob:g} "
                f"(1st move {rms.lr / math.sqrt(1 - rms.knob):.3g} sign(g))",
                lambda p: RMSProp(p, lr=rms.lr, beta=rms.knob),
            )
        )
    paths = {tag: trajectory(make, f, cfg.start, cfg.plot_steps) for tag, f, _, make in panels}
    beta_small = rms.knob if rms.knob is not None else cfg.betas[0]
    paths["4s"] = trajectory(
        lambda p: RMSProp(p, lr=cfg.rmsprop_small_lr, beta=beta_small),
        ill,
        cfg.start,
        cfg.plot_steps,
    )
    traj_fig = _trajectory_figure(
        cfg, panels, paths, f"step {cfg.rmsprop_small_lr:g}, beta = {beta_small:g}"
    )
    kappa_fig = _kappa_figure(cfg, sweep)

    # claims
    n_gd, n_mom, n_rms = (tuned_ill[n].iterations for n in methods)
    far_fewer = math.sqrt(kappa) / 2
    start_norm = math.hypot(*cfg.start)
    well_progress = float(paths["2a"][-1].norm()) / start_norm
    x2_growth = abs(float(paths["2b"][-1, 1])) / abs(cfg.start[1])
    x1_crawl = abs(float(paths["2c"][-1, 0])) / abs(cfg.start[0])
    gd_counts = [t.iterations for t in sweep["GD"]]
    growth = [b / a if a and b else math.nan for a, b in itertools.pairwise(gd_counts)]
    min_growth = min(growth) if all(map(math.isfinite, growth)) else math.nan
    reached = f"iterations until ||theta|| <= {cfg.tol:g} ||theta^0|| and stays for {cfg.stay} more"

    def ratio(n: int | None) -> float:
        return n_gd / n if n_gd and n else math.nan

    def setting(t: _Tuned) -> str:
        return f"{t.iterations} iterations (step {t.lr:.3g})" if t.lr else "never reached"

    theory = (
        f"theory at kappa = {kappa:g}: best GD contracts by (kappa-1)/(kappa+1) per step, "
        f"about kappa/2 = {kappa / 2:.0f} iterations per factor e; tuned heavy-ball by "
        f"(sqrt(kappa)-1)/(sqrt(kappa)+1), about sqrt(kappa)/2 = {math.sqrt(kappa) / 2:.0f}: a "
        f"ratio of about sqrt(kappa) = {math.sqrt(kappa):.0f}; 'far fewer' is fixed at half of "
        f"it, sqrt(kappa)/2 = {far_fewer:g}"
    )
    claims = [
        Claim.at_most(
            f"fig. 2a: on the well-conditioned problem (kappa = {well.condition_number:g}) GD "
            f"with step {cfg.large_lr:g} gets within {cfg.tol:g} of the start distance in "
            f"{cfg.plot_steps} steps (distance ratio)",
            well_progress,
            cfg.tol,
            detail=f"||theta^{cfg.plot_steps}|| / ||theta^0|| = {well_progress:.2e}",
        ),
        Claim.at_least(
            f"fig. 2b: the same step diverges along x2 on the ill-conditioned problem "
            f"(kappa = {kappa:g}): |x2| grows (ratio after {cfg.plot_steps} steps)",
            x2_growth,
            1.0,
            detail=f"|1 - 2 alpha a2| = {ill.gd_contraction(cfg.large_lr)[1]:.3g} per step",
        ),
        Claim.at_least(
            f"momentum (step and m from the grids) needs far fewer iterations than the best GD "
            f"on the ill-conditioned problem (kappa = {kappa:g}): ratio GD / momentum",
            ratio(n_mom),
            far_fewer,
            detail=f"{reached}: GD {setting(tuned_ill['GD'])}, momentum {setting(mom)}, "
            f"m = {mom.knob}; {theory}",
        ),
        Claim.at_least(
            f"RMSProp (step and beta from the grids) needs far fewer iterations than the best GD "
            f"on the ill-conditioned problem (kappa = {kappa:g}): ratio GD / RMSProp",
            ratio(n_rms),
            far_fewer,
            detail=f"{reached}: GD {setting(tuned_ill['GD'])}, RMSProp {setting(rms)}, "
            f"beta = {rms.knob}; its per-coordinate rescaling undoes the conditioning of this "
            f"axis-aligned quadratic, so it should gain at least as much as momentum; same "
            f"threshold sqrt(kappa)/2",
        ),
        Claim.compare(
            "the best GD's iteration count grows with the condition number (smallest ratio of "
            "counts at consecutive kappas)",
            min_growth,
            ">",
            1.0,
            detail="kappa "
            + ", ".join(f"{k:g}" for k in cfg.kappas)
            + ": iterations "
            + ", ".join(str(n) for n in gd_counts),
        ),
    ]
    metrics: dict[str, Any] = {
        "kappa": kappa,
        "x1_left_after_plot_steps_fig2c": x1_crawl,
        "well_distance_ratio_fig2a": well_progress,
        "x2_growth_fig2b": x2_growth,
    }
    for name, choice in tuned_ill.items():
        key = name.lower()
        metrics[f"{key}_iterations"] = choice.iterations
        metrics[f"{key}_lr"] = choice.lr
        if name != "GD":
            metrics[f"{key}_{'m' if name == 'momentum' else 'beta'}"] = choice.knob
    for name, runs in sweep.items():
        metrics[f"{name.lower()}_iterations_by_kappa"] = [t.iterations for t in runs]
    return Outcome(
        metrics=metrics,
        figures=[ctx.savefig(traj_fig, "trajectories"), ctx.savefig(kappa_fig, "kappa")],
        claims=claims,
    )


def _contours(ax: Any, f: Quadratic, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    x1 = np.linspace(*xlim, 300)
    x2 = np.linspace(*ylim, 300)
    grid = torch.as_tensor(np.stack(np.meshgrid(x1, x2), axis=-1))  # (300, 300, 2)
    values = f.value(grid).numpy()
    top = values.max()
    levels = np.geomspace(top * 1e-4, top, 14)
    ax.contour(x1, x2, values, levels=levels, colors="0.7", linewidths=0.7)


def _trajectory_figure(
    cfg: QuadraticConfig,
    panels: list[tuple[str, Quadratic, str, Callable]],
    paths: dict[str, torch.Tensor],
    extra_label: str = "",
) -> Any:
    fig, axes = figure(ncols=3, nrows=2, size=(4.6, 3.5))
    colors = {"2a": "C0", "2b": "C3", "2c": "C1", "3": "C2", "4": "C4"}
    base_x = (-1.15 * abs(cfg.start[0]), 1.15 * abs(cfg.start[0]))
    base_y = (-2.3 * abs(cfg.start[1]), 2.3 * abs(cfg.start[1]))
    for ax, (tag, f, label, _) in zip(axes, panels, strict=False):
        path = paths[tag].numpy()
        finite = path[np.isfinite(path).all(axis=1)]
        xlim, ylim = base_x, base_y
        if tag == "2a":
            r = 1.15 * math.hypot(*cfg.start)
            xlim = ylim = (-r, r)
        elif tag in ("3", "4"):  # widen the frame to show any overshoot
            xlim = (min(xlim[0], 1.1 * finite[:, 0].min()), max(xlim[1], 1.1 * finite[:, 0].max()))
            ylim = (min(ylim[0], 1.1 * finite[:, 1].min()), max(ylim[1], 1.1 * finite[:, 1].max()))
        _contours(ax, f, xlim, ylim)
        if tag == "2b":  # draw up to the first iterate outside the frame
            outside = np.flatnonzero(np.abs(path[:, 1]) > ylim[1])
            path = path[: (outside[0] + 1 if outside.size else len(path))]
        ax.plot(path[:, 0], path[:, 1], "-o", color=colors[tag], ms=2.5, lw=1)
        ax.plot(*cfg.start, "ks", ms=5)
        ax.plot(0, 0, "k*", ms=10)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        if tag == "2a":
            ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.set_title(
            f"fig. {tag}: a = ({f.a1:g}, {f.a2:g}), kappa = {f.condition_number:g}\n{label}",
            fontsize=9,
        )
        if tag == "2b":
            last = paths[tag][-1, 1].abs().item()
            ax.text(
                0.98,
                0.04,
                f"|x2| grows x{f.gd_contraction(cfg.large_lr)[1]:.2f} per step:\n"
                f"|x2| = {last:.3g} after {cfg.plot_steps} steps",
                transform=ax.transAxes,
                ha="right",
                fontsize=8,
                color=colors[tag],
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
            )
        if tag == "4" and "4s" in paths:
            small = paths["4s"].numpy()
            ax.plot(small[:, 0], small[:, 1], "--", color="C5", lw=1, label=extra_label)
            ax.legend(fontsize=7, loc="lower right")
    ax = axes[5]
    start_norm = math.hypot(*cfg.start)
    for tag, _, label, _ in panels:
        distance = np.linalg.norm(paths[tag].numpy(), axis=1) / start_norm
        ax.semilogy(distance, color=colors[tag], label=f"{tag}: {label}")
    ax.axhline(cfg.tol, color="k", ls=":", lw=0.8, label=f"tolerance {cfg.tol:g}")
    ax.set_ylim(cfg.tol / 1000, 1e6)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("||theta^t|| / ||theta^0||")
    ax.set_title("distance to the optimum", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="upper left")
    fig.suptitle(
        "The notes' figures 2a-c, 3, 4: gradient descent, momentum and RMSProp on "
        "f = a1 x1^2 + a2 x2^2 (square: start, star: optimum)"
    )
    return fig


def _kappa_figure(cfg: QuadraticConfig, sweep: dict[str, list[_Tuned]]) -> Any:
    fig, ax = figure(size=(6.0, 4.2))
    kappas = np.asarray(cfg.kappas)
    for (name, runs), marker in zip(sweep.items(), "osD", strict=True):
        counts = np.array([np.nan if t.iterations is None else t.iterations for t in runs])
        knob = {"GD": " from the grid", "momentum": " and m from the grids"}.get(
            name, " and beta from the grids"
        )
        ax.loglog(kappas, counts, f"-{marker}", label=f"{name} (best step{knob})")
    for name, power, style in (("GD", 1.0, "k:"), ("momentum", 0.5, "k--")):
        counts = np.array([t.iterations or np.nan for t in sweep[name]], dtype=float)
        if np.isfinite(counts[-1]):  # a reference line through the largest kappa's count
            line = counts[-1] * (kappas / kappas[-1]) ** power
            ax.loglog(kappas, line, style, lw=0.8, label=f"slope {power:g} (~ kappa^{power:g})")
    ax.set_xlabel("condition number kappa = a2 / a1")
    ax.set_ylabel(f"iterations to tolerance {cfg.tol:g}")
    ax.set_title("Iterations to reach the optimum vs conditioning", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------
# 2. Adagrad's effective step never grows; RMSProp's does (notes 3.5)


@dataclass(frozen=True)
class DecayConfig:
    """Per-coordinate effective steps alpha / sqrt(s + eps) of Adagrad and RMSProp on digits."""

    hidden: tuple[int, ...] = (64,)
    """Hidden widths of the MLP."""
    epochs: int = 10
    """Training epochs of each run."""
    batch_size: int = 32
    """Minibatch size."""
    adagrad_lr: float = 0.05
    """Adagrad's step alpha."""
    rmsprop_lr: float = 1e-3
    """RMSProp's step alpha."""
    beta: float = 0.9
    """RMSProp's decay beta."""
    eps: float = 1e-8
    """epsilon of both."""
    traced: int = 5
    """Coordinates whose effective step is drawn individually."""

    def __post_init__(self) -> None:
        require(all(h > 0 for h in self.hidden), f"hidden widths must be > 0, got {self.hidden}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(min(self.adagrad_lr, self.rmsprop_lr) > 0, "learning rates must be > 0")
        require(0 <= self.beta < 1, f"beta must be in [0, 1), got {self.beta}")
        require(self.eps >= 0, f"eps must be >= 0, got {self.eps}")
        require(self.traced >= 0, f"traced must be >= 0, got {self.traced}")

    @classmethod
    def quick(cls) -> DecayConfig:
        return cls(epochs=4)


class _EffectiveStepTracker:
    """A step post-hook recording how every coordinate's ``alpha / sqrt(s + eps)`` changes."""

    def __init__(self, traced: torch.Tensor) -> None:
        self.traced = traced  # flat indices of the coordinates drawn individually
        self.previous: torch.Tensor | None = None
        self.max_increase: torch.Tensor | None = None  # per coordinate, over all steps
        self.increases = 0  # (coordinate, step) pairs whose effective step grew
        self.pairs = 0
        self.quantiles: list[list[float]] = []  # per step: 10%, 50%, 90% over coordinates
        self.traces: list[list[float]] = []

    def __call__(self, opt: Optimizer, *_: Any) -> None:
        step = torch.cat([opt.effective_step(p).flatten() for p in _params(opt)])  # (P,)
        if self.previous is not None:
            change = step - self.previous
            self.max_increase = (
                change if self.max_increase is None else torch.maximum(self.max_increase, change)
            )
            self.increases += int((change > 0).sum())
            self.pairs += change.numel()
        self.previous = step
        q = torch.quantile(step.double(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
        self.quantiles.append(q.tolist())
        self.traces.append(step[self.traced].tolist())


def _params(opt: Optimizer) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"]]


@experiment("optim.adagrad_decay", topic="optim", config=DecayConfig)
def adagrad_decay(cfg: DecayConfig, ctx: RunContext) -> Outcome:
    """Adagrad's per-coordinate step only shrinks; RMSProp's can grow again."""
    splits = digits(seed=ctx.seed)
    builders = {
        "Adagrad": lambda p: Adagrad(p, lr=cfg.adagrad_lr, eps=cfg.eps),
        "RMSProp": lambda p: RMSProp(p, lr=cfg.rmsprop_lr, beta=cfg.beta, eps=cfg.eps),
    }
    trackers: dict[str, _EffectiveStepTracker] = {}
    results = {}
    for name, build in builders.items():
        torch.manual_seed(ctx.seed)  # the same initial weights for both
        model = MLP(64, cfg.hidden, splits.num_classes)
        n_params = sum(p.numel() for p in model.parameters())
        first_layer = model.net[0].weight.numel()
        gen = ctx.generator(1)
        traced = torch.randperm(first_layer, generator=gen)[: cfg.traced]
        optimizer = build(list(model.parameters()))
        tracker = _EffectiveStepTracker(traced)
        optimizer.register_step_post_hook(tracker)
        trainer = Trainer(
            model,
            optimizer,
            ctx,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            **INNER_FIT,
            tag=name,
        )
        results[name] = trainer.fit(splits.train, splits.val)
        trackers[name] = tracker
        ctx.log(
            {
                "optimizer": name,
                "steps": len(tracker.quantiles),
                "val_loss": results[name].best["loss"],
                "increases": tracker.increases,
            }
        )

    def ever_increased(t: _EffectiveStepTracker) -> float:
        assert t.max_increase is not None
        return float((t.max_increase > 0).double().mean())

    ada, rms = trackers["Adagrad"], trackers["RMSProp"]
    assert ada.max_increase is not None and rms.max_increase is not None
    ada_max = float(ada.max_increase.max())
    rms_fraction = ever_increased(rms)

    fig, axes = figure(ncols=2, size=(5.2, 3.8))
    for ax, (name, t) in zip(axes, trackers.items(), strict=True):
        q = np.asarray(t.quantiles)
        steps = np.arange(1, len(q) + 1)
        ax.fill_between(steps, q[:, 0], q[:, 2], alpha=0.2, label="10-90% of coordinates")
        ax.plot(steps, q[:, 1], lw=1.5, label="median")
        traces = np.asarray(t.traces)
        for j in range(traces.shape[1]):
            ax.plot(steps, traces[:, j], lw=0.7, alpha=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("update t")
        ax.set_ylabel("effective step alpha / sqrt(s_k + eps)")
        lr = cfg.adagrad_lr if name == "Adagrad" else cfg.rmsprop_lr
        ax.set_title(f"{name} (alpha = {lr:g}), thin lines: single weights", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("Effective per-coordinate step while training an MLP on the digits")
    steps_per_run = len(ada.quantiles)
    return Outcome(
        metrics={
            "parameters": n_params,
            "steps": steps_per_run,
            "adagrad_max_increase": ada_max,
            "adagrad_fraction_increased": ever_increased(ada),
            "rmsprop_max_increase": float(rms.max_increase.max()),
            "rmsprop_fraction_increased": rms_fraction,
            "rmsprop_fraction_step_pairs_increased": rms.increases / max(rms.pairs, 1),
            "adagrad_val_loss": results["Adagrad"].best["loss"],
            "rmsprop_val_loss": results["RMSProp"].best["loss"],
        },
        figures=[ctx.savefig(fig, "effective_steps")],
        claims=[
            Claim.at_most(
                "Adagrad's effective step never increases: largest increase of any coordinate's "
                "alpha / sqrt(s + eps) between consecutive updates",
                ada_max,
                0.0,
                detail=f"{n_params} coordinates x {steps_per_run - 1} consecutive pairs of "
                f"updates; s is a sum of non-negative terms, so this holds exactly",
            ),
            Claim.compare(
                "RMSProp's effective step does increase: fraction of coordinates whose "
                "alpha / sqrt(s + eps) grew at least once",
                rms_fraction,
                ">",
                0.0,
                detail=f"{rms.increases} of {rms.pairs} (coordinate, update) pairs grew; the "
                f"running average forgets large past gradients",
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------
# 3. Minibatch gradients: unbiased, variance ~ 1 / |B| (notes 3.2)


@dataclass(frozen=True)
class NoiseConfig:
    """Minibatch vs full gradient of the digits MLP at its (seeded) initial parameters."""

    hidden: tuple[int, ...] = (64,)
    """Hidden widths of the MLP."""
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    """Minibatch sizes |B| of the sweep."""
    draws: int = 2000
    """Minibatches drawn per size and sampling scheme."""
    autograd_checks: int = 5
    """Minibatches whose gradient is also computed by autograd on the minibatch (spot check)."""
    mean_batch: int = 32
    """The size whose minibatch gradients are averaged for the unbiasedness check."""

    def __post_init__(self) -> None:
        require(all(h > 0 for h in self.hidden), f"hidden widths must be > 0, got {self.hidden}")
        require(
            len(self.batch_sizes) >= 3 and min(self.batch_sizes) >= 1,
            f"batch_sizes needs >= 3 sizes >= 1, got {self.batch_sizes}",
        )
        require(self.draws >= 10, f"draws must be >= 10, got {self.draws}")
        require(
            self.autograd_checks >= 1, f"autograd_checks must be >= 1, got {self.autograd_checks}"
        )
        require(
            self.mean_batch in self.batch_sizes,
            f"mean_batch must be one of batch_sizes {self.batch_sizes}, got {self.mean_batch}",
        )

    @classmethod
    def quick(cls) -> NoiseConfig:
        return cls(draws=500)


Z_MC = 3.0  # a Monte Carlo mean within three standard errors of its target
SLOPE_BAND = 0.1  # the fitted log-log slope must lie in [-1.1, -0.9]


def _flat_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean cross-entropy over (x, y), flattened, by autograd."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])  # (P,)


def _minibatch_gradients(per_example: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Mean of the rows ``idx`` (R, B) of ``per_example`` (N, P), for every draw: (R, P)."""
    return F.embedding_bag(idx, per_example, mode="mean")  # a gather-and-average per row of idx


def per_example_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradients of the loss of every example, shape (N, P) (torch.func.vmap over grad)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),))  # (1, C)
        return F.cross_entropy(out, yi.unsqueeze(0))

    grads = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([grads[k].flatten(1) for k in params], dim=1)  # (N, P)


@experiment("optim.sgd_noise", topic="optim", config=NoiseConfig)
def sgd_noise(cfg: NoiseConfig, ctx: RunContext) -> Outcome:
    """A minibatch gradient is unbiased and its variance falls like 1/|B|."""
    splits = digits(seed=ctx.seed)
    x, y = (t.to(ctx.device) for t in splits.train.tensors)
    x = x.double()
    n = len(y)
    require(max(cfg.batch_sizes) <= n, f"batch sizes must be <= {n} (the training set)")
    torch.manual_seed(ctx.seed)
    model = MLP(64, cfg.hidden, splits.num_classes).double().to(ctx.device)

    g_full = _flat_grad(model, x, y)  # g = grad of the mean loss over the training set, (P,)
    # Every example's gradient, once; a minibatch gradient is then the mean of its rows (the
    # gradient of a mean loss is the mean of the gradients), which the spot check below
    # confirms against autograd on the minibatch itself.
    per_example = per_example_gradients(model, x, y)  # (N, P)
    deviations = per_example - g_full  # G_i - g, (N, P); g_B - g is the mean of B of its rows
    trace_sigma = float((deviations**2).sum(1).mean())  # tr Sigma, population
    deviations32 = deviations.float()  # float32 is ample for the averages and 4x faster
    g_norm = float(g_full.norm())
    gen = ctx.generator(2)
    sizes = sorted(cfg.batch_sizes)
    mc: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}  # (mean, SE) per |B|
    kept: torch.Tensor | None = None  # g_B - g of |B| = mean_batch with replacement, (R, P)
    kept_idx: torch.Tensor | None = None
    with ctx.progress(len(sizes), "batch sizes") as bar:
        for b in sizes:
            for scheme in mc:
                if scheme == "with":  # i.i.d. uniform indices: sampling with replacement
                    idx = torch.randint(n, (cfg.draws, b), generator=gen)
                else:  # b distinct indices (the b smallest of R uniform keys): no replacement
                    idx = torch.rand(cfg.draws, n, generator=gen).topk(b, dim=1).indices
                dev = _minibatch_gradients(deviations32, idx.to(x.device))  # g_B - g, (R, P)
                sq = dev.double().pow(2).sum(1).cpu()  # ||g_B - g||^2 per draw, (R,)
                mean, se = float(sq.mean()), float(sq.std() / math.sqrt(cfg.draws))
                mc[scheme].append((mean, se))
                ctx.log({"batch_size": b, "sampling": scheme, "mean_sq_error": mean, "se": se})
                if scheme == "with" and b == cfg.mean_batch:
                    kept, kept_idx = dev.double(), idx
            bar.advance()
    assert kept is not None and kept_idx is not None
    # spot check: the row means are the gradients autograd gives on those minibatches
    autograd_gap = max(
        float((_flat_grad(model, x[i], y[i]) - g_full - kept[r]).abs().max())
        for r, i in enumerate(kept_idx[: cfg.autograd_checks])
    )
    # ||mean of the first R minibatch gradients - g|| for R = 1, 2, ..., draws
    running = kept.cumsum(0) / torch.arange(1, cfg.draws + 1, device=kept.device)[:, None]
    running_error = running.norm(dim=1).tolist()

    b_arr = np.asarray(sizes, dtype=float)
    with_mean = np.array([m for m, _ in mc["with"]])
    without_mean = np.array([m for m, _ in mc["without"]])
    slope = float(np.polyfit(np.log(b_arr), np.log(with_mean), 1)[0])
    slope_without = float(np.polyfit(np.log(b_arr), np.log(without_mean), 1)[0])
    theory_with = trace_sigma / b_arr
    theory_without = theory_with * (n - b_arr) / (n - 1)  # finite-population correction
    # unbiasedness: the mean of R minibatch gradients has E||mean - g||^2 = tr Sigma / (|B| R)
    error = running_error[-1]
    se = math.sqrt(trace_sigma / (cfg.mean_batch * cfg.draws))
    z = error / se

    fig, (ax_var, ax_mean) = figure(ncols=2, size=(5.2, 3.9))
    ax_var.errorbar(
        b_arr,
        with_mean,
        yerr=2 * np.array([s for _, s in mc["with"]]),
        fmt="o",
        label="with replacement (MC, ±2 SE)",
    )
    ax_var.errorbar(
        b_arr,
        without_mean,
        yerr=2 * np.array([s for _, s in mc["without"]]),
        fmt="s",
        mfc="none",
        label="without replacement (MC, ±2 SE)",
    )
    ax_var.loglog(b_arr, theory_with, "k-", lw=0.8, label="tr Sigma / |B|")
    ax_var.loglog(
        b_arr, theory_without, "k--", lw=0.8, label="tr Sigma / |B| x (N - |B|) / (N - 1)"
    )
    ax_var.set_xlabel("minibatch size |B|")
    ax_var.set_ylabel("E ||g_B - g||^2")
    ax_var.set_title(f"gradient noise vs batch size (fitted slope {slope:.3f})", fontsize=9)
    ax_var.grid(alpha=0.3, which="both")
    ax_var.legend(fontsize=7)
    draws = np.arange(1, len(running_error) + 1)
    ax_mean.loglog(draws, np.asarray(running_error) / g_norm, label="||mean of R g_B - g|| / ||g||")
    ax_mean.loglog(
        draws,
        np.sqrt(trace_sigma / (cfg.mean_batch * draws)) / g_norm,
        "k--",
        lw=0.8,
        label="unbiased: sqrt(tr Sigma / (|B| R)) / ||g||",
    )
    ax_mean.set_xlabel(f"minibatches averaged R (|B| = {cfg.mean_batch}, with replacement)")
    ax_mean.set_ylabel("relative error of the average")
    ax_mean.set_title("the average of minibatch gradients converges to g", fontsize=9)
    ax_mean.grid(alpha=0.3, which="both")
    ax_mean.legend(fontsize=7)
    fig.suptitle(f"Minibatch gradients of an MLP on the digits (N = {n}, {g_full.numel()} weights)")

    relative_dev = float(np.max(np.abs(with_mean / theory_with - 1)))
    relative_dev_without = float(np.max(np.abs(without_mean / theory_without - 1)))
    return Outcome(
        metrics={
            "n_train": n,
            "parameters": g_full.numel(),
            "trace_sigma": trace_sigma,
            "full_grad_norm": g_norm,
            "slope_with_replacement": slope,
            "slope_without_replacement": slope_without,
            "max_rel_dev_with_vs_theory": relative_dev,
            "max_rel_dev_without_vs_fpc_theory": relative_dev_without,
            "mean_normalised_error": error / g_norm,
            "mean_normalised_se": se / g_norm,
            "mean_z": z,
            "autograd_vs_row_mean_max_abs": autograd_gap,
        },
        figures=[ctx.savefig(fig, "gradient_noise")],
        claims=[
            Claim.at_most(
                f"the average of {cfg.draws} minibatch gradients (|B| = {cfg.mean_batch}) "
                f"matches the full gradient within Monte Carlo error: ||mean - g|| / SE",
                z,
                Z_MC,
                detail=f"normalised error ||mean - g|| / ||g|| = {error / g_norm:.4f}, normalised "
                f"SE sqrt(tr Sigma / (|B| R)) / ||g|| = {se / g_norm:.4f}",
            ),
            Claim(
                "E||g_B - g||^2 falls like 1/|B|: fitted log-log slope (sampling with "
                "replacement, so no finite-population correction) within [-1.1, -0.9]",
                measured=slope,
                threshold=-1.0,
                holds=abs(slope + 1) <= SLOPE_BAND,
                comparison=f"within ±{SLOPE_BAND} of",
                detail=f"|B| = {sizes[0]}..{sizes[-1]}, {cfg.draws} draws each; largest "
                f"relative deviation from tr Sigma / |B|: {relative_dev:.3f}. Without "
                f"replacement the slope is {slope_without:.3f}, matching "
                f"tr Sigma / |B| (N - |B|) / (N - 1) within {relative_dev_without:.3f}",
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------
# 4. The six optimisers on the digits (notes 3.1-3.6)


@dataclass(frozen=True)
class CompareConfig:
    """GD, SGD, momentum, RMSProp, Adagrad and Adam training the same MLP on the digits."""

    hidden: tuple[int, ...] = (64,)
    """Hidden widths of the MLP."""
    epochs: int = 30
    """Epochs of every run (equal for all methods)."""
    batch_size: int = 32
    """Minibatch size of every method but GD (which uses the whole training set)."""
    gd_lrs: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    """Step-size grid of full-batch GD."""
    sgd_lrs: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    """Step-size grid of minibatch SGD."""
    momentum_lrs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)
    """Step-size grid of momentum."""
    momentum: float = 0.9
    """Momentum coefficient m."""
    rmsprop_lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    """Step-size grid of RMSProp."""
    rmsprop_beta: float = 0.9
    """RMSProp's decay beta."""
    adagrad_lrs: tuple[float, ...] = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    """Step-size grid of Adagrad."""
    adam_lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    """Step-size grid of Adam."""
    replicates: int = 5
    """Fresh runs of every method at its chosen step (new initialisation and minibatch order,
    shared by all methods within a replicate) that the comparison is measured on: the
    selection runs are biased toward their luck."""

    def __post_init__(self) -> None:
        require(all(h > 0 for h in self.hidden), f"hidden widths must be > 0, got {self.hidden}")
        require(self.replicates >= 2, f"replicates must be >= 2, got {self.replicates}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(
            0 <= self.rmsprop_beta < 1, f"rmsprop_beta must be in [0, 1), got {self.rmsprop_beta}"
        )
        for name, grid in self.grids.items():
            require(bool(grid) and min(grid) > 0, f"the {name} step grid must be non-empty and > 0")

    @property
    def grids(self) -> dict[str, tuple[float, ...]]:
        """Step-size grid of every method."""
        return {
            "GD": self.gd_lrs,
            "SGD": self.sgd_lrs,
            "momentum": self.momentum_lrs,
            "RMSProp": self.rmsprop_lrs,
            "Adagrad": self.adagrad_lrs,
            "Adam": self.adam_lrs,
        }

    @classmethod
    def quick(cls) -> CompareConfig:
        return cls(epochs=10)


def _build(name: str, cfg: CompareConfig, params: list[torch.Tensor], lr: float) -> Optimizer:
    if name in ("GD", "SGD"):
        return SGD(params, lr=lr)
    if name == "momentum":
        return Momentum(params, lr=lr, momentum=cfg.momentum)
    if name == "RMSProp":
        return RMSProp(params, lr=lr, beta=cfg.rmsprop_beta)
    if name == "Adagrad":
        return Adagrad(params, lr=lr)
    if name == "Adam":
        return Adam(params, lr=lr)
    raise ValueError(f"unknown method {name!r}")


SIGNIFICANT_Z = 2.0  # "reaches a lower loss": the mean paired difference is 2 SE above 0
COMPARED = ("momentum", "RMSProp", "Adagrad", "Adam")
_Z_AT_SEEDS = {  # measured: z of each comparison at seeds 0, 1, 2 (quick preset)
    "momentum": "0.2, -2.0, -2.1",
    "RMSProp": "8.2, 0.5, -2.2",
    "Adagrad": "5.8, 0.9, -1.6",
    "Adam": "1.9, 1.2, -1.0",
}
COMPARE_FAILS = {
    name: f"at seeds 0, 1, 2 the z of {name} against SGD is {z}: significant in either direction "
    "depending on the data split and the steps chosen on it, so on the digits no method, "
    "each with its own tuned step, is reliably below SGD"
    for name, z in _Z_AT_SEEDS.items()
}
"""Why each comparison with SGD does not hold reliably (the method's name as key)."""


def _compare_fit(
    name: str, lr: float, cfg: CompareConfig, ctx: RunContext, splits: Any, init_seed: int
) -> tuple[FitResult | None, Trainer]:
    """One run of ``name`` at step ``lr`` from the weights ``torch.manual_seed(init_seed)`` gives,
    with minibatches drawn from ``ctx.seed``; the result is None if it diverged."""
    torch.manual_seed(init_seed)
    model = MLP(64, cfg.hidden, splits.num_classes)
    trainer = Trainer(
        model,
        _build(name, cfg, list(model.parameters()), lr),
        ctx,
        epochs=cfg.epochs,
        batch_size=len(splits.train) if name == "GD" else cfg.batch_size,
        **INNER_FIT,
        tag=f"{name}-lr{lr:g}-init{init_seed}",
    )
    try:
        return trainer.fit(splits.train, splits.val), trainer
    except DivergenceError:
        return None, trainer


def _best_loss(result: FitResult | None) -> float:
    return math.inf if result is None else result.best["loss"]


@experiment("optim.compare_digits", topic="optim", config=CompareConfig)
def compare_digits(cfg: CompareConfig, ctx: RunContext) -> Outcome:
    """Momentum and adaptive methods reach a lower validation loss than SGD in equal epochs."""
    splits = digits(seed=ctx.seed)
    n_train = len(splits.train)
    runs: dict[str, dict[float, Any]] = {name: {} for name in cfg.grids}
    chosen: dict[str, tuple[float, Any, Trainer]] = {}
    total = sum(len(g) for g in cfg.grids.values()) + len(cfg.grids) * cfg.replicates
    with ctx.progress(total, "optimiser x step size, then replicates") as bar:
        # 1. every method's step chosen on validation (all runs from the same weights)
        for name, grid in cfg.grids.items():
            for lr in grid:
                result, trainer = _compare_fit(name, lr, cfg, ctx, splits, ctx.seed)
                runs[name][lr] = result
                ctx.log({"method": name, "lr": lr, "best_val_loss": _best_loss(result)})
                if result is not None and _best_loss(result) < (
                    _best_loss(chosen[name][1]) if name in chosen else math.inf
                ):
                    chosen[name] = (lr, result, trainer)
                bar.advance()
        # 2. fresh replicates at the chosen steps: replicate r gives every method the same new
        #    initial weights and minibatch order, so the differences are paired
        replicate_loss = {name: np.full(cfg.replicates, math.inf) for name in chosen}
        for r in range(cfg.replicates):
            stream = dataclasses.replace(ctx, seed=ctx.seed * 1_000_003 + 1 + r)
            for name, (lr, _, _) in chosen.items():
                result, _ = _compare_fit(name, lr, cfg, stream, splits, ctx.seed * 1_009 + 1 + r)
                replicate_loss[name][r] = _best_loss(result)
                ctx.log(
                    {"method": name, "lr": lr, "replicate": r, "best_val_loss": _best_loss(result)}
                )
                bar.advance()
        bar.advance((len(cfg.grids) - len(chosen)) * cfg.replicates)  # methods that diverged

    tests = {
        name: trainer.evaluate_test(splits.test)[0] for name, (_, _, trainer) in chosen.items()
    }

    fig, (ax_curve, ax_grid, ax_rep) = figure(ncols=3, size=(5.0, 4.0))
    for i, (name, (lr, result, _)) in enumerate(chosen.items()):
        epochs = [r["epoch"] for r in result.history]
        losses = [r["val_loss"] for r in result.history]
        style = "--" if name in ("GD", "SGD") else "-"
        ax_curve.plot(epochs, losses, style, color=f"C{i}", label=f"{name} (step {lr:g})")
        grid = sorted(runs[name])
        values = [runs[name][g].best["loss"] if runs[name][g] else np.nan for g in grid]
        ax_grid.plot(grid, values, f"{style}o", color=f"C{i}", label=name)
    ax_curve.set_yscale("log")
    ax_curve.set_xlabel("epoch")
    ax_curve.set_ylabel("validation loss (cross-entropy)")
    ax_curve.set_title("validation loss, best step of each method", fontsize=9)
    ax_curve.grid(alpha=0.3, which="both")
    ax_curve.legend(fontsize=7)
    ax_grid.set_xscale("log")
    ax_grid.set_yscale("log")
    ax_grid.set_xlabel("step size alpha")
    ax_grid.set_ylabel(f"lowest validation loss in {cfg.epochs} epochs")
    ax_grid.set_title("step-size grids (missing point: diverged)", fontsize=9)
    ax_grid.grid(alpha=0.3, which="both")
    ax_grid.legend(fontsize=7)
    names = list(chosen)
    for i, name in enumerate(names):
        losses = replicate_loss[name][np.isfinite(replicate_loss[name])]
        ax_rep.scatter(np.full(len(losses), i), losses, color=f"C{i}", s=14, alpha=0.7)
        if len(losses) > 1:
            se = losses.std(ddof=1) / math.sqrt(len(losses))
            ax_rep.errorbar(i + 0.2, losses.mean(), yerr=2 * se, fmt="_k", capsize=3)
    ax_rep.set_xticks(range(len(names)), names, rotation=30)
    ax_rep.set_ylabel(f"lowest validation loss in {cfg.epochs} epochs")
    ax_rep.set_title(
        f"{cfg.replicates} fresh replicates at the chosen steps\n(black: mean ± 2 SE)", fontsize=9
    )
    ax_rep.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"The notes' optimisers training an MLP {(64, *cfg.hidden, 10)} on the digits "
        f"({cfg.epochs} epochs; GD full batch, others |B| = {cfg.batch_size})"
    )

    def paired(worse: str, better: str) -> tuple[float, float, float]:
        """Mean and SE of loss[worse] - loss[better] over the replicates, and z = mean / SE."""
        diff = replicate_loss[worse] - replicate_loss[better]
        if not np.all(np.isfinite(diff)):
            return math.nan, math.nan, math.nan
        mean, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))
        return mean, se, (mean / se if se > 0 else math.copysign(math.inf, mean))

    def claim(worse: str, better: str, statement: str, known_failure: str = "") -> Claim:
        mean, se, z = paired(worse, better)
        wins = int(np.sum(replicate_loss[better] < replicate_loss[worse]))
        return Claim.at_least(
            f"{statement} (z of the mean paired difference of validation losses, "
            f"{worse}'s minus {better}'s, over {cfg.replicates} replicates)",
            z,
            SIGNIFICANT_Z,
            detail=f"difference {mean:+.4f} ± {se:.4f} (mean ± SE); {better} lower in {wins} "
            f"of {cfg.replicates}; steps chosen on validation: {better} {chosen[better][0]:g}, "
            f"{worse} {chosen[worse][0]:g}; each loss the lowest over {cfg.epochs} epochs of "
            "a run from fresh weights and minibatch order shared by all methods",
            known_failure=known_failure,
        )

    claims = [
        claim(
            "SGD",
            name,
            f"{name} reaches a lower validation loss than plain SGD within {cfg.epochs} epochs",
            known_failure=COMPARE_FAILS.get(name, ""),
        )
        for name in COMPARED
        if name in chosen and "SGD" in chosen
    ]
    if "GD" in chosen and "SGD" in chosen:
        claims.append(
            claim(
                "GD",
                "SGD",
                f"with equal epochs (passes over the data), minibatch SGD reaches a lower "
                f"validation loss than full-batch GD ({cfg.epochs} steps against "
                f"{cfg.epochs * math.ceil(n_train / cfg.batch_size)})",
            )
        )
    metrics: dict[str, Any] = {"n_train": n_train, "epochs": cfg.epochs}
    for name, (lr, result, _) in chosen.items():
        key = name.lower()
        metrics[f"{key}_lr"] = lr
        metrics[f"{key}_val_loss"] = result.best["loss"]
        metrics[f"{key}_replicate_val_loss_mean"] = float(replicate_loss[name].mean())
        if name in COMPARED and "SGD" in chosen:
            mean, se, _ = paired("SGD", name)
            metrics[f"sgd_minus_{key}_mean"], metrics[f"sgd_minus_{key}_se"] = mean, se
        metrics[f"{key}_best_epoch"] = result.best_epoch
        metrics[f"{key}_test_loss"] = tests[name]["loss"]
        metrics[f"{key}_test_acc"] = tests[name]["acc"]
    return Outcome(metrics=metrics, figures=[ctx.savefig(fig, "validation_loss")], claims=claims)
