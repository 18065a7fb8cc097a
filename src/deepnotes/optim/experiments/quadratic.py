"""GD, momentum and RMSProp on an ill-conditioned quadratic. Notes: discussion 2, sections 3.3
"When does gradient descent work poorly?", 3.4 "SGD with momentum" and 3.5 "RMSProp and
Adagrad" (figures 2a-c, 3 and 4).

On ``f = a1 x1^2 + a2 x2^2`` every method gets its best step size (and momentum m or decay
beta) from log-spaced grids: the setting reaching ``||theta|| <= tol ||theta^0||`` (and staying
there) in the fewest iterations. Claims:

- ``fig2a_well_quick``: on the well-conditioned problem GD with its best step reaches the
  tolerance within the figure's ``plot_steps`` iterations ("quick steady progress"). The
  threshold is the horizon of the notes' figure, fixed before the run.
- ``fig2b_same_step_diverges``: the step chosen on the well-conditioned problem alone makes GD
  diverge along x2 on the ill-conditioned one: ``|x2|`` after ``plot_steps`` steps is larger
  than at the start. Nothing in the config forces this (the step is measured on the other
  problem, and an ill-conditioned problem with a small ``a2`` would not diverge); the matching
  check ``fig2b_closed_form`` confirms the trajectory equals GD's closed form
  ``x2^t = (1 - 2 alpha a2)^t x2^0``, an identity of the implementation.
- ``momentum_far_fewer``, ``rmsprop_far_fewer``: on the ill-conditioned problem each needs far
  fewer iterations than the best GD. Theory (Polyak's heavy ball on a quadratic): best GD needs
  about ``kappa / 2`` iterations per factor e, tuned momentum about ``sqrt(kappa) / 2``: a ratio
  of about ``sqrt(kappa)``; "far fewer" is fixed at half of it, ``sqrt(kappa) / 2``.
- ``gd_slows_with_kappa``: the best GD's iteration count grows with the condition number.

A method that reaches the tolerance at no setting of its grids makes its claims not hold, with
a NaN measurement and a detail saying so. Deterministic: no random numbers are drawn, so the
seed changes nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.optim.optimizers import SGD, Momentum, RMSProp
from deepnotes.optim.quadratic import Quadratic, Setting, best_setting, trajectory

METHODS = ("GD", "momentum", "RMSProp")
"""The methods tuned and compared, in this order."""


@dataclass(frozen=True)
class QuadraticConfig:
    """GD, momentum and RMSProp on f = a1 x1^2 + a2 x2^2 (the notes' figures 2a-c, 3 and 4)."""

    well: tuple[float, float] = (1.0, 1.0)
    """(a1, a2) of the well-conditioned problem (figure 2a)."""
    ill: tuple[float, float] = (0.025, 2.5)
    """(a1, a2) of the ill-conditioned problem (figures 2b, 2c, 3, 4); kappa = a2 / a1."""
    start: tuple[float, float] = (-9.0, 1.5)
    """theta^0 of every run (x2 != 0, so that the growth of |x2| is defined)."""
    plot_steps: int = 40
    """Iterations drawn in each trajectory panel; figure 2a's 'quick' horizon."""
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
        require(self.start[1] != 0, f"start must have x2 != 0, got {self.start}")
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
            self.rmsprop_small_lr > 0, f"rmsprop_small_lr must be > 0, got {self.rmsprop_small_lr}"
        )
        require(
            len(self.kappas) >= 2 and all(k >= 1 for k in self.kappas),
            f"kappas needs >= 2 condition numbers >= 1, got {self.kappas}",
        )

    @property
    def lrs(self) -> list[float]:
        """The step-size grid."""
        lo, hi = self.lr_range
        return [float(x) for x in np.logspace(math.log10(lo), math.log10(hi), self.lr_points)]

    @property
    def far_fewer(self) -> float:
        """The ratio of iterations (best GD / method) that counts as "far fewer":
        sqrt(kappa) / 2 of the ill-conditioned problem (half the heavy-ball theory's gain)."""
        return math.sqrt(Quadratic(*self.ill).condition_number) / 2

    @classmethod
    def quick(cls) -> QuadraticConfig:
        return cls(kappas=(1.0, 10.0, 100.0, 1000.0), max_steps=10_000, lr_points=41)


