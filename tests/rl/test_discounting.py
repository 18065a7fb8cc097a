"""rl.discounting: the closed forms against independent computations, claim verdicts on synthetic
records, config validation and a tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.rl.experiments import discounting as dc
from deepnotes.rl.mdp import policy_evaluation

KEYS = ("value_closed_form", "variance_closed_form", "lower_gamma_lower_variance")
CHECKS = ("policy_evaluation_closed_form",)
GAMMAS = (0.5, 0.9, 1.0)
CFG = dc.DiscountingConfig(gammas=GAMMAS, episodes=1000)


@pytest.mark.parametrize("gamma", [0.3, 0.9, 0.99, 1.0])
def test_geometric_closed_forms_against_the_series(gamma: float) -> None:
    p, r = 0.2, 1.5
    T = np.arange(1, 2000)
    prob = p * (1 - p) ** (T - 1)  # P(T = t)
    returns = r * np.array([np.sum(gamma ** np.arange(t)) for t in T])
    mean = np.sum(prob * returns)
    assert dc.geometric_value(gamma, p, r) == pytest.approx(mean, rel=1e-10)
    assert dc.geometric_return_variance(gamma, p, r) == pytest.approx(
        np.sum(prob * (returns - mean) ** 2), rel=1e-8
    )
    mdp = dc.geometric_mdp(p, r, gamma)
    assert policy_evaluation(mdp, np.ones((2, 1)))[0] == pytest.approx(mean, rel=1e-10)


def record(
    shift: float = 0.0, reverse: bool = False, variance_scale: float = 1.0
) -> dc.DiscountingMeasurements:
    """Synthetic returns with the closed-form mean and variance (up to ``shift`` and
    ``variance_scale``); ``reverse`` makes the variance fall with gamma on FrozenLake."""
    rng = np.random.default_rng(0)
    g = np.asarray(GAMMAS)
    exact = np.array([dc.geometric_value(x, 0.1) for x in g])
    var = np.array([dc.geometric_return_variance(x, 0.1) for x in g])
    z = rng.standard_normal(20_000)
    z = (z - z.mean()) / z.std(ddof=1)  # exactly mean 0, variance 1
    geometric = exact[:, None] + shift + np.sqrt(var * variance_scale)[:, None] * z
    scales = np.array([3.0, 2.0, 1.0]) if reverse else np.array([1.0, 2.0, 3.0])
    frozen = 0.5 + scales[:, None] * z
    return dc.DiscountingMeasurements(
        gammas=g,
        returns={"geometric": geometric, "frozenlake": frozen},
        exact={"geometric": exact, "frozenlake": np.full(3, 0.5)},
        policy_evaluation=exact,
        exact_variance=var,
        truncated={"geometric": 0, "frozenlake": 0},
    )


def verdicts(m: dc.DiscountingMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in dc.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("rl.discounting")
    assert exp.claims == KEYS and exp.checks == CHECKS
    claims = dc.claims(record(), CFG)
    assert [c.key for c in claims] == [*KEYS, *CHECKS]
    assert claims[-1].kind == "check"


def test_verdicts() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS + CHECKS, True)
    assert not verdicts(record(shift=0.5))["value_closed_form"]
    assert not verdicts(record(variance_scale=1.2))["variance_closed_form"]
    assert not verdicts(record(reverse=True))["lower_gamma_lower_variance"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="gammas must increase"):
        dc.DiscountingConfig(gammas=(0.9, 0.5))
    with pytest.raises(ConfigError, match="every gamma"):
        dc.DiscountingConfig(gammas=(0.0, 0.5))
    with pytest.raises(ConfigError, match="p must be"):
        dc.DiscountingConfig(p=1.0)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "rl.discounting",
        preset="quick",
        overrides=("episodes=500", "gammas=0.5,0.9,1.0"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == [*KEYS, *CHECKS]
    assert [Path(f).name for f in rec["figures"]] == ["discounting.png"]
    var = rec["metrics"]["geometric_variance"]
    assert var[0] < var[1] < var[2]
    assert rec["claims"][-1]["holds"]  # policy_evaluation = closed form
