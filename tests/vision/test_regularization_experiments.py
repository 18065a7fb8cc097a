"""Smoke runs of ``vision.dropout`` and ``vision.ensembles`` through the real runner, tiny presets.

The assertions are the directions that hold by construction (Jensen's inequality, eval-mode
identity, parameter counts); the claims' verdicts at full size belong to the tour.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import deepnotes.vision.regularization_experiments  # noqa: F401  (registers the experiments)
from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.data import digits
from deepnotes.vision.regularization_experiments import DropoutConfig, EnsemblesConfig


def test_presets_are_valid_and_quick_is_not_larger() -> None:
    for cls in (DropoutConfig, EnsemblesConfig):
        quick, full = preset(cls, "quick"), preset(cls, "full")
        assert quick.epochs <= full.epochs
    assert preset(DropoutConfig, "quick").repeats <= DropoutConfig().repeats


@pytest.mark.parametrize(
    ("name", "override"),
    [
        ("vision.ensembles", "averaged_snapshots=6"),  # more than the 5 cycles
        ("vision.ensembles", "members=1"),
        ("vision.dropout", "dropout=1.0"),
        ("vision.dropout", "tail_epochs=0"),
    ],
)
def test_bad_config_values_are_rejected_before_anything_is_written(
    tmp_path: Path, name: str, override: str
) -> None:
    with pytest.raises(ConfigError):
        run_experiment(name, overrides=[override], out=tmp_path, show_progress=False)
    assert not any(tmp_path.rglob("*.json"))


def test_dropout_tiny(tmp_path: Path) -> None:
    result = run_experiment(
        "vision.dropout",
        overrides=[
            "train_size=40",
            "hidden=32",
            "epochs=3",
            "tail_epochs=2",
            "repeats=2",
            "masks=50",
        ],
        out=tmp_path,
        show_progress=False,
    )
    record = result.record
    m = record["metrics"]
    assert len(record["claims"]) == 3
    identity = record["claims"][1]
    assert identity["holds"] and identity["measured"] == 0.0  # eval mode: no mask, no scaling
    assert m["kept_scale_error"] < 1e-6  # kept units are multiplied by exactly 1 / p_keep
    assert abs(m["mc_kept_fraction"] - 0.5) < 0.05  # p_keep = 1 - 0.5
    assert m["gap_narrowing"] == pytest.approx(m["gap_plain"] - m["gap_dropout"])
    assert record["claims"][2]["holds"] == (m["gap_narrowing"] > 0)
    assert [bool(c["known_failure"]) for c in record["claims"]] == [False, False, True]
    for figure in record["figures"]:
        assert (result.run_dir / figure).stat().st_size > 0
    assert [Path(f).name for f in record["figures"]] == ["dropout_curves.png", "dropout_mc.png"]


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
    )
    record = result.record
    m = record["metrics"]
    assert len(record["claims"]) == 7
    assert record["claims"][0]["holds"]  # ensemble NLL < mean member NLL: Jensen
    marked = [i for i, c in enumerate(record["claims"]) if c["known_failure"]]
    assert marked == [2, 3]  # the snapshot ensemble against a single net of the same cost
    assert m["ensemble_nll"] < m["single_nll"]
    # parameters by hand: full net 64*16+16 + 16*10+10; head-only: one trunk, two heads
    full = 64 * 16 + 16 + 16 * 10 + 10
    heads = 64 * 16 + 16 + 2 * (16 * 10 + 10)
    assert (m["params_full_net"], m["params_head_ensemble"]) == (full, heads)
    assert m["param_ratio_heads_vs_n_nets"] == pytest.approx(heads / (2 * full))
    n_train = len(digits(seed=0).train)
    assert m["steps_per_run"] == 2 * math.ceil(n_train / 256)
    for key in ("ensemble_acc", "snapshot_ensemble_acc", "independent_average_acc"):
        assert 0.0 <= m[key] <= 1.0
    for figure in record["figures"]:
        assert (result.run_dir / figure).stat().st_size > 0
    assert [Path(f).name for f in record["figures"]] == ["ensembles_cost.png", "snapshots.png"]
