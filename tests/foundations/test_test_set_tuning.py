"""foundations.test_set_tuning: verdicts on synthetic records, a smoke run, and a resume that
recomputes only the fits whose cached results are missing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.foundations.experiments.test_set_tuning import (
    TuningConfig,
    TuningMeasurements,
    claims,
)

TINY = ["repeats=3", "widths=8,16", "lrs=0.01", "weight_decays=0", "epochs=2", "partitions=20"]


def record(
    gap_test: np.ndarray, gap_val: np.ndarray, selection_gap: np.ndarray
) -> TuningMeasurements:
    """A record with the given per-repeat gaps (K = 2 settings, setting 0 chosen on val)."""
    repeats = len(gap_test)
    fresh = np.full((repeats, 2), 0.9)
    pool = np.full((repeats, 2), 0.9)
    val = pool.copy()
    val[:, 0] = pool[:, 0] + selection_gap
    return TuningMeasurements(
        val_acc=val,
        pool_acc=pool,
        reported=fresh + np.stack([gap_test, gap_val], axis=1),
        fresh=fresh,
        k_val=np.zeros(repeats, dtype=int),
        n_test=180,
    )


def verdicts(m: TuningMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in claims(m, TuningConfig())}


def test_the_notes_picture_holds() -> None:
    rng = np.random.default_rng(0)
    m = record(
        0.009 + 0.002 * rng.standard_normal(40),
        0.002 * rng.standard_normal(40),
        0.01 + 0.01 * rng.standard_normal(40),
    )
    assert verdicts(m) == {
        "test_tuning_overstates": True,
        "selection_score_overstates": True,
        "test_once_unbiased": True,
    }
    kinds = {c.key: c.kind for c in claims(m, TuningConfig())}
    assert kinds["test_once_unbiased"] == "check" and kinds["test_tuning_overstates"] == "claim"


def test_no_gap_with_no_spread_is_not_an_overstatement() -> None:
    zeros = np.zeros(10)
    v = verdicts(record(zeros, zeros, zeros))
    assert not v["test_tuning_overstates"] and not v["selection_score_overstates"]
    assert v["test_once_unbiased"]  # a zero gap agrees with zero


def test_a_leak_into_the_test_set_fails_the_check() -> None:
    rng = np.random.default_rng(1)
    leak = record(
        0.01 + 0.002 * rng.standard_normal(40),
        0.008 + 0.002 * rng.standard_normal(40),
        0.01 + 0.01 * rng.standard_normal(40),
    )
    assert not verdicts(leak)["test_once_unbiased"]


def test_a_diverged_fit_makes_every_verdict_fail() -> None:
    rng = np.random.default_rng(2)
    m = record(
        0.009 + 0.002 * rng.standard_normal(10),
        0.002 * rng.standard_normal(10),
        0.01 + 0.01 * rng.standard_normal(10),
    )
    m.val_acc[3, 0] = math.nan
    m.reported[3] = math.nan
    assert not any(verdicts(m).values())
    assert "diverged" in claims(m, TuningConfig())[0].detail


def test_smoke_run_and_resume_recomputes_only_the_missing_fits(tmp_path: Path) -> None:
    first = run_experiment(
        "foundations.test_set_tuning",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
        run_id="tiny",
    )
    m = first.record["metrics"]
    # the forbidden protocol picks the best test number, so it reports at least as much
    assert m["reported_acc_select_on_test"] >= m["reported_acc_select_on_val"]
    rows = [json.loads(x) for x in (first.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["repeat"] for r in rows] == [0, 1, 2]
    assert all(r["k_val"] in (0, 1) for r in rows)
    assert (first.run_dir / "gaps.png").read_bytes()[:4] == b"\x89PNG"

    cache = sorted((first.run_dir / "cache").glob("fit-*.pt"))
    assert len(cache) == 3 * 2  # one per repeat and setting
    killed, kept = cache[:2], cache[2:]
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    for path in [*killed, first.run_dir / "outcome.json", first.run_dir / "metrics.jsonl"]:
        path.unlink()
    resumed = run_experiment(
        "foundations.test_set_tuning",
        out=tmp_path,
        resume=True,
        run_id="tiny",
        show_progress=False,
        threads=1,
    )
    assert all(p.is_file() for p in killed)  # recomputed
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps  # read back, not retrained
    assert resumed.record["claims"] == first.record["claims"]
    assert resumed.record["metrics"] == first.record["metrics"]


def test_tuning_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="repeats must be >= 3"):
        TuningConfig(repeats=2)
    with pytest.raises(ConfigError, match="at least 2 settings"):
        TuningConfig(widths=(8,), lrs=(0.01,), weight_decays=(0.0,))
    with pytest.raises(ConfigError, match="fresh data"):
        TuningConfig(train_fraction=0.75, val_fraction=0.1, test_fraction=0.1)
    assert TuningConfig().settings == 8
