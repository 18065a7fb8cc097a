"""optim.sgd_noise: its claims on synthetic records, and a smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core import stats
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.optim.experiments.sgd_noise import NoiseConfig, NoiseMeasurements, claims

CFG = NoiseConfig(batch_sizes=(1, 4, 16, 64), mean_batch=4, draws=100)
SIZES = np.array([1.0, 4.0, 16.0, 64.0])


def _record(**changes: object) -> NoiseMeasurements:
    theory = 10.0 / SIZES
    base = {
        "n_train": 1000,
        "parameters": 50,
        "trace_sigma": 10.0,
        "g_norm": 1.0,
        "sizes": SIZES,
        "mc_mean": {"with": theory * 1.01, "without": theory * (1000 - SIZES) / 999},
        "mc_se": {"with": theory * 0.02, "without": theory * 0.02},
        "exact_variance": (theory * 0.02) ** 2 * 100,  # an exact SE of 2% with 100 draws
        "draws": 100,
        "coordinate_z": np.linspace(-2.5, 2.5, 50),
        "varying": 40,
        "running_error": np.array([1.0, 0.5, 0.2]),
        "autograd_gap": 1e-16,
    }
    return NoiseMeasurements(**(base | changes))


def _verdicts(m: NoiseMeasurements) -> dict[str, tuple[bool, float]]:
    return {c.key: (c.holds, c.measured) for c in claims(m, CFG)}


def test_agreement_within_the_bounds_holds() -> None:
    v = _verdicts(_record())
    assert v == {
        "unbiased": (True, 2.5),
        "variance_one_over_b": (True, pytest.approx(0.5)),
        "rows_are_minibatch_gradients": (True, 1e-16),
    }


def test_a_biased_coordinate_or_a_wrong_variance_law_fails() -> None:
    z = np.zeros(50)
    z[7] = stats.agreement_bound(40) + 0.1
    assert not _verdicts(_record(coordinate_z=z))["unbiased"][0]
    sqrt_law = {"with": 10.0 / np.sqrt(SIZES), "without": 10.0 / np.sqrt(SIZES)}
    assert not _verdicts(_record(mc_mean=sqrt_law))["variance_one_over_b"][0]
    assert not _verdicts(_record(autograd_gap=1e-6))["rows_are_minibatch_gradients"][0]


def test_nan_measurements_never_hold() -> None:
    z = np.full(50, math.nan)
    holds, measured = _verdicts(_record(coordinate_z=z))["unbiased"]
    assert not holds and math.isnan(measured)
    nan = {"with": np.full(4, math.nan), "without": np.full(4, math.nan)}
    assert not _verdicts(_record(mc_mean=nan))["variance_one_over_b"][0]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="mean_batch"):
        NoiseConfig(mean_batch=3)


def test_smoke_run(tmp_path: Path) -> None:
    result = run_experiment(
        "optim.sgd_noise",
        preset="quick",
        overrides=("hidden=16", "batch_sizes=1,4,16,64", "draws=200", "mean_batch=4"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["autograd_vs_row_mean_max_abs"] < 1e-10
    assert abs(m["slope_with_replacement"] + 1) < 0.25
    assert m["slope_without_replacement"] < m["slope_with_replacement"] + 0.05
    assert {c["key"] for c in result.record["claims"]} == {
        "unbiased",
        "variance_one_over_b",
        "rows_are_minibatch_gradients",
    }
