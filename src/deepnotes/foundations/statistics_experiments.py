"""Experiments of the foundations topic on estimators and risk (notes, discussion 1,
"Estimators" and "Loss functions & risk functions"; discussion 2, "Bias-variance tradeoff",
problems 1-3).

How the claims are judged. A claim that a closed form equals a Monte Carlo estimate compares
standardized deviations z = (estimate - formula) / SE. When M such z's are checked at once, the
threshold is the Bonferroni value z* = Phi^-1(1 - alpha / (2M)) with alpha = 1% (``alpha`` in
each config): a correct formula fails with probability <= 1% whatever the simulation size, while
a wrong one fails more surely the larger the simulation. A claim that an effect exists (a bias,
an optimism, a gain) asks its z to be at least ``Z_EVIDENCE`` = 3, one-sided, for a comparison
fixed in advance. All thresholds are fixed by the config before any number is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.foundations import statistics as st

Z_EVIDENCE = 3.0  # one-sided z for "the effect is there" (p < 0.0014 under no effect)
SLOPE_TOLERANCE = 0.1  # |fitted log-log slope - (-1/2)| allowed for the 1/sqrt(n) law


def _require_alpha(alpha: float) -> None:
    require(0 < alpha < 0.5, f"alpha must be in (0, 0.5), got {alpha}")


# ---------------------------------------------------------------------------------------------
# 1. Bias and variance of the sample mean and of two variance estimators


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
    alpha: float = 0.01
    """Family-wise false-alarm rate of the agreement claims (Bonferroni)."""

    def __post_init__(self) -> None:
        require(
            len(self.sizes) >= 2 and all(n >= 2 for n in self.sizes),
            f"sizes must hold at least 2 sizes, each >= 2, got {self.sizes}",
        )
        require(self.trials >= 1000, f"trials must be >= 1000, got {self.trials}")
        require(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        _require_alpha(self.alpha)

    @classmethod
    def quick(cls) -> EstimatorsConfig:
        return cls(trials=100_000)


@experiment("foundations.estimators", topic="foundations", config=EstimatorsConfig)
def estimators(cfg: EstimatorsConfig, ctx: RunContext) -> Outcome:
    """The sample mean is unbiased with variance sigma^2/n; the 1/n variance estimator is biased."""
    rng = np.random.default_rng(ctx.seed)
    sizes = np.array(cfg.sizes)
    sigma2 = cfg.sigma**2
    names = ("mean", "var_1/n", "var_1/(n-1)")
    bias = {k: np.zeros(len(sizes)) for k in names}
    bias_se = {k: np.zeros(len(sizes)) for k in names}
    var_mean, var_mean_se = np.zeros(len(sizes)), np.zeros(len(sizes))
    with ctx.progress(len(sizes), "dataset sizes") as bar:
        for i, n in enumerate(sizes):
            draws = st.simulate_estimators(
                rng, int(n), cfg.trials, mu=cfg.mu, sigma=cfg.sigma, distribution=cfg.distribution
            )
            targets = (cfg.mu, sigma2, sigma2)
            estimates = (draws.mean, draws.variance_biased, draws.variance_unbiased)
            for name, values, target in zip(names, estimates, targets, strict=True):
                mean, se = st.mean_and_se(values)
                bias[name][i], bias_se[name][i] = mean - target, se
            var_mean[i], var_mean_se[i] = st.variance_and_se(draws.mean)
            ctx.log(
                {"n": int(n), **{f"bias_{k}": bias[k][i] for k in names}, "var_mean": var_mean[i]}
            )
            bar.advance()
    theory_bias = {
        "mean": np.zeros(len(sizes)),
        "var_1/n": np.array([st.sample_variance_bias(int(n), cfg.sigma, ddof=0) for n in sizes]),
        "var_1/(n-1)": np.array(
            [st.sample_variance_bias(int(n), cfg.sigma, ddof=1) for n in sizes]
        ),
    }
    theory_var_mean = np.array([st.sample_mean_variance(int(n), cfg.sigma) for n in sizes])
    z_bias = {k: st.standardized_deviation(bias[k], bias_se[k], theory_bias[k]) for k in names}
    z_var = st.standardized_deviation(var_mean, var_mean_se, theory_var_mean)
    # the 1/(n-1) estimates are the 1/n ones times n/(n-1), and so are their theory and SE:
    # the two variance claims share their z's, so 3 distinct z's per size are compared
    comparisons = 3 * len(sizes)
    z_star = st.bonferroni_z(comparisons, cfg.alpha)
    z_biased_vs_zero = np.abs(bias["var_1/n"]) / bias_se["var_1/n"]

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
    for name in names:
        color, marker = styles[name]
        ax_bias.errorbar(
            sizes * offsets[name],
            bias[name],
            yerr=2 * bias_se[name],
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
    ax_var.errorbar(sizes, var_mean, yerr=2 * var_mean_se, fmt="o", ms=4, capsize=3, label="MC")
    ax_var.set_xscale("log")
    ax_var.set_yscale("log")
    ax_var.set_xlabel("dataset size n")
    ax_var.set_ylabel("Var(sample mean)")
    ax_var.set_title(f"variance of the sample mean ({cfg.distribution}, σ = {cfg.sigma:g})")
    ax_var.legend(fontsize=8)
    ax_var.grid(alpha=0.3, which="both")

    detail = (
        f"{cfg.trials:,} datasets per n, n in {list(cfg.sizes)}, {cfg.distribution} population "
        f"with sigma = {cfg.sigma:g}; z = (MC - theory) / SE, SE = sd / sqrt(trials) for "
        "biases and from the fourth central moment for Var(mean); "
        f"threshold z* = {z_star:.2f} = Bonferroni over {comparisons} comparisons at "
        f"alpha = {cfg.alpha:g}"
    )

    def agreement(statement: str, z: np.ndarray, what: Callable[[int], str]) -> Claim:
        worst = int(np.argmax(np.abs(z)))
        return Claim.at_most(
            statement + " (max |z| over n)",
            float(np.max(np.abs(z))),
            z_star,
            detail=f"worst at n = {sizes[worst]}: {what(worst)}; {detail}",
        )

    return Outcome(
        metrics={
            "sizes": list(cfg.sizes),
            **{f"bias_{k}": bias[k].tolist() for k in names},
            **{f"bias_se_{k}": bias_se[k].tolist() for k in names},
            "var_mean": var_mean.tolist(),
            "var_mean_se": var_mean_se.tolist(),
            "z_star": z_star,
        },
        figures=[ctx.savefig(fig, "estimators")],
        claims=[
            agreement(
                "the sample mean is unbiased",
                z_bias["mean"],
                lambda i: f"bias {bias['mean'][i]:+.2e} ± {bias_se['mean'][i]:.1e}",
            ),
            agreement(
                "Var(sample mean) = sigma^2 / n",
                z_var,
                lambda i: f"{var_mean[i]:.5g} ± {var_mean_se[i]:.2g} vs {theory_var_mean[i]:.5g}",
            ),
            agreement(
                "the 1/n variance estimator has bias -sigma^2 / n",
                z_bias["var_1/n"],
                lambda i: (
                    f"bias {bias['var_1/n'][i]:+.5f} ± {bias_se['var_1/n'][i]:.5f} vs "
                    f"{theory_bias['var_1/n'][i]:+.5f}"
                ),
            ),
            agreement(
                "the 1/(n-1) variance estimator is unbiased",
                z_bias["var_1/(n-1)"],
                lambda i: (
                    f"bias {bias['var_1/(n-1)'][i]:+.5f} ± "
                    f"{bias_se['var_1/(n-1)'][i]:.5f} (the 1/n estimates times n/(n-1), "
                    "so the same z's)"
                ),
            ),
            Claim.at_least(
                "the bias of the 1/n estimator is real: it differs from 0 at every n "
                "(min over n of |bias| / SE)",
                float(z_biased_vs_zero.min()),
                z_star,
                detail=f"smallest at n = {sizes[int(np.argmin(z_biased_vs_zero))]}; {detail}",
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------
# 2. The bias-variance decomposition over polynomial degree


@dataclass(frozen=True)
class BiasVarianceConfig:
    """Polynomial least squares on y = sin(2 pi x) + noise, many training sets per degree."""

    n_train: int = 20
    """Training examples per training set (one uniform draw in each cell [i/n, (i+1)/n))."""
    degrees: tuple[int, ...] = tuple(range(13))
    """Polynomial degrees compared (the model capacity)."""
    training_sets: int = 100_000
    """Independent training sets (Monte Carlo replicates) per degree."""
    test_points: int = 50
    """Test inputs: the midpoints of a regular grid on [0, 1] (averaging over x ~ U[0, 1])."""
    sigma: float = 0.4
    """Standard deviation of the label noise (sigma^2 is the irreducible error)."""
    alpha: float = 0.01
    """Family-wise false-alarm rate of the agreement claim (Bonferroni over degrees)."""

    def __post_init__(self) -> None:
        require(len(self.degrees) >= 3, f"need at least 3 degrees, got {self.degrees}")
        require(
            list(self.degrees) == sorted(set(self.degrees)) and min(self.degrees) >= 0,
            f"degrees must be distinct, increasing and >= 0, got {self.degrees}",
        )
        require(
            max(self.degrees) < self.n_train,
            f"the largest degree must be < n_train={self.n_train} so least squares is "
            f"determined, got {max(self.degrees)}",
        )
        require(
            self.training_sets >= 100, f"training_sets must be >= 100, got {self.training_sets}"
        )
        require(self.test_points >= 1, f"test_points must be >= 1, got {self.test_points}")
        require(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        _require_alpha(self.alpha)

    @classmethod
    def quick(cls) -> BiasVarianceConfig:
        return cls(training_sets=10_000)


def _sine(x: np.ndarray) -> np.ndarray:
    """The regression function E[Y | x] of the bias-variance experiment."""
    return np.sin(2 * np.pi * x)


def _fit_polynomials(x: np.ndarray, y: np.ndarray, degree: int, chunk: int = 8192) -> np.ndarray:
    """Least-squares polynomial coefficients for each row of x, y (R, n) -> (R, degree + 1),
    fitted ``chunk`` training sets at a time to bound memory."""
    return np.concatenate(
        [
            st.fit_least_squares(st.polynomial_features(x[i : i + chunk], degree), y[i : i + chunk])
            for i in range(0, len(x), chunk)
        ]
    )


@experiment("foundations.bias_variance", topic="foundations", config=BiasVarianceConfig)
def bias_variance(cfg: BiasVarianceConfig, ctx: RunContext) -> Outcome:
    """E[(Y - f(x))^2] = Var + Bias^2 + sigma^2, measured over polynomial degree (the U shape)."""
    rng = np.random.default_rng(ctx.seed)
    sets, m = cfg.training_sets, cfg.test_points
    x_test = (np.arange(m) + 0.5) / m  # (m,)
    target = _sine(x_test)  # f*(x) = E[Y | x], (m,)
    # the same training sets and fresh test labels serve every degree (paired comparisons)
    x_train = st.stratified_uniform(rng, sets, cfg.n_train)  # (R, n)
    y_train = _sine(x_train) + cfg.sigma * rng.standard_normal(x_train.shape)  # (R, n)
    y_test = target + cfg.sigma * rng.standard_normal((sets, m))  # (R, m)
    results: list[st.MonteCarloDecomposition] = []
    per_set_error = np.zeros((len(cfg.degrees), sets))  # test error of each fit, (K, R)
    examples: dict[int, np.ndarray] = {}
    x_plot = np.linspace(0, 1, 200)
    with ctx.progress(len(cfg.degrees), "polynomial degrees") as bar:
        for k, degree in enumerate(cfg.degrees):
            coef = _fit_polynomials(x_train, y_train, degree)  # (R, degree + 1)
            predictions = coef @ st.polynomial_features(x_test, degree).T  # (R, m)
            result = st.bias_variance_monte_carlo(predictions, target, y_test, cfg.sigma**2)
            results.append(result)
            per_set_error[k] = st.squared_loss(y_test, predictions).mean(axis=1)
            examples[degree] = coef[:25] @ st.polynomial_features(x_plot, degree).T
            ctx.log(
                {
                    "degree": degree,
                    "bias2": float(result.bias2.mean()),
                    "variance": float(result.variance.mean()),
                    "test_error": float(result.test_error.mean()),
                    "gap": result.gap,
                    "gap_se": result.gap_se,
                }
            )
            bar.advance()
    degrees = np.array(cfg.degrees)
    bias2 = np.array([r.bias2.mean() for r in results])
    variance = np.array([r.variance.mean() for r in results])
    test_error = np.array([r.test_error.mean() for r in results])
    test_error_se = np.array([r.test_error_se for r in results])
    gaps = np.array([r.gap for r in results])
    gap_se = np.array([r.gap_se for r in results])
    z_gap = gaps / gap_se
    z_star = st.bonferroni_z(len(degrees), cfg.alpha)
    worst = int(np.argmax(np.abs(z_gap)))

    # U shape: the best degree is interior and both ends are worse by >= Z_EVIDENCE paired SEs
    best = int(np.argmin(test_error))
    z_ends = []
    for end in (0, len(degrees) - 1):
        mean, se = st.mean_and_se(per_set_error[end] - per_set_error[best])
        z_ends.append(float(st.standardized_deviation(mean, se, 0.0)))
    z_u = min(z_ends)

    fig, axes = figure(ncols=4, size=(4.2, 3.6))
    ax = axes[0]
    shown_bias2 = np.where(bias2 > 0, bias2, np.nan)  # the unbiased estimate can dip below 0
    ax.plot(degrees, shown_bias2, "o-", color="C0", ms=4, label="bias² (values ≤ 0 not drawn)")
    ax.plot(degrees, variance, "s-", color="C1", ms=4, label="variance")
    ax.axhline(cfg.sigma**2, color="grey", ls=":", label="noise σ²")
    ax.errorbar(
        degrees,
        test_error,
        yerr=2 * test_error_se,
        fmt="D",
        color="C3",
        ms=5,
        capsize=3,
        label="test error (MC, ± 2 SE)",
    )
    ax.plot(degrees, bias2 + variance + cfg.sigma**2, "k--", lw=1, label="var + bias² + σ²")
    ax.set_yscale("log")
    ax.set_xlabel("polynomial degree (capacity)")
    ax.set_ylabel("average over x of the term")
    ax.set_title(f"decomposition ({sets:,} training sets of {cfg.n_train})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    shown = (degrees[min(1, len(degrees) - 1)], degrees[best], degrees[-1])
    for ax, degree in zip(axes[1:], shown, strict=True):
        ax.plot(x_plot, examples[degree].T, color="C0", lw=0.6, alpha=0.35)
        ax.plot(x_plot, _sine(x_plot), color="black", lw=2, label="E[Y|x] = sin 2πx")
        ax.set_ylim(-2.5, 2.5)
        ax.set_xlabel("x")
        ax.set_ylabel("prediction")
        ax.set_title(f"degree {degree}: 25 fits")
        ax.legend(fontsize=7, loc="lower left")
    detail = (
        f"{sets:,} training sets of {cfg.n_train} points, {m} test inputs, sigma = {cfg.sigma:g}"
    )
    return Outcome(
        metrics={
            "degrees": list(cfg.degrees),
            "bias2": bias2.tolist(),
            "variance": variance.tolist(),
            "noise": cfg.sigma**2,
            "test_error": test_error.tolist(),
            "test_error_se": test_error_se.tolist(),
            "gap": gaps.tolist(),
            "gap_se": gap_se.tolist(),
            "best_degree": int(degrees[best]),
            "z_star": z_star,
        },
        figures=[ctx.savefig(fig, "bias_variance")],
        claims=[
            Claim.at_most(
                "E[(Y - f(x))^2] = Var + Bias^2 + sigma^2 at every capacity "
                "(max over degrees of |LHS - RHS| / SE)",
                float(np.max(np.abs(z_gap))),
                z_star,
                detail=f"LHS and RHS averaged over the test inputs; worst at degree "
                f"{degrees[worst]}: LHS - RHS = {gaps[worst]:+.2e} ± {gap_se[worst]:.1e} "
                f"(LHS {test_error[worst]:.4g}); Bias^2 estimated without bias; SE from the "
                f"i.i.d. per-training-set identity residual; z* = {z_star:.2f} is Bonferroni "
                f"over {len(degrees)} degrees at alpha = {cfg.alpha:g}; {detail}",
            ),
            Claim.at_least(
                "the test error is U-shaped in capacity: minimal at an interior degree, "
                "higher at both ends (min of the two paired z's)",
                z_u,
                Z_EVIDENCE,
                detail=f"minimum {test_error[best]:.4f} at degree {degrees[best]}; degree "
                f"{degrees[0]}: {test_error[0]:.4f} (z = {z_ends[0]:.1f}); degree "
                f"{degrees[-1]}: {test_error[-1]:.4f} (z = {z_ends[1]:.1f}); z = mean paired "
                f"difference over the training sets / its SE; {detail}",
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------
# 3. OLS vs ridge: closed-form bias and covariance against Monte Carlo, and the trade-off


@dataclass(frozen=True)
class RidgeConfig:
    """Fixed design X, Y = X theta + noise: OLS and ridge in closed form and by simulation."""

    n: int = 40
    """Training examples (rows of the fixed design X)."""
    d: int = 8
    """Features."""
    smallest_scale: float = 0.05
    """Feature standard deviations run geometrically from 1 down to this value."""
    design: Literal["gaussian", "orthogonal"] = "gaussian"
    """X's rows drawn i.i.d. from p(x), or orthogonalised so X^T X = n diag(scales^2) (the
    notes' diagonal simplification)."""
    sigma: float = 1.0
    """Noise standard deviation (the notes use variance 1)."""
    test_inputs: int = 20
    """Fixed test inputs x ~ p(x) at which prediction bias, variance and MSE are compared."""
    replicates: int = 100_000
    """Monte Carlo noise draws (training sets with the same X)."""
    mc_lams: tuple[float, ...] = (0.0, 0.1, 1.0, 10.0, 100.0)
    """Lambdas checked by Monte Carlo (0 is OLS); the closed-form best lambda is added."""
    lam_min: float = 1e-3
    """Smallest positive lambda of the closed-form grid."""
    lam_max: float = 1e4
    """Largest lambda of the closed-form grid."""
    grid_points: int = 200
    """Log-spaced lambdas of the closed-form grid."""
    alpha: float = 0.01
    """Family-wise false-alarm rate of the closed form = Monte Carlo claim (Bonferroni)."""

    def __post_init__(self) -> None:
        require(self.d >= 1 and self.n > self.d, f"need n > d >= 1, got n={self.n}, d={self.d}")
        require(
            0 < self.smallest_scale <= 1,
            f"smallest_scale must be in (0, 1], got {self.smallest_scale}",
        )
        require(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        require(self.test_inputs >= 1, f"test_inputs must be >= 1, got {self.test_inputs}")
        require(self.replicates >= 100, f"replicates must be >= 100, got {self.replicates}")
        require(
            0.0 in self.mc_lams and all(lam >= 0 for lam in self.mc_lams),
            f"mc_lams must be >= 0 and include 0 (OLS), got {self.mc_lams}",
        )
        require(
            0 < self.lam_min < self.lam_max and self.grid_points >= 3,
            f"need 0 < lam_min < lam_max and grid_points >= 3, got {self.lam_min}, "
            f"{self.lam_max}, {self.grid_points}",
        )
        _require_alpha(self.alpha)

    @property
    def scales(self) -> np.ndarray:
        """Standard deviation of each feature under p(x) = N(0, diag(scales^2))."""
        return np.geomspace(1.0, self.smallest_scale, self.d)

    @classmethod
    def quick(cls) -> RidgeConfig:
        return cls(replicates=20_000)


def _ridge_problem(
    cfg: RidgeConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed design X (n, d), the true theta (d,) and the test inputs (m, d)."""
    scales = cfg.scales
    gaussian = rng.standard_normal((cfg.n, cfg.d))
    if cfg.design == "orthogonal":
        q, _ = np.linalg.qr(gaussian)  # orthonormal columns, (n, d)
        X = math.sqrt(cfg.n) * q * scales  # X^T X = n diag(scales^2)
    else:
        X = gaussian * scales
    theta = rng.standard_normal(cfg.d)
    x_test = rng.standard_normal((cfg.test_inputs, cfg.d)) * scales
    return X, theta, x_test


@experiment("foundations.ridge", topic="foundations", config=RidgeConfig)
def ridge(cfg: RidgeConfig, ctx: RunContext) -> Outcome:
    """OLS vs ridge: closed-form bias/covariance = Monte Carlo, and the trade-off over lambda."""
    rng = np.random.default_rng(ctx.seed)
    X, theta, x_test = _ridge_problem(cfg, rng)
    second_moment = np.diag(cfg.scales**2)  # E[x x^T] under p(x)
    sigma, d, m = cfg.sigma, cfg.d, cfg.test_inputs

    # closed form on a lambda grid
    grid = np.geomspace(cfg.lam_min, cfg.lam_max, cfg.grid_points)
    curve = st.ridge_risk(X, theta, grid, second_moment, sigma)
    ols = st.ridge_risk(X, theta, [0.0], second_moment, sigma)
    ols_risk = float(ols.total[0])
    best = int(np.argmin(curve.total))
    lam_best = float(grid[best])
    gain_closed = ols_risk - float(curve.total[best])
    scale = max(float(curve.bias2.max()), float(curve.variance.max()))
    bias_steps = np.diff(np.concatenate([ols.bias2, curve.bias2]))
    var_steps = np.diff(np.concatenate([ols.variance, curve.variance]))
    bias_violations = int(np.sum(bias_steps < -1e-12 * scale))
    var_violations = int(np.sum(var_steps > 1e-12 * scale))

    # Monte Carlo with the same noise draws (and the same fresh test data) for every lambda
    reps = cfg.replicates
    noise = sigma * rng.standard_normal((reps, cfg.n))  # (R, n)
    Y = X @ theta + noise  # (R, n)
    y_fixed = x_test @ theta + sigma * rng.standard_normal((reps, m))  # fresh labels, (R, m)
    x_fresh = rng.standard_normal((reps, d)) * cfg.scales  # fresh x ~ p(x) per replicate
    y_fresh = x_fresh @ theta + sigma * rng.standard_normal(reps)  # (R,)
    mc_lams = sorted({*cfg.mc_lams, lam_best})
    upper = np.triu_indices(d)
    z_all: dict[str, list[np.ndarray]] = {
        k: [] for k in ("theta bias", "theta cov", "pred bias", "pred var", "pred mse", "risk")
    }
    mc_bias2, mc_var, mc_risk, mc_risk_se = (np.zeros(len(mc_lams)) for _ in range(4))
    mc_bias2_se, mc_var_se = np.zeros(len(mc_lams)), np.zeros(len(mc_lams))
    risk_losses: dict[float, np.ndarray] = {}
    with ctx.progress(len(mc_lams), "lambdas (Monte Carlo)") as bar:
        for i, lam in enumerate(mc_lams):
            theta_hat = st.ridge_estimate(X, Y, lam)  # (R, d)
            mean, se = st.mean_and_se(theta_hat - theta)
            z_all["theta bias"].append(
                st.standardized_deviation(mean, se, st.ridge_bias(X, theta, lam))
            )
            cov, cov_se = st.covariance_and_se(theta_hat)
            z_cov = st.standardized_deviation(cov, cov_se, st.ridge_covariance(X, lam, sigma))
            z_all["theta cov"].append(z_cov[upper])
            predictions = theta_hat @ x_test.T  # (R, m)
            mean, se = st.mean_and_se(predictions - x_test @ theta)
            closed = st.prediction_mse(X, theta, lam, x_test, sigma)
            z_all["pred bias"].append(
                st.standardized_deviation(mean, se, st.prediction_bias(X, theta, lam, x_test))
            )
            var, var_se = st.variance_and_se(predictions)
            z_all["pred var"].append(st.standardized_deviation(var, var_se, closed.variance))
            mean, se = st.mean_and_se(st.squared_loss(y_fixed, predictions))
            z_all["pred mse"].append(st.standardized_deviation(mean, se, closed.total))
            loss = st.squared_loss(y_fresh, np.einsum("rd,rd->r", x_fresh, theta_hat))
            risk_losses[lam] = loss
            mc_risk[i], mc_risk_se[i] = st.mean_and_se(loss)
            exact = st.ridge_risk(X, theta, [lam], second_moment, sigma)
            z_all["risk"].append(
                st.standardized_deviation(mc_risk[i], mc_risk_se[i], exact.total[0]).reshape(1)
            )
            # Monte Carlo bias^2 and variance averaged over p(x): b^T M b and tr(M Cov)
            # (figure only; the delta method gives their standard errors)
            b_hat = theta_hat.mean(axis=0) - theta  # (d,)
            mc_var[i] = float(np.trace(second_moment @ cov))
            mc_bias2[i] = float(b_hat @ second_moment @ b_hat) - mc_var[i] / reps
            gradient = 2 * second_moment @ b_hat  # d(b^T M b)/db
            mc_bias2_se[i] = math.sqrt(max(float(gradient @ cov @ gradient), 0.0) / reps)
            spread = (((theta_hat - theta_hat.mean(axis=0)) * cfg.scales) ** 2).sum(axis=1)
            _, mc_var_se[i] = st.mean_and_se(spread)  # (R,) terms whose mean is tr(M Cov)
            ctx.log({"lam": lam, "mc_risk": mc_risk[i], "closed_risk": float(exact.total[0])})
            bar.advance()
    z_flat = np.concatenate([np.concatenate(v) for v in z_all.values()])
    comparisons = z_flat.size
    z_star = st.bonferroni_z(comparisons, cfg.alpha)
    worst_kind = max(z_all, key=lambda k: np.max(np.abs(np.concatenate(z_all[k]))))
    paired = risk_losses[0.0] - risk_losses[lam_best]
    gain_mc, gain_se = st.mean_and_se(paired)
    z_gain = float(st.standardized_deviation(gain_mc, gain_se, 0.0))

    fig, (ax_curve, ax_z) = figure(ncols=2, size=(5.6, 4.2))
    ax_curve.plot(grid, curve.bias2, color="C0", label="bias² (closed form)")
    ax_curve.plot(grid, curve.variance, color="C1", label="variance (closed form)")
    ax_curve.plot(grid, curve.total, color="C3", lw=2, label="test MSE = bias² + var + σ²")
    ax_curve.axhline(sigma**2, color="grey", ls=":", label="noise σ²")
    ax_curve.axhline(ols_risk, color="C3", ls="--", lw=1, label=f"OLS test MSE {ols_risk:.3f}")
    positive = np.array([lam > 0 for lam in mc_lams])
    lam_arr = np.array(mc_lams)
    ax_curve.errorbar(
        lam_arr[positive],
        mc_risk[positive],
        yerr=2 * mc_risk_se[positive],
        fmt="D",
        color="C3",
        ms=4,
        capsize=3,
        label="test MSE (MC, ± 2 SE)",
    )
    ax_curve.errorbar(
        lam_arr[positive],
        mc_var[positive],
        yerr=2 * mc_var_se[positive],
        fmt="s",
        color="C1",
        ms=4,
        label="variance (MC)",
    )
    ax_curve.errorbar(
        lam_arr[positive],
        mc_bias2[positive],
        yerr=2 * mc_bias2_se[positive],
        fmt="o",
        color="C0",
        ms=4,
        label="bias² (MC)",
    )
    ax_curve.axvline(lam_best, color="black", lw=0.8, ls="-.", label=f"best λ = {lam_best:.3g}")
    ax_curve.set_xscale("log")
    ax_curve.set_xlabel("ridge coefficient λ")
    ax_curve.set_ylabel("average over test inputs x ~ p(x)")
    ax_curve.set_title(f"ridge trade-off (n = {cfg.n}, d = {d}, σ = {sigma:g})")
    ax_curve.set_ylim(0, max(1.6 * ols_risk, 1.2 * sigma**2))
    ax_curve.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax_curve.grid(alpha=0.3)
    bins = np.linspace(-max(5.0, z_star + 0.5), max(5.0, z_star + 0.5), 41)
    ax_z.hist(z_flat, bins=bins, density=True, color="C0", alpha=0.6, label="MC − closed form")
    zz = np.linspace(bins[0], bins[-1], 300)
    ax_z.plot(zz, np.exp(-(zz**2) / 2) / math.sqrt(2 * math.pi), "k", label="N(0, 1)")
    for sign in (-1, 1):
        ax_z.axvline(sign * z_star, color="C3", ls="--", lw=1)
    ax_z.set_xlabel("standardized deviation z = (MC − formula) / SE")
    ax_z.set_ylabel("density")
    ax_z.set_title(f"{comparisons} comparisons; dashed: ± z* = {z_star:.2f}")
    ax_z.legend(fontsize=8)

    design = (
        f"fixed {cfg.design} design n = {cfg.n}, d = {d}, feature scales 1..{cfg.smallest_scale:g}"
        f", sigma = {sigma:g}"
    )
    return Outcome(
        metrics={
            "ols_risk": ols_risk,
            "best_lam": lam_best,
            "best_risk": float(curve.total[best]),
            "gain_closed_form": gain_closed,
            "gain_mc": float(gain_mc),
            "gain_mc_se": float(gain_se),
            "mc_lams": list(mc_lams),
            "mc_risk": mc_risk.tolist(),
            "mc_risk_se": mc_risk_se.tolist(),
            "max_abs_z": float(np.max(np.abs(z_flat))),
            "comparisons": comparisons,
            "z_star": z_star,
            "bias_violations": bias_violations,
            "variance_violations": var_violations,
        },
        figures=[ctx.savefig(fig, "ridge_tradeoff")],
        claims=[
            Claim.at_most(
                "closed-form bias and covariance of OLS and ridge (and the prediction bias, "
                "variance and MSE they imply) equal Monte Carlo (max |z|)",
                float(np.max(np.abs(z_flat))),
                z_star,
                detail=f"{comparisons} comparisons over lambda in {[f'{v:.3g}' for v in mc_lams]}"
                f": theta bias ({d}), covariance entries ({len(upper[0])}), prediction bias, "
                f"variance and MSE at {m} test inputs, and the risk over x ~ p(x), per lambda; "
                f"worst kind: {worst_kind}; z* = {z_star:.2f} is Bonferroni at alpha = "
                f"{cfg.alpha:g} because so many z's are compared that max |z| of a correct "
                f"formula exceeds 3 routinely; {reps:,} noise draws; {design}",
            ),
            Claim.at_most(
                "as lambda grows the squared bias rises monotonically (closed form, number of "
                "decreasing steps on the grid)",
                bias_violations,
                0,
                detail=f"bias^2 = b^T M b averaged over x ~ p(x), on lambda = 0 and "
                f"{cfg.grid_points} log-spaced values in [{cfg.lam_min:g}, {cfg.lam_max:g}]; "
                f"steps below -1e-12 x scale count; from {float(ols.bias2[0]):.3g} to "
                f"{float(curve.bias2[-1]):.3g}; {design}",
            ),
            Claim.at_most(
                "as lambda grows the variance falls monotonically (closed form, number of "
                "increasing steps on the grid)",
                var_violations,
                0,
                detail=f"variance = tr(M Cov) averaged over x ~ p(x), same grid; from "
                f"{float(ols.variance[0]):.3g} to {float(curve.variance[-1]):.3g}",
            ),
            Claim.compare(
                "some lambda > 0 has a lower test MSE than OLS (closed form, OLS MSE minus the "
                "grid's best)",
                gain_closed,
                ">",
                0.0,
                detail=f"OLS {ols_risk:.4f}, best lambda {lam_best:.3g}: "
                f"{float(curve.total[best]):.4f}",
            ),
            Claim.at_least(
                "some lambda > 0 has a lower test MSE than OLS (Monte Carlo, paired z at the "
                "closed form's best lambda)",
                z_gain,
                Z_EVIDENCE,
                detail=f"MC gain {gain_mc:.4f} ± {gain_se:.4f} (closed form {gain_closed:.4f}); "
                f"{reps:,} training sets, each scored on one fresh (x, y); lambda fixed from "
                "the closed form before the simulation",
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------
# 4. Empirical risk vs risk


@dataclass(frozen=True)
class EmpiricalRiskConfig:
    """Training risk of fitted OLS models vs their true risk, and convergence for fixed models."""

    d: int = 5
    """Features of the linear model (x ~ N(0, I_d))."""
    sigma: float = 1.0
    """Label noise standard deviation of the regression task."""
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
    alpha: float = 0.01
    """Family-wise false-alarm rate of the agreement claim (Bonferroni)."""

    def __post_init__(self) -> None:
        require(self.d >= 1, f"d must be >= 1, got {self.d}")
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
        _require_alpha(self.alpha)

    @classmethod
    def quick(cls) -> EmpiricalRiskConfig:
        return cls(fits=8000, eval_repeats=400)


@experiment("foundations.empirical_risk", topic="foundations", config=EmpiricalRiskConfig)
def empirical_risk(cfg: EmpiricalRiskConfig, ctx: RunContext) -> Outcome:
    """The training risk of a fitted model underestimates its risk; for a fixed model the
    empirical risk converges to the risk like 1/sqrt(n)."""
    rng = np.random.default_rng(ctx.seed)
    d, sigma = cfg.d, cfg.sigma
    theta = rng.standard_normal(d)
    sizes = np.array(cfg.train_sizes)
    emp_mean, emp_se, true_mean, true_se, gap, gap_se = (np.zeros(len(sizes)) for _ in range(6))
    scatter: tuple[np.ndarray, np.ndarray] | None = None
    with ctx.progress(len(sizes), "training-set sizes") as bar:
        for i, n in enumerate(sizes):
            train_risk, true_risk = st.simulate_ols_risks(rng, int(n), theta, sigma, cfg.fits)
            emp_mean[i], emp_se[i] = st.mean_and_se(train_risk)
            true_mean[i], true_se[i] = st.mean_and_se(true_risk)
            gap[i], gap_se[i] = st.mean_and_se(true_risk - train_risk)
            if scatter is None:
                scatter = (train_risk[:1500], true_risk[:1500])
            ctx.log({"n_train": int(n), "empirical": emp_mean[i], "true": true_mean[i]})
            bar.advance()
    assert scatter is not None
    theory_emp = np.array([st.ols_expected_training_risk(int(n), d, sigma) for n in sizes])
    theory_true = np.array([st.ols_expected_risk_gaussian_design(int(n), d, sigma) for n in sizes])
    z_gap = gap / gap_se
    z_theory = np.concatenate(
        [
            st.standardized_deviation(emp_mean, emp_se, theory_emp),
            st.standardized_deviation(true_mean, true_se, theory_true),
        ]
    )
    z_star = st.bonferroni_z(z_theory.size, cfg.alpha)

    # fixed models: a regression model with a fixed error and a fixed linear classifier
    theta_model = theta + 0.5 * rng.standard_normal(d)
    w = rng.standard_normal(d)
    v = w + 0.5 * np.linalg.norm(w) / math.sqrt(d) * rng.standard_normal(d)
    risk_sq = float(st.linear_model_risk(theta_model, theta, np.eye(d), sigma))
    risk_01 = st.halfspace_zero_one_risk(w, v, cfg.flip_probability)
    eval_sizes = np.array(cfg.eval_sizes)
    dev_sq, dev_01, dev_sq_se, dev_01_se = (np.zeros(len(eval_sizes)) for _ in range(4))
    bias_sq, bias_01 = np.zeros(len(eval_sizes)), np.zeros(len(eval_sizes))
    with ctx.progress(len(eval_sizes), "evaluation sizes") as bar:
        for i, n in enumerate(eval_sizes):
            emp_sq, emp_01 = st.simulate_fixed_model_risks(
                rng,
                int(n),
                cfg.eval_repeats,
                theta=theta,
                theta_model=theta_model,
                sigma=sigma,
                w=w,
                v=v,
                flip_probability=cfg.flip_probability,
            )
            dev_sq[i], dev_sq_se[i] = st.mean_and_se(np.abs(emp_sq - risk_sq))
            dev_01[i], dev_01_se[i] = st.mean_and_se(np.abs(emp_01 - risk_01))
            bias_sq[i], bias_01[i] = emp_sq.mean() - risk_sq, emp_01.mean() - risk_01
            ctx.log({"n_eval": int(n), "mad_squared": dev_sq[i], "mad_zero_one": dev_01[i]})
            bar.advance()
    slope_sq = st.loglog_slope(eval_sizes, dev_sq)
    slope_01 = st.loglog_slope(eval_sizes, dev_01)

    fig, (ax_risk, ax_scatter, ax_conv) = figure(ncols=3, size=(4.6, 3.8))
    grid = np.linspace(sizes.min(), sizes.max(), 200)
    ax_risk.errorbar(
        sizes,
        true_mean,
        yerr=2 * true_se,
        fmt="o",
        color="C3",
        ms=4,
        capsize=3,
        label="true risk of the fit (MC)",
    )
    ax_risk.errorbar(
        sizes,
        emp_mean,
        yerr=2 * emp_se,
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
    train_risk, true_risk = scatter
    ax_scatter.scatter(train_risk, true_risk, s=4, alpha=0.4, color="C0")
    top = float(np.quantile(np.concatenate(scatter), 0.995))
    ax_scatter.plot([0, top], [0, top], "k--", lw=1, label="true = empirical")
    ax_scatter.set_xlim(0, top)
    ax_scatter.set_ylim(0, top)
    ax_scatter.set_xlabel("training (empirical) risk")
    ax_scatter.set_ylabel("true risk")
    ax_scatter.set_title(f"{len(train_risk)} fits with n = {sizes[0]} (above the line: optimism)")
    ax_scatter.legend(fontsize=8)
    ax_conv.errorbar(
        eval_sizes,
        dev_sq,
        yerr=2 * dev_sq_se,
        fmt="o",
        color="C0",
        ms=4,
        label=f"squared loss (slope {slope_sq:.3f})",
    )
    ax_conv.errorbar(
        eval_sizes,
        dev_01,
        yerr=2 * dev_01_se,
        fmt="s",
        color="C2",
        ms=4,
        label=f"zero-one loss (slope {slope_01:.3f})",
    )
    for values, color in ((dev_sq, "C0"), (dev_01, "C2")):
        ax_conv.plot(
            eval_sizes,
            values[0] * np.sqrt(eval_sizes[0] / eval_sizes),
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

    worst = int(np.argmin(z_gap))
    slope_detail = (
        f"least-squares slope of log mean|emp - risk| on log n over n in {list(cfg.eval_sizes)}, "
        f"{cfg.eval_repeats} samples per n; criterion |slope + 1/2| <= {SLOPE_TOLERANCE} fixed "
        "before the run"
    )
    return Outcome(
        metrics={
            "train_sizes": list(cfg.train_sizes),
            "empirical_risk": emp_mean.tolist(),
            "true_risk": true_mean.tolist(),
            "optimism": gap.tolist(),
            "optimism_se": gap_se.tolist(),
            "eval_sizes": list(cfg.eval_sizes),
            "mad_squared": dev_sq.tolist(),
            "mad_zero_one": dev_01.tolist(),
            "risk_squared": risk_sq,
            "risk_zero_one": risk_01,
            "slope_squared": slope_sq,
            "slope_zero_one": slope_01,
            "max_abs_mean_error_zero_one": float(np.max(np.abs(bias_01))),
            "max_abs_mean_error_squared": float(np.max(np.abs(bias_sq))),
            "z_star": z_star,
        },
        figures=[ctx.savefig(fig, "empirical_risk")],
        claims=[
            Claim.at_least(
                "the training risk of a fitted model underestimates its true risk "
                "(min over n of mean gap / SE)",
                float(z_gap.min()),
                Z_EVIDENCE,
                detail=f"weakest at n = {sizes[worst]}: gap {gap[worst]:.4f} ± "
                f"{gap_se[worst]:.4f}; largest gap {gap[0]:.3f} at n = {sizes[0]}; "
                f"{cfg.fits:,} OLS fits per n, d = {d}, true risk exact given the fit",
            ),
            Claim.at_most(
                "mean training and true risks match sigma^2 (n-d)/n and "
                "sigma^2 (1 + d/(n-d-1)) (max |z|)",
                float(np.max(np.abs(z_theory))),
                z_star,
                detail=f"{z_theory.size} comparisons; z* = {z_star:.2f} Bonferroni at "
                f"alpha = {cfg.alpha:g}; Gaussian design x ~ N(0, I_{d})",
            ),
            Claim.at_most(
                "the empirical risk of a fixed model converges to its risk like 1/sqrt(n), "
                "squared loss (|slope + 1/2|)",
                abs(slope_sq + 0.5),
                SLOPE_TOLERANCE,
                detail=f"slope {slope_sq:.3f}; risk {risk_sq:.3f}; {slope_detail}",
            ),
            Claim.at_most(
                "the empirical risk of a fixed model converges to its risk like 1/sqrt(n), "
                "zero-one loss (|slope + 1/2|)",
                abs(slope_01 + 0.5),
                SLOPE_TOLERANCE,
                detail=f"slope {slope_01:.3f}; risk {risk_01:.3f} (closed form, label flips "
                f"{cfg.flip_probability:g}); {slope_detail}",
            ),
        ],
    )
