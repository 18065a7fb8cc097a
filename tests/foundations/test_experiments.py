"""Smoke runs of the foundations experiments through the real runner, in tiny presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.foundations.experiments import DigitsConfig, TuningConfig


def test_presets_are_valid_and_quick_is_smaller() -> None:
    assert preset(DigitsConfig, "quick").epochs <= preset(DigitsConfig, "full").epochs
    assert preset(TuningConfig, "quick").repeats <= preset(TuningConfig, "full").repeats
    assert TuningConfig().settings == 8


def test_supervised_digits_learns(tmp_path: Path) -> None:
    result = run_experiment(
        "foundations.supervised_digits", overrides=["epochs=8"], out=tmp_path, show_progress=False
    )
    metrics = result.record["metrics"]
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 1797
    assert metrics["test_acc"] > 0.9  # eight epochs already learn most digits
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"] == 8
    assert [Path(f).name for f in result.record["figures"]] == ["curves.png", "confusion.png"]


def test_same_seed_same_result_on_cpu(tmp_path: Path) -> None:
    runs = [
        run_experiment(
            "foundations.supervised_digits",
            overrides=["epochs=2"],
            out=tmp_path,
            device="cpu",
            show_progress=False,
        )
        for _ in range(2)
    ]
    a, b = ({k: v for k, v in r.record["metrics"].items() if k != "train_seconds"} for r in runs)
    assert a == b


def test_test_set_tuning_selection_logic(tmp_path: Path) -> None:
    result = run_experiment(
        "foundations.test_set_tuning",
        overrides=["repeats=3", "widths=8,16", "lrs=0.01", "weight_decays=0", "epochs=2"],
        out=tmp_path,
        show_progress=False,
    )
    record = result.record
    assert len(record["claims"]) == 3
    m = record["metrics"]
    # picking the maximum test accuracy can never report less than picking on validation
    assert m["reported_acc_select_on_test"] >= m["reported_acc_select_on_val"]
    assert m["gap_select_on_test"] - m["gap_select_on_val"] == pytest.approx(m["gap_difference"])
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["repeat"] for r in rows] == [0, 1, 2]
    assert all(r["k_val"] in (0, 1) for r in rows)
    assert (result.run_dir / "gaps.png").read_bytes()[:4] == b"\x89PNG"


def test_tuning_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="repeats must be >= 3"):
        TuningConfig(repeats=2)
    with pytest.raises(ConfigError, match="at least 2 settings"):
        TuningConfig(widths=(8,), lrs=(0.01,), weight_decays=(0.0,))
    with pytest.raises(ConfigError, match="fresh data"):
        TuningConfig(train_fraction=0.75, val_fraction=0.1, test_fraction=0.1)
