"""gans.optimal_discriminator: verdicts on synthetic records, config errors, a smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.gans.experiments import optimal_discriminator as od

CFG = od.OptimalDiscriminatorConfig()
KEYS = ("matches_d_star", "value_is_jsd", "value_identity")


def record(error: float = 0.01, value_gap: float = 0.001) -> od.OptimalDiscriminatorMeasurements:
    x = np.linspace(-8, 8, 1601)
    p = np.exp(-0.5 * (x + 1) ** 2) / math.sqrt(2 * math.pi)
    p_g = np.exp(-0.5 * (x - 1) ** 2) / math.sqrt(2 * math.pi)
    d_star = p / (p + p_g)
    d_trained = d_star.copy()
    d_trained[800] += error  # at x = 0, inside the region
    d_trained[0] += 0.5  # at x = -8, outside: never counts
    jsd = 0.1
    target = 2 * jsd - math.log(4)
    return od.OptimalDiscriminatorMeasurements(
        x=x,
        p=p,
        p_g=p_g,
        d_star=d_star,
        d_trained=d_trained,
        steps=np.array([100, 200]),
        values=np.array([target - 0.1, target - value_gap]),
        value_star=target,
        jsd=jsd,
    )


def verdicts(m: od.OptimalDiscriminatorMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in od.claims(m, CFG)}


def test_declared_keys_and_kinds() -> None:
    exp = get_experiment("gans.optimal_discriminator")
    assert exp.claims == KEYS[:2] and exp.checks == KEYS[2:]
    assert [c.kind for c in od.claims(record(), CFG)] == ["claim", "claim", "check"]


def test_verdicts() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)
    assert not verdicts(record(error=0.06))["matches_d_star"]
    assert not verdicts(record(value_gap=0.02))["value_is_jsd"]
    assert verdicts(record(error=-0.05))["matches_d_star"]  # the bar is inclusive


def test_region_excludes_negligible_densities() -> None:
    m = record()
    assert not m.region[0] and m.region[800]
    assert math.isclose(m.max_error, 0.01, rel_tol=1e-9)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="every"):
        od.OptimalDiscriminatorConfig(steps=10, every=20)
    with pytest.raises(ConfigError, match="lr"):
        od.OptimalDiscriminatorConfig(lr=0.0)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "gans.optimal_discriminator",
        preset="quick",
        overrides=("hidden=16", "depth=2", "batch=128", "steps=60", "every=30", "grid_points=401"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert rec["claims"][2]["holds"]  # the identity does not depend on training
    assert rec["metrics"]["value_trained"] <= rec["metrics"]["value_star"] + 1e-6
    assert [Path(f).name for f in rec["figures"]] == ["optimal_discriminator.png"]
