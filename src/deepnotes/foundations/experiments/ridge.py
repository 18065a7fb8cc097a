"""OLS vs ridge regression: closed-form bias and covariance against Monte Carlo, and the
trade-off over lambda. Notes: discussion 2, section "Bias-variance tradeoff" (problems 2-3: bias
and covariance of the OLS and of the ridge estimate for a fixed design X, noise variance 1).

Closed forms (:mod:`deepnotes.foundations.estimation`) on a grid of lambdas; a Monte Carlo over
noise draws with the same X at a few lambdas (and at the closed form's best one).

Claims (thresholds from the house policy of :mod:`deepnotes.core.stats`):

- ``closed_form_matches_mc``: every closed form (theta bias, covariance entries, prediction
  bias, variance and MSE at fixed test inputs, risk over x ~ p(x)) agrees with Monte Carlo:
  max |z| within the two-sided Bonferroni bound at ``alpha`` over all deviations.
- ``bias_rises``: the squared bias of the predictions, averaged over x ~ p(x), rises with lambda
  on the whole grid (closed form). For a Gaussian design whose X^T X does not commute with
  E[x x^T] this is not guaranteed (cross terms), so it can fail; with ``design="orthogonal"``
  it holds term by term.
- ``mc_gain``: the closed form's best lambda > 0 has a lower test MSE than OLS in the Monte
  Carlo (a paired one-sided test over the training sets, each scored on one fresh (x, y);
  lambda fixed from the closed form before the simulation).

Checks (identities of the implementation: they fail only on a bug):

- ``variance_falls``: the closed-form variance falls with lambda on the grid (every eigenvalue
  sigma^2 s_k / (s_k + lambda)^2 falls, for any test distribution).
- ``closed_form_gain``: some lambda > 0 of the grid beats OLS in closed form: the derivative of
  the risk at lambda = 0 is negative whenever theta != 0 (Hoerl & Kennard, 1970).
"""

from __future__ import annotations

import math
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

KINDS = ("theta bias", "theta cov", "pred bias", "pred var", "pred mse", "risk")
"""The kinds of closed form compared with Monte Carlo."""


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
    alpha: float = stats.ALPHA_AGREEMENT
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
        require(0 < self.alpha < 0.5, f"alpha must be in (0, 0.5), got {self.alpha}")

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


@dataclass(frozen=True)
class RidgeMeasurements:
    """Closed-form curves over the lambda grid and Monte Carlo estimates at a few lambdas."""

    grid: np.ndarray
    """Positive lambdas of the closed-form grid, (G,)."""
    bias2: np.ndarray
    """Closed-form squared bias averaged over x ~ p(x) at lambda = 0 then the grid, (G + 1,)."""
    variance: np.ndarray
    """Closed-form variance averaged over x ~ p(x), same lambdas, (G + 1,)."""
    risk: np.ndarray
    """Closed-form test MSE (bias^2 + variance + sigma^2), same lambdas, (G + 1,)."""
    noise: float
    """sigma^2."""
    mc_lams: np.ndarray
    """Lambdas of the Monte Carlo (0 first; the closed form's best one included), (L,)."""
    z: dict[str, np.ndarray]
    """Standardized deviations (MC - closed form) / SE, by kind in :data:`KINDS`, flat."""
    mc_risk: np.ndarray
    """Monte Carlo test MSE over x ~ p(x), (L,)."""
    mc_risk_se: np.ndarray
    """Its standard error, (L,)."""
    mc_bias2: np.ndarray
    """Monte Carlo squared bias b^T M b (debiased), (L,) (figure only)."""
    mc_bias2_se: np.ndarray
    """Its delta-method standard error, (L,)."""
    mc_var: np.ndarray
    """Monte Carlo variance tr(M Cov), (L,) (figure only)."""
    mc_var_se: np.ndarray
    """Its standard error, (L,)."""
    ols_loss: np.ndarray
    """Squared error of OLS on each replicate's fresh (x, y), (R,)."""
    best_loss: np.ndarray
    """Squared error of ridge at the best lambda on the same fresh (x, y), (R,)."""

    @property
    def best(self) -> int:
        """Index in ``grid`` of the lambda with the least closed-form risk."""
        return int(np.argmin(self.risk[1:]))

    @property
    def lam_best(self) -> float:
        return float(self.grid[self.best])

    @property
    def gain_closed_form(self) -> float:
        """OLS risk minus the grid's best risk (closed form)."""
        return float(self.risk[0] - self.risk[1 + self.best])

    def violations(self) -> tuple[int, int]:
        """Steps of the grid (from lambda = 0) where bias^2 falls and where the variance
        rises, beyond rounding (1e-12 of the largest term)."""
        scale = max(float(self.bias2.max()), float(self.variance.max()))
        bias_steps, var_steps = np.diff(self.bias2), np.diff(self.variance)
        return int(np.sum(bias_steps < -1e-12 * scale)), int(np.sum(var_steps > 1e-12 * scale))

    def metrics(self) -> dict[str, float | list[float]]:
        z_flat = np.concatenate(list(self.z.values()))
        bias_violations, var_violations = self.violations()
        gain_mc, gain_se = stats.mean_se(self.ols_loss - self.best_loss)
        return {
            "ols_risk": float(self.risk[0]),
            "best_lam": self.lam_best,
            "best_risk": float(self.risk[1 + self.best]),
            "gain_closed_form": self.gain_closed_form,
            "gain_mc": gain_mc,
            "gain_mc_se": gain_se,
            "mc_lams": self.mc_lams.tolist(),
            "mc_risk": self.mc_risk.tolist(),
            "mc_risk_se": self.mc_risk_se.tolist(),
            "max_abs_z": float(np.max(np.abs(z_flat))),
            "comparisons": int(z_flat.size),
            "bias_violations": bias_violations,
            "variance_violations": var_violations,
        }


