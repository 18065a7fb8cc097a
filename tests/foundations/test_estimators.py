"""foundations.estimators: verdicts on synthetic records, and a smoke run."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.foundations.experiments.estimators import (
    EstimatorsConfig,
    EstimatorsMeasurements,
    claims,
)

CFG = EstimatorsConfig(sizes=(2, 10))


def record(bias_1n: np.ndarray, deviations: list[np.ndarray]) -> EstimatorsMeasurements:
    sizes = np.array(CFG.sizes)
    theory = -(CFG.sigma**2) / sizes
    se = np.full(2, 0.01)
    return EstimatorsMeasurements(
        sizes=sizes,
        bias={"mean": np.zeros(2), "var_1/n": bias_1n, "var_1/(n-1)": bias_1n * 2},
        bias_se={"mean": se, "var_1/n": se, "var_1/(n-1)": se},
        theory_bias={"mean": np.zeros(2), "var_1/n": theory, "var_1/(n-1)": np.zeros(2)},
        var_mean=CFG.sigma**2 / sizes,
        var_mean_se=se,
        theory_var_mean=CFG.sigma**2 / sizes,
        biased_deviation=deviations,
    )


def test_one_claim_per_statistic_and_the_verdicts() -> None:
    rng = np.random.default_rng(0)
    biased = [-2.0 + rng.standard_normal(100), -0.4 + rng.standard_normal(100)]
    good = record(np.array([-2.0, -0.4]), biased)
    verdicts = {c.key: c.holds for c in claims(good, CFG)}
    assert verdicts == {
        "mean_unbiased": True,
        "mean_variance": True,
        "variance_bias": True,
        "biased_estimator_is_biased": True,
    }
    wrong = record(np.array([-2.0, 0.0]), biased)  # bias -sigma^2/n violated at n = 10
    assert not {c.key: c.holds for c in claims(wrong, CFG)}["variance_bias"]


def test_no_bias_with_no_spread_is_not_a_bias_and_nan_fails() -> None:
    flat = record(np.array([-2.0, -0.4]), [np.zeros(50), -0.4 + np.zeros(50)])
    assert not {c.key: c.holds for c in claims(flat, CFG)}["biased_estimator_is_biased"]
    nan = replace(
        record(np.array([math.nan, -0.4]), [np.full(50, math.nan), np.full(50, -0.4)]),
    )
    verdicts = {c.key: c.holds for c in claims(nan, CFG)}
    assert not verdicts["variance_bias"] and not verdicts["biased_estimator_is_biased"]


def test_smoke_the_1_over_n_variance_is_biased_low(tmp_path: Path) -> None:
    result = run_experiment(
        "foundations.estimators",
        overrides=["trials=4000", "sizes=2,4,8"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    # the 1/n estimator underestimates sigma^2 = 4 by about sigma^2 / n = 2 at n = 2
    assert m["bias_var_1/n"][0] == pytest.approx(-2.0, abs=0.3)
    assert abs(m["bias_var_1/(n-1)"][0]) < 0.4
    assert m["var_mean"][0] > m["var_mean"][-1]  # the mean's variance shrinks with n
    assert result.record["figures"] == ["estimators.png"]
    assert len(result.record["claims"]) == 4


def test_config() -> None:
    assert preset(EstimatorsConfig, "quick").trials < preset(EstimatorsConfig, "full").trials
    with pytest.raises(ConfigError, match="each >= 2"):
        EstimatorsConfig(sizes=(1, 5))
