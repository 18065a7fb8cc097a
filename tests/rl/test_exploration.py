"""rl.exploration: claim verdicts on synthetic records, config validation, the greedy lock-in
mechanism, and a tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.rl.experiments import exploration as ex
from deepnotes.rl.mdp import greedy_policy, policy_evaluation, value_iteration
from deepnotes.rl.tabular import (
    TabularLearner,
    Walkers,
    chain_mdp,
    greedy_probs,
    q_learning_update,
    sample_categorical,
)

KEYS = ("greedy_fails", "epsilon_greedy_succeeds", "boltzmann_succeeds")
CFG = ex.ExplorationConfig(replicates=10)
TINY = ("replicates=2", "steps=60", "every=30")


def record(greedy: int = 0, epsilon: int = 10, boltzmann: int = 10) -> ex.ExplorationMeasurements:
    """10 replicates per method, the given number successful."""

    def ok(k: int) -> np.ndarray:
        return np.arange(10) < k

    wins = {"greedy": ok(greedy), "epsilon_greedy": ok(epsilon), "boltzmann": ok(boltzmann)}
    return ex.ExplorationMeasurements(
        steps=np.array([100, 200]),
        success_curve={m: np.array([0.0, w.mean()]) for m, w in wins.items()},
        farthest_curve={m: np.array([2.0, 5.0]) for m in wins},
        success=wins,
        farthest={m: np.full(10, 5) for m in wins},
        v_star=np.array([5.9, 6.6]),
        q_start={m: np.ones((10, 2)) for m in wins},
    )


def verdicts(m: ex.ExplorationMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ex.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("rl.exploration")
    assert exp.claims == KEYS and exp.checks == ()
    assert [c.key for c in ex.claims(record(), CFG)] == list(KEYS)


def test_verdicts_follow_the_fixed_rates() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)
    assert verdicts(record(greedy=1))["greedy_fails"]  # 0.1 is allowed
    assert not verdicts(record(greedy=2))["greedy_fails"]
    assert verdicts(record(epsilon=9))["epsilon_greedy_succeeds"]  # 0.9 is enough
    assert not verdicts(record(epsilon=8))["epsilon_greedy_succeeds"]
    assert not verdicts(record(boltzmann=8))["boltzmann_succeeds"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="going forward is not optimal"):
        ex.ExplorationConfig(n=20)  # 0.9^19 = 0.135 < 0.2
    with pytest.raises(ConfigError, match="temperature"):
        ex.ExplorationConfig(temperature=0.0)
    with pytest.raises(ConfigError, match="epsilon_end"):
        ex.ExplorationConfig(epsilon_end=1.5)


def test_greedy_learner_locks_onto_back_after_taking_it_once() -> None:
    mdp = chain_mdp(6, small=0.2, big=1.0, gamma=0.9)
    rng = np.random.default_rng(0)
    walkers = Walkers(mdp, 8, 1, rng, horizon=50)
    q = TabularLearner((8, 6, 2), scale=10.0)
    rows = np.arange(8)[:, None]
    for _ in range(300):
        probs = greedy_probs(q.table[rows, walkers.states])
        q_learning_update(q, walkers.step(sample_categorical(probs, rng)), 0.9)
    # in every replicate that took "back" at state 0, it is now strictly preferred there
    took_back = q.counts[:, 0, 0] > 0
    assert took_back.all()
    assert (q.table[:, 0, 0] > q.table[:, 0, 1]).all()
    _, v_star = value_iteration(mdp)
    values = [policy_evaluation(mdp, greedy_policy(q.table[r]))[0] for r in range(8)]
    assert max(values) < v_star[0] - 0.1


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "rl.exploration",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert [Path(f).name for f in rec["figures"]] == ["exploration.png"]
    assert rec["metrics"]["success_rate_greedy"] == 0.0
    assert rec["metrics"]["v_star_start"] == pytest.approx(0.9**5 / 0.1)


def test_resume_from_the_loop_checkpoint_gives_the_same_outcome(tmp_path: Path) -> None:
    kwargs = {"preset": "quick", "overrides": TINY, "show_progress": False, "threads": 1}
    first = run_experiment("rl.exploration", out=tmp_path, **kwargs)
    for cache in (first.run_dir / "cache").glob("*.pt"):
        cache.unlink()  # the fit must come back from the loop's checkpoint
    (first.run_dir / "outcome.json").unlink()
    again = run_experiment(
        "rl.exploration", out=tmp_path, resume=True, run_id=first.run_dir.name, **kwargs
    )
    assert again.record["metrics"] == first.record["metrics"]
    assert again.record["claims"] == first.record["claims"]