def measure(cfg: RidgeConfig, ctx: RunContext) -> RidgeMeasurements:
    """Closed forms on the grid, then the Monte Carlo with the same noise draws (and the same
    fresh test data) for every lambda."""
    X, theta, x_test = _ridge_problem(cfg, ctx.numpy_rng("problem"))
    second_moment = np.diag(cfg.scales**2)  # E[x x^T] under p(x)
    sigma, d, m = cfg.sigma, cfg.d, cfg.test_inputs
    grid = np.geomspace(cfg.lam_min, cfg.lam_max, cfg.grid_points)
    curve = est.ridge_risk(X, theta, np.concatenate([[0.0], grid]), second_moment, sigma)
    lam_best = float(grid[int(np.argmin(curve.total[1:]))])

    rng = ctx.numpy_rng("noise")
    reps = cfg.replicates
    Y = X @ theta + sigma * rng.standard_normal((reps, cfg.n))  # (R, n)
    y_fixed = x_test @ theta + sigma * rng.standard_normal((reps, m))  # fresh labels, (R, m)
    x_fresh = rng.standard_normal((reps, d)) * cfg.scales  # fresh x ~ p(x) per replicate
    y_fresh = x_fresh @ theta + sigma * rng.standard_normal(reps)  # (R,)
    mc_lams = sorted({*cfg.mc_lams, lam_best})
    upper = np.triu_indices(d)
    z: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
    mc_bias2, mc_var, mc_risk, mc_risk_se = (np.zeros(len(mc_lams)) for _ in range(4))
    mc_bias2_se, mc_var_se = np.zeros(len(mc_lams)), np.zeros(len(mc_lams))
    losses: dict[float, np.ndarray] = {}
    with ctx.progress(len(mc_lams), "lambdas (Monte Carlo)") as bar:
        for i, lam in enumerate(mc_lams):
            theta_hat = est.ridge_estimate(X, Y, lam)  # (R, d)
            mean, se = stats.mean_and_se(theta_hat - theta)
            z["theta bias"].append(
                stats.standardized_deviation(mean, se, est.ridge_bias(X, theta, lam))
            )
            cov, cov_se = stats.covariance_and_se(theta_hat)
            z_cov = stats.standardized_deviation(cov, cov_se, est.ridge_covariance(X, lam, sigma))
            z["theta cov"].append(z_cov[upper])
            predictions = theta_hat @ x_test.T  # (R, m)
            mean, se = stats.mean_and_se(predictions - x_test @ theta)
            closed = est.prediction_mse(X, theta, lam, x_test, sigma)
            z["pred bias"].append(
                stats.standardized_deviation(mean, se, est.prediction_bias(X, theta, lam, x_test))
            )
            var, var_se = stats.variance_and_se(predictions)
            z["pred var"].append(stats.standardized_deviation(var, var_se, closed.variance))
            mean, se = stats.mean_and_se(est.squared_loss(y_fixed, predictions))
            z["pred mse"].append(stats.standardized_deviation(mean, se, closed.total))
            loss = est.squared_loss(y_fresh, np.einsum("rd,rd->r", x_fresh, theta_hat))
            losses[lam] = loss
            mc_risk[i], mc_risk_se[i] = stats.mean_se(loss)
            exact = est.ridge_risk(X, theta, [lam], second_moment, sigma)
            z["risk"].append(
                stats.standardized_deviation(mc_risk[i], mc_risk_se[i], exact.total[0]).reshape(1)
            )
            # Monte Carlo bias^2 and variance averaged over p(x): b^T M b and tr(M Cov)
            # (figure only; the delta method gives their standard errors)
            b_hat = theta_hat.mean(axis=0) - theta  # (d,)
            mc_var[i] = float(np.trace(second_moment @ cov))
            mc_bias2[i] = float(b_hat @ second_moment @ b_hat) - mc_var[i] / reps
            gradient = 2 * second_moment @ b_hat  # d(b^T M b)/db
            mc_bias2_se[i] = math.sqrt(max(float(gradient @ cov @ gradient), 0.0) / reps)
            spread = (((theta_hat - theta_hat.mean(axis=0)) * cfg.scales) ** 2).sum(axis=1)
            _, mc_var_se[i] = stats.mean_se(spread)  # (R,) terms whose mean is tr(M Cov)
            ctx.log({"lam": lam, "mc_risk": mc_risk[i], "closed_risk": float(exact.total[0])})
            bar.advance()
    return RidgeMeasurements(
        grid=grid,
        bias2=np.asarray(curve.bias2),
        variance=np.asarray(curve.variance),
        risk=np.asarray(curve.total),
        noise=sigma**2,
        mc_lams=np.array(mc_lams),
        z={k: np.concatenate(v) for k, v in z.items()},
        mc_risk=mc_risk,
        mc_risk_se=mc_risk_se,
        mc_bias2=mc_bias2,
        mc_bias2_se=mc_bias2_se,
        mc_var=mc_var,
        mc_var_se=mc_var_se,
        ols_loss=losses[0.0],
        best_loss=losses[lam_best],
    )


