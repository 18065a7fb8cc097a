"""rl.tabular: claim verdicts on synthetic records, config validation and a tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.rl.experiments import tabular as tb

KEYS = (
    "td0_converges",
    "q_learning_converges",
    "greedy_optimal",
    "off_policy_v_biased",
    "expected_sarsa_unbiased",
)
CFG = tb.TabularConfig(replicates=4)
TINY = ("replicates=2", "walkers=16", "steps=20", "every=10", "horizon=20")


def env_record(
    td_err: float = 0.01,
    q_err: float = 0.02,
    sarsa_err: float = 0.01,
    greedy_loss: float = 0.0,
    off_bias: tuple[float, ...] = (-0.1, -0.11, -0.09, -0.1),
) -> tb.EnvResult:
    """3 states (the last terminal), 2 actions, 4 replicates with the given errors."""
    v_pi = np.array([0.5, 0.8, 0.0])
    q_star = np.array([[0.6, 0.4], [0.9, 0.7], [0.0, 0.0]])
    live = np.array([True, True, False])
    R = len(off_bias)
    sign = np.array([1.0, -1.0, 1.0])  # errors of both signs
    off = np.tile(v_pi, (R, 1))
    off[:, 0] += np.asarray(off_bias)
    return tb.EnvResult(
        v_pi=v_pi,
        v_star=np.array([0.6, 0.9, 0.0]),
        live=live,
        start=0,
        td0=np.tile(v_pi + td_err * sign, (R, 1)),
        off_td0=off,
        v_behaviour=v_pi - 0.1,
        q=np.tile(q_star + q_err, (R, 1, 1)),
        q_star=q_star,
        sarsa_v=np.tile(v_pi - sarsa_err, (R, 1)),
        greedy_loss=np.tile([greedy_loss, 0.0, 0.0], (R, 1)),
        curves={k: np.array([0.1, 0.05]) for k in tb.CURVES},
    )


def record(**frozen) -> tb.TabularMeasurements:  # type: ignore[no-untyped-def]
    return tb.TabularMeasurements(
        steps=np.array([10, 20]),
        walkers=4,
        envs={"FrozenLake-v1": env_record(**frozen), "CliffWalking-v1": env_record()},
    )


def verdicts(m: tb.TabularMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in tb.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("rl.tabular")
    assert exp.claims == KEYS and exp.checks == ()
    assert [c.key for c in tb.claims(record(), CFG)] == list(KEYS)


def test_the_phenomenon_holds_every_claim() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)


def test_each_claim_fails_on_its_own_counterexample() -> None:
    assert not verdicts(record(td_err=0.06))["td0_converges"]
    assert not verdicts(record(q_err=0.051))["q_learning_converges"]
    assert not verdicts(record(greedy_loss=0.06))["greedy_optimal"]
    assert not verdicts(record(sarsa_err=0.06))["expected_sarsa_unbiased"]
    # an unbiased off-policy TD(0) in one environment: the bias claim does not hold
    got = verdicts(record(off_bias=(0.01, -0.01, 0.02, -0.02)))
    assert not got["off_policy_v_biased"] and got["td0_converges"]
    # the direction is fixed in advance: a positive bias does not count
    assert not verdicts(record(off_bias=(0.1, 0.11, 0.09, 0.1)))["off_policy_v_biased"]


def test_max_error_is_over_live_states_only() -> None:
    r = env_record(td_err=0.02)
    r.td0[:, 2] = 99.0  # a terminal state's entry is never compared
    np.testing.assert_allclose(r.max_error("td0"), 0.02)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="gamma"):
        tb.TabularConfig(gamma=1.0)
    with pytest.raises(ConfigError, match="replicates"):
        tb.TabularConfig(replicates=1)
    with pytest.raises(ConfigError, match="frozenlake_epsilon"):
        tb.TabularConfig(frozenlake_epsilon=2.0)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "rl.tabular", preset="quick", overrides=TINY, out=tmp_path, show_progress=False, threads=1
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert [Path(f).name for f in rec["figures"]] == ["learning_curves.png", "value_maps.png"]
    assert len(rec["metrics"]["frozenlake_max_error_td0"]) == 2
    # off-policy TD(0) learns the uniform behaviour's value, about -150 on CliffWalking
    assert min(rec["metrics"]["cliffwalking_max_error_off_policy_td0"]) > 10
