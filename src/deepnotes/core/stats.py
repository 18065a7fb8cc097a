"""Shared statistics and the project's one significance policy.

Every claim that rests on noisy measurements (replicated training runs, Monte Carlo draws) is
decided here, the same way everywhere:

- **Which test.** A directional claim about a mean ("A beats B") is a one-sample test of the
  differences (a *paired* test when A and B were measured on the same replicate). With fewer
  than :data:`Z_MIN_SAMPLES` values the statistic is compared with Student's t with ``n - 1``
  degrees of freedom; with more, with the normal distribution (the z test).
- **Which level.** A directional claim holds when the one-sided test rejects "no effect" at
  level :data:`ALPHA_EFFECT` (0.025: the bar of a two-sided 5% test). An *agreement* claim
  ("the Monte Carlo estimate equals the closed form") holds when no standardised deviation is
  beyond the two-sided level :data:`ALPHA_AGREEMENT` (0.01): a correct formula fails it once in
  a hundred runs.
- **Families.** A claim decided by M tests at once (every n, every degree, every method) divides
  its level by M (Bonferroni), whatever the tests' correlation.
- **Zero spread.** A mean difference of exactly 0 with zero spread has statistic 0: it never
  holds a strict inequality (two identical methods do not "beat" each other). A non-zero mean
  with zero spread is a deterministic difference: its statistic is +-inf.

Everything takes NumPy arrays (or anything ``np.asarray`` accepts) and returns Python floats.

Example:
    >>> result = paired([0.91, 0.93, 0.92, 0.94], [0.88, 0.90, 0.90, 0.91])
    >>> result.test, result.df, result.holds
    ('paired t', 3, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

Alternative = Literal["greater", "less"]

ALPHA_EFFECT = 0.025
"""One-sided level of a directional claim (equal to a two-sided 5% test)."""
ALPHA_AGREEMENT = 0.01
"""Two-sided level below which a deviation from a closed form counts as a disagreement."""
Z_MIN_SAMPLES = 30
"""From this many values on, the normal distribution replaces Student's t."""


# ---------------------------------------------------------------------------------------------
# Summaries


def _count(values: np.ndarray, axis: int, minimum: int = 2) -> int:
    if values.ndim == 0:
        raise ValueError("expected an array of draws, got a scalar")
    count = values.shape[axis]
    if count < minimum:
        raise ValueError(f"need at least {minimum} values along axis {axis}, got {count}")
    return count


def mean_and_se(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""Sample mean along ``axis`` and its standard error :math:`s / \sqrt{n}`.

    Arguments:
        values: ``n >= 2`` independent draws along ``axis``.

    Returns:
        ``(mean, se)`` with ``axis`` removed (0-d arrays for 1-D input).

    Raises:
        ValueError: fewer than two values (one value has no standard error).
    """
    values = np.asarray(values, dtype=float)
    count = _count(values, axis)
    return values.mean(axis=axis), values.std(axis=axis, ddof=1) / math.sqrt(count)


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """:func:`mean_and_se` of a 1-D sequence, as two floats."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of values, got shape {values.shape}")
    mean, se = mean_and_se(values)
    return float(mean), float(se)


