"""vision.dropout: claims on synthetic records, a smoke run, and a resume that recomputes only
the missing fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.vision.experiments import dropout as de

TINY = [
    "train_size=40",
    "hidden=32",
    "epochs=3",
    "tail_epochs=2",
    "repeats=2",
    "masks=50",
]


def record(
    narrowing: np.ndarray | None = None, unit_z: float = 1.0, eval_change: float = 0.0
) -> de.DropoutMeasurements:
    plain = np.array([0.10, 0.12, 0.09, 0.11])
    narrowing = np.array([0.02, 0.03, 0.025, 0.02]) if narrowing is None else narrowing
    keys = ("train_acc", "val_acc", "train_loss", "val_loss", "train_loss_masked")
    curve = {k: np.linspace(0.5, 1.0, 5) for k in keys}
    units = 100
    return de.DropoutMeasurements(
        gap_plain=plain,
        gap_dropout=plain - narrowing,
        loss_gap_plain=np.full(4, 0.3),
        loss_gap_dropout=np.full(4, 0.2),
        curves={net: curve for net in de.NETS},
        final={net: {"train_acc": 1.0, "val_acc": 0.9} for net in de.NETS},
        mc_input=np.ones(units),
        mc_mean=np.ones(units),
        mc_unit_z=np.full(units, unit_z),
        mc_total_z=0.5,
        mc_kept_fraction=0.5,
        mask_value_error=0.0,
        eval_change=eval_change,
    )


def verdicts(m: de.DropoutMeasurements) -> dict[str, bool]:
    cfg = de.DropoutConfig(repeats=4)
    return {c.key: c.holds for c in de.claims(m, cfg)}


def test_consistent_narrowing_holds_and_checks_pass() -> None:
    v = verdicts(record())
    assert v == dict.fromkeys(
        ("gap_narrows", "expected_activation", "mask_values", "eval_identity"), True
    )


def test_no_difference_nan_and_wider_gaps_do_not_hold() -> None:
    assert not verdicts(record(narrowing=np.zeros(4)))["gap_narrows"]  # zero with zero spread
    assert not verdicts(record(narrowing=-np.array([0.02, 0.03, 0.025, 0.02])))["gap_narrows"]
    assert not verdicts(record(narrowing=np.array([0.02, np.nan, 0.02, 0.03])))["gap_narrows"]


def test_checks_fail_on_a_biased_mask_or_a_test_time_change() -> None:
    v = verdicts(record(unit_z=6.0, eval_change=1e-3))
    assert not v["expected_activation"] and not v["eval_identity"]
    kinds = {c.key: c.kind for c in de.claims(record(), de.DropoutConfig(repeats=4))}
    assert kinds["gap_narrows"] == "claim"
    assert {kinds[k] for k in ("expected_activation", "mask_values", "eval_identity")} == {"check"}


def test_presets_and_config_checks() -> None:
    quick, full = preset(de.DropoutConfig, "quick"), preset(de.DropoutConfig, "full")
    assert quick.epochs <= full.epochs and quick.repeats <= full.repeats
    for bad in ({"dropout": 1.0}, {"tail_epochs": 0}, {"repeats": 1}):
        with pytest.raises(ConfigError):
            de.DropoutConfig(**bad)


def test_dropout_tiny_and_resume_recomputes_only_missing_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_experiment(
        "vision.dropout", overrides=TINY, out=tmp_path, show_progress=False, threads=1
    )
    record = result.record
    claims = {c["key"]: c for c in record["claims"]}
    assert set(claims) == {"gap_narrows", "expected_activation", "mask_values", "eval_identity"}
    assert claims["eval_identity"]["holds"] and claims["eval_identity"]["measured"] == 0.0
    assert claims["mask_values"]["holds"] and claims["expected_activation"]["holds"]
    assert claims["gap_narrows"]["known_failure"]
    m = record["metrics"]
    assert abs(m["mc_kept_fraction"] - 0.5) < 0.05  # p_keep = 1 - 0.5
    assert m["gap_narrowing"] == pytest.approx(m["gap_plain"] - m["gap_dropout"])
    assert [Path(f).name for f in record["figures"]] == ["dropout_curves.png", "dropout_mc.png"]

    # a killed run: two of the four fits lost, no outcome yet
    caches = sorted((result.run_dir / "cache").glob("fit-*.pt"))
    assert len(caches) == 4
    for path in caches[:2]:
        path.unlink()
    (result.run_dir / "outcome.json").unlink()
    calls: list[tuple[str, int]] = []
    original = de._fit

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((args[-2], args[-1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(de, "_fit", counting)
    resumed = run_experiment(
        "vision.dropout",
        overrides=TINY,
        out=tmp_path,
        resume=True,
        run_id=result.run_dir.name,
        show_progress=False,
        threads=1,
    )
    assert len(calls) == 2  # only the missing fits were trained again
    assert json.dumps(resumed.record["claims"]) == json.dumps(record["claims"])
    assert resumed.record["metrics"] == record["metrics"]
