"""vision.ensembles: claims on synthetic records, and a smoke run in a tiny preset."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.data import digits
from deepnotes.vision.experiments import ensembles as ee

KEYS = (
    "jensen_nll",
    "accuracy_at_least_mean",
    "snapshot_accuracy",
    "snapshot_nll",
    "independent_average_fails",
    "trajectory_average_close",
    "head_time_ratio",
)


def scores(acc: float, nll: float) -> dict[str, float]:
    return {"acc": acc, "nll": nll}


def record(**changes: object) -> ee.EnsemblesMeasurements:
    m = ee.EnsemblesMeasurements(
        single_acc=np.array([0.97, 0.975, 0.98]),
        single_nll=np.array([0.08, 0.07, 0.075]),
        member_seconds=np.array([2.0, 2.0, 2.0]),
        ensemble=scores(0.985, 0.06),
        vote_acc=0.98,
        snapshot_each=[scores(0.96, 0.1), scores(0.978, 0.07)],
        snapshot_growing=[scores(0.96, 0.1), scores(0.98, 0.065)],
        snapshot_runs_acc=np.array([0.98, 0.98, 0.985]),
        snapshot_runs_nll=np.array([0.066, 0.055, 0.061]),
        late_snapshots=scores(0.98, 0.065),
        trajectory=scores(0.977, 0.07),
        independent=scores(0.2, 2.0),
        midpoint_acc=0.9,
        heads=scores(0.975, 0.08),
        head_each_acc=np.array([0.97, 0.97, 0.97]),
        params_full=1000,
        params_heads=1200,
        seconds_snapshot=2.0,
        seconds_heads=2.5,
        steps=100,
        snapshot_steps=[50, 100],
        member_val_acc=np.linspace(0.5, 0.97, 4),
        snapshot_val_acc=np.linspace(0.5, 0.97, 4),
        n_test=359,
    )
    return dataclasses.replace(m, **changes)


def verdicts(m: ee.EnsemblesMeasurements) -> dict[str, bool]:
    cfg = ee.EnsemblesConfig(members=3, cycles=2, averaged_snapshots=2, epochs=4)
    return {c.key: c.holds for c in ee.claims(m, cfg)}


def test_every_claim_holds_on_a_record_where_ensembles_work() -> None:
    v = verdicts(record())
    assert tuple(v) == KEYS and all(v.values())


def test_claims_relative_to_the_run_name_their_baseline() -> None:
    cfg = ee.EnsemblesConfig(members=3, cycles=2, averaged_snapshots=2, epochs=4)
    claims = {c.key: c for c in ee.claims(record(), cfg)}
    assert all(c.baseline for c in claims.values())
    assert claims["jensen_nll"].kind == "check"
    assert all(c.kind == "claim" for k, c in claims.items() if k != "jensen_nll")
    assert claims["snapshot_accuracy"].known_failure and claims["snapshot_nll"].known_failure


def test_failures_are_seen() -> None:
    v = verdicts(
        record(
            ensemble=scores(0.96, 0.075),  # less accurate than the mean member
            independent=scores(0.9, 0.3),  # a weight average that works
            trajectory=scores(0.9, 0.3),  # far below the final snapshot
            seconds_heads=5.0,  # not faster
        )
    )
    assert not any(
        v[k]
        for k in (
            "accuracy_at_least_mean",
            "independent_average_fails",
            "trajectory_average_close",
            "head_time_ratio",
        )
    )
    # identical members: the ensemble's NLL equals their mean, Jensen's strict inequality fails
    same = record(single_nll=np.full(3, 0.06), ensemble=scores(0.985, 0.06))
    assert not verdicts(same)["jensen_nll"]


def test_snapshot_claims_are_paired_over_the_runs() -> None:
    # lower NLL on average, but one run of three is worse: no paired evidence
    v = verdicts(record(snapshot_runs_nll=np.array([0.05, 0.05, 0.09])))
    assert not v["snapshot_nll"]
    # consistently lower by a little: holds
    v = verdicts(record(snapshot_runs_nll=np.array([0.0789, 0.0692, 0.0741])))
    assert v["snapshot_nll"]
    # the accuracy claim compares the means over the runs
    v = verdicts(record(snapshot_runs_acc=np.array([0.97, 0.975, 0.975])))
    assert not v["snapshot_accuracy"]
    m = record()
    assert m.snapshot_ensemble == {
        "acc": pytest.approx(0.9817, abs=1e-4),
        "nll": pytest.approx(0.0607, abs=1e-4),
    }


def test_nan_does_not_hold() -> None:
    v = verdicts(record(ensemble=scores(math.nan, math.nan), seconds_heads=math.nan))
    assert not v["jensen_nll"] and not v["accuracy_at_least_mean"] and not v["head_time_ratio"]


@pytest.mark.parametrize("bad", [{"averaged_snapshots": 6}, {"members": 1}])
def test_config_checks(bad: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        ee.EnsemblesConfig(**bad)
    assert preset(ee.EnsemblesConfig, "quick").epochs <= ee.EnsemblesConfig().epochs


def test_ensembles_tiny(tmp_path: Path) -> None:
    result = run_experiment(
        "vision.ensembles",
        overrides=[
            "hidden=16",
            "members=2",
            "epochs=2",
            "cycles=2",
            "averaged_snapshots=2",
            "batch_size=256",
        ],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record = result.record
    m = record["metrics"]
    claims = {c["key"]: c for c in record["claims"]}
    assert tuple(claims) == KEYS
    assert claims["jensen_nll"]["holds"]  # Jensen: the members disagree
    assert m["ensemble_nll"] < m["single_nll"]
    # parameters by hand: full net 64*16+16 + 16*10+10; head-only: one trunk, two heads
    full = 64 * 16 + 16 + 16 * 10 + 10
    heads = 64 * 16 + 16 + 2 * (16 * 10 + 10)
    assert (m["params_full_net"], m["params_head_ensemble"]) == (full, heads)
    assert m["steps_per_run"] == 2 * math.ceil(len(digits(seed=0).train) / 256)
    # two members, their two snapshot twins, the heads
    assert len(list((result.run_dir / "cache").glob("fit-*.pt"))) == 2 + 2 + 1
    for key in ("ensemble_acc", "snapshot_ensemble_acc", "independent_average_acc"):
        assert 0.0 <= m[key] <= 1.0
    assert [Path(f).name for f in record["figures"]] == ["ensembles_cost.png", "snapshots.png"]