@dataclass(frozen=True)
class QuadraticMeasurements:
    """Everything :func:`measure` found: the tuned settings, the sweep and the trajectories."""

    well_gd: Setting
    """GD's best step on the well-conditioned problem (the step of figures 2a and 2b)."""
    ill: dict[str, Setting]
    """Each method's best setting on the ill-conditioned problem (by name of :data:`METHODS`)."""
    sweep: dict[str, list[Setting]]
    """Each method's best setting at every condition number of ``cfg.kappas``."""
    paths: dict[str, np.ndarray]
    """Iterates theta^0..theta^plot_steps, (plot_steps + 1, 2), by panel: "2a", "2b", "2c", "3",
    "4", "4s" (RMSProp at the small step); a panel whose method reached nothing is absent."""

    def metrics(self) -> dict[str, Any]:
        """The scalars (and per-kappa lists) for ``outcome.json``."""
        out: dict[str, Any] = {
            "well_gd_lr": self.well_gd.lr,
            "well_gd_iterations": self.well_gd.iterations,
            "x2_growth_fig2b": x2_growth(self.paths.get("2b")),
        }
        if "2c" in self.paths:
            path = self.paths["2c"]
            out["x1_left_after_plot_steps_fig2c"] = float(abs(path[-1, 0] / path[0, 0]))
        for name, choice in self.ill.items():
            key = name.lower()
            out[f"{key}_iterations"] = choice.iterations
            out[f"{key}_lr"] = choice.lr
            if name != "GD":
                out[f"{key}_{'m' if name == 'momentum' else 'beta'}"] = choice.knob
        for name, runs in self.sweep.items():
            out[f"{name.lower()}_iterations_by_kappa"] = [t.iterations for t in runs]
        return out


def x2_growth(path: np.ndarray | None) -> float:
    """``|x2^T| / |x2^0|`` of a trajectory (T its last iterate; NaN without a trajectory or when
    the last iterate is NaN; inf when it overflowed)."""
    if path is None:
        return math.nan
    return float(abs(path[-1, 1]) / abs(path[0, 1]))


def _make(name: str) -> Callable[[list[torch.Tensor], float, float], Optimizer]:
    """``(params, lr, knob) -> Optimizer`` of a method of :data:`METHODS`."""

    def build(params: list[torch.Tensor], lr: float, knob: float) -> Optimizer:
        if name == "GD":
            return SGD(params, lr=lr)
        if name == "momentum":
            return Momentum(params, lr=lr, momentum=knob)
        return RMSProp(params, lr=lr, beta=knob)

    return build


def _knobs(name: str, cfg: QuadraticConfig) -> tuple[float, ...]:
    return {"GD": (0.0,), "momentum": cfg.momenta, "RMSProp": cfg.betas}[name]


def measure(cfg: QuadraticConfig, ctx: RunContext) -> QuadraticMeasurements:
    """Tune every method on every problem (each tuning cached), then run the figures' paths."""
    well, ill = Quadratic(*cfg.well), Quadratic(*cfg.ill)

    def tune(f: Quadratic, name: str) -> Setting:
        key = {
            "a1": f.a1,
            "a2": f.a2,
            "method": name,
            "knobs": list(_knobs(name, cfg)),
            "lrs": cfg.lrs,
            "start": list(cfg.start),
            "tol": cfg.tol,
            "stay": cfg.stay,
            "max_steps": cfg.max_steps,
        }

        def compute() -> dict[str, Any]:
            found = best_setting(
                _make(name),
                _knobs(name, cfg),
                f,
                cfg.start,
                cfg.lrs,
                cfg.tol,
                max_steps=cfg.max_steps,
                stay=cfg.stay,
            )
            ctx.log({"a1": f.a1, "a2": f.a2, "method": name, **dataclasses.asdict(found)})
            return dataclasses.asdict(found)

        return Setting(**ctx.cached("tune", key, compute))

    sweep: dict[str, list[Setting]] = {name: [] for name in METHODS}
    with ctx.progress(len(cfg.kappas) + 1, "condition numbers") as bar:
        for k in cfg.kappas:
            for name in METHODS:
                sweep[name].append(tune(Quadratic(ill.a2 / k, ill.a2), name))
            bar.advance()
        well_gd = tune(well, "GD")
        tuned_ill = {name: tune(ill, name) for name in METHODS}
        bar.advance()

    def path(f: Quadratic, name: str, lr: float, knob: float) -> np.ndarray:
        make = _make(name)
        return trajectory(lambda p: make(p, lr, knob), f, cfg.start, cfg.plot_steps).numpy()

    paths: dict[str, np.ndarray] = {}
    if well_gd.lr is not None:
        paths["2a"] = path(well, "GD", well_gd.lr, 0.0)
        paths["2b"] = path(ill, "GD", well_gd.lr, 0.0)  # the same step, the other problem
    for tag, name in (("2c", "GD"), ("3", "momentum"), ("4", "RMSProp")):
        s = tuned_ill[name]
        if s.lr is not None and s.knob is not None:
            paths[tag] = path(ill, name, s.lr, s.knob)
    rms = tuned_ill["RMSProp"]
    beta_small = rms.knob if rms.knob is not None else cfg.betas[0]
    paths["4s"] = path(ill, "RMSProp", cfg.rmsprop_small_lr, beta_small)
    return QuadraticMeasurements(well_gd=well_gd, ill=tuned_ill, sweep=sweep, paths=paths)


