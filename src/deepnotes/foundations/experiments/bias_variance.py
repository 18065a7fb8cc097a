"""The bias-variance decomposition over model capacity. Notes: discussion 2, section
"Bias-variance tradeoff" (problem 1: E[(Y - f(x))^2] = Var + Bias^2 + sigma^2).

Polynomial least squares of each degree is fitted on many independent training sets of
y = sin(2 pi x) + noise; both sides of the decomposition are estimated at fixed test inputs.

Claims (thresholds from the house policy of :mod:`deepnotes.core.stats`):

- ``decomposition``: the two sides agree at every degree: max over degrees of
  |LHS - RHS| / SE within the two-sided Bonferroni bound at ``alpha`` over the degrees.
- ``u_shape``: the test error is U-shaped in capacity: the degree with the least test error is
  interior and both ends are worse (two paired one-sided tests over the training sets, which
  every degree shares, Bonferroni over the two ends; the weaker one decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.foundations import estimation as est


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
    alpha: float = stats.ALPHA_AGREEMENT
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
        require(0 < self.alpha < 0.5, f"alpha must be in (0, 0.5), got {self.alpha}")

    @classmethod
    def quick(cls) -> BiasVarianceConfig:
        return cls(training_sets=10_000)


@dataclass(frozen=True)
class BiasVarianceMeasurements:
    """Both sides of the decomposition per degree, averaged over the test inputs."""

    degrees: np.ndarray
    """Polynomial degrees, (K,)."""
    bias2: np.ndarray
    """Unbiased squared bias, (K,)."""
    variance: np.ndarray
    """Variance of the predictions, (K,)."""
    noise: float
    """sigma^2."""
    test_error: np.ndarray
    """Left side E[(Y - f(x))^2], (K,)."""
    test_error_se: np.ndarray
    """Its standard error, (K,)."""
    gap: np.ndarray
    """LHS - RHS, (K,)."""
    gap_se: np.ndarray
    """Standard error of ``gap``, (K,)."""
    per_set_error: np.ndarray
    """Test error of each fit, (K, R): training set r is shared by every degree."""
    examples: dict[int, np.ndarray]
    """25 fitted curves on ``x_plot`` per degree, (25, 200) each."""
    x_plot: np.ndarray
    """Inputs of the example curves, (200,)."""

    @property
    def best(self) -> int:
        """Index of the degree with the least test error."""
        return int(np.argmin(self.test_error))

    def metrics(self) -> dict[str, float | list[float]]:
        return {
            "degrees": [int(k) for k in self.degrees],
            "bias2": self.bias2.tolist(),
            "variance": self.variance.tolist(),
            "noise": self.noise,
            "test_error": self.test_error.tolist(),
            "test_error_se": self.test_error_se.tolist(),
            "gap": self.gap.tolist(),
            "gap_se": self.gap_se.tolist(),
            "best_degree": int(self.degrees[self.best]),
        }


def _sine(x: np.ndarray) -> np.ndarray:
    """The regression function E[Y | x] of the bias-variance experiment."""
    return np.sin(2 * np.pi * x)


def _fit_polynomials(x: np.ndarray, y: np.ndarray, degree: int, chunk: int = 8192) -> np.ndarray:
    """Least-squares polynomial coefficients for each row of x, y (R, n) -> (R, degree + 1),
    fitted ``chunk`` training sets at a time to bound memory."""
    return np.concatenate(
        [
            est.fit_least_squares(
                est.polynomial_features(x[i : i + chunk], degree), y[i : i + chunk]
            )
            for i in range(0, len(x), chunk)
        ]
    )


def measure(cfg: BiasVarianceConfig, ctx: RunContext) -> BiasVarianceMeasurements:
    """Fit every degree on the same training sets and score it on the same fresh labels."""
    rng = ctx.numpy_rng("training sets")
    sets, m = cfg.training_sets, cfg.test_points
    x_test = (np.arange(m) + 0.5) / m  # (m,)
    target = _sine(x_test)  # f*(x) = E[Y | x], (m,)
    # the same training sets and fresh test labels serve every degree (paired comparisons)
    x_train = est.stratified_uniform(rng, sets, cfg.n_train)  # (R, n)
    y_train = _sine(x_train) + cfg.sigma * rng.standard_normal(x_train.shape)  # (R, n)
    y_test = target + cfg.sigma * rng.standard_normal((sets, m))  # (R, m)
    results: list[est.MonteCarloDecomposition] = []
    per_set_error = np.zeros((len(cfg.degrees), sets))  # (K, R)
    examples: dict[int, np.ndarray] = {}
    x_plot = np.linspace(0, 1, 200)
    with ctx.progress(len(cfg.degrees), "polynomial degrees") as bar:
        for k, degree in enumerate(cfg.degrees):
            coef = _fit_polynomials(x_train, y_train, degree)  # (R, degree + 1)
            predictions = coef @ est.polynomial_features(x_test, degree).T  # (R, m)
            result = est.bias_variance_monte_carlo(predictions, target, y_test, cfg.sigma**2)
            results.append(result)
            per_set_error[k] = est.squared_loss(y_test, predictions).mean(axis=1)
            examples[degree] = coef[:25] @ est.polynomial_features(x_plot, degree).T
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
    return BiasVarianceMeasurements(
        degrees=np.array(cfg.degrees),
        bias2=np.array([r.bias2.mean() for r in results]),
        variance=np.array([r.variance.mean() for r in results]),
        noise=cfg.sigma**2,
        test_error=np.array([r.test_error.mean() for r in results]),
        test_error_se=np.array([r.test_error_se for r in results]),
        gap=np.array([r.gap for r in results]),
        gap_se=np.array([r.gap_se for r in results]),
        per_set_error=per_set_error,
        examples=examples,
        x_plot=x_plot,
    )


def draw(m: BiasVarianceMeasurements, cfg: BiasVarianceConfig, ctx: RunContext) -> list[Path]:
    degrees = m.degrees
    fig, axes = figure(ncols=4, size=(4.2, 3.6))
    ax = axes[0]
    shown_bias2 = np.where(m.bias2 > 0, m.bias2, np.nan)  # the unbiased estimate can dip below 0
    ax.plot(degrees, shown_bias2, "o-", color="C0", ms=4, label="bias² (values ≤ 0 not drawn)")
    ax.plot(degrees, m.variance, "s-", color="C1", ms=4, label="variance")
    ax.axhline(m.noise, color="grey", ls=":", label="noise σ²")
    ax.errorbar(
        degrees,
        m.test_error,
        yerr=2 * m.test_error_se,
        fmt="D",
        color="C3",
        ms=5,
        capsize=3,
        label="test error (MC, ± 2 SE)",
    )
    ax.plot(degrees, m.bias2 + m.variance + m.noise, "k--", lw=1, label="var + bias² + σ²")
    ax.set_yscale("log")
    ax.set_xlabel("polynomial degree (capacity)")
    ax.set_ylabel("average over x of the term")
    ax.set_title(f"decomposition ({cfg.training_sets:,} training sets of {cfg.n_train})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    shown = (degrees[min(1, len(degrees) - 1)], degrees[m.best], degrees[-1])
    for ax, degree in zip(axes[1:], shown, strict=True):
        ax.plot(m.x_plot, m.examples[int(degree)].T, color="C0", lw=0.6, alpha=0.35)
        ax.plot(m.x_plot, _sine(m.x_plot), color="black", lw=2, label="E[Y|x] = sin 2πx")
        ax.set_ylim(-2.5, 2.5)
        ax.set_xlabel("x")
        ax.set_ylabel("prediction")
        ax.set_title(f"degree {degree}: 25 fits")
        ax.legend(fontsize=7, loc="lower left")
    return [ctx.savefig(fig, "bias_variance")]


def claims(m: BiasVarianceMeasurements, cfg: BiasVarianceConfig) -> list[Claim]:
    degrees = m.degrees
    setting = (
        f"{m.per_set_error.shape[1]:,} training sets of {cfg.n_train} points, "
        f"{cfg.test_points} test inputs, sigma = {cfg.sigma:g}"
    )
    z_gap = stats.standardized_deviation(m.gap, m.gap_se, 0.0)
    bound = stats.agreement_bound(len(degrees), cfg.alpha)
    worst = int(np.nanargmax(np.abs(z_gap))) if not np.all(np.isnan(z_gap)) else 0
    best = m.best
    ends = (0, len(degrees) - 1)
    tests = [
        stats.paired(m.per_set_error[end], m.per_set_error[best], "greater", family=len(ends))
        for end in ends
    ]
    weaker = min(range(len(ends)), key=lambda i: np.nan_to_num(tests[i].statistic, nan=-np.inf))
    return [
        Claim.at_most(
            "E[(Y - f(x))^2] = Var + Bias^2 + sigma^2 at every capacity "
            "(max over degrees of |LHS - RHS| / SE)",
            float(np.max(np.abs(z_gap))),
            bound,
            detail=f"LHS and RHS averaged over the test inputs; worst at degree "
            f"{degrees[worst]}: LHS - RHS = {m.gap[worst]:+.2e} ± {m.gap_se[worst]:.1e} "
            f"(LHS {m.test_error[worst]:.4g}); Bias^2 estimated without bias; SE from the "
            f"i.i.d. per-training-set identity residual; bound {bound:.2f} = two-sided "
            f"Bonferroni over {len(degrees)} degrees at alpha = {cfg.alpha:g}; {setting}",
            key="decomposition",
        ),
        Claim.from_test(
            "the test error is U-shaped in capacity: minimal at an interior degree, higher at "
            "both ends (weaker of the two paired tests)",
            tests[weaker],
            detail=f"minimum {m.test_error[best]:.4f} at degree {degrees[best]}; degree "
            f"{degrees[0]}: {m.test_error[0]:.4f} (z = {tests[0].statistic:.1f}); degree "
            f"{degrees[-1]}: {m.test_error[-1]:.4f} (z = {tests[1].statistic:.1f}); paired over "
            f"the training sets; an end degree that is itself the minimum has statistic 0 and "
            f"fails; {setting}",
            key="u_shape",
        ),
    ]


@experiment(
    "foundations.bias_variance",
    topic="foundations",
    config=BiasVarianceConfig,
    claims=("decomposition", "u_shape"),
)
def bias_variance(cfg: BiasVarianceConfig, ctx: RunContext) -> Outcome:
    """The expected squared error splits into Var + Bias^2 + sigma^2 at every polynomial degree,
    and the test error is U-shaped in the degree."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
