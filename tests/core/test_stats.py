"""The house statistics against scipy and closed forms, and the significance policy's edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from deepnotes.core import stats
from deepnotes.core.registry import Claim


def test_mean_se_matches_the_formula() -> None:
    values = np.array([1.0, 2.0, 4.0, 7.0])
    mean, se = stats.mean_se(values)
    assert mean == pytest.approx(3.5)
    assert se == pytest.approx(np.std(values, ddof=1) / 2.0)
    assert se == pytest.approx(scipy_stats.sem(values))


def test_mean_se_refuses_a_single_value_and_matrices() -> None:
    with pytest.raises(ValueError, match="at least 2 values"):
        stats.mean_se([1.0])
    with pytest.raises(ValueError, match="1-D"):
        stats.mean_se(np.ones((2, 2)))


def test_mean_and_se_along_an_axis() -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((50, 3))
    mean, se = stats.mean_and_se(values, axis=0)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    np.testing.assert_allclose(se, scipy_stats.sem(values, axis=0))


def test_variance_se_is_close_to_the_gaussian_formula_for_many_draws() -> None:
    rng = np.random.default_rng(1)
    values = rng.standard_normal(200_000)
    s2, se = stats.variance_and_se(values)
    assert s2 == pytest.approx(1.0, abs=0.01)
    assert se == pytest.approx(math.sqrt(2 / (values.size - 1)), rel=0.02)


def test_covariance_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    samples = rng.standard_normal((500, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0.2], [0, 0, 1.0]])
    cov, se = stats.covariance_and_se(samples)
    np.testing.assert_allclose(cov, np.cov(samples, rowvar=False))
    assert se.shape == (3, 3) and np.all(se > 0)


def test_geometric_mean() -> None:
    assert stats.geometric_mean([1.0, 100.0]) == pytest.approx(10.0)
    assert stats.geometric_mean([2.0, 8.0, 4.0]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="positive"):
        stats.geometric_mean([1.0, 0.0])
    with pytest.raises(ValueError, match="at least one"):
        stats.geometric_mean([])


def test_critical_values_match_scipy() -> None:
    assert stats.critical_value(0.025) == pytest.approx(scipy_stats.norm.ppf(0.975))
    assert stats.critical_value(0.025, df=4) == pytest.approx(scipy_stats.t.ppf(0.975, 4))
    assert stats.agreement_bound(family=10, alpha=0.01) == pytest.approx(
        scipy_stats.norm.ppf(1 - 0.01 / 20)
    )
    assert stats.bonferroni(0.05, 5) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="family"):
        stats.bonferroni(0.05, 0)
    with pytest.raises(ValueError, match="alpha"):
        stats.critical_value(1.5)


def test_paired_t_matches_scipy_ttest_rel() -> None:
    a = np.array([0.91, 0.93, 0.92, 0.94, 0.90])
    b = np.array([0.88, 0.90, 0.91, 0.91, 0.90])
    result = stats.paired(a, b)
    reference = scipy_stats.ttest_rel(a, b, alternative="greater")
    assert result.test == "paired t" and result.df == 4
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.critical == pytest.approx(scipy_stats.t.ppf(0.975, 4))
    assert result.holds == (reference.statistic > scipy_stats.t.ppf(0.975, 4))


def test_many_values_use_the_normal_distribution() -> None:
    rng = np.random.default_rng(3)
    result = stats.one_sample(rng.normal(0.5, 1.0, size=stats.Z_MIN_SAMPLES))
    assert result.test == "z" and result.df is None
    assert result.critical == pytest.approx(scipy_stats.norm.ppf(1 - stats.ALPHA_EFFECT))
    assert result.holds


def test_less_alternative_mirrors_greater() -> None:
    a, b = np.array([1.0, 2.0, 3.5, 3.0]), np.array([2.0, 3.1, 4.0, 4.2])
    less = stats.paired(a, b, "less")
    greater = stats.paired(b, a, "greater")
    assert less.statistic == pytest.approx(-greater.statistic)
    assert less.holds == greater.holds
    assert less.p_value == pytest.approx(greater.p_value)


def test_bonferroni_raises_the_bar() -> None:
    diffs = np.array([0.3, 0.5, 0.2, 0.4, 0.35])
    single = stats.one_sample(diffs)
    family = stats.one_sample(diffs, family=6)
    assert family.critical > single.critical
    assert family.level == pytest.approx(stats.ALPHA_EFFECT / 6)
    assert "Bonferroni over 6" in family.describe()


def test_zero_difference_with_zero_spread_never_holds() -> None:
    """Two identical methods do not beat each other: the old local z gave +inf and 'holds'."""
    same = np.array([0.9, 0.8, 0.85])
    result = stats.paired(same, same)
    assert result.statistic == 0.0
    assert not result.holds
    assert not stats.paired(same, same, "less").holds


def test_constant_nonzero_difference_is_deterministic() -> None:
    result = stats.paired(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0]))
    assert result.statistic == math.inf and result.holds and result.p_value == 0.0
    assert not stats.paired(np.array([0.0, 1.0]), np.array([1.0, 2.0])).holds


def test_nan_never_holds() -> None:
    result = stats.paired(np.array([1.0, math.nan, 3.0]), np.array([0.0, 0.0, 0.0]))
    assert math.isnan(result.statistic) and not result.holds


def test_standardized_policy() -> None:
    assert stats.standardized(0.0, 0.0) == 0.0
    assert stats.standardized(-1.0, 0.0) == -math.inf
    assert stats.standardized(1.0, 0.5) == 2.0
    z = stats.standardized_deviation([1.0, 2.0, 3.0], [0.0, 0.5, 0.0], [1.0, 1.0, 2.0])
    assert z.tolist() == [0.0, 2.0, math.inf]


def test_claim_from_a_test_carries_the_policy() -> None:
    result = stats.paired([0.91, 0.93, 0.92, 0.94], [0.88, 0.90, 0.90, 0.91])
    claim = Claim.from_test("A beats B", result, key="a_beats_b")
    assert claim.holds == result.holds
    assert claim.measured == pytest.approx(result.statistic)
    assert claim.threshold == pytest.approx(result.critical)
    assert claim.comparison == ">"
    assert "paired t, 3 df" in claim.detail and "p = " in claim.detail
    less = Claim.from_test("A below B", stats.paired([1, 2, 3.0], [2, 3.5, 4.0], "less"))
    assert less.comparison == "<" and less.threshold < 0
    assert not Claim.from_test("tie", stats.paired([1.0, 1.0], [1.0, 1.0])).holds