# ---------------------------------------------------------------------------------------------
# Figures


def _labels(m: QuadraticMeasurements) -> dict[str, str]:
    labels: dict[str, str] = {}
    if m.well_gd.lr is not None:
        labels["2a"] = f"GD, its best step {m.well_gd.lr:.3g}"
        labels["2b"] = f"GD, the same step {m.well_gd.lr:.3g}"
    gd, mom, rms = (m.ill[n] for n in METHODS)
    if gd.lr is not None:
        labels["2c"] = f"GD, its best step here {gd.lr:.3g}"
    if mom.lr is not None:
        labels["3"] = f"momentum, step {mom.lr:.3g}, m = {mom.knob:g}"
    if rms.lr is not None and rms.knob is not None:
        labels["4"] = (
            f"RMSProp, step {rms.lr:.3g}, beta = {rms.knob:g} "
            f"(1st move {rms.lr / math.sqrt(1 - rms.knob):.3g} sign(g))"
        )
    return labels


def _contours(ax: Any, f: Quadratic, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    x1 = np.linspace(*xlim, 300)
    x2 = np.linspace(*ylim, 300)
    grid = torch.as_tensor(np.stack(np.meshgrid(x1, x2), axis=-1))  # (300, 300, 2)
    values = f.value(grid).numpy()
    top = values.max()
    levels = np.geomspace(top * 1e-4, top, 14)
    ax.contour(x1, x2, values, levels=levels, colors="0.7", linewidths=0.7)


def _trajectory_figure(m: QuadraticMeasurements, cfg: QuadraticConfig) -> Any:
    well, ill = Quadratic(*cfg.well), Quadratic(*cfg.ill)
    fig, axes = figure(ncols=3, nrows=2, size=(4.6, 3.5))
    colors = {"2a": "C0", "2b": "C3", "2c": "C1", "3": "C2", "4": "C4"}
    labels = _labels(m)
    panels = [tag for tag in colors if tag in m.paths]
    base_x = (-1.15 * abs(cfg.start[0]), 1.15 * abs(cfg.start[0]))
    base_y = (-2.3 * abs(cfg.start[1]), 2.3 * abs(cfg.start[1]))
    for ax, tag in zip(axes, ["2a", "2b", "2c", "3", "4"], strict=False):
        if tag not in m.paths:
            ax.text(0.5, 0.5, f"fig. {tag}: no setting of the grids\nreached the tolerance",
                    ha="center", va="center", transform=ax.transAxes)  # fmt: skip
            ax.set_axis_off()
            continue
        f = well if tag == "2a" else ill
        path = m.paths[tag]
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
            outside = np.flatnonzero(~(np.abs(path[:, 1]) <= ylim[1]))
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
            f"fig. {tag}: a = ({f.a1:g}, {f.a2:g}), kappa = {f.condition_number:g}\n{labels[tag]}",
            fontsize=9,
        )
        if tag == "2b":
            ax.text(
                0.98,
                0.04,
                f"|x2| x{x2_growth(m.paths['2b']):.3g} after {cfg.plot_steps} steps",
                transform=ax.transAxes,
                ha="right",
                fontsize=8,
                color=colors[tag],
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
            )
        if tag == "4":
            small = m.paths["4s"]
            ax.plot(small[:, 0], small[:, 1], "--", color="C5", lw=1,
                    label=f"step {cfg.rmsprop_small_lr:g}")  # fmt: skip
            ax.legend(fontsize=7, loc="lower right")
    ax = axes[5]
    start_norm = math.hypot(*cfg.start)
    for tag in panels:
        distance = np.linalg.norm(m.paths[tag], axis=1) / start_norm
        ax.semilogy(distance, color=colors[tag], label=f"{tag}: {labels[tag]}")
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


