"""language.pretraining_helps: verdicts on synthetic records and a tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.language.experiments import pretraining_helps as ph

CFG = ph.PretrainingHelpsConfig(sizes=(2, 5, 50), small_max=10, replicates=4)
KEYS = ("finetune_beats_scratch", "frozen_beats_scratch", "finetune_beats_frozen")
NOISE = np.array([0.01, -0.01, 0.02, -0.02])


def record(finetuned=(0.8, 0.9, 0.97), scratch=(0.4, 0.6, 0.95), frozen=(0.7, 0.8, 0.9)):
    def rows(means) -> np.ndarray:
        return np.array([m + NOISE * (i + 1) for i, m in enumerate(means)])

    acc = {
        "finetuned": rows(finetuned),
        "scratch": rows(scratch) + 0.003,  # not perfectly parallel: a finite statistic
        "frozen_cls": rows(frozen),
        "frozen_mean": rows(frozen) - 0.002,
    }
    return ph.PretrainingHelpsMeasurements(
        sizes=np.array([2, 5, 50]),
        accuracy=acc,
        test_size=500,
        pool_size=700,
        pretrain_order_acc=1.0,
        pretrain_seconds=1.0,
    )


def verdicts(m: ph.PretrainingHelpsMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ph.claims(m, CFG)}


def test_declared_keys() -> None:
    assert get_experiment("language.pretraining_helps").claims == KEYS
    assert [c.key for c in ph.claims(record(), CFG)] == list(KEYS)


def test_pretraining_helping_holds_every_claim() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)


def test_every_small_size_counts_and_the_large_one_does_not() -> None:
    got = verdicts(record(finetuned=(0.8, 0.55, 0.97)))  # loses at n = 5
    assert not got["finetune_beats_scratch"] and got["frozen_beats_scratch"]
    got = verdicts(record(frozen=(0.7, 0.8, 0.2)))  # frozen bad at n = 50 only
    assert got["frozen_beats_scratch"] and got["finetune_beats_frozen"]
    assert not verdicts(record(frozen=(0.7, 0.8, 0.99)))["finetune_beats_frozen"]


def test_known_failure_is_attached_to_the_few_label_claims() -> None:
    failing = ph.claims(record(finetuned=(0.3, 0.4, 0.97), frozen=(0.2, 0.3, 0.9)), CFG)
    assert [c.verdict for c in failing] == ["known failure", "known failure", "holds"]
    at_ceiling = ph.claims(record(frozen=(0.7, 0.8, 0.975)), CFG)  # no gain at n = 50
    assert [c.verdict for c in at_ceiling] == ["holds", "holds", "known failure"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="increase"):
        ph.PretrainingHelpsConfig(sizes=(5, 2))
    with pytest.raises(ConfigError, match="small_max"):
        ph.PretrainingHelpsConfig(sizes=(20, 50), small_max=10)
    with pytest.raises(ConfigError, match="frozen_pool"):
        ph.PretrainingHelpsConfig(frozen_pool="max")
    with pytest.raises(ConfigError, match="finetune_pool"):
        ph.PretrainingHelpsConfig(finetune_pool="max")
    with pytest.raises(ConfigError, match="content_mask_prob"):
        ph.PretrainingHelpsConfig(content_mask_prob=1.5)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "language.pretraining_helps",
        preset="quick",
        overrides=(
            "documents=20", "pool_documents=40", "test_documents=10", "words_per_category=2",
            "sizes=1,2", "small_max=1", "replicates=2", "d_model=16", "num_heads=2",
            "num_layers=1", "dim_feedforward=32", "pretrain_steps=5", "pretrain_batch=8",
            "finetune_steps=2", "probe_steps=2", "elmo=true", "elmo_steps=2",
        ),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )  # fmt: skip
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert set(rec["metrics"]["mean_accuracy"]) == {
        "finetuned", "scratch", "frozen_cls", "frozen_mean", "word2vec", "elmo",
    }  # fmt: skip
    assert [Path(f).name for f in rec["figures"]] == ["label_curve.png"]
