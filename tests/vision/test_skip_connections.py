"""vision.skip_connections: claims on synthetic records, and a smoke run in a tiny preset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.vision.experiments import skip_connections as sc


def record(sigmoid_gain: float, relu_gain: float, repeats: int = 5, jitter: float = 0.1):
    """Norms (repeats, depth + 1) with the given residual/plain first-layer ratios."""
    rng = np.random.default_rng(0)
    depth = 6

    def norms(first: float, last_hidden: float) -> np.ndarray:
        g = np.ones((repeats, depth + 1))
        g[:, 0] = first * np.exp(jitter * rng.standard_normal(repeats))
        g[:, -2] = last_hidden
        return g

    return sc.SkipMeasurements(
        {
            "sigmoid_plain": norms(1e-6, 1.0),
            "sigmoid_residual": norms(1e-6 * sigmoid_gain, 1.0),
            "relu_plain": norms(0.5, 1.0),
            "relu_residual": norms(0.5 * relu_gain, 1.0),
        }
    )


def verdicts(m: sc.SkipMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in sc.claims(m, sc.SkipConfig(depth=6, repeats=5))}


def test_claims_hold_on_a_record_with_the_phenomenon() -> None:
    assert verdicts(record(1e4, 1e3)) == {
        "sigmoid_residual_gain": True,
        "sigmoid_plain_vanishes": True,
        "relu_residual_gain": True,
        "relu_plain_balanced": True,
    }


def test_a_gain_of_exactly_the_threshold_with_no_spread_does_not_hold() -> None:
    v = verdicts(record(100.0, 100.0, jitter=0.0))
    assert not v["sigmoid_residual_gain"] and not v["relu_residual_gain"]


def test_nan_norms_do_not_hold() -> None:
    m = record(1e4, 1e3)
    m.norms["relu_residual"][0, 0] = np.nan
    m.norms["sigmoid_plain"][1, 0] = np.nan
    v = verdicts(m)
    assert not v["relu_residual_gain"] and not v["sigmoid_plain_vanishes"]
    assert not v["sigmoid_residual_gain"]
    assert np.isnan(m.metrics()["relu_residual_over_plain_first"])


def test_config_needs_two_repeats_for_a_test() -> None:
    with pytest.raises(ConfigError):
        sc.SkipConfig(repeats=1)
    assert preset(sc.SkipConfig, "quick").depth >= 20  # the claims are about deep nets


def test_smoke_run_points_the_right_way(tmp_path: Path) -> None:
    result = run_experiment(
        "vision.skip_connections",
        preset="quick",
        overrides=["depth=10", "width=32", "repeats=3", "batch_size=64"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["sigmoid_residual_over_plain_first"] > 100  # already at depth 10
    assert m["sigmoid_plain_first_over_last"] < 0.01
    assert m["relu_residual_over_plain_first"] > 1
    assert [c["key"] for c in result.record["claims"]] == [
        "sigmoid_residual_gain",
        "sigmoid_plain_vanishes",
        "relu_residual_gain",
        "relu_plain_balanced",
    ]
    assert (result.run_dir / "gradient_per_layer.png").is_file()
