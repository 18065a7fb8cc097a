"""rl.partial_observation: claim verdicts on synthetic records and a tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.rl.experiments import partial_observation as po

KEYS = ("memoryless_falls_short", "memory_recovers")
CFG = po.PartialObservationConfig(seeds=2)
TINY = (
    "seeds=1",
    "max_batches=2",
    "eval_every=1",
    "batch_episodes=2",
    "eval_episodes=2",
    "final_episodes=2",
    "hidden=4",
)


def record(memoryless: list[float], stacked: list[float]) -> po.PartialObservationMeasurements:
    final = {"memoryless": np.array(memoryless), "stacked": np.array(stacked)}
    return po.PartialObservationMeasurements(
        episodes={p: [np.array([16.0])] * 2 for p in po.POLICIES},
        eval_mean={p: [final[p][i : i + 1] for i in range(2)] for p in po.POLICIES},
        final=final,
        final_se={p: np.zeros(2) for p in po.POLICIES},
        last_train={p: final[p] / 2 for p in po.POLICIES},
        diverged={p: ["", ""] for p in po.POLICIES},
    )


def verdicts(m: po.PartialObservationMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in po.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    assert get_experiment("rl.partial_observation").claims == KEYS


def test_verdicts_use_the_best_memoryless_and_the_worst_stacked_seed() -> None:
    assert verdicts(record([40.0, 45.0], [500.0, 480.0])) == dict.fromkeys(KEYS, True)
    assert verdicts(record([40.0, 250.0], [500.0, 380.0])) == dict.fromkeys(KEYS, False)
    assert verdicts(record([40.0, 200.0], [400.0, 500.0])) == dict.fromkeys(KEYS, True)  # bars
    assert verdicts(record([40.0, np.nan], [np.nan, 500.0])) == dict.fromkeys(KEYS, False)


def test_config_rejects_one_frame() -> None:
    with pytest.raises(ConfigError, match="frames"):
        po.PartialObservationConfig(frames=1)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "rl.partial_observation",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert [Path(f).name for f in rec["figures"]] == ["partial_observation.png"]
