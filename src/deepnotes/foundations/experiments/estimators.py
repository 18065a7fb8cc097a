"""Bias and variance of the sample mean and of two variance estimators. Notes: discussion 1,
section "Estimators" (definitions 6-7: the sample mean as an estimator, bias and variance).

Measured, by simulating many datasets of each size n: the bias of the sample mean, the variance
of the sample mean, and the bias of the 1/n (plug-in) variance estimator; the 1/(n-1) estimator
is the 1/n one times n/(n-1), so its bias is a function of the same draws and is reported, not
tested again.

Claims (thresholds from the house policy of :mod:`deepnotes.core.stats`):

- ``mean_unbiased``, ``mean_variance``, ``variance_bias``: the Monte Carlo values agree with the
  closed forms (0, sigma^2 / n, -sigma^2 / n) at every n: max |z| within the two-sided
  Bonferroni bound at ``alpha`` over all 3 x len(sizes) deviations compared. The last one is one
  claim for both variance estimators ("the 1/n estimator has bias -sigma^2/n, so the 1/(n-1)
  estimator is unbiased"): the two used to be two claims decided by the same z's.
- ``biased_estimator_is_biased``: the 1/n estimator's bias is below 0 at every n (one-sided
  tests of its deviations, Bonferroni over the sizes), so the agreement above is not a lack of
  power.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.foundations import estimation as est

NAMES = ("mean", "var_1/n", "var_1/(n-1)")


@dataclass(frozen=True)
class EstimatorsConfig:
    """The sample mean and the 1/n and 1/(n-1) variance estimators, by simulation."""

    sizes: tuple[int, ...] = (2, 3, 5, 10, 20, 50, 100)
    """Dataset sizes n at which the estimators are studied."""
    trials: int = 1_000_000
    """Simulated datasets per size."""
    mu: float = 1.0
    """Population mean."""
    sigma: float = 2.0
    """Population standard deviation."""
    distribution: Literal["normal", "exponential", "uniform"] = "normal"
    """Shape of the population (standardized, then scaled by sigma and shifted by mu)."""
    alpha: float = stats.ALPHA_AGREEMENT
    """Family-wise false-alarm rate of the agreement claims (Bonferroni)."""

    def __post_init__(self) -> None:
        require(
            len(self.sizes) >= 2 and all(n >= 2 for n in self.sizes),
            f"sizes must hold at least 2 sizes, each >= 2, got {self.sizes}",
        )
        require(self.trials >= 1000, f"trials must be >= 1000, got {self.trials}")
        require(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        require(0 < self.alpha < 0.5, f"alpha must be in (0, 0.5), got {self.alpha}")

    @property
    def comparisons(self) -> int:
        """Deviations compared with a closed form: mean bias, Var(mean), variance bias per n."""
        return 3 * len(self.sizes)

    @classmethod
    def quick(cls) -> EstimatorsConfig:
        return cls(trials=100_000)


@dataclass(frozen=True)
class EstimatorsMeasurements:
    """Monte Carlo biases and variances per dataset size, with the closed forms."""

    sizes: np.ndarray
    """Dataset sizes n, (S,)."""
    bias: dict[str, np.ndarray]
    """Mean estimate minus estimand, per estimator in :data:`NAMES`, each (S,)."""
    bias_se: dict[str, np.ndarray]
    """Standard errors of ``bias``."""
    theory_bias: dict[str, np.ndarray]
    """Closed-form biases (0, -sigma^2/n, 0)."""
    var_mean: np.ndarray
    """Sample variance of the sample means, (S,)."""
    var_mean_se: np.ndarray
    """Its standard error (from the fourth central moment)."""
    theory_var_mean: np.ndarray
    """sigma^2 / n, (S,)."""
    biased_deviation: list[np.ndarray]
    """Per size, the 1/n estimates minus sigma^2 of every simulated dataset, (trials,) each."""

    def metrics(self) -> dict[str, float | list[float]]:
        return {
            "sizes": [int(n) for n in self.sizes],
            **{f"bias_{k}": self.bias[k].tolist() for k in NAMES},
            **{f"bias_se_{k}": self.bias_se[k].tolist() for k in NAMES},
            "var_mean": self.var_mean.tolist(),
            "var_mean_se": self.var_mean_se.tolist(),
        }


def measure(cfg: EstimatorsConfig, ctx: RunContext) -> EstimatorsMeasurements:
    """Simulate ``trials`` datasets per size (each size from its own stream) and summarise."""
    sizes = np.array(cfg.sizes)
    sigma2 = cfg.sigma**2
    bias = {k: np.zeros(len(sizes)) for k in NAMES}
    bias_se = {k: np.zeros(len(sizes)) for k in NAMES}
    var_mean, var_mean_se = np.zeros(len(sizes)), np.zeros(len(sizes))
    deviations = []
    with ctx.progress(len(sizes), "dataset sizes") as bar:
        for i, n in enumerate(sizes):
            draws = est.simulate_estimators(
                ctx.numpy_rng("datasets", int(n)),
                int(n),
                cfg.trials,
                mu=cfg.mu,
                sigma=cfg.sigma,
                distribution=cfg.distribution,
            )
            targets = (cfg.mu, sigma2, sigma2)
            estimates = (draws.mean, draws.variance_biased, draws.variance_unbiased)
            for name, values, target in zip(NAMES, estimates, targets, strict=True):
                mean, se = stats.mean_and_se(values)
                bias[name][i], bias_se[name][i] = mean - target, se
            var_mean[i], var_mean_se[i] = stats.variance_and_se(draws.mean)
            deviations.append(draws.variance_biased - sigma2)
            ctx.log(
                {"n": int(n), **{f"bias_{k}": bias[k][i] for k in NAMES}, "var_mean": var_mean[i]}
            )
            bar.advance()
    theory_bias = {
        "mean": np.zeros(len(sizes)),
        "var_1/n": np.array([est.sample_variance_bias(int(n), cfg.sigma, ddof=0) for n in sizes]),
        "var_1/(n-1)": np.array(
            [est.sample_variance_bias(int(n), cfg.sigma, ddof=1) for n in sizes]
        ),
    }
    return EstimatorsMeasurements(
        sizes=sizes,
        bias=bias,
        bias_se=bias_se,
        theory_bias=theory_bias,
        var_mean=var_mean,
        var_mean_se=var_mean_se,
        theory_var_mean=np.array([est.sample_mean_variance(int(n), cfg.sigma) for n in sizes]),
        biased_deviation=deviations,
    )


def draw(m: EstimatorsMeasurements, cfg: EstimatorsConfig, ctx: RunContext) -> list[Path]:
    sizes, sigma2 = m.sizes, cfg.sigma**2
    fig, (ax_bias, ax_var) = figure(ncols=2, size=(5.4, 4.0))
    styles = {"mean": ("C0", "o"), "var_1/n": ("C3", "s"), "var_1/(n-1)": ("C2", "^")}
    labels = {
        "mean": "sample mean − μ",
        "var_1/n": "1/n variance − σ²",
        "var_1/(n-1)": "1/(n−1) variance − σ²",
    }
    offsets = {"mean": 0.96, "var_1/n": 1.0, "var_1/(n-1)": 1.04}  # spread the markers
    grid = np.geomspace(sizes.min(), sizes.max(), 200)
    ax_bias.plot(grid, -sigma2 / grid, color="C3", lw=1, label="theory −σ²/n")
    ax_bias.axhline(0, color="grey", lw=1, label="theory 0 (unbiased)")
    for name in NAMES:
        color, marker = styles[name]
        ax_bias.errorbar(
            sizes * offsets[name],
            m.bias[name],
            yerr=2 * m.bias_se[name],
            fmt=marker,
            color=color,
            ms=4,
            capsize=3,
            label=labels[name],
        )
    ax_bias.set_xscale("log")
    ax_bias.set_xlabel("dataset size n")
    ax_bias.set_ylabel("bias = mean estimate − estimand")
    ax_bias.set_title(f"bias (± 2 SE, {cfg.trials:,} datasets per n)")
    ax_bias.legend(fontsize=8)
    ax_bias.grid(alpha=0.3)
    ax_var.plot(grid, sigma2 / grid, color="C0", lw=1, label="theory σ²/n")
    ax_var.errorbar(sizes, m.var_mean, yerr=2 * m.var_mean_se, fmt="o", ms=4, capsize=3, label="MC")
    ax_var.set_xscale("log")
    ax_var.set_yscale("log")
    ax_var.set_xlabel("dataset size n")
    ax_var.set_ylabel("Var(sample mean)")
    ax_var.set_title(f"variance of the sample mean ({cfg.distribution}, σ = {cfg.sigma:g})")
    ax_var.legend(fontsize=8)
    ax_var.grid(alpha=0.3, which="both")
    return [ctx.savefig(fig, "estimators")]


def claims(m: EstimatorsMeasurements, cfg: EstimatorsConfig) -> list[Claim]:
    sizes = m.sizes
    bound = stats.agreement_bound(cfg.comparisons, cfg.alpha)
    z_bias = {
        k: stats.standardized_deviation(m.bias[k], m.bias_se[k], m.theory_bias[k]) for k in NAMES
    }
    z_var = stats.standardized_deviation(m.var_mean, m.var_mean_se, m.theory_var_mean)
    setting = (
        f"{cfg.trials:,} datasets per n, n in {list(cfg.sizes)}, {cfg.distribution} population "
        f"with sigma = {cfg.sigma:g}"
    )
    policy = (
        "z = (MC - closed form) / SE, SE = sd / sqrt(trials) for biases and from the fourth "
        f"central moment for Var(mean); bound {bound:.2f} = two-sided Bonferroni over "
        f"{cfg.comparisons} deviations at alpha = {cfg.alpha:g}"
    )

    def agreement(key: str, statement: str, z: np.ndarray, what: Callable[[int], str]) -> Claim:
        worst = int(np.nanargmax(np.abs(z))) if not np.all(np.isnan(z)) else 0
        measured = float(np.max(np.abs(z)))  # NaN if any z is NaN: the claim does not hold
        return Claim.at_most(
            statement + " (max |z| over n)",
            measured,
            bound,
            detail=f"worst at n = {sizes[worst]}: {what(worst)}; {setting}; {policy}",
            key=key,
        )

    tests = [stats.one_sample(values, "less", family=len(sizes)) for values in m.biased_deviation]
    weakest = int(np.argmax([t.statistic if not np.isnan(t.statistic) else np.inf for t in tests]))
    return [
        agreement(
            "mean_unbiased",
            "the sample mean is unbiased",
            z_bias["mean"],
            lambda i: f"bias {m.bias['mean'][i]:+.2e} ± {m.bias_se['mean'][i]:.1e}",
        ),
        agreement(
            "mean_variance",
            "Var(sample mean) = sigma^2 / n",
            z_var,
            lambda i: f"{m.var_mean[i]:.5g} ± {m.var_mean_se[i]:.2g} vs {m.theory_var_mean[i]:.5g}",
        ),
        agreement(
            "variance_bias",
            "the 1/n variance estimator has bias -sigma^2 / n, so the 1/(n-1) estimator "
            "(the same estimates times n/(n-1)) is unbiased",
            z_bias["var_1/n"],
            lambda i: (
                f"1/n bias {m.bias['var_1/n'][i]:+.5f} ± {m.bias_se['var_1/n'][i]:.5f} vs "
                f"{m.theory_bias['var_1/n'][i]:+.5f}; 1/(n-1) bias "
                f"{m.bias['var_1/(n-1)'][i]:+.5f} (same z)"
            ),
        ),
        Claim.from_test(
            "the 1/n variance estimator underestimates sigma^2 at every n (one-sided test of "
            "its deviations, weakest n)",
            tests[weakest],
            detail=f"weakest at n = {sizes[weakest]}; {setting}",
            key="biased_estimator_is_biased",
        ),
    ]


@experiment(
    "foundations.estimators",
    topic="foundations",
    config=EstimatorsConfig,
    claims=("mean_unbiased", "mean_variance", "variance_bias", "biased_estimator_is_biased"),
)
def estimators(cfg: EstimatorsConfig, ctx: RunContext) -> Outcome:
    """The sample mean is unbiased with variance sigma^2/n, while the 1/n variance estimator is
    biased by -sigma^2/n (simulated datasets against the closed forms)."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
