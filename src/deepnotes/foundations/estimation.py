"""Estimators, the bias-variance decomposition, OLS vs ridge, and risk vs empirical risk.

Notes: discussion 1, "Estimators" (definitions 5-7) and "Loss functions & risk functions"
(definitions 8-10); discussion 2, "Bias-variance tradeoff" (problem 1, the decomposition;
problems 2-3, bias and covariance of OLS and of ridge regression).

Everything here is a pure function of arrays (NumPy, float64): closed forms, estimators, and
vectorised Monte Carlo helpers that take an explicit ``numpy.random.Generator``. No plotting,
no I/O; the experiments live in :mod:`deepnotes.foundations.experiments`. Monte Carlo
summaries (means, standard errors, standardized deviations) come from :mod:`deepnotes.core.stats`.

Conventions: ``R`` Monte Carlo replicates (training sets), ``n`` training examples, ``d``
features, ``m`` test inputs, ``L`` values of the ridge coefficient ``lam`` (the notes' lambda).
Batched arrays put the replicate axis first.

Example:
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((30, 4))
    >>> np.allclose(ridge_bias(X, np.ones(4), lam=0.0), 0.0)  # OLS is unbiased
    True
    >>> bool(np.all(ridge_bias(X, np.ones(4), lam=5.0) < 0))  # ridge shrinks towards 0
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.polynomial import legendre

from deepnotes.core.stats import _count, mean_and_se

Distribution = Literal["normal", "exponential", "uniform"]
DISTRIBUTIONS: tuple[str, ...] = ("normal", "exponential", "uniform")

# ---------------------------------------------------------------------------------------------
# Estimators (discussion 1, "Estimators")


def standardized_draws(
    rng: np.random.Generator, distribution: Distribution, shape: tuple[int, ...]
) -> np.ndarray:
    """Draws with mean 0 and variance 1 from a normal, exponential (skewed, excess kurtosis 6)
    or uniform distribution."""
    if distribution == "normal":
        return rng.standard_normal(shape)
    if distribution == "exponential":
        return rng.standard_exponential(shape) - 1.0
    if distribution == "uniform":
        return rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), shape)
    raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")


def sample_mean(samples: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""The sample mean :math:`\bar X = \frac1n \sum_i X_i` (notes' example estimator)."""
    samples = np.asarray(samples, dtype=float)
    _count(samples, axis, minimum=1)
    return samples.mean(axis=axis)


def sample_variance(samples: np.ndarray, ddof: int, axis: int = -1) -> np.ndarray:
    r"""Variance estimator :math:`\frac{1}{n - \text{ddof}} \sum_i (X_i - \bar X)^2`.

    ``ddof=0`` is the plug-in (maximum-likelihood) 1/n estimator, ``ddof=1`` the 1/(n-1) one.
    """
    samples = np.asarray(samples, dtype=float)
    count = _count(samples, axis, minimum=ddof + 1)
    centred = samples - samples.mean(axis=axis, keepdims=True)
    return (centred**2).sum(axis=axis) / (count - ddof)


def sample_variance_bias(n: int, sigma: float, ddof: int) -> float:
    r"""Exact bias of :func:`sample_variance` for ``n`` i.i.d. draws of variance ``sigma**2``.

    :math:`\mathbb E\big[\sum_i (X_i - \bar X)^2\big] = (n-1)\sigma^2`, so

    .. math:: \operatorname{Bias} = \frac{n-1}{n-\text{ddof}}\sigma^2 - \sigma^2
              = \frac{\text{ddof} - 1}{n - \text{ddof}}\,\sigma^2,

    i.e. :math:`-\sigma^2/n` for the 1/n estimator and 0 for the 1/(n-1) estimator.
    """
    if n <= ddof or n < 2:
        raise ValueError(f"need n >= 2 and n > ddof, got n={n}, ddof={ddof}")
    return (ddof - 1) / (n - ddof) * sigma**2