def variance_and_se(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""Unbiased sample variance :math:`s^2` along ``axis`` and its standard error.

    For ``n`` i.i.d. draws with central moments :math:`\mu_2, \mu_4`,

    .. math:: \operatorname{Var}(s^2) = \frac{\mu_4}{n} - \frac{(n-3)\,\mu_2^2}{n(n-1)},

    estimated by plugging in the sample fourth central moment and :math:`s^2` (no normality
    assumed).
    """
    values = np.asarray(values, dtype=float)
    count = _count(values, axis)
    centred = values - values.mean(axis=axis, keepdims=True)
    s2 = (centred**2).sum(axis=axis) / (count - 1)
    m4 = (centred**4).mean(axis=axis)
    var_s2 = m4 / count - (count - 3) * s2**2 / (count * (count - 1))
    return s2, np.sqrt(np.maximum(var_s2, 0.0))


def covariance_and_se(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Sample covariance of the rows of ``samples`` (n, d) and the SE of every entry.

    Entry (j, k) is the mean of :math:`(a_j - \bar a_j)(a_k - \bar a_k)` times
    :math:`n/(n-1)`; its standard error is the standard deviation of those products over
    :math:`\sqrt{n}` (the delta method; centring by the sample mean is an O(1/n) effect).
    """
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise ValueError(f"samples must have shape (n >= 2, d), got {samples.shape}")
    count = samples.shape[0]
    centred = samples - samples.mean(axis=0)
    products = centred[:, :, None] * centred[:, None, :]  # (n, d, d)
    cov = products.sum(axis=0) / (count - 1)
    se = products.std(axis=0, ddof=1) / math.sqrt(count)
    return cov, se


def geometric_mean(values: np.ndarray) -> float:
    """``exp(mean(log values))`` of positive values (ratios, growth factors)."""
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("geometric_mean needs at least one value")
    if not np.all(values > 0):
        raise ValueError(f"geometric_mean needs positive values, got min {values.min():g}")
    return float(np.exp(np.log(values).mean()))


def standardized(mean: float, se: float) -> float:
    """``mean / se`` with the zero-spread policy: 0 when both are 0, +-inf when only se is."""
    mean, se = float(mean), float(se)
    if math.isnan(mean) or math.isnan(se):
        return math.nan
    if se == 0.0:
        return 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
    return mean / se


def standardized_deviation(
    estimate: np.ndarray, se: np.ndarray, expected: np.ndarray
) -> np.ndarray:
    r""":math:`z = (\hat a - a) / \mathrm{SE}(\hat a)`, elementwise, with the zero-spread policy
    (0 where the deviation is 0 to rounding and the SE is 0: an exactly known value)."""
    estimate, se, expected = np.broadcast_arrays(
        np.asarray(estimate, float), np.asarray(se, float), np.asarray(expected, float)
    )
    deviation = estimate - expected
    with np.errstate(divide="ignore", invalid="ignore"):
        z = deviation / se
    exact = (se == 0) & (np.abs(deviation) <= 1e-12 * (1 + np.abs(expected)))
    return np.where(exact, 0.0, z)


# ---------------------------------------------------------------------------------------------
# Levels and critical values


def bonferroni(alpha: float, family: int) -> float:
    """The per-test level that keeps the family-wise error rate of ``family`` tests at ``alpha``."""
    if family < 1:
        raise ValueError(f"family must be >= 1 test, got {family}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return alpha / family


def critical_value(alpha: float, df: int | None = None) -> float:
    """The upper ``alpha`` quantile: of the normal (``df=None``) or of Student's t with ``df``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if df is None:
        return NormalDist().inv_cdf(1 - alpha)
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    from scipy.stats import t as student_t

    return float(student_t.ppf(1 - alpha, df))


def agreement_bound(family: int = 1, alpha: float = ALPHA_AGREEMENT) -> float:
    r"""The largest ``|z|`` an agreement claim over ``family`` deviations tolerates:
    :math:`\Phi^{-1}(1 - \alpha / (2M))` (two-sided, Bonferroni)."""
    return critical_value(bonferroni(alpha, family) / 2)


def _p_value(statistic: float, df: int | None) -> float:
    """One-sided upper-tail p-value of ``statistic``."""
    if math.isnan(statistic):
        return math.nan
    if math.isinf(statistic):
        return 0.0 if statistic > 0 else 1.0
    if df is None:
        return 1.0 - NormalDist().cdf(statistic)
    from scipy.stats import t as student_t

    return float(student_t.sf(statistic, df))


# ---------------------------------------------------------------------------------------------
# Tests


@dataclass(frozen=True)
class TestResult:
    """A one-sided test of a mean: its statistic, the bar it must clear, and how it was made.

    ``holds`` is ``statistic > critical`` for ``alternative="greater"`` and
    ``statistic < -critical`` for ``"less"`` (strict: a zero statistic never holds).
    """

    test: str
    """"paired t", "one-sample t", "paired z" or "z"."""
    statistic: float
    critical: float
    """The positive critical value (t or z quantile at the per-test level)."""
    alternative: str
    n: int
    mean: float
    se: float
    df: int | None
    """Degrees of freedom of the t test; None for a z test."""
    alpha: float
    family: int = 1

    __test__ = False  # not a pytest class

    @property
    def level(self) -> float:
        """The per-test level after Bonferroni."""
        return self.alpha / self.family

    @property
    def p_value(self) -> float:
        """One-sided p-value in the direction of the alternative."""
        sign = 1.0 if self.alternative == "greater" else -1.0
        return _p_value(sign * self.statistic, self.df)

    @property
    def holds(self) -> bool:
        if math.isnan(self.statistic):
            return False
        if self.alternative == "greater":
            return self.statistic > self.critical
        return self.statistic < -self.critical

    def describe(self) -> str:
        """One line for a claim's detail: test, dof, level, family, mean +- SE, p-value."""
        df = f", {self.df} df" if self.df is not None else ""
        family = f", Bonferroni over {self.family}" if self.family > 1 else ""
        return (
            f"{self.test}{df}, one-sided level {self.level:.3g}{family}; "
            f"mean {self.mean:.4g} +- {self.se:.3g} (SE), n = {self.n}, p = {self.p_value:.3g}"
        )


def one_sample(
    values: np.ndarray,
    alternative: Alternative = "greater",
    *,
    null: float = 0.0,
    alpha: float = ALPHA_EFFECT,
    family: int = 1,
    paired_: bool = False,
) -> TestResult:
    """Test whether the mean of ``values`` is above (``"greater"``) or below ``null``.

    Student's t with ``n - 1`` degrees of freedom for fewer than :data:`Z_MIN_SAMPLES` values,
    the normal distribution from there on; the level is ``alpha / family`` (Bonferroni).
    NaN values (a diverged run) make the statistic NaN: the claim does not hold.
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"need a 1-D sequence of at least 2 values, got shape {values.shape}")
    n = values.size
    mean, se = mean_se(values - null)
    df = n - 1 if n < Z_MIN_SAMPLES else None
    level = bonferroni(alpha, family)
    if paired_:
        name = "paired t" if df is not None else "paired z"
    else:
        name = "one-sample t" if df is not None else "z"
    return TestResult(
        test=name,
        statistic=standardized(mean, se),
        critical=critical_value(level, df),
        alternative=alternative,
        n=n,
        mean=mean,
        se=se,
        df=df,
        alpha=alpha,
        family=family,
    )


def paired(
    a: np.ndarray,
    b: np.ndarray,
    alternative: Alternative = "greater",
    *,
    alpha: float = ALPHA_EFFECT,
    family: int = 1,
) -> TestResult:
    """Paired test of ``mean(a - b) > 0`` (or ``< 0``): ``a[i]`` and ``b[i]`` share replicate i."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same shape, got {a.shape} and {b.shape}")
    return one_sample(a - b, alternative, alpha=alpha, family=family, paired_=True)
