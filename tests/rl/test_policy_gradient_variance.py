"""rl.policy_gradient_variance: verdicts on synthetic records and one tiny smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.rl.experiments import policy_gradient_variance as pgv

CFG = pgv.PGVarianceConfig(n_states=2, n_actions=2, episodes=1000)
UNBIASED = tuple(f"unbiased_{name}" for name in pgv.ESTIMATORS)
CHAIN = tuple(key for key, _, _ in pgv.CHAIN)
VARIANCES = {  # the phenomenon: each trick lowers E||g - grad J||^2
    "total": 8.0,
    "total_baseline": 5.0,
    "reward_to_go": 4.0,
    "rtg_baseline": 2.0,
    "state_baseline": 1.0,
}


def record(
    variances: dict[str, float] = VARIANCES, bias: float = 0.0, nan: str = ""
) -> pgv.PGVarianceMeasurements:
    """Exact gradient on 2 live states + 1 terminal, MC means off by ``bias`` (in SE units),
    per-episode squared deviations with the given means (paired noise)."""
    exact = np.array([[0.3, -0.3], [-0.1, 0.1], [0.0, 0.0]])
    se = np.full_like(exact, 0.01)
    se[2] = 0.0  # terminal state: exactly zero
    noise = np.random.default_rng(0).exponential(1.0, 1000)
    sq_dev = {name: v * noise for name, v in variances.items()}
    if nan:
        sq_dev[nan] = np.full(1000, math.nan)
    mean = {name: exact + bias * se for name in pgv.ESTIMATORS}
    return pgv.PGVarianceMeasurements(
        exact=exact,
        theorem=exact + 1e-16,
        objective=2.0,
        values=np.array([1.5, 2.5, 0.0]),
        mean=mean,
        se={name: se for name in pgv.ESTIMATORS},
        sq_dev=sq_dev,
        trace_cov={name: float(v) for name, v in variances.items()},
        live=np.array([True, True, False]),
        mean_length=4.0,
    )


def verdicts(m: pgv.PGVarianceMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in pgv.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("rl.policy_gradient_variance")
    assert exp.claims == UNBIASED + CHAIN
    assert exp.checks == ("exact_gradient_two_ways",)
    claims = pgv.claims(record(), CFG)
    assert [c.key for c in claims] == [*UNBIASED, *CHAIN, "exact_gradient_two_ways"]
    assert claims[-1].kind == "check"


def test_the_phenomenon_holds_every_claim() -> None:
    assert all(verdicts(record()).values())
    m = record()
    assert m.metrics()["ratio_rtg_below_total"] == pytest.approx(2.0)


def test_a_biased_estimator_is_caught() -> None:
    got = verdicts(record(bias=5.0))  # 5 SE off in every live coordinate
    assert not any(got[key] for key in UNBIASED)
    assert verdicts(record(bias=2.0))["unbiased_total"]  # within the Bonferroni bound


@pytest.mark.parametrize(("key", "low", "high"), pgv.CHAIN)
def test_each_variance_claim_needs_its_own_pair_ordered(key: str, low: str, high: str) -> None:
    swapped = dict(VARIANCES)
    swapped[low], swapped[high] = VARIANCES[high], VARIANCES[low]
    got = verdicts(record(swapped))
    assert not got[key]
    equal = dict(VARIANCES)
    equal[low] = VARIANCES[high]  # same variance: no effect, never a strict win
    assert not verdicts(record(equal))[key]


def test_nan_measurements_hold_nothing() -> None:
    got = verdicts(record(nan="state_baseline"))
    assert not got["state_baseline_below_rtg_baseline"]
    assert got["rtg_below_total"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="end_prob"):
        pgv.PGVarianceConfig(end_prob=0.0)
    with pytest.raises(ConfigError, match="n_actions"):
        pgv.PGVarianceConfig(n_actions=1)
    with pytest.raises(ConfigError, match="episodes"):
        pgv.PGVarianceConfig(episodes=10)


def test_smoke_run_shows_the_direction(tmp_path: Path) -> None:
    result = run_experiment(
        "rl.policy_gradient_variance",
        preset="quick",
        overrides=("episodes=4000",),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["gradient_two_ways_max_abs_diff"] <= 1e-10
    for key in CHAIN:
        assert m[f"ratio_{key}"] > 1.0, key
    assert [Path(f).name for f in result.record["figures"]] == ["policy_gradient_variance.png"]
    assert {c["key"] for c in result.record["claims"]} == {*UNBIASED, *CHAIN} | {
        "exact_gradient_two_ways"
    }
