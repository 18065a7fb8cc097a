"""language.contextual_embeddings: verdicts on synthetic records, the probe, and a smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.language.experiments import contextual_embeddings as ce

CFG = ce.ContextualConfig.quick()
CLAIMS = ("contextual_separates", "forward_near_chance", "bidirectional_separates")
CHECKS = ("static_at_chance",)
TINY = (
    "documents=120",
    "probe_documents=60",
    "words_per_category=3",
    "dim=8",
    "hidden=8",
    "layers=1",
    "batch=16",
    "steps=10",
    "every=10",
)


def outcomes(accuracy: float, n: int = 100) -> np.ndarray:
    """n 0/1 outcomes with the given share of ones."""
    return (np.arange(n) < round(accuracy * n)).astype(float)


def record(
    forward_right: float = 0.5, both_right: float = 1.0, both_other: float = 1.0, static=0.5
) -> ce.ContextualMeasurements:
    words, right = ["bat", "duck", "jam", "track"], ["bat", "jam"]

    def acc(feature: str, word: str) -> float:
        if feature == "static":
            return static
        if feature == "forward":
            return forward_right if word in right else 1.0
        if feature == "backward":
            return 1.0
        return both_right if word in right else both_other

    return ce.ContextualMeasurements(
        words=words,
        right_only=right,
        correct={f: {w: outcomes(acc(f, w)) for w in words} for f in ce.FEATURES},
        majority=dict.fromkeys(words, 0.5),
        pca_word="bat",
        pca={f: np.zeros((4, 2)) for f in ("forward", "both")},
        pca_senses=np.array([0, 1, 0, 1]),
        sense_names=("animals", "sport"),
        held_out_loss=2.6,
    )


def verdicts(m: ce.ContextualMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ce.claims(m, CFG)}


def test_every_declared_key_is_returned_with_its_kind() -> None:
    exp = get_experiment("language.contextual_embeddings")
    assert exp.claims == CLAIMS and exp.checks == CHECKS
    got = {c.key: c.kind for c in ce.claims(record(), CFG)}
    assert got == {"static_at_chance": "check", **dict.fromkeys(CLAIMS, "claim")}


def test_the_phenomenon_holds_everything() -> None:
    assert all(verdicts(record()).values())


def test_each_claim_fails_on_its_own_counterexample() -> None:
    assert not verdicts(record(forward_right=0.7))["forward_near_chance"]
    assert verdicts(record(forward_right=0.65))["forward_near_chance"]  # inclusive bar
    assert not verdicts(record(both_right=0.9))["bidirectional_separates"]
    # pooled over all four words: two at 1.0 and two at 0.88 give 0.94 < 0.95
    assert not verdicts(record(both_other=0.88))["contextual_separates"]
    # a static probe above the majority share can only be a bug
    assert not verdicts(record(static=0.6))["static_at_chance"]


def test_no_right_only_word_holds_no_right_only_claim() -> None:
    m = record()
    m = ce.ContextualMeasurements(**{**m.__dict__, "right_only": []})
    assert math.isnan(m.accuracy("forward", "right_only")[0])
    got = verdicts(m)
    assert not got["forward_near_chance"] and not got["bidirectional_separates"]


def test_the_probe_is_constant_on_a_static_vector_and_exact_on_separable_features() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    constant = np.ones((40, 3))
    guess = ce._probe(constant[:20], y[:20], constant[20:], 1.0)
    assert np.unique(guess).size == 1
    separable = rng.normal(size=(40, 3)) * 0.01 + y[:, None] * 0.05  # small scale: standardised
    guess = ce._probe(separable[:20], y[:20], separable[20:], 1.0)
    assert np.array_equal(guess, y[20:])
    assert np.array_equal(ce._probe(separable[:2], np.array([1, 1]), separable[2:5], 1.0), [1] * 3)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="hidden"):
        ce.ContextualConfig(dim=16, hidden=8)
    with pytest.raises(ConfigError, match="probe_c"):
        ce.ContextualConfig(probe_c=0)


def test_smoke_run(tmp_path) -> None:
    result = run_experiment(
        "language.contextual_embeddings",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    got = result.record
    keys = {c["key"]: c for c in got["claims"]}
    assert set(keys) == set(CLAIMS + CHECKS)
    assert keys["static_at_chance"]["holds"]  # holds at any training length
    assert [Path(f).name for f in got["figures"]] == ["senses.png"]
    assert math.isfinite(got["metrics"]["held_out_loss"])
    assert len(list((result.run_dir / "cache").glob("bilm-*.pt"))) == 1