def draw(m: RidgeMeasurements, cfg: RidgeConfig, ctx: RunContext) -> list[Path]:
    z_flat = np.concatenate(list(m.z.values()))
    bound = stats.agreement_bound(z_flat.size, cfg.alpha)
    ols_risk, sigma = float(m.risk[0]), cfg.sigma
    fig, (ax_curve, ax_z) = figure(ncols=2, size=(5.6, 4.2))
    ax_curve.plot(m.grid, m.bias2[1:], color="C0", label="bias² (closed form)")
    ax_curve.plot(m.grid, m.variance[1:], color="C1", label="variance (closed form)")
    ax_curve.plot(m.grid, m.risk[1:], color="C3", lw=2, label="test MSE = bias² + var + σ²")
    ax_curve.axhline(m.noise, color="grey", ls=":", label="noise σ²")
    ax_curve.axhline(ols_risk, color="C3", ls="--", lw=1, label=f"OLS test MSE {ols_risk:.3f}")
    positive = m.mc_lams > 0
    for values, errors, fmt, color, label in (
        (m.mc_risk, m.mc_risk_se, "D", "C3", "test MSE (MC, ± 2 SE)"),
        (m.mc_var, m.mc_var_se, "s", "C1", "variance (MC)"),
        (m.mc_bias2, m.mc_bias2_se, "o", "C0", "bias² (MC)"),
    ):
        ax_curve.errorbar(
            m.mc_lams[positive],
            values[positive],
            yerr=2 * errors[positive],
            fmt=fmt,
            color=color,
            ms=4,
            capsize=3,
            label=label,
        )
    ax_curve.axvline(m.lam_best, color="black", lw=0.8, ls="-.", label=f"best λ = {m.lam_best:.3g}")
    ax_curve.set_xscale("log")
    ax_curve.set_xlabel("ridge coefficient λ")
    ax_curve.set_ylabel("average over test inputs x ~ p(x)")
    ax_curve.set_title(f"ridge trade-off (n = {cfg.n}, d = {cfg.d}, σ = {sigma:g})")
    ax_curve.set_ylim(0, max(1.6 * ols_risk, 1.2 * sigma**2))
    ax_curve.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax_curve.grid(alpha=0.3)
    edge = max(5.0, bound + 0.5)
    bins = np.linspace(-edge, edge, 41)
    ax_z.hist(z_flat, bins=bins, density=True, color="C0", alpha=0.6, label="MC − closed form")
    zz = np.linspace(bins[0], bins[-1], 300)
    ax_z.plot(zz, np.exp(-(zz**2) / 2) / math.sqrt(2 * math.pi), "k", label="N(0, 1)")
    for sign in (-1, 1):
        ax_z.axvline(sign * bound, color="C3", ls="--", lw=1)
    ax_z.set_xlabel("standardized deviation z = (MC − formula) / SE")
    ax_z.set_ylabel("density")
    ax_z.set_title(f"{z_flat.size} comparisons; dashed: ± {bound:.2f}")
    ax_z.legend(fontsize=8)
    return [ctx.savefig(fig, "ridge_tradeoff")]


