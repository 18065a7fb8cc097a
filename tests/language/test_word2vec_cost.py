"""language.word2vec_cost: verdicts on synthetic records and a smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.language.experiments import word2vec_cost as wc

CFG = wc.CostConfig.quick()
KEYS = ("softmax_slope", "negative_slope", "negative_purity", "softmax_purity")


def record(softmax_power: float = 1.0, negative_power: float = 0.0, purity: float = 0.95):
    sizes = np.array([100.0, 400.0, 1600.0])
    return wc.CostMeasurements(
        vocab_sizes=sizes,
        step_seconds={
            "softmax": np.outer(1e-5 * sizes**softmax_power, [1.0, 1.1, 0.9]),
            "negative": np.outer(1e-3 * sizes**negative_power, [1.0, 1.2, 0.8]),
        },
        purity={"softmax": purity, "negative": purity},
        chance=0.07,
        loss={"softmax": [4.0, 3.0], "negative": [3.0, 2.0]},
        main_vocab=125,
    )


def verdicts(m: wc.CostMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in wc.claims(m, CFG)}


def test_the_phenomenon_holds_every_claim() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)
    assert record(softmax_power=0.9).slope("softmax") == pytest.approx(0.9)


def test_each_claim_can_fail() -> None:
    assert not verdicts(record(softmax_power=0.7))["softmax_slope"]
    assert not verdicts(record(negative_power=0.3))["negative_slope"]
    got = verdicts(record(purity=0.85))
    assert not got["negative_purity"] and not got["softmax_purity"]


def test_config_rejects_a_sweep_of_one_size() -> None:
    with pytest.raises(ConfigError, match="sweep"):
        wc.CostConfig(sweep=(8, 8))


def test_smoke_run(tmp_path: Path) -> None:
    result = run_experiment(
        "language.word2vec_cost",
        overrides=(
            "documents=60",
            "timing_documents=20",
            "sweep=(3,6)",
            "timed_steps=1",
            "repeats=1",
            "epochs=1",
            "batch=256",
            "dim=8",
        ),
        out=tmp_path,
        show_progress=False,
    )
    outcome = json.loads((result.run_dir / "outcome.json").read_text())
    assert [c["key"] for c in outcome["claims"]] == list(KEYS)
    assert (result.run_dir / "cost.png").exists()
