"""vision.dropout: claims on synthetic records, a smoke run, and a resume that recomputes only
the missing fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.vision.experiments import dropout as de
from deepnotes.vision.regularization import DropoutMLP

TINY = [
    "train_size=40",
    "hidden=32",
    "epochs=3",
    "tail_epochs=2",
    "repeats=2",
    "masks=50",
]


def record(
    narrowing: np.ndarray | None = None,
    noisy_narrowing: np.ndarray | None = None,
    unit_z: float = 1.0,
    eval_change: float = 0.0,
) -> de.DropoutMeasurements:
    plain = np.array([0.10, 0.12, 0.09, 0.11])
    narrowing = np.array([0.02, 0.03, 0.025, 0.02]) if narrowing is None else narrowing
    noisy_narrowing = np.full(4, 0.2) + narrowing if noisy_narrowing is None else noisy_narrowing
    keys = ("train_acc", "val_acc", "train_loss", "val_loss", "train_loss_masked")
    curve = {k: np.linspace(0.5, 1.0, 5) for k in keys}
    units = 100
    return de.DropoutMeasurements(
        gaps={
            "clean": {"plain": plain, "dropout": plain - narrowing},
            "noisy": {"plain": plain + 0.3, "dropout": plain + 0.3 - noisy_narrowing},
        },
        loss_gaps={
            c: {"plain": np.full(4, 0.3), "dropout": np.full(4, 0.2)} for c in de.CONDITIONS
        },
        curves={c: {net: curve for net in de.NETS} for c in de.CONDITIONS},
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
        (
            "gap_narrows",
            "gap_narrows_noisy_labels",
            "expected_activation",
            "mask_values",
            "eval_identity",
        ),
        True,
    )


def test_no_difference_nan_and_wider_gaps_do_not_hold() -> None:
    assert not verdicts(record(narrowing=np.zeros(4)))["gap_narrows"]  # zero with zero spread
    assert not verdicts(record(narrowing=-np.array([0.02, 0.03, 0.025, 0.02])))["gap_narrows"]
    assert not verdicts(record(narrowing=np.array([0.02, np.nan, 0.02, 0.03])))["gap_narrows"]
    v = verdicts(record(noisy_narrowing=-np.full(4, 0.1) + 0.01 * np.arange(4)))
    assert v["gap_narrows"] and not v["gap_narrows_noisy_labels"]  # the conditions are apart


def test_noisy_labels_replace_the_expected_share() -> None:
    y = torch.arange(10).repeat(2000)  # (20000,)
    noisy = de.noisy_labels(y, 0.3, 10, torch.Generator().manual_seed(0))
    changed = float((noisy != y).double().mean())
    assert abs(changed - 0.3 * 0.9) < 0.01  # a draw returns the true class 1 time in 10
    assert noisy.min() >= 0 and noisy.max() <= 9 and noisy.dtype == y.dtype
    assert torch.equal(de.noisy_labels(y, 0.3, 10, torch.Generator().manual_seed(0)), noisy)


def test_input_dropout_masks_the_input_and_shares_the_weights() -> None:
    torch.manual_seed(0)
    plain = DropoutMLP(64, (32,), 10)
    torch.manual_seed(0)
    dropped = DropoutMLP(64, (32,), 10, p_keep=0.5, p_keep_input=0.8)
    assert plain.input_dropout is None and dropped.input_dropout is not None
    assert len(dropped.dropout_layers) == 1  # the hidden ones only
    x = torch.randn(5, 64)
    assert torch.equal(plain.eval()(x), dropped.eval()(x))  # eval: the same function
    seen: list[torch.Tensor] = []
    dropped.net[0].register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))
    dropped.train()(torch.ones(2000, 64))
    kept = seen[0] != 0  # what the first linear layer received
    assert abs(float(kept.double().mean()) - 0.8) < 0.01
    assert torch.allclose(seen[0][kept], torch.full_like(seen[0][kept], 1 / 0.8))


def test_checks_fail_on_a_biased_mask_or_a_test_time_change() -> None:
    v = verdicts(record(unit_z=6.0, eval_change=1e-3))
    assert not v["expected_activation"] and not v["eval_identity"]
    kinds = {c.key: c.kind for c in de.claims(record(), de.DropoutConfig(repeats=4))}
    assert kinds["gap_narrows"] == kinds["gap_narrows_noisy_labels"] == "claim"
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
    assert set(claims) == {
        "gap_narrows",
        "gap_narrows_noisy_labels",
        "expected_activation",
        "mask_values",
        "eval_identity",
    }
    assert claims["eval_identity"]["holds"] and claims["eval_identity"]["measured"] == 0.0
    assert claims["mask_values"]["holds"] and claims["expected_activation"]["holds"]
    assert claims["gap_narrows"]["known_failure"]
    m = record["metrics"]
    assert abs(m["mc_kept_fraction"] - 0.5) < 0.05  # p_keep = 1 - 0.5
    for cond in de.CONDITIONS:
        narrowing = m[f"gap_{cond}_plain"] - m[f"gap_{cond}_dropout"]
        assert m[f"gap_narrowing_{cond}"] == pytest.approx(narrowing)
    assert [Path(f).name for f in record["figures"]] == ["dropout_curves.png", "dropout_mc.png"]

    # a killed run: two of the eight fits lost, no outcome yet
    caches = sorted((result.run_dir / "cache").glob("fit-*.pt"))
    assert len(caches) == 8
    for path in caches[:2]:
        path.unlink()
    (result.run_dir / "outcome.json").unlink()
    calls: list[tuple[str, int]] = []
    original = de._fit

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((args[-2], args[-1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(de, "_fit", counting)
    monkeypatch.setattr(de, "draw", lambda *_: [])  # the figures were checked above (slow)
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