def sample_mean_variance(n: int, sigma: float) -> float:
    r""":math:`\operatorname{Var}(\bar X) = \sigma^2 / n` for ``n`` i.i.d. draws."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return sigma**2 / n


@dataclass(frozen=True)
class EstimatorDraws:
    """One estimate per simulated dataset, each of shape (trials,)."""

    mean: np.ndarray
    """The sample mean of each dataset."""
    variance_biased: np.ndarray
    """The 1/n variance estimate of each dataset."""
    variance_unbiased: np.ndarray
    """The 1/(n-1) variance estimate of each dataset."""


def simulate_estimators(
    rng: np.random.Generator,
    n: int,
    trials: int,
    *,
    mu: float = 0.0,
    sigma: float = 1.0,
    distribution: Distribution = "normal",
    chunk_elements: int = 4_000_000,
) -> EstimatorDraws:
    r"""Draw ``trials`` datasets of ``n`` i.i.d. values :math:`X_i = \mu + \sigma Z_i` and apply
    the three estimators to each (vectorised, in chunks of at most ``chunk_elements`` draws).

    Example:
        >>> draws = simulate_estimators(np.random.default_rng(0), n=5, trials=10_000)
        >>> draws.variance_biased.mean()  # close to (n - 1) / n = 0.8
    """
    if n < 2 or trials < 2:
        raise ValueError(f"need n >= 2 and trials >= 2, got n={n}, trials={trials}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    rows = max(1, chunk_elements // n)
    mean, biased, unbiased = (np.empty(trials) for _ in range(3))
    for start in range(0, trials, rows):
        stop = min(trials, start + rows)
        x = mu + sigma * standardized_draws(rng, distribution, (stop - start, n))  # (T, n)
        mean[start:stop] = sample_mean(x)
        biased[start:stop] = sample_variance(x, ddof=0)
        unbiased[start:stop] = biased[start:stop] * n / (n - 1)
    return EstimatorDraws(mean, biased, unbiased)


# ---------------------------------------------------------------------------------------------
# Bias-variance decomposition (discussion 2, problem 1)


@dataclass(frozen=True)
class Decomposition:
    r"""Expected squared error split as :math:`\mathrm{Bias}^2 + \mathrm{Var} + \sigma^2`.

    Fields are arrays of a common shape (per test input, or per lambda) or scalars.
    """

    bias2: np.ndarray
    r"""Squared bias :math:`(\mathbb E_{\mathcal D}[f(x)] - \mathbb E[Y|x])^2`."""
    variance: np.ndarray
    r"""Variance :math:`\mathbb E_{\mathcal D}[(f(x) - \mathbb E_{\mathcal D} f(x))^2]`."""
    noise: float
    r"""Irreducible error :math:`\sigma^2`."""

    @property
    def total(self) -> np.ndarray:
        """Bias^2 + Var + sigma^2, the expected squared error it decomposes."""
        return self.bias2 + self.variance + self.noise


@dataclass(frozen=True)
class MonteCarloDecomposition:
    """A Monte Carlo bias-variance decomposition at m test inputs, from R training sets."""

    bias2: np.ndarray
    """Unbiased estimate of the squared bias at each test input, shape (m,)."""
    variance: np.ndarray
    """Sample variance (ddof=1) of the R predictions at each test input, shape (m,)."""
    noise: float
    """The known noise variance sigma^2."""
    test_error: np.ndarray
    """Mean of (Y_new - f(x))^2 over the R training sets at each test input, shape (m,)."""
    test_error_se: float
    """Standard error of the test error averaged over the m test inputs."""
    gap: float
    """Average over test inputs of test_error - (variance + bias2 + noise)."""
    gap_se: float
    """Standard error of ``gap`` (see :func:`bias_variance_monte_carlo`)."""

    @property
    def total(self) -> np.ndarray:
        """The right-hand side Var + Bias^2 + sigma^2 at each test input, shape (m,)."""
        return self.bias2 + self.variance + self.noise


def bias_variance_monte_carlo(
    predictions: np.ndarray, target: np.ndarray, test_targets: np.ndarray, noise_variance: float
) -> MonteCarloDecomposition:
    r"""Both sides of the notes' decomposition, estimated from R independent training sets.

    .. math:: \mathbb E_{Y, \mathcal D}[(Y - f_{\hat\theta(\mathcal D)}(x))^2]
              = \operatorname{Var}(f(x)) + \operatorname{Bias}(f(x))^2 + \sigma^2

    Left side: the mean over r of :math:`(Y_r - f_r(x))^2` with a fresh test label
    :math:`Y_r \sim p(y|x)` per training set. Right side: the sample variance
    :math:`\hat V` of :math:`f_r(x)` (ddof=1) and the unbiased squared bias
    :math:`\hat B^2 = (\bar f(x) - f^*(x))^2 - \hat V / R`, where :math:`f^*(x) = \mathbb E[Y|x]`.

    With these estimators the difference is exactly a mean of i.i.d. terms,

    .. math:: \text{LHS} - \text{RHS} = \frac1R \sum_r \big[(Y_r - f_r)^2 - (f_r - f^*)^2
              - \sigma^2\big],

    whose expectation is 0 when the decomposition holds (the test noise has variance
    :math:`\sigma^2` and is independent of the fit), so its standard error is the standard
    deviation of the bracket (averaged over the test inputs first) over :math:`\sqrt R`.

    Arguments:
        predictions: (R, m) predictions :math:`f_r(x_j)` of models fitted on R independent
            training sets.
        target: (m,) the regression function :math:`f^*(x_j) = \mathbb E[Y | x_j]`.
        test_targets: (R, m) fresh labels :math:`Y \sim p(y | x_j)`, independent of training.
        noise_variance: :math:`\sigma^2 = \operatorname{Var}(Y | x)`.
    """
    predictions = np.asarray(predictions, dtype=float)
    target = np.asarray(target, dtype=float)
    test_targets = np.asarray(test_targets, dtype=float)
    if predictions.ndim != 2 or predictions.shape[0] < 2:
        raise ValueError(f"predictions must have shape (R >= 2, m), got {predictions.shape}")
    replicates, m = predictions.shape
    if target.shape != (m,):
        raise ValueError(f"target must have shape ({m},) to match predictions, got {target.shape}")
    if test_targets.shape != predictions.shape:
        raise ValueError(
            f"test_targets must have the shape of predictions {predictions.shape}, "
            f"got {test_targets.shape}"
        )
    if noise_variance < 0:
        raise ValueError(f"noise_variance must be >= 0, got {noise_variance}")
    variance = predictions.var(axis=0, ddof=1)  # (m,)
    bias2 = (predictions.mean(axis=0) - target) ** 2 - variance / replicates  # (m,)
    squared_error = (test_targets - predictions) ** 2  # (R, m)
    test_error = squared_error.mean(axis=0)
    # the identity's residual per training set, averaged over the test inputs: (R,)
    residual = (squared_error - (predictions - target) ** 2 - noise_variance).mean(axis=1)
    _, gap_se = mean_and_se(residual)
    _, error_se = mean_and_se(squared_error.mean(axis=1))
    gap = float(test_error.mean() - (variance + bias2 + noise_variance).mean())
    return MonteCarloDecomposition(
        bias2=bias2,
        variance=variance,
        noise=float(noise_variance),
        test_error=test_error,
        test_error_se=float(error_se),
        gap=gap,
        gap_se=float(gap_se),
    )


def bias_variance_exact(
    predictions: np.ndarray,
    target: np.ndarray,
    noise_variance: float,
    weights: np.ndarray | None = None,
) -> Decomposition:
    r"""The decomposition for a *finite* distribution of training sets (no sampling error).

    Training set r has probability ``weights[r]`` (uniform if None) and gives predictions
    ``predictions[r]``; Bias = :math:`\sum_r w_r f_r - f^*`,
    Var = :math:`\sum_r w_r (f_r - \sum_s w_s f_s)^2`.

    Arguments:
        predictions: (R, m); target: (m,); weights: (R,), non-negative, summing to 1.
    """
    predictions = np.asarray(predictions, dtype=float)
    if predictions.ndim != 2:
        raise ValueError(f"predictions must have shape (R, m), got {predictions.shape}")
    replicates, m = predictions.shape
    target = np.asarray(target, dtype=float)
    if target.shape != (m,):
        raise ValueError(f"target must have shape ({m},), got {target.shape}")
    if weights is None:
        weights = np.full(replicates, 1.0 / replicates)
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (replicates,) or np.any(weights < 0) or abs(weights.sum() - 1) > 1e-9:
        raise ValueError(
            f"weights must be {replicates} non-negative probabilities summing to 1, "
            f"got shape {weights.shape} and sum {weights.sum():.6g}"
        )
    mean = weights @ predictions  # (m,)
    variance = weights @ (predictions - mean) ** 2
    return Decomposition(bias2=(mean - target) ** 2, variance=variance, noise=float(noise_variance))


def stratified_uniform(rng: np.random.Generator, trials: int, n: int) -> np.ndarray:
    """``trials`` random training inputs in [0, 1], one uniform draw in each of the ``n`` cells
    [i/n, (i+1)/n): shape (trials, n). Marginally each point is uniform on its cell; no two
    points are more than 2/n apart, so least-squares fits never face a large empty gap."""
    if trials < 1 or n < 1:
        raise ValueError(f"trials and n must be >= 1, got {trials}, {n}")
    return (np.arange(n) + rng.random((trials, n))) / n


def polynomial_features(x: np.ndarray, degree: int) -> np.ndarray:
    r"""Legendre features :math:`P_0(2x - 1), \dots, P_k(2x - 1)` of inputs in [0, 1].

    Same span as the monomials :math:`1, x, \dots, x^k`, but well conditioned.

    Returns:
        shape ``x.shape + (degree + 1,)``.
    """
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    return legendre.legvander(2.0 * np.asarray(x, dtype=float) - 1.0, degree)


def fit_least_squares(features: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Least squares :math:`\hat\beta = \arg\min \|\Phi \beta - y\|^2`, batched over leading axes.

    Solved through a QR factorisation :math:`\Phi = QR`, :math:`R\hat\beta = Q^\top y`.

    Arguments:
        features: (..., n, k) design matrices with ``n >= k`` and full column rank.
        y: (..., n) targets.

    Returns:
        (..., k) coefficients.
    """
    features = np.asarray(features, dtype=float)
    y = np.asarray(y, dtype=float)
    if features.ndim < 2 or features.shape[-2] < features.shape[-1]:
        raise ValueError(f"features must have shape (..., n, k) with n >= k, got {features.shape}")
    if y.shape != features.shape[:-1]:
        raise ValueError(f"y must have shape {features.shape[:-1]}, got {y.shape}")
    q, r = np.linalg.qr(features)  # (..., n, k), (..., k, k)
    qty = np.einsum("...nk,...n->...k", q, y)
    return np.linalg.solve(r, qty[..., None])[..., 0]


