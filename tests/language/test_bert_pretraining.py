"""language.bert_pretraining: verdicts on synthetic records and a tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.language.experiments import bert_pretraining as bp

CFG = bp.BertPretrainingConfig.quick()
KEYS = ("mlm_beats_unigram", "order_accuracy", "mask_rate")


def record(mlm: float = 0.6, unigram: float = 0.15, order: float = 0.98, chosen: int = 600):
    n = 1000

    def hits(rate: float, size: int) -> np.ndarray:
        return (np.arange(size) < round(rate * size)).astype(float)

    return bp.BertPretrainingMeasurements(
        steps=np.array([50, 100]),
        curves={k: np.array([1.0, 0.5]) for k in bp.CURVES},
        mlm_correct=hits(mlm, n),
        unigram_correct=hits(unigram, n),
        order_correct=hits(order, 300),
        candidates=round(n / CFG.mask_prob) if chosen == 600 else chosen,
        top_word=".",
        attention_tokens=[["[CLS]", "a", "[MASK]", "[SEP]"]],
        attention_position=[2],
        attention_weights=[np.array([0.1, 0.2, 0.3, 0.4])],
        attention_answer=[("dog", "cat")],
        pretrain_seconds=1.0,
    )


def verdicts(m: bp.BertPretrainingMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in bp.claims(m, CFG)}


def test_declared_keys_and_kinds() -> None:
    exp = get_experiment("language.bert_pretraining")
    assert exp.claims + exp.checks == KEYS
    assert [c.key for c in bp.claims(record(), CFG)] == list(KEYS)


def test_verdicts_follow_the_thresholds() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)
    assert not verdicts(record(mlm=0.29, unigram=0.15))["mlm_beats_unigram"]
    assert verdicts(record(mlm=0.30, unigram=0.15))["mlm_beats_unigram"]  # exactly 2x holds
    assert not verdicts(record(order=0.89))["order_accuracy"]
    assert not verdicts(record(chosen=2000))["mask_rate"]  # 1000 of 2000 is not 15%


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="attention_examples"):
        bp.BertPretrainingConfig(attention_examples=0)
    with pytest.raises(ConfigError, match="num_heads"):
        bp.BertPretrainingConfig(d_model=30, num_heads=4)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "language.bert_pretraining",
        preset="quick",
        overrides=(
            "documents=20", "heldout_documents=10", "words_per_category=2", "d_model=16",
            "num_heads=2", "num_layers=1", "dim_feedforward=32", "steps=10", "every=5",
            "batch=8", "attention_examples=2",
        ),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )  # fmt: skip
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert [Path(f).name for f in rec["figures"]] == ["attention.png", "training_curves.png"]
    assert 0 <= rec["metrics"]["heldout_mlm_acc"] <= 1
