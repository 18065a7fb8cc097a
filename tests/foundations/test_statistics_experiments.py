"""Smoke runs of the estimator, bias-variance, ridge and empirical-risk experiments through the
real runner, in tiny presets, asserting the direction of each phenomenon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import deepnotes.foundations.statistics_experiments as experiments
from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError


def _run(name: str, overrides: list[str], tmp_path: Path) -> dict[str, Any]:
    result = run_experiment(
        f"foundations.{name}", overrides=overrides, out=tmp_path, show_progress=False
    )
    record = result.record
    for figure in record["figures"]:
        assert (result.run_dir / figure).is_file()
    assert record["figures"], "every experiment draws a figure"
    for claim in record["claims"]:
        assert claim["statement"] and claim["detail"]
    return record


def test_quick_presets_are_smaller_than_full() -> None:
    pairs = (
        (experiments.EstimatorsConfig, "trials"),
        (experiments.BiasVarianceConfig, "training_sets"),
        (experiments.RidgeConfig, "replicates"),
        (experiments.EmpiricalRiskConfig, "fits"),
    )
    for config, field in pairs:
        assert getattr(preset(config, "quick"), field) < getattr(preset(config, "full"), field)


def test_estimators_1_over_n_variance_is_biased_low(tmp_path: Path) -> None:
    record = _run("estimators", ["trials=4000", "sizes=2,4,8"], tmp_path)
    m = record["metrics"]
    assert len(record["claims"]) == 5
    # the 1/n estimator underestimates sigma^2 = 4 by about sigma^2 / n = 2 at n = 2
    assert m["bias_var_1/n"][0] == pytest.approx(-2.0, abs=0.3)
    assert abs(m["bias_var_1/(n-1)"][0]) < 0.4
    assert m["var_mean"][0] > m["var_mean"][-1]  # the mean's variance shrinks with n
    assert record["figures"] == ["estimators.png"]


def test_bias_variance_terms_trade_off_over_degree(tmp_path: Path) -> None:
    record = _run(
        "bias_variance",
        ["training_sets=400", "degrees=0,3,11", "n_train=14", "test_points=20"],
        tmp_path,
    )
    m = record["metrics"]
    assert len(record["claims"]) == 2
    assert m["bias2"][0] > m["bias2"][1]  # more capacity, less bias
    assert m["variance"][2] > m["variance"][1] > m["variance"][0]  # and more variance
    assert m["best_degree"] == 3
    assert record["claims"][1]["holds"]  # the U shape is plain even with 400 training sets


def test_ridge_trades_bias_for_variance(tmp_path: Path) -> None:
    record = _run(
        "ridge",
        ["replicates=600", "grid_points=25", "test_inputs=4", "mc_lams=0,1"],
        tmp_path,
    )
    m = record["metrics"]
    assert len(record["claims"]) == 5
    assert m["bias_violations"] == 0 and m["variance_violations"] == 0
    assert m["gain_closed_form"] > 0 and m["best_lam"] > 0
    assert m["mc_lams"][0] == 0.0 and m["best_lam"] in m["mc_lams"]
    assert m["comparisons"] == len(m["mc_lams"]) * (8 + 36 + 3 * 4 + 1)


def test_empirical_risk_is_optimistic_and_converges(tmp_path: Path) -> None:
    record = _run(
        "empirical_risk",
        ["fits=400", "train_sizes=12,40", "eval_sizes=10,100,1000", "eval_repeats=60"],
        tmp_path,
    )
    m = record["metrics"]
    assert len(record["claims"]) == 4
    assert all(gap > 0 for gap in m["optimism"])
    assert m["optimism"][0] > m["optimism"][1]  # less optimism with more data
    assert m["mad_squared"][0] > m["mad_squared"][-1]
    assert -0.7 < m["slope_squared"] < -0.3 and -0.7 < m["slope_zero_one"] < -0.3


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        ("bias_variance", "degrees=0,5,20", "largest degree must be < n_train"),
        ("ridge", "mc_lams=1,10", "include 0"),
        ("empirical_risk", "train_sizes=6", "d \\+ 3"),
        ("estimators", "sizes=1,5", "each >= 2"),
    ],
)
def test_bad_configs_are_rejected_before_anything_is_written(
    tmp_path: Path, name: str, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_experiment(f"foundations.{name}", overrides=[override], out=tmp_path)
    assert not any(tmp_path.rglob("config.json"))
