"""foundations.supervised_digits: its verdict on synthetic records, and smoke runs."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.foundations.experiments.supervised_digits import (
    DigitsConfig,
    DigitsMeasurements,
    claims,
)

RECORD = DigitsMeasurements(
    test_acc=0.98,
    test_loss=0.07,
    val_acc_selected=0.975,
    val_loss_selected=0.08,
    best_epoch=30,
    epochs_run=60,
    train_seconds=3.0,
    n_train=1077,
    n_val=360,
    n_test=360,
    history=[],
    confusion=np.eye(10),
)


def test_claim_holds_at_the_bar_and_fails_below_it_or_when_nan() -> None:
    cfg = DigitsConfig()
    (claim,) = claims(RECORD, cfg)
    assert claim.key == "test_accuracy" and claim.kind == "claim" and claim.holds
    assert claims(replace(RECORD, test_acc=0.97), cfg)[0].holds
    assert not claims(replace(RECORD, test_acc=0.969), cfg)[0].holds
    assert not claims(replace(RECORD, test_acc=math.nan), cfg)[0].holds  # NaN never holds


def test_quick_preset_is_smaller() -> None:
    assert preset(DigitsConfig, "quick").epochs <= preset(DigitsConfig, "full").epochs


def test_supervised_digits_learns_and_is_reproducible(tmp_path: Path) -> None:
    runs = [
        run_experiment(
            "foundations.supervised_digits",
            overrides=["epochs=4"],
            out=tmp_path,
            device="cpu",
            show_progress=False,
            threads=1,
        )
        for _ in range(2)
    ]
    metrics = runs[0].record["metrics"]
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 1797
    assert metrics["test_acc"] > 0.9  # four epochs already learn most digits
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] == 4
    assert [Path(f).name for f in runs[0].record["figures"]] == ["curves.png", "confusion.png"]
    a, b = ({k: v for k, v in r.record["metrics"].items() if k != "train_seconds"} for r in runs)
    assert a == b
