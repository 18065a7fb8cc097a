"""vision.init: claims on synthetic records, and a smoke run in a tiny preset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepnotes.core.context import run_experiment
from deepnotes.vision.experiments import init as ie


def stats(post_var: np.ndarray, saturation: float, gain: float = 1.0) -> dict[str, np.ndarray]:
    n = len(post_var)
    return {
        "pre_var": post_var.copy(),
        "post_var": post_var,
        "saturation": np.full(n, saturation),
        "gain": np.full(n, gain),
    }


def record(xavier_decay: float = 1.0) -> ie.InitMeasurements:
    layers = np.arange(1, 9)
    return ie.InitMeasurements(
        stats={
            "large": stats(np.full(8, 0.9), 0.8, gain=200.0),
            "small": stats(0.01 ** layers.astype(float), 0.0, gain=0.03),
            "xavier": stats(0.5 * xavier_decay ** (layers - 1.0), 0.0),
            "he": stats(np.ones(8), 0.0),
        },
        input_var=0.5,
        mean_field=0.5 / (1 + layers),
        first_layer=3,
        samples=100,
    )


def verdicts(m: ie.InitMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ie.claims(m, ie.InitConfig(depth=8, first_layer=3))}


def test_claims_on_a_record_where_xavier_keeps_the_variance() -> None:
    assert all(verdicts(record()).values())


def test_a_decaying_xavier_net_fails_the_depth_claim_only() -> None:
    v = verdicts(record(xavier_decay=0.8))
    assert not v["xavier_keeps_depth_variance"]
    assert v["xavier_keeps_linear_variance"] and v["large_saturates"] and v["small_vanishes"]


def test_nan_statistics_do_not_hold() -> None:
    m = record()
    m.stats["xavier"]["gain"][2] = np.nan
    m.stats["large"]["saturation"][:] = np.nan
    v = verdicts(m)
    assert not v["large_saturates"] and not v["xavier_keeps_linear_variance"]
    assert np.isnan(m.metrics()["large_saturation"])


def test_smoke_run_points_the_right_way(tmp_path: Path) -> None:
    result = run_experiment(
        "vision.init",
        preset="quick",
        overrides=["depth=8", "width=64", "first_layer=3"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["large_saturation"] > 0.5 > m["xavier_saturation"]
    assert m["small_variance_drop"] < 1e-6
    assert m["xavier_gain_factor_max"] < 2
    assert m["xavier_var_last"] < m["xavier_var_first"]  # tanh compresses the variance
    known = {c["key"]: bool(c["known_failure"]) for c in result.record["claims"]}
    assert known == {
        "xavier_keeps_linear_variance": False,
        "xavier_keeps_depth_variance": True,
        "xavier_unsaturated": False,
        "large_saturates": False,
        "small_vanishes": False,
    }
