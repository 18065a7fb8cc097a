"""generative.likelihoods: verdicts on synthetic records, and one tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.generative.experiments import likelihoods as ex

CLAIMS = ("autoregressive_below_vae", "pixelcnn_not_blurry")
CFG = ex.LikelihoodsConfig.quick()


def record(vae: float = 20.0, models=(18.0, 17.5, 18.5), sharp: float = 0.97):  # type: ignore[no-untyped-def]
    noise = np.random.default_rng(0).normal(0, 3.0, 300)
    nll = {"baseline": 25.0 + noise, "vae": vae + noise}
    for kind, value in zip(ex.MODELS, models, strict=True):
        nll[kind] = value + noise + np.random.default_rng(1).normal(0, 0.5, 300)
    images = np.zeros((4, 8, 8))
    return ex.LikelihoodsMeasurements(
        test_nll=nll,
        pixels=64,
        blur={"pixelcnn": sharp, "vae": 0.5},
        samples={"data": images, "pixelcnn": images, "vae": images},
    )


def verdicts(m: ex.LikelihoodsMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ex.claims(m, CFG)}


def test_declared_keys_and_the_phenomenon() -> None:
    assert get_experiment("generative.likelihoods").claims == CLAIMS
    assert verdicts(record()) == dict.fromkeys(CLAIMS, True)


def test_every_autoregressive_model_must_be_below_the_vae() -> None:
    assert not verdicts(record(models=(18.0, 20.5, 18.5)))["autoregressive_below_vae"]
    assert not verdicts(record(vae=17.0))["autoregressive_below_vae"]
    assert not verdicts(record(sharp=0.85))["pixelcnn_not_blurry"]


def test_metrics_give_nats_and_bits_per_dim() -> None:
    metrics = record().metrics()
    assert metrics["nll_bits_per_dim_vae"] == pytest.approx(
        metrics["nll_nats_vae"] / (64 * np.log(2))
    )


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="samples"):
        ex.LikelihoodsConfig(samples=1)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "generative.likelihoods",
        preset="quick",
        overrides=("epochs=1", "vae_steps=20", "nll_k=2", "samples=4"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(CLAIMS)
    assert [Path(f).name for f in rec["figures"]] == ["likelihoods.png", "samples.png"]
    assert rec["metrics"]["nll_nats_baseline"] == pytest.approx(25.51, abs=0.01)
