"""Tests of the generic Monte Carlo summaries of :mod:`deepnotes.core.stats` that used to live
in ``deepnotes.foundations.statistics`` (now ``estimation``), moved here with the helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepnotes.core.stats import (
    agreement_bound,
    covariance_and_se,
    standardized_deviation,
    variance_and_se,
)


@pytest.mark.parametrize(("distribution", "kurtosis"), [("normal", 3.0), ("exponential", 9.0)])
def test_variance_se_matches_the_spread_of_repeated_variance_estimates(
    distribution: str, kurtosis: float
) -> None:
    # 4000 independent experiments of T = 200 draws (mean 0, variance 1): the SE each one
    # reports (root mean square over the experiments) matches the actual spread of s^2 across
    # experiments and the exact sqrt((mu_4 - (T-3)/(T-1)) / T), also for a skewed population
    # whose s^2 is about twice as variable as the Gaussian shortcut sqrt(2 / (T - 1)) says
    rng = np.random.default_rng(1)
    if distribution == "normal":
        draws = rng.standard_normal((4000, 200))
    else:
        draws = rng.standard_exponential((4000, 200)) - 1.0
    s2, se = variance_and_se(draws, axis=1)
    np.testing.assert_allclose(s2, draws.var(axis=1, ddof=1))
    reported = math.sqrt(np.mean(se**2))
    exact = math.sqrt((kurtosis - 197 / 199) / 200)
    assert reported == pytest.approx(exact, rel=0.05)
    assert s2.std(ddof=1) == pytest.approx(exact, rel=0.05)
    assert exact / math.sqrt(2 / 199) == pytest.approx(1.0 if kurtosis == 3 else 2.0, rel=0.02)


def test_covariance_se_of_a_diagonal_entry_is_the_variance_se() -> None:
    samples = np.random.default_rng(2).standard_normal((20_000, 3)) @ np.array(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]]
    )
    cov, se = covariance_and_se(samples)
    np.testing.assert_allclose(cov, np.cov(samples, rowvar=False))
    np.testing.assert_allclose(se, se.T)
    _, var_se = variance_and_se(samples[:, 2])
    assert se[2, 2] == pytest.approx(float(var_se), rel=1e-3)
    with pytest.raises(ValueError, match=r"\(n >= 2, d\)"):
        covariance_and_se(np.zeros(5))


def test_standardized_deviation_and_the_agreement_bound() -> None:
    z = standardized_deviation(np.array([1.0, 0.0, 2.0]), np.array([0.5, 0.0, 0.0]), 0.0)
    assert z[0] == 2.0 and z[1] == 0.0 and math.isinf(z[2])
    # the two-sided Bonferroni bound the foundations experiments used as bonferroni_z(M, alpha)
    assert agreement_bound(1, 0.05) == pytest.approx(1.959964, abs=1e-5)
    assert agreement_bound(100, 0.01) == pytest.approx(3.8906, abs=1e-3)
    assert agreement_bound(10) < agreement_bound(1000)
    with pytest.raises(ValueError, match="family"):
        agreement_bound(0)
    with pytest.raises(ValueError, match="alpha"):
        agreement_bound(3, 1.5)
