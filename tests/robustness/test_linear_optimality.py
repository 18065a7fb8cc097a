"""robustness.linear_optimality: claim verdicts on synthetic measurements, a smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.robustness.experiments.linear_optimality import (
    LinearOptimalityConfig,
    LinearOptimalityMeasurements,
    claims,
)


def _measurements(
    ratio_linf: float = 1.004, gap_last: float = 1e-3
) -> LinearOptimalityMeasurements:
    return LinearOptimalityMeasurements(
        dims=np.array([2, 3]),
        linf_error=np.array([0.0, 2e-16]),
        box_excess=np.array([-1e-3, -2e-3]),
        l2_error=np.array([1e-16, 0.0]),
        sphere_excess=np.array([-1e-9, -1e-4]),
        l2_samples=np.array([10, 1000]),
        l2_gap=np.array([[0.1, gap_last], [0.2, gap_last]]),
        net_eps=np.array([1e-3, 0.1]),
        ratio={"linf": np.array([ratio_linf, 3.0]), "l2": np.array([1.001, 1.5])},
        ratio_se={"linf": np.array([0.001, 0.1]), "l2": np.array([0.001, 0.1])},
        n_examples=50,
    )


def _verdicts(m: LinearOptimalityMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in claims(m, LinearOptimalityConfig())}


def test_all_hold_on_good_measurements() -> None:
    assert all(_verdicts(_measurements()).values())


def test_linearisation_claim_uses_the_larger_deviation_at_the_smallest_eps() -> None:
    c = {c.key: c for c in claims(_measurements(1.02), LinearOptimalityConfig())}
    assert not c["small_eps_linearisation"].holds
    assert c["small_eps_linearisation"].measured == pytest.approx(0.02)
    assert _verdicts(_measurements(0.995))["small_eps_linearisation"]


def test_gap_that_does_not_shrink_fails_the_check() -> None:
    assert not _verdicts(_measurements(gap_last=0.15))["l2_gap_shrinks"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match=r"dims must be in 1\.\.16"):
        LinearOptimalityConfig(dims=(20,))
    with pytest.raises(ConfigError, match="net_eps must be >= 2 increasing radii > 0"):
        LinearOptimalityConfig(net_eps=(0.1, 0.01))


@pytest.mark.slow
def test_smoke_run(tmp_path: Path) -> None:
    result = run_experiment(
        "robustness.linear_optimality",
        overrides=[
            "dims=2,5",
            "trials=2",
            "box_samples=500",
            "l2_samples=10,1000",
            "epochs=2",
            "n_examples=20",
            "net_eps=1e-4,0.1",
        ],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    outcome = json.loads((result.run_dir / "outcome.json").read_text())
    keys = {c["key"]: c for c in outcome["claims"]}
    for check in ("linf_vertex_max", "box_never_exceeds", "l2_closed_form", "sphere_never_exceeds"):
        assert keys[check]["holds"], keys[check]
    ratio = outcome["metrics"]["ratio_l2"]
    assert abs(ratio[0] - 1) < abs(ratio[1] - 1)  # closer to linear at the smaller eps
    assert (result.run_dir / "linear_optimality.png").exists()
