"""gans.lipschitz: verdicts on synthetic records, the empirical constant, a smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.gans.experiments import lipschitz as lp

CFG = lp.LipschitzConfig(widths=(16, 64))
KEYS = (
    "sn_unit_sigma",
    "composition",
    "clipping_bounded",
    "clipping_depends_on_width",
    "gp_unit_gradient",
)
NAMES = ("spectral", "clip-16", "clip-64", "gradient_penalty")


def record(
    sn_sigma: float = 1.0002,
    gp_norms: tuple[float, ...] = (0.95, 1.05),
    clip_l: tuple[float, float] = (1e-6, 1e-4),
    sn_grad: float = 0.7,
) -> lp.LipschitzMeasurements:
    sigmas = {
        "spectral": [1.0, sn_sigma, 1.0],
        "clip-16": [0.05, 0.1, 0.05],
        "clip-64": [0.1, 0.5, 0.1],
        "gradient_penalty": [3.0, 2.0, 0.7],
    }
    grad = {
        "spectral": sn_grad,
        "clip-16": clip_l[0],
        "clip-64": clip_l[1],
        "gradient_penalty": 1.2,
    }
    return lp.LipschitzMeasurements(
        sigmas=sigmas,
        top_ratios={n: [0.9, 0.9, 0.0] for n in NAMES},
        stale_sigmas=sigmas,
        layer_widths={
            "spectral": [2, 64, 64, 1],
            "clip-16": [2, 16, 16, 1],
            "clip-64": [2, 64, 64, 1],
            "gradient_penalty": [2, 64, 64, 1],
        },
        grad_max=grad,
        slope_max={n: 0.9 * v for n, v in grad.items()},
        interpolate_norms={n: np.array(gp_norms) for n in NAMES},
        clip=0.01,
        widths=(16, 64),
    )


def verdicts(m: lp.LipschitzMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in lp.claims(m, CFG)}


def test_declared_keys() -> None:
    assert get_experiment("gans.lipschitz").claims == KEYS
    assert CFG.critics == NAMES


def test_verdicts() -> None:
    assert verdicts(record()) == dict.fromkeys(KEYS, True)
    assert not verdicts(record(sn_sigma=1.002))["sn_unit_sigma"]
    assert not verdicts(record(sn_grad=1.1))["composition"]  # 1.1 > 1 * 1.0002 * 1
    assert not verdicts(record(clip_l=(1e-6, 1.5e-6)))["clipping_depends_on_width"]
    assert not verdicts(record(clip_l=(1e-6, 1.0)))["clipping_bounded"]
    assert not verdicts(record(gp_norms=(0.7, 1.3)))["gp_unit_gradient"]


def test_clip_bound_is_the_frobenius_product() -> None:
    m = record()
    assert math.isclose(m.clip_bound(16), 0.01**3 * math.sqrt(2 * 16) * 16 * math.sqrt(16))


def test_empirical_lipschitz_of_a_linear_map_is_its_norm() -> None:
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0]]))

    class Flat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return layer(x).squeeze(-1)

    points = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    got = lp.empirical_lipschitz(Flat(), points, torch.Generator().manual_seed(1))
    assert math.isclose(got["grad_max"], 5.0, rel_tol=1e-6)
    assert got["slope_max"] <= 5.0 + 1e-4 and got["slope_max"] > 4.9


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="widths"):
        lp.LipschitzConfig(widths=(16,))
    with pytest.raises(ConfigError, match="clip"):
        lp.LipschitzConfig(clip=0.0)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "gans.lipschitz",
        preset="quick",
        overrides=(
            "hidden=16",
            "depth=2",
            "batch=64",
            "steps=30",
            "widths=8,32",
            "eval_points=256",
        ),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    claims = {c["key"]: c for c in rec["claims"]}
    assert list(claims) == list(KEYS)
    assert claims["composition"]["holds"] and claims["clipping_bounded"]["holds"]
    assert [Path(f).name for f in rec["figures"]] == ["lipschitz.png"]