def claims(m: RidgeMeasurements, cfg: RidgeConfig) -> list[Claim]:
    z_flat = np.concatenate(list(m.z.values()))
    bound = stats.agreement_bound(z_flat.size, cfg.alpha)
    worst_kind = max(m.z, key=lambda k: np.nan_to_num(np.max(np.abs(m.z[k])), nan=np.inf))
    bias_violations, var_violations = m.violations()
    gain = stats.paired(m.ols_loss, m.best_loss, "greater")
    design = (
        f"fixed {cfg.design} design n = {cfg.n}, d = {cfg.d}, feature scales "
        f"1..{cfg.smallest_scale:g}, sigma = {cfg.sigma:g}"
    )
    grid = (
        f"lambda = 0 and {cfg.grid_points} log-spaced values in [{cfg.lam_min:g}, "
        f"{cfg.lam_max:g}]; steps beyond 1e-12 x the largest term count"
    )
    ols_risk, best_risk = float(m.risk[0]), float(m.risk[1 + m.best])
    return [
        Claim.at_most(
            "closed-form bias and covariance of OLS and ridge (and the prediction bias, "
            "variance and MSE they imply) equal Monte Carlo (max |z|)",
            float(np.max(np.abs(z_flat))),
            bound,
            detail=f"{z_flat.size} comparisons over lambda in "
            f"{[f'{v:.3g}' for v in m.mc_lams]}: theta bias, covariance entries, prediction "
            f"bias, variance and MSE at {cfg.test_inputs} test inputs, and the risk over "
            f"x ~ p(x), per lambda; worst kind: {worst_kind}; bound {bound:.2f} = two-sided "
            f"Bonferroni at alpha = {cfg.alpha:g}; {len(m.ols_loss):,} noise draws; {design}",
            key="closed_form_matches_mc",
        ),
        Claim.at_most(
            "as lambda grows the squared bias rises monotonically (closed form, number of "
            "decreasing steps on the grid)",
            bias_violations,
            0,
            detail=f"bias^2 = b^T M b averaged over x ~ p(x), on {grid}; from "
            f"{float(m.bias2[0]):.3g} to {float(m.bias2[-1]):.3g}; not guaranteed when X^T X "
            f"and E[x x^T] do not commute; {design}",
            key="bias_rises",
        ),
        Claim.from_test(
            "the closed form's best lambda > 0 has a lower test MSE than OLS (Monte Carlo, "
            "paired over the training sets)",
            gain,
            detail=f"lambda = {m.lam_best:.3g} fixed from the closed form before the "
            f"simulation (closed-form gain {m.gain_closed_form:.4f}); each training set "
            "scored on one fresh (x, y)",
            key="mc_gain",
        ),
        Claim.at_most(
            "as lambda grows the variance falls monotonically (closed form, number of "
            "increasing steps on the grid)",
            var_violations,
            0,
            detail=f"variance = tr(M Cov) averaged over x ~ p(x), on {grid}; from "
            f"{float(m.variance[0]):.3g} to {float(m.variance[-1]):.3g}; guaranteed for any "
            "test distribution, so a step up is a bug",
            key="variance_falls",
            kind="check",
        ),
        Claim.compare(
            "some lambda > 0 has a lower test MSE than OLS (closed form, OLS MSE minus the "
            "grid's best)",
            m.gain_closed_form,
            ">",
            0.0,
            detail=f"OLS {ols_risk:.4f}, best lambda {m.lam_best:.3g}: {best_risk:.4f}; "
            "guaranteed for theta != 0 (Hoerl & Kennard 1970), so a failure is a bug",
            key="closed_form_gain",
            kind="check",
        ),
    ]


@experiment(
    "foundations.ridge",
    topic="foundations",
    config=RidgeConfig,
    claims=("closed_form_matches_mc", "bias_rises", "mc_gain"),
    checks=("variance_falls", "closed_form_gain"),
)
def ridge(cfg: RidgeConfig, ctx: RunContext) -> Outcome:
    """Ridge regression trades bias for variance: its closed-form bias and covariance match
    Monte Carlo, and some lambda > 0 beats OLS on test error."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
