"""Estimators, bias-variance, OLS/ridge closed forms and risk helpers, checked against
independent computations (exact enumeration, explicit matrix formulas, brute-force Monte Carlo)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from deepnotes.core.stats import mean_and_se
from deepnotes.foundations import estimation as st

# ---------------------------------------------------------------------------------------------
# Estimators


def test_estimators_exact_expectations_on_enumerated_samples() -> None:
    # a three-point population; every sample of size n enumerated with its probability
    support, probs = np.array([0.0, 1.0, 3.0]), np.array([0.5, 0.3, 0.2])
    mu = probs @ support
    sigma2 = probs @ (support - mu) ** 2
    for n in (2, 3, 4):
        samples = np.array(list(itertools.product(support, repeat=n)))  # (3^n, n)
        weight = np.prod(np.array(list(itertools.product(probs, repeat=n))), axis=1)
        assert weight.sum() == pytest.approx(1.0)
        mean = st.sample_mean(samples)
        assert weight @ mean == pytest.approx(mu, abs=1e-12)
        assert weight @ (mean - mu) ** 2 == pytest.approx(
            st.sample_mean_variance(n, math.sqrt(sigma2)), abs=1e-12
        )
        biased = weight @ st.sample_variance(samples, ddof=0)
        unbiased = weight @ st.sample_variance(samples, ddof=1)
        assert biased == pytest.approx((n - 1) / n * sigma2, abs=1e-12)
        assert biased - sigma2 == pytest.approx(-sigma2 / n, abs=1e-12)
        assert unbiased == pytest.approx(sigma2, abs=1e-12)
        for ddof, value in ((0, biased), (1, unbiased)):
            bias = st.sample_variance_bias(n, math.sqrt(sigma2), ddof)
            assert value - sigma2 == pytest.approx(bias, abs=1e-12)


def test_simulate_estimators_shapes_chunking_and_values() -> None:
    small = st.simulate_estimators(np.random.default_rng(3), 4, 1000, chunk_elements=37)
    large = st.simulate_estimators(np.random.default_rng(3), 4, 1000)
    for a, b in ((small.mean, large.mean), (small.variance_unbiased, large.variance_unbiased)):
        assert a.shape == (1000,)
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(small.variance_unbiased, small.variance_biased * 4 / 3)
    draws = st.simulate_estimators(
        np.random.default_rng(4), 3, 200_000, mu=2.0, sigma=3.0, distribution="uniform"
    )
    mean, se = mean_and_se(draws.variance_biased)
    assert abs(mean - 9.0 * 2 / 3) < 4 * se
    with pytest.raises(ValueError, match="n >= 2"):
        st.simulate_estimators(np.random.default_rng(0), 1, 10)


@pytest.mark.parametrize("distribution", ["normal", "exponential", "uniform"])
def test_standardized_draws_have_mean_0_and_variance_1(distribution: str) -> None:
    draws = st.standardized_draws(np.random.default_rng(5), distribution, (400_000,))  # type: ignore[arg-type]
    assert abs(draws.mean()) < 0.01
    assert draws.var() == pytest.approx(1.0, abs=0.02)


def test_estimator_errors() -> None:
    with pytest.raises(ValueError, match="distribution must be one of"):
        st.standardized_draws(np.random.default_rng(0), "cauchy", (3,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 values"):
        st.sample_variance(np.ones(1), ddof=1)
    with pytest.raises(ValueError, match="n > ddof"):
        st.sample_variance_bias(1, 1.0, ddof=1)


# ---------------------------------------------------------------------------------------------
# Bias-variance decomposition


def test_bias_variance_identity_is_exact_on_a_finite_distribution() -> None:
    # two training points y_i = f(x_i) + e_i, e_i = +-1 with probability 1/2 each (sigma^2 = 1);
    # fit a line through the two points and predict at three test inputs
    f = np.array([0.3, -0.2])  # f(x) at the training inputs x = 0, 1
    x_test = np.array([0.0, 0.5, 2.0])
    f_test = np.array([0.3, 0.4, 1.0])  # E[Y | x] at the test inputs (f is not linear)
    predictions = []
    for e in itertools.product((-1.0, 1.0), repeat=2):
        y0, y1 = f + np.array(e)
        predictions.append(y0 + (y1 - y0) * x_test)
    predictions = np.array(predictions)  # (4, 3)
    decomposition = st.bias_variance_exact(predictions, f_test, noise_variance=1.0)
    # left-hand side by enumeration: E over the 4 training sets and the 2 test labels
    lhs = np.zeros(3)
    for prediction in predictions:
        for noise in (-1.0, 1.0):
            lhs += 0.125 * (f_test + noise - prediction) ** 2
    np.testing.assert_allclose(decomposition.total, lhs, atol=1e-12)
    np.testing.assert_allclose(decomposition.variance, predictions.var(axis=0), atol=1e-12)


def test_bias_variance_exact_with_weights() -> None:
    predictions = np.array([[1.0], [3.0]])
    result = st.bias_variance_exact(
        predictions, np.array([2.5]), 0.0, weights=np.array([0.25, 0.75])
    )
    assert result.bias2[0] == pytest.approx(0.0)
    assert result.variance[0] == pytest.approx(0.25 * 2.25 + 0.75 * 0.25)
    with pytest.raises(ValueError, match="probabilities summing to 1"):
        st.bias_variance_exact(predictions, np.array([2.5]), 0.0, weights=np.array([0.5, 0.6]))


def test_bias_variance_monte_carlo_algebra() -> None:
    rng = np.random.default_rng(6)
    replicates, m = 400, 5
    target = rng.standard_normal(m)
    predictions = target + 0.3 + 0.5 * rng.standard_normal((replicates, m))
    test_targets = target + 0.7 * rng.standard_normal((replicates, m))
    result = st.bias_variance_monte_carlo(predictions, target, test_targets, 0.49)
    np.testing.assert_allclose(result.test_error, ((test_targets - predictions) ** 2).mean(0))
    # the unbiased squared bias plus variance / R is the plug-in squared bias
    plug_in = (predictions.mean(0) - target) ** 2
    np.testing.assert_allclose(result.bias2 + result.variance / replicates, plug_in)
    # LHS - RHS is exactly the mean of the per-training-set identity residual
    residual = (test_targets - predictions) ** 2 - (predictions - target) ** 2 - 0.49
    assert result.gap == pytest.approx(residual.mean(), abs=1e-12)
    assert result.gap_se == pytest.approx(residual.mean(1).std(ddof=1) / math.sqrt(replicates))
    assert abs(result.gap) < 4 * result.gap_se
    np.testing.assert_allclose(result.total, result.bias2 + result.variance + 0.49)
    with pytest.raises(ValueError, match=r"target must have shape \(5,\)"):
        st.bias_variance_monte_carlo(predictions, target[:3], test_targets, 0.49)
    with pytest.raises(ValueError, match="test_targets must have the shape"):
        st.bias_variance_monte_carlo(predictions, target, test_targets[:, :2], 0.49)


def test_polynomial_least_squares_matches_numpy_polyfit() -> None:
    rng = np.random.default_rng(7)
    x = st.stratified_uniform(rng, 6, 15)  # (6, 15)
    assert np.all((x >= np.arange(15) / 15) & (x < (np.arange(15) + 1) / 15))
    y = np.sin(3 * x) + 0.1 * rng.standard_normal(x.shape)
    grid = np.linspace(0, 1, 7)
    coef = st.fit_least_squares(st.polynomial_features(x, 4), y)  # (6, 5)
    ours = coef @ st.polynomial_features(grid, 4).T  # (6, 7)
    for r in range(6):
        reference = np.polynomial.polynomial.Polynomial.fit(x[r], y[r], 4)
        np.testing.assert_allclose(ours[r], reference(grid), atol=1e-9)
    assert st.polynomial_features(np.zeros((2, 3)), 2).shape == (2, 3, 3)
    with pytest.raises(ValueError, match="n >= k"):
        st.fit_least_squares(np.ones((3, 4)), np.ones(3))
    with pytest.raises(ValueError, match="degree must be >= 0"):
        st.polynomial_features(x, -1)


# ---------------------------------------------------------------------------------------------
# OLS and ridge


def _problem(n: int = 12, d: int = 4, seed: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * np.array([2.0, 1.0, 0.3, 0.1])[:d], rng.standard_normal(d)


@pytest.mark.parametrize("lam", [0.0, 0.05, 1.0, 30.0])
def test_ridge_closed_forms_match_explicit_matrix_formulas(lam: float) -> None:
    X, theta = _problem()
    d = X.shape[1]
    A = np.linalg.solve(X.T @ X + lam * np.eye(d), X.T)  # theta_tilde = A Y, (d, n)
    sigma = 1.7
    np.testing.assert_allclose(st.ridge_covariance(X, lam, sigma), sigma**2 * A @ A.T, atol=1e-12)
    np.testing.assert_allclose(st.ridge_bias(X, theta, lam), A @ X @ theta - theta, atol=1e-12)
    Y = np.random.default_rng(9).standard_normal((3, X.shape[0]))
    np.testing.assert_allclose(st.ridge_estimate(X, Y, lam), Y @ A.T, atol=1e-12)
    x_test = np.random.default_rng(10).standard_normal((5, d))
    cov = sigma**2 * A @ A.T
    np.testing.assert_allclose(
        st.prediction_variance(X, lam, x_test, sigma), np.diag(x_test @ cov @ x_test.T)
    )
    bias = st.prediction_bias(X, theta, lam, x_test)
    np.testing.assert_allclose(bias, x_test @ (A @ X @ theta - theta), atol=1e-12)
    mse = st.prediction_mse(X, theta, lam, x_test, sigma)
    np.testing.assert_allclose(mse.total, bias**2 + np.diag(x_test @ cov @ x_test.T) + sigma**2)


def test_ols_is_unbiased_with_covariance_sigma2_inverse_gram() -> None:
    X, theta = _problem()
    np.testing.assert_allclose(st.ridge_bias(X, theta, 0.0), 0.0, atol=1e-12)
    # the estimator is linear in Y, so E[theta_hat] = theta_hat(E[Y]) = theta_hat(X theta)
    np.testing.assert_allclose(st.ridge_estimate(X, X @ theta, 0.0), theta, atol=1e-10)
    np.testing.assert_allclose(st.ols_covariance(X, 2.0), 4.0 * np.linalg.inv(X.T @ X), rtol=1e-10)
    np.testing.assert_allclose(st.ridge_covariance(X, 0.0, 2.0), st.ols_covariance(X, 2.0))


def test_ridge_with_fewer_examples_than_features() -> None:
    rng = np.random.default_rng(11)
    X, theta = rng.standard_normal((3, 5)), rng.standard_normal(5)
    with pytest.raises(ValueError, match=r"OLS .* needs X\^T X invertible"):
        st.ridge_bias(X, theta, 0.0)
    with pytest.raises(ValueError, match="use lam > 0"):
        st.ols_covariance(X)
    lam = 0.5
    A = np.linalg.solve(X.T @ X + lam * np.eye(5), X.T)
    np.testing.assert_allclose(st.ridge_bias(X, theta, lam), A @ X @ theta - theta, atol=1e-12)
    np.testing.assert_allclose(st.ridge_covariance(X, lam), A @ A.T, atol=1e-12)


def test_ridge_risk_matches_explicit_traces_for_any_test_distribution() -> None:
    X, theta = _problem()
    d = X.shape[1]
    B = np.random.default_rng(12).standard_normal((d, d))
    M = B @ B.T  # a test second-moment matrix that does not commute with X^T X
    lams = np.array([0.0, 0.3, 3.0])
    risk = st.ridge_risk(X, theta, lams, M, sigma=0.8)
    for k, lam in enumerate(lams):
        b = st.ridge_bias(X, theta, lam)
        assert risk.bias2[k] == pytest.approx(b @ M @ b, rel=1e-10, abs=1e-14)
        cov = st.ridge_covariance(X, lam, 0.8)
        assert risk.variance[k] == pytest.approx(np.trace(M @ cov), rel=1e-10)
    assert risk.noise == pytest.approx(0.64)
    grid = np.geomspace(1e-3, 1e3, 100)
    assert np.all(np.diff(st.ridge_risk(X, theta, grid, M).variance) < 0)


def test_ridge_bias2_is_monotone_for_commuting_test_distribution_but_not_in_general() -> None:
    X = np.diag([1.0, 10.0])  # X^T X = diag(1, 100), the notes' diagonal case
    theta = np.array([1.0, -1.0])
    grid = np.geomspace(1e-3, 1e4, 200)
    isotropic = st.ridge_risk(X, theta, grid, np.eye(2))
    assert np.all(np.diff(isotropic.bias2) > 0)
    # at the single test input x = (1, 1) the two shrunken components cancel: x^T b -> 0 both
    # as lambda -> 0 and as lambda -> infinity, so the squared bias there rises and then falls
    x = np.array([[1.0, 1.0]])
    at_point = st.ridge_risk(X, theta, grid, x.T @ x).bias2
    by_point = [st.prediction_bias(X, theta, lam, x)[0] ** 2 for lam in grid]
    np.testing.assert_allclose(at_point, by_point, rtol=1e-10, atol=1e-15)
    peak = int(np.argmax(at_point))
    assert 0 < peak < len(grid) - 1 and at_point[-1] < 0.01 * at_point[peak]


def test_ridge_input_errors() -> None:
    X, theta = _problem()
    with pytest.raises(ValueError, match=r"theta must have shape \(4,\)"):
        st.ridge_bias(X, theta[:3], 1.0)
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        st.ridge_covariance(X, -1.0)
    with pytest.raises(ValueError, match=r"X must be a design matrix of shape \(n, d\)"):
        st.ridge_covariance(X[0], 1.0)
    with pytest.raises(ValueError, match=r"x_test must have shape \(m, 4\)"):
        st.prediction_variance(X, 1.0, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Y must have shape \(12,\) or \(R, 12\)"):
        st.ridge_estimate(X, np.ones(5), 1.0)
    with pytest.raises(ValueError, match=r"input_second_moment must have shape \(4, 4\)"):
        st.ridge_risk(X, theta, [1.0], np.eye(3))


# ---------------------------------------------------------------------------------------------
# Risk and empirical risk


def test_losses_and_empirical_risk() -> None:
    assert st.empirical_risk(st.squared_loss([1.0, 2.0], [0.0, 0.0])) == pytest.approx(2.5)
    assert st.empirical_risk(st.zero_one_loss([1, -1, 1, 1], [1, 1, 1, -1])) == 0.5


def test_ols_training_risk_expectation_is_exact_for_any_fixed_design() -> None:
    # E||Y - X theta_hat||^2 = sigma^2 tr(I - H), H the hat matrix, whatever X is
    X, _ = _problem(n=15)
    hat = X @ np.linalg.solve(X.T @ X, X.T)
    sigma = 1.3
    assert sigma**2 * np.trace(np.eye(15) - hat) / 15 == pytest.approx(
        st.ols_expected_training_risk(15, 4, sigma)
    )


def test_simulate_ols_risks_against_closed_forms_and_lstsq() -> None:
    rng = np.random.default_rng(13)
    theta = np.array([1.0, -2.0, 0.5])
    training, true = st.simulate_ols_risks(rng, 12, theta, 1.0, 40_000, chunk_elements=50_000)
    assert training.shape == true.shape == (40_000,)
    for values, expected in (
        (training, st.ols_expected_training_risk(12, 3, 1.0)),
        (true, st.ols_expected_risk_gaussian_design(12, 3, 1.0)),
    ):
        mean, se = mean_and_se(values)
        assert abs(mean - expected) < 4 * se
    # one fit by hand with the same random stream
    rng = np.random.default_rng(14)
    training, true = st.simulate_ols_risks(rng, 12, theta, 1.0, 1)
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, 12, 3))[0]
    y = x @ theta + rng.standard_normal((1, 12))[0]
    theta_hat = np.linalg.lstsq(x, y, rcond=None)[0]
    assert training[0] == pytest.approx(np.mean((y - x @ theta_hat) ** 2))
    assert true[0] == pytest.approx(1.0 + np.sum((theta_hat - theta) ** 2))
    with pytest.raises(ValueError, match="n > d"):
        st.simulate_ols_risks(rng, 3, theta, 1.0, 10)


def test_linear_model_risk_against_a_large_sample() -> None:
    rng = np.random.default_rng(15)
    theta, theta_hat = np.array([1.0, 0.0]), np.array([0.5, 0.4])
    scale = np.array([1.0, 3.0])
    risk = st.linear_model_risk(theta_hat, theta, np.diag(scale**2), sigma=0.5)
    x = rng.standard_normal((500_000, 2)) * scale
    losses = st.squared_loss(x @ theta + 0.5 * rng.standard_normal(500_000), x @ theta_hat)
    mean, se = mean_and_se(losses)
    assert abs(mean - risk) < 4 * se
    batch = st.linear_model_risk(np.stack([theta, theta_hat]), theta, np.eye(2), 0.5)
    np.testing.assert_allclose(batch, [0.25, 0.25 + 0.25 + 0.16])


def test_halfspace_zero_one_risk() -> None:
    w = np.array([1.0, 0.0, 0.0])
    assert st.halfspace_zero_one_risk(w, 2 * w, 0.1) == pytest.approx(0.1)
    assert st.halfspace_zero_one_risk(w, -w, 0.1) == pytest.approx(0.9)
    assert st.halfspace_zero_one_risk(w, np.array([0.0, 1.0, 0.0]), 0.2) == pytest.approx(0.5)
    v = np.array([1.0, 1.0, 0.0])  # 45 degrees: error 1/4 without flips
    squared, zero_one = st.simulate_fixed_model_risks(
        np.random.default_rng(16),
        1000,
        200,
        theta=w,
        theta_model=w,
        sigma=1.0,
        w=w,
        v=v,
        flip_probability=0.0,
    )
    mean, se = mean_and_se(zero_one)
    assert abs(mean - 0.25) < 4 * se
    mean, se = mean_and_se(squared)
    assert abs(mean - 1.0) < 4 * se
    with pytest.raises(ValueError, match="non-zero vectors"):
        st.halfspace_zero_one_risk(w, np.zeros(3), 0.1)


def test_loglog_slope() -> None:
    n = np.array([10.0, 100.0, 1000.0])
    assert st.loglog_slope(n, 3.0 / np.sqrt(n)) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="positive"):
        st.loglog_slope(n, np.array([1.0, 0.0, 1.0]))
