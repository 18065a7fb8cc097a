"""vision.batchnorm_init: claims on synthetic records, a smoke run, and a resumed run."""

from __future__ import annotations

import math
from pathlib import Path

from deepnotes.core.context import run_experiment
from deepnotes.vision.experiments import batchnorm_init as bn

SCALES = (0.01, 1.0, 10.0)
CFG = bn.BNInitConfig(scales=SCALES)


def record(**changes: float) -> bn.BNInitMeasurements:
    acc = {
        "none": {0.01: 0.1, 1.0: 0.95, 10.0: 0.1},
        "before": {0.01: 0.95, 1.0: 0.96, 10.0: 0.86},
        "after": {0.01: 0.94, 1.0: 0.96, 10.0: 0.87},
    }
    for name, value in changes.items():  # "before_0.01": 0.3
        norm, scale = name.split("_")
        acc[norm][float(scale)] = value
    return bn.BNInitMeasurements(
        acc=acc,
        diverged={"none": [10.0], "before": [], "after": []},
        invariance_factor=10.0,
        invariance_output_change=1e-15,
        invariance_gradient_deviation=2e-15,
        probe_batch=64,
    )


def verdicts(m: bn.BNInitMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in bn.claims(m, CFG)}


def test_claims_on_the_expected_record() -> None:
    assert verdicts(record()) == {
        "bn_small_scales_train": True,
        "bn_large_scales_train": False,  # the known failure
        "plain_stalls_at_bad_scales": True,  # a diverged plain fit counts as not trained
        "plain_trains_at_good_scales": True,
        "scale_invariance": True,
    }
    kinds = {c.key: c.kind for c in bn.claims(record(), CFG)}
    assert kinds["scale_invariance"] == "check"
    assert bn.is_bad_scale(0.1) and bn.is_bad_scale(10.0) and not bn.is_bad_scale(2.0)


def test_a_diverged_bn_fit_does_not_hold_even_with_a_good_score() -> None:
    m = record()
    m.diverged["after"].append(0.01)
    claim = {c.key: c for c in bn.claims(m, CFG)}["bn_small_scales_train"]
    assert not claim.holds and math.isnan(claim.measured)


def test_nan_and_missing_scales_do_not_hold() -> None:
    v = verdicts(record(none_1=math.nan, none_10=math.nan))
    assert not v["plain_trains_at_good_scales"] and not v["plain_stalls_at_bad_scales"]
    m = record()
    m = bn.BNInitMeasurements(**{**m.__dict__, "invariance_gradient_deviation": math.nan})
    assert not verdicts(m)["scale_invariance"]
    only_small = bn.BNInitConfig(scales=(1.0,))
    claims = {c.key: c for c in bn.claims(record(), only_small)}
    assert not claims["bn_large_scales_train"].holds  # no scale above He's: not measured
    assert not claims["plain_stalls_at_bad_scales"].holds


TINY = ["scales=0.01,1", "depth=2", "width=16", "epochs=2", "lr=0.05", "batch_size=32"]


def test_smoke_run_and_resume_recompute_only_the_missing_fits(tmp_path: Path, monkeypatch) -> None:
    first = run_experiment(
        "vision.batchnorm_init",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
        run_id="r",
    )
    m = first.record["metrics"]
    assert m["val_acc_before_x0.01"] > m["val_acc_none_x0.01"]  # BN rescues the tiny init
    assert m["invariance_gradient_deviation"] < 1e-12
    caches = sorted((first.run_dir / "cache").glob("fit-*.pt"))
    assert len(caches) == 6
    for path in caches[:2]:  # a run killed before these two fits
        path.unlink()
    (first.run_dir / "outcome.json").unlink()
    calls = []
    original = bn._fit
    monkeypatch.setattr(bn, "_fit", lambda *a: calls.append(a[3:]) or original(*a))
    second = run_experiment(
        "vision.batchnorm_init",
        out=tmp_path,
        resume=True,
        run_id="r",
        show_progress=False,
        threads=1,
    )
    assert len(calls) == 2
    assert second.record["claims"] == first.record["claims"]
    assert second.record["metrics"] == first.record["metrics"]
