"""optim.compare_digits: its paired claims on synthetic records, a smoke run, and a resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core import stats
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.optim.experiments import compare_digits as module
from deepnotes.optim.experiments.compare_digits import (
    COMPARED,
    CompareConfig,
    CompareMeasurements,
    claims,
)

CFG = CompareConfig(replicates=5)
METHODS = tuple(CFG.grids)


def _record(
    losses: dict[str, list[float]], chosen: tuple[str, ...] = METHODS
) -> CompareMeasurements:
    return CompareMeasurements(
        n_train=1078,
        grid={name: {0.1: losses[name][0]} for name in METHODS},
        chosen={name: 0.1 for name in chosen},
        curves={name: [1.0, 0.5] for name in chosen},
        best_epoch={name: 2 for name in chosen},
        replicate_loss={name: np.asarray(losses[name], dtype=float) for name in METHODS},
        test={name: {"loss": 0.2, "acc": 0.95} for name in chosen},
    )


SGD = [0.20, 0.22, 0.19, 0.21, 0.23]
BETTER = [0.10, 0.13, 0.08, 0.12, 0.11]


def _losses(**changes: list[float]) -> dict[str, list[float]]:
    base = {"GD": [0.5, 0.6, 0.55, 0.52, 0.58], "SGD": SGD}
    return base | {name: BETTER for name in COMPARED} | changes


def _by_key(m: CompareMeasurements) -> dict:
    return {c.key: c for c in claims(m, CFG)}


def test_clear_paired_gains_hold_with_bonferroni_over_the_four_comparisons() -> None:
    c = _by_key(_record(_losses()))
    assert set(c) == {"momentum_beats_sgd", "rmsprop_beats_sgd", "adagrad_beats_sgd",
                      "adam_beats_sgd", "sgd_beats_gd"}  # fmt: skip
    for name in COMPARED:
        claim = c[f"{name.lower()}_beats_sgd"]
        assert claim.holds
        expected = stats.paired(SGD, BETTER, "greater", family=4)
        assert claim.measured == pytest.approx(expected.statistic)
        assert claim.threshold == pytest.approx(expected.critical)
        assert "Bonferroni over 4" in claim.detail and "4 df" in claim.detail
    assert c["sgd_beats_gd"].holds and "Bonferroni" not in c["sgd_beats_gd"].detail


def test_a_zero_difference_with_zero_spread_does_not_hold() -> None:
    c = _by_key(_record(_losses(momentum=SGD)))
    assert not c["momentum_beats_sgd"].holds and c["momentum_beats_sgd"].measured == 0.0


def test_a_method_whose_every_step_diverged_keeps_its_claim_and_fails_it() -> None:
    nan = [math.nan] * 5
    chosen = tuple(n for n in METHODS if n != "Adam")
    c = _by_key(_record(_losses(Adam=nan), chosen=chosen))
    claim = c["adam_beats_sgd"]
    assert not claim.holds and math.isnan(claim.measured)
    assert "every step of Adam's grid diverged" in claim.detail
    assert c["rmsprop_beats_sgd"].holds


def test_a_diverged_replicate_makes_the_comparison_not_hold() -> None:
    c = _by_key(_record(_losses(RMSProp=[0.10, math.nan, 0.08, 0.12, 0.11])))
    claim = c["rmsprop_beats_sgd"]
    assert not claim.holds and math.isnan(claim.measured)
    assert "RMSProp diverged in replicates [1]" in claim.detail


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="grid"):
        CompareConfig(sgd_lrs=())
    with pytest.raises(ConfigError, match="replicates"):
        CompareConfig(replicates=1)


TINY = (
    "epochs=2",
    "hidden=16",
    "gd_lrs=1.0",
    "sgd_lrs=0.1",
    "momentum_lrs=0.01",
    "rmsprop_lrs=0.001",
    "adagrad_lrs=0.03",
    "adam_lrs=0.001,0.003",
    "replicates=2",
)


def test_smoke_run_then_resume_recomputes_only_the_missing_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {"preset": "quick", "out": tmp_path, "show_progress": False, "threads": 1}
    first = run_experiment("optim.compare_digits", overrides=TINY, run_id="r", **kwargs)
    m = first.record["metrics"]
    # two full-batch steps against 68 minibatch steps: SGD is far ahead after two epochs
    assert m["gd_val_loss"] > m["sgd_val_loss"]
    assert m["adam_lr"] in (0.001, 0.003)
    assert len(first.record["claims"]) == 5
    fits = sorted((first.run_dir / "cache").glob("fit-*.pt"))
    assert len(fits) == 7 + 6 * 2  # the grid runs, then two replicates of six methods

    # a run killed before its outcome, with three fits not yet written
    (first.run_dir / "outcome.json").unlink()
    for path in fits[::7]:
        path.unlink()
    calls = []
    original = module._fit
    monkeypatch.setattr(module, "_fit", lambda *a: calls.append(a[:3]) or original(*a))
    second = run_experiment("optim.compare_digits", resume=True, run_id="r", **kwargs)
    assert len(calls) == len(fits[::7]) == 3
    assert second.record["claims"] == first.record["claims"]
    assert second.record["metrics"] == first.record["metrics"]
