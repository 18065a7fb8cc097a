"""gans.vanishing_gradient: verdicts on synthetic records, config errors, a smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.gans.experiments import vanishing_gradient as vg

CFG = vg.VanishingGradientConfig()
KEYS = ("minimax_vanishes", "gp_points_to_data", "sn_points_to_data")


def record(
    minimax: float = -1e-8, gp_min: float = 0.9, sn_min: float = 0.6
) -> vg.VanishingGradientMeasurements:
    x = np.linspace(-4, 4, 9)
    return vg.VanishingGradientMeasurements(
        x=x,
        curves={"perfect": (x > 0).astype(float), "wgan_gp": x, "spectral": 0.7 * x},
        fake=np.array([-2.4, -2.0, -1.6]),
        push={
            "perfect": np.zeros(3),
            "wgan_gp": np.array([gp_min, 1.0, 1.1]),
            "spectral": np.array([sn_min, 0.7, 0.8]),
        },
        grad_theta={"minimax": minimax, "nonsaturating": -30.0, "wgan_gp": -1.0, "spectral": -0.7},
        d_fake_max=1e-9,
    )


def verdicts(m: vg.VanishingGradientMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in vg.claims(m, CFG)}


def test_declared_keys() -> None:
    assert get_experiment("gans.vanishing_gradient").claims == KEYS


def test_verdicts() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)
    assert not verdicts(record(minimax=-0.1))["minimax_vanishes"]  # ratio 1/300 > 1e-3
    assert not verdicts(record(gp_min=-0.2))["gp_points_to_data"]  # one sample pushed away
    assert not verdicts(record(sn_min=0.05))["sn_points_to_data"]  # too weak a push


def test_samplers_have_disjoint_supports() -> None:
    g = torch.Generator().manual_seed(0)
    real = vg.sample_data(1000, g)
    fake = vg.sample_generator(torch.tensor(vg.THETA), 1000, g)
    assert real.shape == fake.shape == (1000, 1)
    assert real.min() >= 1.5 and real.max() <= 2.5 and fake.min() >= -2.5 and fake.max() <= -1.5


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="gp_weight"):
        vg.VanishingGradientConfig(gp_weight=-1.0)
    with pytest.raises(ConfigError, match="steps"):
        vg.VanishingGradientConfig(steps=0)


def test_smoke_shows_the_vanishing_gradient(tmp_path: Path) -> None:
    result = run_experiment(
        "gans.vanishing_gradient",
        preset="quick",
        overrides=("hidden=16", "depth=2", "batch=64", "steps=60", "eval_size=256"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    metrics = rec["metrics"]
    # even after 60 steps the minimax gradient is far below the non-saturating one
    assert abs(metrics["grad_theta_minimax"]) < 0.1 * abs(metrics["grad_theta_nonsaturating"])
    assert [Path(f).name for f in rec["figures"]] == ["vanishing_gradient.png"]
