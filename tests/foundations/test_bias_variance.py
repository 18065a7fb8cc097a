"""foundations.bias_variance: verdicts on synthetic records, and a smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.foundations.experiments.bias_variance import (
    BiasVarianceConfig,
    BiasVarianceMeasurements,
    claims,
)

CFG = BiasVarianceConfig(degrees=(0, 3, 11), n_train=14)


def record(per_set_error: np.ndarray, gap: np.ndarray) -> BiasVarianceMeasurements:
    k = per_set_error.shape[0]
    return BiasVarianceMeasurements(
        degrees=np.array(CFG.degrees),
        bias2=np.zeros(k),
        variance=np.zeros(k),
        noise=0.16,
        test_error=per_set_error.mean(axis=1),
        test_error_se=np.full(k, 0.01),
        gap=gap,
        gap_se=np.full(k, 0.01),
        per_set_error=per_set_error,
        examples={},
        x_plot=np.zeros(1),
    )


def test_u_shape_and_decomposition_verdicts() -> None:
    rng = np.random.default_rng(0)
    noise = 0.05 * rng.standard_normal((3, 200))
    u = record(np.array([[0.7], [0.2], [2.0]]) + noise, np.zeros(3))
    assert {c.key: c.holds for c in claims(u, CFG)} == {"decomposition": True, "u_shape": True}
    falling = record(np.array([[0.7], [0.4], [0.2]]) + noise, np.array([0.0, 0.05, 0.0]))
    verdicts = {c.key: c.holds for c in claims(falling, CFG)}
    assert verdicts == {"decomposition": False, "u_shape": False}  # minimum at an end


def test_identical_degrees_are_not_a_u_shape_and_nan_fails() -> None:
    same = record(np.full((3, 50), 0.3), np.zeros(3))
    assert not {c.key: c.holds for c in claims(same, CFG)}["u_shape"]
    nan = record(np.full((3, 50), 0.3), np.array([np.nan, 0.0, 0.0]))
    assert not {c.key: c.holds for c in claims(nan, CFG)}["decomposition"]


def test_smoke_the_terms_trade_off_over_degree(tmp_path: Path) -> None:
    result = run_experiment(
        "foundations.bias_variance",
        overrides=["training_sets=400", "degrees=0,3,11", "n_train=14", "test_points=20"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["bias2"][0] > m["bias2"][1]  # more capacity, less bias
    assert m["variance"][2] > m["variance"][1] > m["variance"][0]  # and more variance
    assert m["best_degree"] == 3
    by_key = {c["key"]: c for c in result.record["claims"]}
    assert by_key["u_shape"]["holds"]  # the U shape is plain even with 400 training sets


def test_config() -> None:
    assert (
        preset(BiasVarianceConfig, "quick").training_sets
        < preset(BiasVarianceConfig, "full").training_sets
    )
    with pytest.raises(ConfigError, match="largest degree must be < n_train"):
        BiasVarianceConfig(degrees=(0, 5, 20))
