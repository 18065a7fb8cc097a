"""language.word2vec_degenerate: verdicts on synthetic records and a smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepnotes.core.context import run_experiment
from deepnotes.language.experiments import word2vec_degenerate as wd

CFG = wd.DegenerateConfig.quick()
KEYS = (
    "norms_grow",
    "positive_random_pairs",
    "positive_purity_falls",
    "negative_random_pairs",
    "negative_purity",
    "positive_same_vector",
)


def record(norms=(0.5, 1.0, 1.2, 1.3), p_pos=0.999, p_neg=0.1, purity_pos=0.2, cos=0.99):
    return wd.DegenerateMeasurements(
        norms={"positive": np.array(norms), "negative": np.array([0.5, 0.9, 1.0, 1.0])},
        random_pair_probability={"positive": p_pos, "negative": p_neg},
        purity={"positive": purity_pos, "negative": 0.95},
        cross_cosine={"positive": cos, "negative": 0.1},
        chance=0.07,
    )


def verdicts(m: wd.DegenerateMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in wd.claims(m, CFG)}


def test_the_phenomenon_holds_every_claim() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)


def test_each_claim_can_fail() -> None:
    assert not verdicts(record(norms=(0.5, 1.0, 1.0, 1.3)))["norms_grow"]  # a plateau
    assert not verdicts(record(p_pos=0.98))["positive_random_pairs"]
    assert not verdicts(record(purity_pos=0.6))["positive_purity_falls"]  # halfway is 0.51
    assert not verdicts(record(p_neg=0.6))["negative_random_pairs"]
    assert not verdicts(record(cos=0.5))["positive_same_vector"]


def test_the_purity_claim_is_a_known_failure() -> None:
    by_key = {c.key: c for c in wd.claims(record(), CFG)}
    assert by_key["positive_purity_falls"].known_failure
    assert not by_key["negative_purity"].known_failure


def test_smoke_run(tmp_path: Path) -> None:
    result = run_experiment(
        "language.word2vec_degenerate",
        overrides=("documents=60", "epochs=2", "batch=256", "dim=8", "random_pairs=100"),
        out=tmp_path,
        show_progress=False,
    )
    outcome = json.loads((result.run_dir / "outcome.json").read_text())
    assert [c["key"] for c in outcome["claims"]] == list(KEYS)
    assert (result.run_dir / "degenerate.png").exists()