# ---------------------------------------------------------------------------------------------
# OLS and ridge regression with a fixed design (discussion 2, problems 2-3)


def _design(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be a design matrix of shape (n, d), got {X.shape}")
    return X


def _lambda(lam: float) -> float:
    if lam < 0 or not math.isfinite(lam):
        raise ValueError(f"lam must be a finite number >= 0, got {lam}")
    return float(lam)


def _spectrum(X: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Eigenvalues :math:`s_k` (d,) and eigenvectors V (d, d) of :math:`X^\top X`
    (from the SVD of X, zeros included when n < d); ValueError if OLS (lam = 0) is undefined."""
    X = _design(X)
    _, singular, vt = np.linalg.svd(X, full_matrices=True)
    d = X.shape[1]
    eigenvalues = np.zeros(d)
    eigenvalues[: singular.size] = singular**2
    if lam == 0 and eigenvalues.min() <= 1e-12 * max(eigenvalues.max(), 1e-300):
        raise ValueError(
            f"OLS (lam=0) needs X^T X invertible: X of shape {X.shape} has rank "
            f"{int(np.sum(eigenvalues > 1e-12 * eigenvalues.max()))} < d={d}; use lam > 0"
        )
    return eigenvalues, vt.T


def _theta(theta: np.ndarray, d: int) -> np.ndarray:
    theta = np.asarray(theta, dtype=float)
    if theta.shape != (d,):
        raise ValueError(f"theta must have shape ({d},) to match X, got {theta.shape}")
    return theta


def _test_inputs(x_test: np.ndarray, d: int) -> np.ndarray:
    x_test = np.asarray(x_test, dtype=float)
    if x_test.ndim != 2 or x_test.shape[1] != d:
        raise ValueError(f"x_test must have shape (m, {d}), got {x_test.shape}")
    return x_test


def ridge_estimate(X: np.ndarray, Y: np.ndarray, lam: float) -> np.ndarray:
    r"""The ridge estimate :math:`\tilde\theta = (X^\top X + \lambda I)^{-1} X^\top Y`
    (OLS for ``lam = 0``), for one label vector Y (n,) or a batch (R, n) -> (R, d)."""
    X, lam = _design(X), _lambda(lam)
    Y = np.asarray(Y, dtype=float)
    n, d = X.shape
    if Y.shape[-1:] != (n,) or Y.ndim > 2:
        raise ValueError(f"Y must have shape ({n},) or (R, {n}) to match X, got {Y.shape}")
    gram = X.T @ X + lam * np.eye(d)  # (d, d)
    return np.linalg.solve(gram, X.T @ Y.T).T


def ridge_bias(X: np.ndarray, theta: np.ndarray, lam: float) -> np.ndarray:
    r"""Bias of the ridge estimate for :math:`Y = X\theta + \epsilon`, fixed X (problem 3).

    .. math:: \mathbb E[\tilde\theta] - \theta = (X^\top X + \lambda I)^{-1}X^\top X\theta
              - \theta = -\lambda (X^\top X + \lambda I)^{-1}\theta
              = -\sum_k \frac{\lambda}{s_k + \lambda}\, v_k v_k^\top \theta,

    with :math:`X^\top X = \sum_k s_k v_k v_k^\top`. Zero for OLS (``lam = 0``, problem 2).

    Returns:
        shape (d,).
    """
    lam = _lambda(lam)
    eigenvalues, V = _spectrum(X, lam)
    theta = _theta(theta, V.shape[0])
    shrink = lam / (eigenvalues + lam) if lam > 0 else np.zeros_like(eigenvalues)
    return -V @ (shrink * (V.T @ theta))


def ridge_covariance(X: np.ndarray, lam: float, sigma: float = 1.0) -> np.ndarray:
    r"""Covariance of the ridge estimate when the noise has covariance :math:`\sigma^2 I`.

    .. math:: \operatorname{Cov}(\tilde\theta) = \sigma^2 (X^\top X + \lambda I)^{-1} X^\top X
              (X^\top X + \lambda I)^{-1} = \sigma^2 \sum_k \frac{s_k}{(s_k + \lambda)^2}
              v_k v_k^\top,

    which is :math:`\sigma^2 (X^\top X)^{-1}` for OLS (notes: noise variance 1, so sigma = 1).
    Every eigenvalue :math:`\sigma^2 s_k/(s_k+\lambda)^2` falls as lambda grows.

    Returns:
        shape (d, d).
    """
    lam = _lambda(lam)
    eigenvalues, V = _spectrum(X, lam)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(eigenvalues > 0, eigenvalues / (eigenvalues + lam) ** 2, 0.0)
    return sigma**2 * (V * scale) @ V.T


def ols_covariance(X: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    r""":math:`\operatorname{Cov}(\hat\theta_{\mathrm{OLS}}) = \sigma^2 (X^\top X)^{-1}`
    (problem 2), computed directly by a linear solve."""
    X = _design(X)
    _spectrum(X, 0.0)  # rank check with a clear message
    return sigma**2 * np.linalg.solve(X.T @ X, np.eye(X.shape[1]))


def prediction_bias(X: np.ndarray, theta: np.ndarray, lam: float, x_test: np.ndarray) -> np.ndarray:
    r"""Bias of the prediction :math:`x^\top\tilde\theta` at each test input:
    :math:`x^\top(\mathbb E\tilde\theta - \theta)`. Shapes: x_test (m, d) -> (m,)."""
    bias = ridge_bias(X, theta, lam)
    return _test_inputs(x_test, bias.size) @ bias


def prediction_variance(
    X: np.ndarray, lam: float, x_test: np.ndarray, sigma: float = 1.0
) -> np.ndarray:
    r"""Variance of :math:`x^\top\tilde\theta` at each test input:
    :math:`x^\top \operatorname{Cov}(\tilde\theta)\, x`. Shapes: x_test (m, d) -> (m,)."""
    cov = ridge_covariance(X, lam, sigma)
    x_test = _test_inputs(x_test, cov.shape[0])
    return np.einsum("mi,ij,mj->m", x_test, cov, x_test)


def prediction_mse(
    X: np.ndarray, theta: np.ndarray, lam: float, x_test: np.ndarray, sigma: float = 1.0
) -> Decomposition:
    r"""Expected squared error of :math:`x^\top\tilde\theta` against a fresh
    :math:`Y = x^\top\theta + \epsilon` at each test input, as Bias^2 + Var + sigma^2 (m,)."""
    return Decomposition(
        bias2=prediction_bias(X, theta, lam, x_test) ** 2,
        variance=prediction_variance(X, lam, x_test, sigma),
        noise=float(sigma**2),
    )


def ridge_risk(
    X: np.ndarray,
    theta: np.ndarray,
    lams: np.ndarray,
    input_second_moment: np.ndarray,
    sigma: float = 1.0,
) -> Decomposition:
    r"""Test risk of ridge over a grid of lambdas, for test inputs with
    :math:`\mathbb E[x x^\top] = M` (``input_second_moment``):

    .. math:: \mathbb E_{\mathcal D, x, Y}[(Y - x^\top\tilde\theta)^2]
              = \underbrace{b^\top M b}_{\mathrm{Bias}^2}
              + \underbrace{\operatorname{tr}(M \operatorname{Cov}\tilde\theta)}_{\mathrm{Var}}
              + \sigma^2,\qquad b = \mathbb E\tilde\theta - \theta.

    If M commutes with :math:`X^\top X` (e.g. the notes' diagonal :math:`X^\top X` with
    independent test coordinates), Bias^2 is increasing and Var decreasing in lambda, term by
    term in the eigenbasis. Var decreases for any M; Bias^2 need not (cross terms).

    Returns:
        A :class:`Decomposition` with arrays of shape (L,).
    """
    X = _design(X)
    d = X.shape[1]
    theta = _theta(theta, d)
    lams = np.atleast_1d(np.asarray(lams, dtype=float))
    if lams.ndim != 1 or np.any(lams < 0) or not np.all(np.isfinite(lams)):
        raise ValueError(f"lams must be a 1-D array of finite values >= 0, got {lams}")
    M = np.asarray(input_second_moment, dtype=float)
    if M.shape != (d, d):
        raise ValueError(f"input_second_moment must have shape ({d}, {d}), got {M.shape}")
    eigenvalues, V = _spectrum(X, float(lams.min()))
    coords = V.T @ theta  # theta in the eigenbasis, (d,)
    m_eigen = V.T @ M @ V  # M in the eigenbasis, (d, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.where(lams[:, None] > 0, lams[:, None] / (eigenvalues + lams[:, None]), 0.0)
        scale = np.where(eigenvalues > 0, eigenvalues / (eigenvalues + lams[:, None]) ** 2, 0.0)
    b = -shrink * coords  # bias in the eigenbasis, (L, d)
    bias2 = np.einsum("li,ij,lj->l", b, m_eigen, b)
    variance = sigma**2 * scale @ np.diag(m_eigen)
    return Decomposition(bias2=bias2, variance=variance, noise=float(sigma**2))


# ---------------------------------------------------------------------------------------------
# Risk and empirical risk (discussion 1, "Loss functions & risk functions")


def squared_loss(y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    r"""Squared-error loss :math:`(y - f_\theta(x))^2`, elementwise."""
    return (np.asarray(y, dtype=float) - np.asarray(prediction, dtype=float)) ** 2


def zero_one_loss(y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    r"""Zero-one loss :math:`\delta(f_\theta(x) \ne y)`, elementwise (as floats)."""
    return (np.asarray(y) != np.asarray(prediction)).astype(float)


def empirical_risk(losses: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""Empirical risk :math:`\frac1n \sum_{i=1}^n \mathcal L(x_i, y_i, \theta)` (definition 10)."""
    losses = np.asarray(losses, dtype=float)
    _count(losses, axis, minimum=1)
    return losses.mean(axis=axis)


def linear_model_risk(
    theta_hat: np.ndarray, theta: np.ndarray, input_second_moment: np.ndarray, sigma: float
) -> np.ndarray:
    r"""True squared-loss risk of :math:`f(x) = x^\top\hat\theta` when
    :math:`Y = x^\top\theta + \epsilon`, :math:`\mathbb E[xx^\top] = M`,
    :math:`\operatorname{Var}\epsilon = \sigma^2`:

    .. math:: R(\hat\theta) = \sigma^2 + (\hat\theta - \theta)^\top M (\hat\theta - \theta).

    Arguments:
        theta_hat: (d,) or (R, d); theta: (d,); input_second_moment: (d, d).

    Returns:
        shape () or (R,).
    """
    theta_hat = np.asarray(theta_hat, dtype=float)
    theta = np.asarray(theta, dtype=float)
    d = theta.shape[-1] if theta.ndim == 1 else -1
    if theta.ndim != 1 or theta_hat.shape[-1:] != (d,) or theta_hat.ndim > 2:
        raise ValueError(
            f"theta must be (d,) and theta_hat (d,) or (R, d); got {theta.shape}, {theta_hat.shape}"
        )
    M = np.asarray(input_second_moment, dtype=float)
    if M.shape != (d, d):
        raise ValueError(f"input_second_moment must have shape ({d}, {d}), got {M.shape}")
    error = theta_hat - theta
    return sigma**2 + np.einsum("...i,ij,...j->...", error, M, error)


def ols_expected_training_risk(n: int, d: int, sigma: float) -> float:
    r"""Expected empirical (training) risk of OLS with d features on n examples:
    :math:`\mathbb E[\frac1n\|Y - X\hat\theta\|^2] = \sigma^2 (n - d)/n` (the residual is the
    noise projected onto the (n - d)-dimensional complement of X's columns)."""
    _check_n_d(n, d, extra=0)
    return sigma**2 * (n - d) / n


def ols_expected_risk_gaussian_design(n: int, d: int, sigma: float) -> float:
    r"""Expected true risk of OLS when the rows of X are i.i.d. :math:`N(0, \Sigma)`:
    :math:`\sigma^2 (1 + \frac{d}{n - d - 1})`, because
    :math:`\mathbb E[(X^\top X)^{-1}] = \Sigma^{-1}/(n - d - 1)` (inverse Wishart); needs
    n > d + 1."""
    _check_n_d(n, d, extra=1)
    return sigma**2 * (1.0 + d / (n - d - 1))


def halfspace_zero_one_risk(w: np.ndarray, v: np.ndarray, flip_probability: float) -> float:
    r"""Zero-one risk of the classifier :math:`\operatorname{sign}(x^\top v)` when
    :math:`x \sim N(0, I)` and :math:`y = \operatorname{sign}(x^\top w)` flipped with
    probability :math:`\eta`:

    .. math:: R = \eta + (1 - 2\eta)\,\frac{\angle(w, v)}{\pi},

    since the two half-spaces disagree on a wedge of angle :math:`\angle(w, v)` (twice, out of
    :math:`2\pi`) and a flip turns agreement into error and back.
    """
    w, v = np.asarray(w, dtype=float), np.asarray(v, dtype=float)
    if w.ndim != 1 or w.shape != v.shape or not (np.any(w) and np.any(v)):
        raise ValueError(f"w and v must be non-zero vectors of one shape, got {w.shape}, {v.shape}")
    if not 0 <= flip_probability <= 1:
        raise ValueError(f"flip_probability must be in [0, 1], got {flip_probability}")
    cosine = np.clip(w @ v / (np.linalg.norm(w) * np.linalg.norm(v)), -1.0, 1.0)
    angle = math.acos(float(cosine))
    return flip_probability + (1 - 2 * flip_probability) * angle / math.pi


def simulate_ols_risks(
    rng: np.random.Generator,
    n: int,
    theta: np.ndarray,
    sigma: float,
    fits: int,
    chunk_elements: int = 4_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Fit OLS ``fits`` times on fresh training sets and return each fit's empirical and true
    risk (squared loss), shapes (fits,) and (fits,).

    Training set: rows :math:`x_i \sim N(0, I_d)`, :math:`y_i = x_i^\top\theta + \sigma
    \epsilon_i`. Empirical risk :math:`\frac1n\sum_i (y_i - x_i^\top\hat\theta)^2`; true risk
    :math:`\sigma^2 + \|\hat\theta - \theta\|^2` exactly (:func:`linear_model_risk`, M = I).
    """
    theta = np.asarray(theta, dtype=float)
    if theta.ndim != 1:
        raise ValueError(f"theta must have shape (d,), got {theta.shape}")
    d = theta.size
    _check_n_d(n, d, extra=0)
    if fits < 1:
        raise ValueError(f"fits must be >= 1, got {fits}")
    rows = max(1, chunk_elements // (n * d))
    training, true = np.empty(fits), np.empty(fits)
    for start in range(0, fits, rows):
        stop = min(fits, start + rows)
        x = rng.standard_normal((stop - start, n, d))  # (F, n, d)
        y = x @ theta + sigma * rng.standard_normal((stop - start, n))  # (F, n)
        theta_hat = fit_least_squares(x, y)  # (F, d)
        fitted = np.einsum("fnd,fd->fn", x, theta_hat)  # (F, n)
        training[start:stop] = empirical_risk(squared_loss(y, fitted))
        true[start:stop] = linear_model_risk(theta_hat, theta, np.eye(d), sigma)
    return training, true


def simulate_fixed_model_risks(
    rng: np.random.Generator,
    n: int,
    repeats: int,
    *,
    theta: np.ndarray,
    theta_model: np.ndarray,
    sigma: float,
    w: np.ndarray,
    v: np.ndarray,
    flip_probability: float,
    chunk_elements: int = 4_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Empirical risks of two *fixed* models on ``repeats`` fresh samples of size ``n``.

    Inputs :math:`x \sim N(0, I_d)` are shared by two tasks: regression
    :math:`y = x^\top\theta + \sigma\epsilon` scored by squared loss for
    :math:`f(x) = x^\top\theta_{\text{model}}`, and classification
    :math:`y = \pm\operatorname{sign}(x^\top w)` (flipped with probability ``flip_probability``)
    scored by zero-one loss for :math:`\operatorname{sign}(x^\top v)`.

    Returns:
        ``(squared, zero_one)`` empirical risks, each of shape (repeats,).
    """
    theta, theta_model, w, v = (np.asarray(a, dtype=float) for a in (theta, theta_model, w, v))
    d = theta.size
    if any(a.shape != (d,) for a in (theta, theta_model, w, v)) or theta.ndim != 1:
        raise ValueError(
            "theta, theta_model, w and v must all have shape (d,), got "
            f"{theta.shape}, {theta_model.shape}, {w.shape}, {v.shape}"
        )
    if n < 1 or repeats < 1:
        raise ValueError(f"n and repeats must be >= 1, got {n}, {repeats}")
    rows = max(1, chunk_elements // (n * d))
    squared, zero_one = np.empty(repeats), np.empty(repeats)
    for start in range(0, repeats, rows):
        stop = min(repeats, start + rows)
        x = rng.standard_normal((stop - start, n, d))  # (B, n, d)
        y = x @ theta + sigma * rng.standard_normal((stop - start, n))  # (B, n)
        squared[start:stop] = empirical_risk(squared_loss(y, x @ theta_model))
        flip = rng.random((stop - start, n)) < flip_probability
        label = np.where(flip, -1.0, 1.0) * np.sign(x @ w)
        zero_one[start:stop] = empirical_risk(zero_one_loss(label, np.sign(x @ v)))
    return squared, zero_one


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x` (the exponent p of
    :math:`y \propto x^p`)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"x and y must be 1-D of one length >= 2, got {x.shape}, {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    slope, _ = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope)


# ---------------------------------------------------------------------------------------------
# helpers


def _check_n_d(n: int, d: int, extra: int) -> None:
    if d < 1 or n <= d + extra:
        raise ValueError(f"need d >= 1 and n > d + {extra}, got n={n}, d={d}")
