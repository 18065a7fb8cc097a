"""rl.reinforce_cartpole: claim verdicts on synthetic records (censoring, the quick shortfall)
and a tiny smoke run through the real entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.rl.experiments import reinforce_cartpole as rc

KEYS = ("baseline_reaches", "no_baseline_needs_more")
FULL = rc.ReinforceCartpoleConfig()
TINY = (
    "seeds=2",
    "max_batches=2",
    "eval_every=1",
    "batch_episodes=2",
    "eval_episodes=2",
    "hidden=4",
)


def record(
    baseline: list[int], no_baseline: list[int], best: float = 500.0
) -> rc.ReinforceCartpoleMeasurements:
    """Episodes to 475 per seed (-1: censored) and flat curves ending at ``best``."""

    def curves(reached: list[int]) -> list[np.ndarray]:
        return [np.array([100.0, best if r >= 0 else 300.0]) for r in reached]

    reached = {"baseline": np.array(baseline), "no_baseline": np.array(no_baseline)}
    return rc.ReinforceCartpoleMeasurements(
        episodes={a: [np.array([16.0, 32.0])] * len(baseline) for a in rc.AGENTS},
        eval_mean={a: curves(list(reached[a])) for a in rc.AGENTS},
        train_return={a: [np.array([20.0, 40.0])] * len(baseline) for a in rc.AGENTS},
        reached=reached,
        diverged={a: [""] * len(baseline) for a in rc.AGENTS},
        budget=FULL.budget,
    )


def verdicts(
    m: rc.ReinforceCartpoleMeasurements, cfg: rc.ReinforceCartpoleConfig = FULL
) -> dict[str, str]:
    return {c.key: c.verdict for c in rc.claims(m, cfg)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("rl.reinforce_cartpole")
    assert exp.claims == KEYS and exp.checks == ()


def test_a_consistent_saving_holds_both_claims() -> None:
    m = record([300, 320, 340, 360, 300], [400, 450, 420, 500, 380])
    assert verdicts(m) == dict.fromkeys(KEYS, "holds")


def test_a_censored_baseline_run_fails_the_first_claim_and_counts_at_the_budget() -> None:
    m = record([300, -1, 340, 360, 300], [400, 450, 420, 500, 380])
    assert verdicts(m)["baseline_reaches"] == "fails"
    assert m.counts("baseline")[1] == FULL.budget
    # a censored run without baseline counts as the budget: more episodes
    assert m.counts("no_baseline").tolist() == [400, 450, 420, 500, 380]


def test_no_difference_does_not_hold_and_quick_marks_it_known() -> None:
    m = record([300, 320, 340], [300, 320, 340])
    assert verdicts(m)["no_baseline_needs_more"] == "fails"
    quick = rc.ReinforceCartpoleConfig.quick()
    assert verdicts(m, quick)["no_baseline_needs_more"] == "known failure"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        rc.ReinforceCartpoleConfig(seeds=1)
    with pytest.raises(ConfigError, match="eval_every"):
        rc.ReinforceCartpoleConfig(max_batches=2, eval_every=3)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "rl.reinforce_cartpole",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert [Path(f).name for f in rec["figures"]] == ["learning_curves.png"]
    assert len(rec["metrics"]["episodes_to_475_baseline"]) == 2