def _kappa_figure(m: QuadraticMeasurements, cfg: QuadraticConfig) -> Any:
    fig, ax = figure(size=(6.0, 4.2))
    kappas = np.asarray(cfg.kappas)
    knob = {"GD": " from the grid", "momentum": " and m from the grids"}
    for (name, runs), marker in zip(m.sweep.items(), "osD", strict=True):
        counts = np.array([np.nan if t.iterations is None else t.iterations for t in runs])
        label = f"{name} (best step{knob.get(name, ' and beta from the grids')})"
        ax.loglog(kappas, counts, f"-{marker}", label=label)
    for name, power, style in (("GD", 1.0, "k:"), ("momentum", 0.5, "k--")):
        counts = np.array([t.iterations or np.nan for t in m.sweep[name]], dtype=float)
        if np.isfinite(counts[-1]):  # a reference line through the largest kappa's count
            line = counts[-1] * (kappas / kappas[-1]) ** power
            ax.loglog(kappas, line, style, lw=0.8, label=f"slope {power:g} (~ kappa^{power:g})")
    ax.set_xlabel("condition number kappa = a2 / a1")
    ax.set_ylabel(f"iterations to tolerance {cfg.tol:g}")
    ax.set_title("Iterations to reach the optimum vs conditioning", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def draw(m: QuadraticMeasurements, cfg: QuadraticConfig, ctx: RunContext) -> list[Path]:
    """The trajectories of figures 2a-c, 3, 4 and the iterations against the condition number."""
    return [
        ctx.savefig(_trajectory_figure(m, cfg), "trajectories"),
        ctx.savefig(_kappa_figure(m, cfg), "kappa"),
    ]


# ---------------------------------------------------------------------------------------------
# Claims


def _setting(s: Setting) -> str:
    if s.iterations is None:
        return "never reached the tolerance at any setting of its grids (diverged or too slow)"
    return f"{s.iterations} iterations (step {s.lr:.3g})"


def claims(m: QuadraticMeasurements, cfg: QuadraticConfig) -> list[Claim]:
    """The verdicts, from the record and the config only."""
    well, ill = Quadratic(*cfg.well), Quadratic(*cfg.ill)
    kappa = ill.condition_number
    reached = f"iterations until ||theta|| <= {cfg.tol:g} ||theta^0|| and stays for {cfg.stay} more"
    alpha = m.well_gd.lr
    no_step = "no step of the grid reached the tolerance on the well-conditioned problem"

    # figure 2b: the step chosen on the well-conditioned problem, run on the ill-conditioned one
    growth = x2_growth(m.paths.get("2b"))
    if alpha is None or "2b" not in m.paths:
        growth_detail, closed_gap, closed_detail = no_step, math.nan, no_step
    else:
        x2 = m.paths["2b"][:, 1]
        flips = int(np.sum(np.sign(x2[1:]) != np.sign(x2[:-1])))
        factor = ill.gd_contraction(alpha)[1]
        growth_detail = (
            f"step {alpha:.3g} chosen on a = {cfg.well} alone; on a = {cfg.ill} x2 changed sign "
            f"{flips} times in {cfg.plot_steps} steps (oscillation)"
        )
        expected = abs(cfg.start[1]) * factor**cfg.plot_steps
        closed_gap = abs(abs(float(x2[-1])) - expected) / expected if expected > 0 else math.nan
        closed_detail = f"|1 - 2 alpha a2| = {factor:.4g} per step; |x2^T| = {abs(x2[-1]):.6g}"

    def ratio(name: str) -> tuple[float, str]:
        n_gd, n = m.ill["GD"].iterations, m.ill[name].iterations
        s = m.ill[name]
        knob = "m" if name == "momentum" else "beta"
        text = f"{reached}: GD {_setting(m.ill['GD'])}, {name} {_setting(s)}"
        if s.knob is not None:
            text += f", {knob} = {s.knob:g}"
        return (n_gd / n if n_gd and n else math.nan), text

    theory = (
        f"theory at kappa = {kappa:g}: best GD contracts by (kappa-1)/(kappa+1) per step, "
        f"about kappa/2 = {kappa / 2:.0f} iterations per factor e; tuned heavy-ball by "
        f"(sqrt(kappa)-1)/(sqrt(kappa)+1), about sqrt(kappa)/2 = {math.sqrt(kappa) / 2:.0f}: a "
        f"ratio of about sqrt(kappa) = {math.sqrt(kappa):.0f}; 'far fewer' is fixed at half of "
        f"it, sqrt(kappa)/2 = {cfg.far_fewer:g}"
    )
    r_mom, d_mom = ratio("momentum")
    r_rms, d_rms = ratio("RMSProp")

    gd_counts = [t.iterations for t in m.sweep["GD"]]
    steps = [b / a if a and b else math.nan for a, b in itertools.pairwise(gd_counts)]
    min_growth = min(steps) if all(map(math.isfinite, steps)) else math.nan
    counts = ", ".join("never" if n is None else str(n) for n in gd_counts)

    return [
        Claim.at_most(
            f"fig. 2a: on the well-conditioned problem (kappa = {well.condition_number:g}) GD "
            f"with its best step from the grid reaches the optimum within the figure's "
            f"{cfg.plot_steps} steps (iterations to the tolerance)",
            math.nan if m.well_gd.iterations is None else m.well_gd.iterations,
            cfg.plot_steps,
            detail=f"{reached}: {_setting(m.well_gd)}",
            key="fig2a_well_quick",
        ),
        Claim.compare(
            f"fig. 2b: the step that is best on the well-conditioned problem makes GD diverge "
            f"along x2 on the ill-conditioned one (kappa = {kappa:g}): |x2| after "
            f"{cfg.plot_steps} steps over |x2| at the start",
            growth,
            ">",
            1.0,
            detail=growth_detail,
            key="fig2b_same_step_diverges",
        ),
        Claim.at_most(
            "fig. 2b's trajectory equals GD's closed form x2^t = (1 - 2 alpha a2)^t x2^0 "
            "(relative error of |x2| after the last step)",
            closed_gap,
            1e-9,
            detail=closed_detail,
            key="fig2b_closed_form",
            kind="check",
        ),
        Claim.at_least(
            f"momentum (step and m from the grids) needs far fewer iterations than the best GD "
            f"on the ill-conditioned problem (kappa = {kappa:g}): ratio GD / momentum",
            r_mom,
            cfg.far_fewer,
            detail=f"{d_mom}; {theory}",
            key="momentum_far_fewer",
        ),
        Claim.at_least(
            f"RMSProp (step and beta from the grids) needs far fewer iterations than the best GD "
            f"on the ill-conditioned problem (kappa = {kappa:g}): ratio GD / RMSProp",
            r_rms,
            cfg.far_fewer,
            detail=f"{d_rms}; its per-coordinate rescaling undoes the conditioning of this "
            "axis-aligned quadratic, so it should gain at least as much as momentum; same "
            "threshold sqrt(kappa)/2",
            key="rmsprop_far_fewer",
        ),
        Claim.compare(
            "the best GD's iteration count grows with the condition number (smallest ratio of "
            "counts at consecutive kappas)",
            min_growth,
            ">",
            1.0,
            detail="kappa " + ", ".join(f"{k:g}" for k in cfg.kappas) + f": iterations {counts}",
            key="gd_slows_with_kappa",
        ),
    ]


@experiment(
    "optim.quadratic",
    topic="optim",
    config=QuadraticConfig,
    claims=(
        "fig2a_well_quick",
        "fig2b_same_step_diverges",
        "momentum_far_fewer",
        "rmsprop_far_fewer",
        "gd_slows_with_kappa",
    ),
    checks=("fig2b_closed_form",),
)
def quadratic(cfg: QuadraticConfig, ctx: RunContext) -> Outcome:
    """On an ill-conditioned quadratic the step that suits a well-conditioned one makes gradient
    descent diverge, and momentum and RMSProp reach the optimum in far fewer steps than GD."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
