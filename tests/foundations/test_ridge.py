"""foundations.ridge: verdicts on synthetic records, and a smoke run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.foundations.experiments.ridge import KINDS, RidgeConfig, RidgeMeasurements, claims

CFG = RidgeConfig()


def record(ols_loss: np.ndarray, best_loss: np.ndarray) -> RidgeMeasurements:
    lams = np.array([0.0, 0.1, 1.0])
    grid = np.array([0.1, 1.0, 10.0])
    rng = np.random.default_rng(0)
    return RidgeMeasurements(
        grid=grid,
        bias2=np.array([0.0, 0.01, 0.05, 0.3]),
        variance=np.array([0.3, 0.25, 0.1, 0.01]),
        risk=np.array([1.3, 1.26, 1.15, 1.31]),
        noise=1.0,
        mc_lams=lams,
        z={k: rng.standard_normal(5) for k in KINDS},
        mc_risk=np.ones(3),
        mc_risk_se=np.full(3, 0.01),
        mc_bias2=np.zeros(3),
        mc_bias2_se=np.zeros(3),
        mc_var=np.zeros(3),
        mc_var_se=np.zeros(3),
        ols_loss=ols_loss,
        best_loss=best_loss,
    )


def test_claims_and_checks() -> None:
    rng = np.random.default_rng(1)
    base = rng.exponential(1.0, 500)
    m = record(base + 0.15, base)
    by_key = {c.key: c for c in claims(m, CFG)}
    assert {k: (c.kind, c.holds) for k, c in by_key.items()} == {
        "closed_form_matches_mc": ("claim", True),
        "bias_rises": ("claim", True),
        "mc_gain": ("claim", True),
        "variance_falls": ("check", True),
        "closed_form_gain": ("check", True),
    }
    assert m.lam_best == 1.0 and m.gain_closed_form == pytest.approx(0.15)


def test_failures() -> None:
    base = np.random.default_rng(2).exponential(1.0, 500)
    same = record(base, base)  # no gain, zero spread of the differences: not a gain
    assert not {c.key: c.holds for c in claims(same, CFG)}["mc_gain"]
    wiggly = replace(
        same, bias2=np.array([0.0, 0.05, 0.01, 0.3]), variance=np.array([0.3, 0.1, 0.25, 0.01])
    )
    verdicts = {c.key: c.holds for c in claims(wiggly, CFG)}
    assert not verdicts["bias_rises"] and not verdicts["variance_falls"]
    off = replace(same, z={**same.z, "risk": np.array([np.nan])})
    assert not {c.key: c.holds for c in claims(off, CFG)}["closed_form_matches_mc"]


def test_smoke_ridge_trades_bias_for_variance(tmp_path: Path) -> None:
    result = run_experiment(
        "foundations.ridge",
        overrides=["replicates=600", "grid_points=25", "test_inputs=4", "mc_lams=0,1"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["bias_violations"] == 0 and m["variance_violations"] == 0
    assert m["gain_closed_form"] > 0 and m["best_lam"] > 0
    assert m["mc_lams"][0] == 0.0 and m["best_lam"] in m["mc_lams"]
    assert m["comparisons"] == len(m["mc_lams"]) * (8 + 36 + 3 * 4 + 1)


def test_config() -> None:
    assert preset(RidgeConfig, "quick").replicates < preset(RidgeConfig, "full").replicates
    with pytest.raises(ConfigError, match="include 0"):
        RidgeConfig(mc_lams=(1.0, 10.0))
