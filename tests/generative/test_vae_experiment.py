"""generative.vae: verdicts on synthetic records and one tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.generative.experiments import vae as ex

CFG = ex.VAEConfig.quick()
CLAIMS = (
    "iwae_monotone",
    "iwae_above_elbo",
    "reparam_variance",
    "blurry_reconstructions",
    "blurry_samples",
)
CHECKS = ("kl_closed_form", "iwae1_is_elbo", "toy_estimators")
TINY = (
    "steps=20",
    "every=20",
    "hidden=16",
    "latent=2",
    "ks=1,2,4",
    "elbo_samples=2",
    "kl_samples=10",
    "grad_images=1",
    "grad_samples=10",
    "toy_samples=1000",
    "toy_thetas=1.0",
)


def record(gaps: tuple[float, ...] = (0.5, 0.2, 0.05), ratio: float = 100.0, blur: float = 0.6):
    rng = np.random.default_rng(0)
    n = 200
    elbo = -18 + rng.standard_normal(n)
    rows = [elbo + 0.01 * rng.standard_normal(n)]
    for g in gaps:
        rows.append(rows[-1] + g + 0.01 * rng.standard_normal(n))
    toy = {}
    for est, var in (("reparameterisation", 4.0), ("score_function", 30.0)):
        toy |= {
            f"mean_{est}": np.array([2.0]),
            f"mean_se_{est}": np.array([0.01]),
            f"var_{est}": np.array([var]),
            f"var_se_{est}": np.array([0.1]),
        }
    hf = {
        "data": np.ones(n),
        "reconstructions": np.full(n, blur),
        "samples": np.full(n, blur),
        "binary_samples": np.ones(n),
    }
    return ex.VAEMeasurements(
        ks=(1, 5, 50, 500),
        bounds=np.stack(rows),
        elbo=elbo,
        kl_z=rng.standard_normal(n) * 0.5,
        kl_mean=6.0,
        grad_variance={"reparameterisation": np.ones(4), "score_function": np.full(4, ratio)},
        toy=toy,
        high_frequency=hf,
        spectra={},
        grids={},
        baseline_nll=25.5,
        history=[],
        pixels=64,
    )


def verdicts(m: ex.VAEMeasurements) -> dict[str, bool]:
    cfg = ex.VAEConfig(toy_thetas=(1.0,))
    return {c.key: c.holds for c in ex.claims(m, cfg)}


def test_declared_keys_and_the_phenomenon() -> None:
    exp = get_experiment("generative.vae")
    assert exp.claims == CLAIMS and exp.checks == CHECKS
    got = verdicts(record())
    assert got == dict.fromkeys(CLAIMS + CHECKS, True)


def test_each_claim_can_fail() -> None:
    assert not verdicts(record(gaps=(0.5, 0.2, -0.05)))["iwae_monotone"]
    assert not verdicts(record(gaps=(-0.5, 0.2, 0.05)))["iwae_above_elbo"]
    assert not verdicts(record(ratio=9.0))["reparam_variance"]
    got = verdicts(record(blur=1.0))
    assert not got["blurry_reconstructions"] and not got["blurry_samples"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="ks"):
        ex.VAEConfig(ks=(5, 50))
    with pytest.raises(ConfigError, match="ascending"):
        ex.VAEConfig(ks=(1, 50, 5))


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "generative.vae",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(CLAIMS + CHECKS)
    assert [Path(f).name for f in rec["figures"]] == [
        "iwae_bound.png",
        "samples.png",
        "gradient_variance.png",
        "spectrum.png",
    ]
    m = rec["metrics"]
    assert m["iwae_k4"] >= m["iwae_k1"] - 1.0 and np.isfinite(m["test_nll_nats"])
