"""foundations.empirical_risk: verdicts on synthetic records, and a smoke run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.foundations import estimation as est
from deepnotes.foundations.experiments.empirical_risk import (
    EmpiricalRiskConfig,
    EmpiricalRiskMeasurements,
    claims,
)

CFG = EmpiricalRiskConfig(train_sizes=(15, 50), eval_sizes=(10, 100, 1000))


def record(optimism: list[np.ndarray], mad: np.ndarray) -> EmpiricalRiskMeasurements:
    sizes, d, sigma = np.array(CFG.train_sizes), CFG.d, CFG.sigma
    emp = np.array([est.ols_expected_training_risk(int(n), d, sigma) for n in sizes])
    true = np.array([est.ols_expected_risk_gaussian_design(int(n), d, sigma) for n in sizes])
    return EmpiricalRiskMeasurements(
        train_sizes=sizes,
        d=d,
        sigma=sigma,
        empirical=emp,
        empirical_se=np.full(2, 0.01),
        true=true,
        true_se=np.full(2, 0.01),
        optimism=optimism,
        scatter=(np.ones(3), np.ones(3)),
        eval_sizes=np.array(CFG.eval_sizes),
        risk_squared=1.5,
        risk_zero_one=0.2,
        mad_squared=mad,
        mad_squared_se=np.full(3, 0.001),
        mad_zero_one=mad,
        mad_zero_one_se=np.full(3, 0.001),
    )


def test_verdicts() -> None:
    rng = np.random.default_rng(0)
    gaps = [0.9 + 0.3 * rng.standard_normal(200), 0.1 + 0.05 * rng.standard_normal(200)]
    root_n = 0.5 / np.sqrt(np.array(CFG.eval_sizes))
    good = record(gaps, root_n)
    assert all(c.holds for c in claims(good, CFG))
    flat = record([np.zeros(50), np.zeros(50)], 1 / np.array(CFG.eval_sizes))  # 1/n, no gap
    verdicts = {c.key: c.holds for c in claims(flat, CFG)}
    assert verdicts == {
        "training_risk_optimistic": False,
        "optimism_closed_form": True,
        "convergence_squared": False,
        "convergence_zero_one": False,
    }
    broken = replace(good, mad_squared=np.array([0.1, 0.0, 0.01]))  # no log of 0: NaN slope
    assert not {c.key: c.holds for c in claims(broken, CFG)}["convergence_squared"]


def test_smoke_empirical_risk_is_optimistic_and_converges(tmp_path: Path) -> None:
    result = run_experiment(
        "foundations.empirical_risk",
        overrides=["fits=400", "train_sizes=12,40", "eval_sizes=10,100,1000", "eval_repeats=60"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert all(gap > 0 for gap in m["optimism"])
    assert m["optimism"][0] > m["optimism"][1]  # less optimism with more data
    assert m["mad_squared"][0] > m["mad_squared"][-1]
    assert -0.7 < m["slope_squared"] < -0.3 and -0.7 < m["slope_zero_one"] < -0.3


def test_config() -> None:
    assert preset(EmpiricalRiskConfig, "quick").fits < preset(EmpiricalRiskConfig, "full").fits
    with pytest.raises(ConfigError, match="d \\+ 3"):
        EmpiricalRiskConfig(train_sizes=(6,))
