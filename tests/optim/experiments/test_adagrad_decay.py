"""optim.adagrad_decay: its check and claim on synthetic records, and a smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.optim.experiments.adagrad_decay import DecayConfig, DecayMeasurements, claims

CFG = DecayConfig()


def _run(max_increase: float, fraction: float, diverged: str = "") -> dict:
    return {
        "updates": 3,
        "max_increase": max_increase,
        "fraction_increased": fraction,
        "increases": int(fraction * 10),
        "pairs": 20,
        "quantiles": np.ones((3, 3)),
        "traces": np.ones((3, 2)),
        "val_loss": 0.3,
        "diverged": diverged,
        "parameters": 10,
    }


def _verdicts(ada: dict, rms: dict) -> dict[str, tuple[bool, float, str, str]]:
    m = DecayMeasurements(parameters=10, runs={"Adagrad": ada, "RMSProp": rms})
    return {c.key: (c.holds, c.measured, c.kind, c.detail) for c in claims(m, CFG)}


def test_adagrad_shrinking_and_rmsprop_growing_pass() -> None:
    v = _verdicts(_run(0.0, 0.0), _run(0.2, 0.4))
    assert v["adagrad_never_grows"][:3] == (True, 0.0, "check")
    assert v["rmsprop_grows_again"][:3] == (True, 0.4, "claim")


def test_an_adagrad_step_that_grew_fails_the_check_and_a_monotone_rmsprop_the_claim() -> None:
    v = _verdicts(_run(1e-9, 0.1), _run(0.0, 0.0))
    assert not v["adagrad_never_grows"][0]
    assert not v["rmsprop_grows_again"][0]  # a fraction of exactly 0 is not "> 0"


def test_a_diverged_run_makes_its_verdict_nan_with_the_reason() -> None:
    v = _verdicts(_run(0.0, 0.0, diverged="loss is nan at step 7"), _run(0.2, 0.4, "boom"))
    for key in ("adagrad_never_grows", "rmsprop_grows_again"):
        holds, measured, _, detail = v[key]
        assert not holds and math.isnan(measured) and "diverged" in detail


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="beta"):
        DecayConfig(beta=1.0)


def test_smoke_run_on_one_epoch(tmp_path: Path) -> None:
    result = run_experiment(
        "optim.adagrad_decay",
        preset="quick",
        overrides=("epochs=1", "hidden=16"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    m = result.record["metrics"]
    assert m["adagrad_updates"] == m["rmsprop_updates"] == 34  # ceil(1078 / 32) in one epoch
    assert m["adagrad_max_increase"] <= 0 < m["rmsprop_fraction_increased"]
    assert {c["key"]: c["holds"] for c in result.record["claims"]} == {
        "adagrad_never_grows": True,
        "rmsprop_grows_again": True,
    }
    assert len(list((result.run_dir / "cache").glob("fit-*.pt"))) == 2
