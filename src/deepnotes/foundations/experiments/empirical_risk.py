"""Risk vs empirical risk. Notes: discussion 1, section "Loss functions & risk functions"
(definitions 9-10: the risk is the expected loss; the empirical risk, its average over a sample,
approximates it; "is empirical risk minimization the same as true risk minimization?").

Two studies: (1) OLS fitted on many training sets of each size n (Gaussian design): the training
(empirical) risk of the fitted model against its exact true risk; (2) two fixed models (a linear
regressor under squared loss, a linear classifier under zero-one loss) evaluated on many fresh
samples of each size n.

Claims:

- ``training_risk_optimistic``: the training risk of a fitted model underestimates its true risk
  at every n (one-sided test of the per-fit gaps, Bonferroni over the sizes; the weakest n
  decides; house policy of :mod:`deepnotes.core.stats`).
- ``optimism_closed_form``: the mean training and true risks match sigma^2 (n-d)/n and
  sigma^2 (1 + d/(n-d-1)) (max |z| within the two-sided Bonferroni bound at ``alpha``).
- ``convergence_squared``, ``convergence_zero_one``: for a fixed model the mean |empirical risk
  - risk| falls like 1/sqrt(n): the fitted log-log slope is within ``SLOPE_TOLERANCE`` = 0.1 of
  -1/2 (the central limit theorem's exponent for large n), a tolerance fixed before the first
  run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.foundations import estimation as est

SLOPE_TOLERANCE = 0.1
"""|fitted log-log slope - (-1/2)| allowed for the 1/sqrt(n) law (fixed before the first run)."""


@dataclass(frozen=True)
class EmpiricalRiskConfig:
    """Training risk of fitted OLS models vs their true risk, and convergence for fixed models."""

    d: int = 5
    """Features of the linear model (x ~ N(0, I_d))."""
    sigma: float = 1.0
    """Label noise standard deviation of the regression task (> 0)."""
    train_sizes: tuple[int, ...] = (15, 20, 30, 50, 100, 200)
    """Training-set sizes of the optimism study."""
    fits: int = 50_000
    """OLS fits per training-set size."""
    eval_sizes: tuple[int, ...] = (10, 30, 100, 300, 1000, 3000, 10_000)
    """Sample sizes at which the empirical risk of the fixed models is measured."""
    eval_repeats: int = 3000
    """Fresh samples per size for the fixed models."""
    flip_probability: float = 0.1
    """Label-flip probability of the classification task (zero-one loss)."""
    alpha: float = stats.ALPHA_AGREEMENT
    """Family-wise false-alarm rate of the agreement claim (Bonferroni)."""

    def __post_init__(self) -> None:
        require(self.d >= 1, f"d must be >= 1, got {self.d}")
        require(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        require(
            len(self.train_sizes) >= 1 and min(self.train_sizes) > self.d + 3,
            f"train sizes must exceed d + 3 = {self.d + 3} (finite variance of the true risk), "
            f"got {self.train_sizes}",
        )
        require(
            len(self.eval_sizes) >= 3 and min(self.eval_sizes) >= 1,
            f"eval_sizes needs >= 3 sizes >= 1, got {self.eval_sizes}",
        )
        require(self.fits >= 100, f"fits must be >= 100, got {self.fits}")
        require(self.eval_repeats >= 50, f"eval_repeats must be >= 50, got {self.eval_repeats}")
        require(
            0 <= self.flip_probability < 0.5,
            f"flip_probability must be in [0, 0.5), got {self.flip_probability}",
        )
        require(0 < self.alpha < 0.5, f"alpha must be in (0, 0.5), got {self.alpha}")

    @classmethod
    def quick(cls) -> EmpiricalRiskConfig:
        return cls(fits=8000, eval_repeats=400)


@dataclass(frozen=True)
class EmpiricalRiskMeasurements:
    """Risks of the fitted OLS models per training size and of the fixed models per sample
    size."""

    train_sizes: np.ndarray
    """Training-set sizes n, (S,)."""
    d: int
    """Features."""
    sigma: float
    """Label noise standard deviation."""
    empirical: np.ndarray
    """Mean training risk of the fits, (S,)."""
    empirical_se: np.ndarray
    """Its standard error, (S,)."""
    true: np.ndarray
    """Mean true risk of the fits, (S,)."""
    true_se: np.ndarray
    """Its standard error, (S,)."""
    optimism: list[np.ndarray]
    """Per size, true risk minus training risk of every fit, (fits,) each."""
    scatter: tuple[np.ndarray, np.ndarray]
    """Training and true risks of up to 1500 fits at the smallest size (figure)."""
    eval_sizes: np.ndarray
    """Evaluation sample sizes, (E,)."""
    risk_squared: float
    """Exact risk of the fixed regressor."""
    risk_zero_one: float
    """Exact risk of the fixed classifier."""
    mad_squared: np.ndarray
    """Mean |empirical - true| risk of the fixed regressor, (E,)."""
    mad_squared_se: np.ndarray
    """Its standard error, (E,)."""
    mad_zero_one: np.ndarray
    """Mean |empirical - true| risk of the fixed classifier, (E,)."""
    mad_zero_one_se: np.ndarray
    """Its standard error, (E,)."""

    @property
    def theory_empirical(self) -> np.ndarray:
        return np.array(
            [est.ols_expected_training_risk(int(n), self.d, self.sigma) for n in self.train_sizes]
        )

    @property
    def theory_true(self) -> np.ndarray:
        return np.array(
            [
                est.ols_expected_risk_gaussian_design(int(n), self.d, self.sigma)
                for n in self.train_sizes
            ]
        )

    def slopes(self) -> tuple[float, float]:
        """Log-log slopes of the mean absolute deviation on n (squared, zero-one); NaN when a
        deviation is not positive."""
        out = []
        for values in (self.mad_squared, self.mad_zero_one):
            ok = np.all(values > 0) and np.all(np.isfinite(values))
            out.append(est.loglog_slope(self.eval_sizes, values) if ok else math.nan)
        return out[0], out[1]

    def metrics(self) -> dict[str, float | list[float]]:
        gaps = [stats.mean_se(g) for g in self.optimism]
        slope_sq, slope_01 = self.slopes()
        return {
            "train_sizes": [int(n) for n in self.train_sizes],
            "empirical_risk": self.empirical.tolist(),
            "true_risk": self.true.tolist(),
            "optimism": [g[0] for g in gaps],
            "optimism_se": [g[1] for g in gaps],
            "eval_sizes": [int(n) for n in self.eval_sizes],
            "mad_squared": self.mad_squared.tolist(),
            "mad_zero_one": self.mad_zero_one.tolist(),
            "risk_squared": self.risk_squared,
            "risk_zero_one": self.risk_zero_one,
            "slope_squared": slope_sq,
            "slope_zero_one": slope_01,
        }


def measure(cfg: EmpiricalRiskConfig, ctx: RunContext) -> EmpiricalRiskMeasurements:
    """Fit OLS ``fits`` times per training size; evaluate the fixed models ``eval_repeats``
    times per sample size (each size from its own stream)."""
    d, sigma = cfg.d, cfg.sigma
    problem = ctx.numpy_rng("problem")
    theta = problem.standard_normal(d)
    sizes = np.array(cfg.train_sizes)
    emp, emp_se, true, true_se = (np.zeros(len(sizes)) for _ in range(4))
    optimism: list[np.ndarray] = []
    scatter: tuple[np.ndarray, np.ndarray] | None = None
    with ctx.progress(len(sizes), "training-set sizes") as bar:
        for i, n in enumerate(sizes):
            train_risk, true_risk = est.simulate_ols_risks(
                ctx.numpy_rng("fits", int(n)), int(n), theta, sigma, cfg.fits
            )
            emp[i], emp_se[i] = stats.mean_se(train_risk)
            true[i], true_se[i] = stats.mean_se(true_risk)
            optimism.append(true_risk - train_risk)
            if scatter is None:
                scatter = (train_risk[:1500], true_risk[:1500])
            ctx.log({"n_train": int(n), "empirical": emp[i], "true": true[i]})
            bar.advance()
    assert scatter is not None

    # fixed models: a regression model with a fixed error and a fixed linear classifier
    theta_model = theta + 0.5 * problem.standard_normal(d)
    w = problem.standard_normal(d)
    v = w + 0.5 * np.linalg.norm(w) / math.sqrt(d) * problem.standard_normal(d)
    risk_sq = float(est.linear_model_risk(theta_model, theta, np.eye(d), sigma))
    risk_01 = est.halfspace_zero_one_risk(w, v, cfg.flip_probability)
    eval_sizes = np.array(cfg.eval_sizes)
    mad_sq, mad_01, mad_sq_se, mad_01_se = (np.zeros(len(eval_sizes)) for _ in range(4))
    with ctx.progress(len(eval_sizes), "evaluation sizes") as bar:
        for i, n in enumerate(eval_sizes):
            emp_sq, emp_01 = est.simulate_fixed_model_risks(
                ctx.numpy_rng("samples", int(n)),
                int(n),
                cfg.eval_repeats,
                theta=theta,
                theta_model=theta_model,
                sigma=sigma,
                w=w,
                v=v,
                flip_probability=cfg.flip_probability,
            )
            mad_sq[i], mad_sq_se[i] = stats.mean_se(np.abs(emp_sq - risk_sq))
            mad_01[i], mad_01_se[i] = stats.mean_se(np.abs(emp_01 - risk_01))
            ctx.log({"n_eval": int(n), "mad_squared": mad_sq[i], "mad_zero_one": mad_01[i]})
            bar.advance()
    return EmpiricalRiskMeasurements(
        train_sizes=sizes,
        d=d,
        sigma=sigma,
        empirical=emp,
        empirical_se=emp_se,
        true=true,
        true_se=true_se,
        optimism=optimism,
        scatter=scatter,
        eval_sizes=eval_sizes,
        risk_squared=risk_sq,
        risk_zero_one=risk_01,
        mad_squared=mad_sq,
        mad_squared_se=mad_sq_se,
        mad_zero_one=mad_01,
        mad_zero_one_se=mad_01_se,
    )


def draw(m: EmpiricalRiskMeasurements, cfg: EmpiricalRiskConfig, ctx: RunContext) -> list[Path]:
    sizes, d, sigma = m.train_sizes, m.d, m.sigma
    slope_sq, slope_01 = m.slopes()
    fig, (ax_risk, ax_scatter, ax_conv) = figure(ncols=3, size=(4.6, 3.8))
    grid = np.linspace(sizes.min(), sizes.max(), 200)
    ax_risk.errorbar(
        sizes,
        m.true,
        yerr=2 * m.true_se,
        fmt="o",
        color="C3",
        ms=4,
        capsize=3,
        label="true risk of the fit (MC)",
    )
    ax_risk.errorbar(
        sizes,
        m.empirical,
        yerr=2 * m.empirical_se,
        fmt="s",
        color="C0",
        ms=4,
        capsize=3,
        label="training (empirical) risk (MC)",
    )
    ax_risk.plot(
        grid, sigma**2 * (1 + d / (grid - d - 1)), color="C3", lw=1, label="σ²(1 + d/(n−d−1))"
    )
    ax_risk.plot(grid, sigma**2 * (grid - d) / grid, color="C0", lw=1, label="σ²(n−d)/n")
    ax_risk.axhline(sigma**2, color="grey", ls=":", label="σ² (best possible)")
    ax_risk.set_xscale("log")
    ax_risk.set_xticks(sizes, [str(n) for n in sizes])
    ax_risk.minorticks_off()
    ax_risk.set_xlabel("training-set size n")
    ax_risk.set_ylabel("mean squared error")
    ax_risk.set_title(f"OLS, d = {d}: optimism of the training risk")
    ax_risk.legend(fontsize=7)
    ax_risk.grid(alpha=0.3, which="both")
    train_risk, true_risk = m.scatter
    ax_scatter.scatter(train_risk, true_risk, s=4, alpha=0.4, color="C0")
    top = float(np.quantile(np.concatenate(m.scatter), 0.995))
    ax_scatter.plot([0, top], [0, top], "k--", lw=1, label="true = empirical")
    ax_scatter.set_xlim(0, top)
    ax_scatter.set_ylim(0, top)
    ax_scatter.set_xlabel("training (empirical) risk")
    ax_scatter.set_ylabel("true risk")
    ax_scatter.set_title(f"{len(train_risk)} fits with n = {sizes[0]} (above the line: optimism)")
    ax_scatter.legend(fontsize=8)
    for values, errors, fmt, color, label in (
        (m.mad_squared, m.mad_squared_se, "o", "C0", f"squared loss (slope {slope_sq:.3f})"),
        (m.mad_zero_one, m.mad_zero_one_se, "s", "C2", f"zero-one loss (slope {slope_01:.3f})"),
    ):
        ax_conv.errorbar(
            m.eval_sizes, values, yerr=2 * errors, fmt=fmt, color=color, ms=4, label=label
        )
        ax_conv.plot(
            m.eval_sizes,
            values[0] * np.sqrt(m.eval_sizes[0] / m.eval_sizes),
            color=color,
            lw=0.8,
            ls="--",
        )
    ax_conv.plot([], [], "k--", lw=0.8, label="∝ 1/√n")
    ax_conv.set_xscale("log")
    ax_conv.set_yscale("log")
    ax_conv.set_xlabel("evaluation sample size n")
    ax_conv.set_ylabel("mean |empirical risk − risk|")
    ax_conv.set_title("fixed models: empirical risk → risk")
    ax_conv.legend(fontsize=7)
    ax_conv.grid(alpha=0.3, which="both")
    return [ctx.savefig(fig, "empirical_risk")]


def claims(m: EmpiricalRiskMeasurements, cfg: EmpiricalRiskConfig) -> list[Claim]:
    sizes = m.train_sizes
    tests = [stats.one_sample(g, "greater", family=len(sizes)) for g in m.optimism]
    weakest = min(range(len(tests)), key=lambda i: np.nan_to_num(tests[i].statistic, nan=-np.inf))
    z_theory = np.concatenate(
        [
            stats.standardized_deviation(m.empirical, m.empirical_se, m.theory_empirical),
            stats.standardized_deviation(m.true, m.true_se, m.theory_true),
        ]
    )
    bound = stats.agreement_bound(z_theory.size, cfg.alpha)
    slope_sq, slope_01 = m.slopes()
    slope_detail = (
        f"least-squares slope of log mean|emp - risk| on log n over n in "
        f"{[int(n) for n in m.eval_sizes]}, {cfg.eval_repeats} samples per n; criterion "
        f"|slope + 1/2| <= {SLOPE_TOLERANCE} fixed before the first run"
    )
    return [
        Claim.from_test(
            "the training risk of a fitted model underestimates its true risk at every n "
            "(one-sided test of the per-fit gaps, weakest n)",
            tests[weakest],
            detail=f"weakest at n = {sizes[weakest]}; largest mean gap "
            f"{tests[0].mean:.3f} at n = {sizes[0]}; {cfg.fits:,} OLS fits per n, d = {m.d}, "
            "true risk exact given the fit",
            key="training_risk_optimistic",
        ),
        Claim.at_most(
            "mean training and true risks match sigma^2 (n-d)/n and "
            "sigma^2 (1 + d/(n-d-1)) (max |z|)",
            float(np.max(np.abs(z_theory))),
            bound,
            detail=f"{z_theory.size} comparisons; bound {bound:.2f} = two-sided Bonferroni at "
            f"alpha = {cfg.alpha:g}; Gaussian design x ~ N(0, I_{m.d})",
            key="optimism_closed_form",
        ),
        Claim.at_most(
            "the empirical risk of a fixed model converges to its risk like 1/sqrt(n), "
            "squared loss (|slope + 1/2|)",
            abs(slope_sq + 0.5),
            SLOPE_TOLERANCE,
            detail=f"slope {slope_sq:.3f}; risk {m.risk_squared:.3f}; {slope_detail}",
            key="convergence_squared",
        ),
        Claim.at_most(
            "the empirical risk of a fixed model converges to its risk like 1/sqrt(n), "
            "zero-one loss (|slope + 1/2|)",
            abs(slope_01 + 0.5),
            SLOPE_TOLERANCE,
            detail=f"slope {slope_01:.3f}; risk {m.risk_zero_one:.3f} (closed form, label "
            f"flips {cfg.flip_probability:g}); {slope_detail}",
            key="convergence_zero_one",
        ),
    ]


@experiment(
    "foundations.empirical_risk",
    topic="foundations",
    config=EmpiricalRiskConfig,
    claims=(
        "training_risk_optimistic",
        "optimism_closed_form",
        "convergence_squared",
        "convergence_zero_one",
    ),
)
def empirical_risk(cfg: EmpiricalRiskConfig, ctx: RunContext) -> Outcome:
    """The training risk of a fitted model underestimates its risk, while for a fixed model the
    empirical risk converges to the risk like 1/sqrt(n)."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
