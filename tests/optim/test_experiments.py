"""Smoke runs of the optim experiments through the real runner, in tiny presets."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.optim.experiments import (
    CompareConfig,
    DecayConfig,
    NoiseConfig,
    QuadraticConfig,
)


def _run(name: str, overrides: list[str], tmp_path: Path) -> dict:
    result = run_experiment(name, overrides=overrides, out=tmp_path, show_progress=False)
    for figure in result.record["figures"]:
        assert (result.run_dir / figure).read_bytes()[:4] == b"\x89PNG"
    return result.record


def test_presets_are_valid_and_quick_is_not_larger() -> None:
    for cls, field in (
        (QuadraticConfig, "max_steps"),
        (DecayConfig, "epochs"),
        (NoiseConfig, "draws"),
        (CompareConfig, "epochs"),
    ):
        assert getattr(preset(cls, "quick"), field) <= getattr(preset(cls, "full"), field)


def test_quadratic_reproduces_the_figures_and_the_ordering(tmp_path: Path) -> None:
    record = _run(
        "optim.quadratic",
        ["kappas=1,10,100", "lr_points=16", "momenta=0.5,0.7,0.9", "max_steps=3000"],
        tmp_path,
    )
    m = record["metrics"]
    assert m["kappa"] == pytest.approx(100)
    # figure 2b diverges, 2c crawls along x1, momentum and RMSProp beat GD
    assert m["x2_growth_fig2b"] > 1
    assert m["x1_left_after_plot_steps_fig2c"] > 0.3
    assert m["momentum_iterations"] < m["gd_iterations"]
    assert m["rmsprop_iterations"] < m["gd_iterations"]
    gd = m["gd_iterations_by_kappa"]
    assert gd == sorted(gd) and gd[0] < gd[-1]
    assert len(record["claims"]) == 5
    assert [Path(f).name for f in record["figures"]] == ["trajectories.png", "kappa.png"]


def test_adagrad_decay_on_a_short_run(tmp_path: Path) -> None:
    record = _run("optim.adagrad_decay", ["epochs=1", "hidden=16"], tmp_path)
    m = record["metrics"]
    assert m["adagrad_max_increase"] <= 0
    assert m["adagrad_fraction_increased"] == 0
    assert m["rmsprop_fraction_increased"] > 0
    assert m["steps"] == 34  # ceil(1078 / 32) updates in one epoch
    assert [c["holds"] for c in record["claims"]] == [True, True]


def test_sgd_noise_small(tmp_path: Path) -> None:
    record = _run(
        "optim.sgd_noise",
        ["hidden=16", "batch_sizes=1,4,16,64", "draws=200", "mean_batch=4"],
        tmp_path,
    )
    m = record["metrics"]
    assert m["autograd_vs_row_mean_max_abs"] < 1e-6  # row means are the minibatch gradients
    assert abs(m["slope_with_replacement"] + 1) < 0.25
    assert m["slope_without_replacement"] < m["slope_with_replacement"] + 0.05
    assert m["mean_z"] < 5
    assert len(record["claims"]) == 2


def test_compare_digits_tiny(tmp_path: Path) -> None:
    record = _run(
        "optim.compare_digits",
        [
            "epochs=2",
            "hidden=16",
            "gd_lrs=1.0",
            "sgd_lrs=0.1",
            "momentum_lrs=0.01",
            "rmsprop_lrs=0.001",
            "adagrad_lrs=0.03",
            "adam_lrs=0.001,0.003",
            "replicates=3",
        ],
        tmp_path,
    )
    m = record["metrics"]
    # two full-batch steps against 68 minibatch steps: SGD is far ahead after two epochs
    assert m["gd_val_loss"] > m["sgd_val_loss"]
    assert m["adam_lr"] in (0.001, 0.003)
    statements = [c["statement"] for c in record["claims"]]
    assert len(statements) == 5
    for name in ("momentum", "RMSProp", "Adagrad", "Adam"):
        assert any(s.startswith(name) for s in statements)
    # each comparison is the z of a paired mean over fresh replicates
    for claim, key in zip(
        record["claims"], ("momentum", "rmsprop", "adagrad", "adam"), strict=False
    ):
        mean, se = m[f"sgd_minus_{key}_mean"], m[f"sgd_minus_{key}_se"]
        assert claim["measured"] == pytest.approx(mean / se)
        assert claim["threshold"] == 2.0 and "over 3 replicates" in claim["statement"]
    # measured at seeds 0-2, the four comparisons with SGD go either way: known failures
    marks = [c["known_failure"] for c in record["claims"]]
    assert all("at seeds 0, 1, 2" in mark for mark in marks[:4]) and marks[4] == ""


def test_configs_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="large_lr"):
        QuadraticConfig(large_lr=0.2)  # stable on the ill-conditioned problem too
    with pytest.raises(ConfigError, match="mean_batch"):
        NoiseConfig(mean_batch=3)
    with pytest.raises(ConfigError, match="beta"):
        DecayConfig(beta=1.0)
    with pytest.raises(ConfigError, match="grid"):
        CompareConfig(sgd_lrs=())
    with pytest.raises(ConfigError, match="replicates"):
        CompareConfig(replicates=1)
