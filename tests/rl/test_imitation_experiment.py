"""rl.imitation: verdicts on synthetic records, config validation, and a tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.rl.experiments import imitation as ex

CLAIMS = ("bc_shift", "dagger_reaches_expert", "bc_falls_short", "dagger_beats_bc")
CHECKS = ("expert_solves", "equal_labels")
CFG = ex.ImitationConfig(budgets=(20, 60), seeds=4)
TINY = (
    "budgets=[6,12]",
    "claim_budget=12",
    "rounds=2",
    "steps_per_round=5",
    "seeds=2",
    "eval_episodes=2",
    "hidden=[8]",
)


def record(
    bc: tuple[float, ...] = (100.0, 150.0, 120.0, 90.0),
    dagger: tuple[float, ...] = (500.0, 500.0, 490.0, 500.0),
    own: tuple[float, ...] = (0.30, 0.28, 0.33, 0.29),
    expert_states: tuple[float, ...] = (0.20, 0.21, 0.19, 0.22),
    labels: float = 60.0,
    expert_return: float = 500.0,
) -> ex.ImitationMeasurements:
    """Four seeds at budgets (20, 60); the claim row (60) holds the given values."""

    def rows(last: tuple[float, ...]) -> np.ndarray:
        return np.array([np.asarray(last) * 0.5, last])

    returns = {"bc": rows(bc), "dagger": rows(dagger)}
    return ex.ImitationMeasurements(
        budgets=np.array([20, 60]),
        score={m: r / expert_return for m, r in returns.items()},
        returns=returns,
        disagree_expert={m: rows(expert_states) for m in ex.METHODS},
        disagree_own={m: rows(own) for m in ex.METHODS},
        labels={m: np.array([[20.0] * 4, [labels] * 4]) for m in ex.METHODS},
        expert_return=np.full(4, expert_return),
        solved_return=475.0,
        env_id="CartPole-v1",
        claim_budget=60,
    )


def verdicts(m: ex.ImitationMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ex.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("rl.imitation")
    assert exp.claims == CLAIMS and exp.checks == CHECKS
    out = ex.claims(record(), CFG)
    assert [c.key for c in out] == list(CLAIMS + CHECKS)
    assert [c.kind for c in out] == ["claim"] * 4 + ["check"] * 2


def test_the_phenomenon_holds_everything() -> None:
    assert all(verdicts(record()).values())


def test_no_shift_no_claim() -> None:
    got = verdicts(record(own=(0.20, 0.21, 0.19, 0.22)))  # same rates on both distributions
    assert not got["bc_shift"]


def test_bc_at_the_expert_fails_both_comparisons() -> None:
    got = verdicts(record(bc=(500.0, 490.0, 500.0, 495.0)))
    assert not got["bc_falls_short"] and not got["dagger_beats_bc"]
    assert got["dagger_reaches_expert"]


def test_dagger_below_the_bar_fails() -> None:
    got = verdicts(record(dagger=(480.0, 450.0, 470.0, 460.0)))  # mean 0.93 of the expert
    assert not got["dagger_reaches_expert"]


def test_checks_catch_a_weak_expert_and_unequal_labels() -> None:
    got = verdicts(record(expert_return=400.0, labels=61.0))
    assert not got["expert_solves"] and not got["equal_labels"]


def test_a_nan_return_holds_nothing_it_enters() -> None:
    got = verdicts(record(dagger=(500.0, np.nan, 490.0, 500.0)))
    assert not got["dagger_reaches_expert"] and not got["dagger_beats_bc"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="env_id must be one of"):
        ex.ImitationConfig(env_id="Pong-v5")
    with pytest.raises(ConfigError, match="claim_budget"):
        ex.ImitationConfig(budgets=(20, 40), claim_budget=60)
    with pytest.raises(ConfigError, match="strictly increasing"):
        ex.ImitationConfig(budgets=(60, 20))
    with pytest.raises(ConfigError, match="every budget must be >= rounds"):
        ex.ImitationConfig(budgets=(3, 60), rounds=6)
    with pytest.raises(ConfigError, match="seeds must be >= 2"):
        ex.ImitationConfig(seeds=1)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "rl.imitation",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(CLAIMS + CHECKS)
    assert rec["metrics"]["expert_return"] == 500.0 and rec["metrics"]["budgets"] == [6, 12]
    assert [Path(f).name for f in rec["figures"]] == ["imitation.png"]
    checks = {c["key"]: c["holds"] for c in rec["claims"] if c["kind"] == "check"}
    assert checks == {"expert_solves": True, "equal_labels": True}
    assert len(list((result.run_dir / "cache").glob("fit-*.pt"))) == 2 * 2 * 2
