"""rl.actor_critic (the experiment): claim verdicts on synthetic records and a tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.rl.actor_critic import GradientSpread
from deepnotes.rl.experiments import actor_critic as ac

KEYS = ("reaches_475", "lower_variance")
CFG = ac.ActorCriticConfig.quick()
TINY = (
    "seeds=1",
    "max_batches=2",
    "eval_every=1",
    "batch_episodes=2",
    "eval_episodes=2",
    "value_steps=1",
    "hidden=4",
    "var_batches=2",
    "var_episodes=1",
)


def record(best: float = 500.0, ac_scale: float = 0.01, n: int = 32) -> ac.ActorCriticMeasurements:
    rng = np.random.default_rng(0)
    base = rng.exponential(size=n)
    spread = GradientSpread(
        sq_dev={
            "reinforce": 100.0 * base,
            "reinforce_baseline": 50.0 * base,
            "actor_critic": 100.0 * ac_scale * rng.exponential(size=n),
        },
        mean_norm={"reinforce": 10.0, "reinforce_baseline": 10.0, "actor_critic": 5.0},
        batches=n,
        episodes=8,
        mean_return=200.0,
    )
    return ac.ActorCriticMeasurements(
        episodes=[np.array([16.0, 32.0])],
        eval_mean=[np.array([100.0, best])],
        train_return=[np.array([20.0, 50.0])],
        reached=np.array([32 if best >= 475 else -1]),
        diverged=[""],
        spread=spread,
        truncation_error=0.0,
    )


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("rl.actor_critic")
    assert exp.claims == KEYS and exp.checks == ("truncation_bootstraps",)
    assert [c.key for c in ac.claims(record(), CFG)] == [*KEYS, "truncation_bootstraps"]


def test_verdicts() -> None:
    assert all(c.holds for c in ac.claims(record(), CFG))
    got = {c.key: c.holds for c in ac.claims(record(best=300.0, ac_scale=1.5), CFG)}
    assert got == {"reaches_475": False, "lower_variance": False, "truncation_bootstraps": True}


def test_the_truncation_check_is_exact() -> None:
    assert ac.truncation_error(0.9) == 0.0


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="n_step"):
        ac.ActorCriticConfig(n_step=0)
    with pytest.raises(ConfigError, match="var_batches"):
        ac.ActorCriticConfig(var_batches=1)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "rl.actor_critic",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == [*KEYS, "truncation_bootstraps"]
    assert [Path(f).name for f in rec["figures"]] == ["actor_critic.png"]
    assert rec["metrics"]["truncation_error"] == 0.0
