"""mechanics.numpy_mlp: its verdicts on synthetic records, and a smoke run."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from deepnotes.core.context import run_experiment
from deepnotes.mechanics.experiments.numpy_mlp import (
    NumpyMLPConfig,
    NumpyMLPMeasurements,
    claims,
)

RECORD = NumpyMLPMeasurements(
    loss_gap=4e-16,
    param_gap=6e-17,
    test_acc=0.96,
    val_acc_selected=0.97,
    best_epoch=12,
    epochs_run=20,
    n_test=360,
    history=[],
)


def verdicts(m: NumpyMLPMeasurements) -> dict[str, tuple[str, bool]]:
    return {c.key: (c.kind, c.holds) for c in claims(m, NumpyMLPConfig())}


def test_a_match_to_rounding_is_a_check_and_the_accuracy_bar_a_claim() -> None:
    assert verdicts(RECORD) == {"matches_torch": ("check", True), "test_accuracy": ("claim", True)}
    detail = {c.key: c.detail for c in claims(RECORD, NumpyMLPConfig())}["test_accuracy"]
    assert "not the notes'" in detail  # the bar says where it comes from


def test_a_mismatch_or_a_low_accuracy_fails() -> None:
    assert not verdicts(replace(RECORD, param_gap=1e-6))["matches_torch"][1]
    assert not verdicts(replace(RECORD, test_acc=0.9))["test_accuracy"][1]


def test_a_diverged_run_fails_visibly() -> None:
    diverged = replace(RECORD, test_acc=math.nan, diverged="training diverged: loss is nan")
    (claim,) = [c for c in claims(diverged, NumpyMLPConfig()) if c.key == "test_accuracy"]
    assert not claim.holds and math.isnan(claim.measured) and "diverged" in claim.detail


def test_smoke_run_matches_torch_and_learns(tmp_path: Path) -> None:
    result = run_experiment(
        "mechanics.numpy_mlp",
        overrides=["epochs=4"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    by_key = {c["key"]: c for c in result.record["claims"]}
    assert by_key["matches_torch"]["holds"] and by_key["matches_torch"]["measured"] < 1e-12
    assert by_key["test_accuracy"]["measured"] > 0.85  # four epochs already learn most digits
    assert (result.run_dir / "curves.png").is_file()


def test_a_huge_step_diverges_and_the_claim_does_not_hold(tmp_path: Path) -> None:
    result = run_experiment(
        "mechanics.numpy_mlp",
        overrides=["epochs=2", "lr=50", "check_steps=1"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    by_key = {c["key"]: c for c in result.record["claims"]}
    assert not by_key["test_accuracy"]["holds"]
    assert "diverged" in by_key["test_accuracy"]["detail"]
