"""rl.dqn_cartpole: verdicts on synthetic records, config checks, and one tiny smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.rl.experiments import dqn_cartpole as dc

KEYS = ("solves", "target_helps", "replay_helps")
CFG = dc.DQNCartpoleConfig(seeds=4, ablation_seeds=4)
TINY = (
    "seeds=2",
    "ablation_seeds=2",
    "total_steps=256",
    "ablation_steps=256",
    "hidden=16",
    "learning_starts=64",
    "train_freq=64",
    "gradient_steps=4",
    "target_update_interval=4",
    "eval_every=128",
    "eval_episodes=2",
)


def record(
    dqn: tuple[float, ...] = (12_000, 15_000, 20_000, 9_000),
    no_target: tuple[float, ...] = (30_000, math.nan, 41_000, 25_000),
    no_replay: tuple[float, ...] = (math.nan,) * 4,
    budget: int = 50_000,
) -> dc.DQNCartpoleMeasurements:
    solved = {"dqn": dqn, "no_target": no_target, "no_replay": no_replay}

    def curve(s: float) -> tuple[np.ndarray, np.ndarray]:
        end = budget if math.isnan(s) else int(s)
        steps = np.arange(1024, end + 1, 1024)
        returns = np.linspace(20, 500 if not math.isnan(s) else 200, len(steps))
        return steps, returns

    curves = {v: [curve(s) for s in solved[v]] for v in dc.VARIANTS}
    return dc.DQNCartpoleMeasurements(
        eval_steps={v: [c[0] for c in curves[v]] for v in dc.VARIANTS},
        eval_returns={v: [c[1] for c in curves[v]] for v in dc.VARIANTS},
        solved_at={v: np.array(solved[v], dtype=float) for v in dc.VARIANTS},
        budget=dict.fromkeys(dc.VARIANTS, budget),
        updates={v: np.full(len(solved[v]), 1000) for v in dc.VARIANTS},
        seconds={v: np.full(len(solved[v]), 1.0) for v in dc.VARIANTS},
    )


def verdicts(m: dc.DQNCartpoleMeasurements) -> dict[str, str]:
    return {c.key: c.verdict for c in dc.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("rl.dqn_cartpole")
    assert exp.claims == KEYS and exp.checks == ()
    assert [c.key for c in dc.claims(record(), CFG)] == list(KEYS)


def test_the_phenomenon_holds_every_claim() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, "holds")


def test_one_unsolved_seed_fails_the_step_goal() -> None:
    got = verdicts(record(dqn=(12_000, math.nan, 20_000, 9_000)))
    assert got["solves"] == "fails"
    assert verdicts(record(dqn=(12_000, 50_176, 20_000, 9_000)))["solves"] == "fails"


def test_an_ablation_that_is_as_fast_does_not_hold() -> None:
    same = (12_000, 15_000, 20_000, 9_000)
    assert verdicts(record(no_target=same))["target_helps"] == "fails"
    faster = (6_000, 7_000, 8_000, 5_000)
    assert verdicts(record(no_replay=faster))["replay_helps"] == "fails"


def test_unsolved_runs_are_censored_at_the_shorter_budget() -> None:
    m = record(no_target=(math.nan, 30_000, math.nan, 25_000))
    m.budget["no_target"] = 20_000  # both compared at 20k: dqn's 20,000 stays, 30k becomes 20k
    assert m.censored("no_target", 20_000).tolist() == [20_000, 20_000, 20_000, 20_000]
    assert m.censored("dqn", 20_000).tolist() == [12_000, 15_000, 20_000, 9_000]
    claim = next(c for c in dc.claims(m, CFG) if c.key == "target_helps")
    assert "censored at 20,000" in claim.statement


def test_two_seeds_make_the_ablations_known_failures() -> None:
    m = record(no_target=(30_000, 40_000), no_replay=(math.nan, math.nan))
    got = {c.key: c for c in dc.claims(m, dc.DQNCartpoleConfig.quick())}
    assert got["target_helps"].known_failure and got["replay_helps"].known_failure
    assert not got["solves"].known_failure


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="ablation_seeds"):
        dc.DQNCartpoleConfig(seeds=3, ablation_seeds=4)
    with pytest.raises(ConfigError, match="eval_every"):
        dc.DQNCartpoleConfig(eval_every=1000)
    cfg = dc.DQNCartpoleConfig.quick()
    assert cfg.dqn("no_target").target == "none" and not cfg.dqn("no_replay").replay
    assert cfg.dqn("dqn").total_steps == dc.STEP_GOAL and cfg.dqn("no_replay").total_steps == 4096


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "rl.dqn_cartpole",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert [Path(f).name for f in rec["figures"]] == ["dqn_cartpole.png"]
    m = rec["metrics"]
    assert len(m["steps_to_475_dqn"]) == 2 and len(m["steps_to_475_no_replay"]) == 2
    # phases 2-4 train: 4 updates each with replay, each transition once (64 / 64) without
    assert m["updates_dqn"] == [12, 12] and m["updates_no_replay"] == [3, 3]
