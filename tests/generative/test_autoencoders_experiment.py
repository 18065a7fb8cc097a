"""generative.autoencoders: verdicts on synthetic records and one tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.generative.experiments import autoencoders as ex

CFG = ex.AutoencodersConfig.quick()
KEYS = (
    "overcomplete_identity",
    "bottleneck_not_identity",
    "denoising_beats_bottleneck",
    "sparse_codes",
    "codes_as_features",
)
TINY = (
    "steps=20",
    "every=20",
    "hidden=16",
    "overcomplete_code=80",
    "noise_images=20",
    "probe_subsets=2",
    "probe_steps=5",
    "labels_per_class=2",
)


def record(
    over: float = 0.005,
    bott: float = 0.15,
    dae: float = 0.08,
    sparse: float = 0.9,
    codes: float = 0.85,
):
    rng = np.random.default_rng(0)

    def around(v: float, n: int) -> np.ndarray:
        return np.clip(v + 0.01 * rng.standard_normal(n), 0, 1)

    errors = {m: around(0.05, 30) for m in ex.MODELS}
    return ex.AutoencodersMeasurements(
        noise_error={
            **errors,
            "overcomplete": around(over, 30) * 0 + over,
            "bottleneck": around(bott, 30),
        },
        clean_error=errors,
        denoise_error={**errors, "bottleneck": around(0.11, 30), "denoising": around(dae, 30)},
        near_zero={"overcomplete": 0.05, "sparse": sparse},
        code_histograms={"overcomplete": rng.random(50), "sparse": rng.random(50)},
        probe_accuracy={"codes": around(codes, 10), "pixels": around(0.8, 10)},
        examples={},
    )


def verdicts(m: ex.AutoencodersMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in ex.claims(m, CFG)}


def test_declared_keys_and_the_phenomenon() -> None:
    exp = get_experiment("generative.autoencoders")
    assert exp.claims == KEYS and exp.checks == ()
    assert verdicts(record()) == dict.fromkeys(KEYS, True)


def test_each_claim_can_fail() -> None:
    assert not verdicts(record(over=0.03))["overcomplete_identity"]
    assert not verdicts(record(bott=0.05))["bottleneck_not_identity"]
    assert not verdicts(record(dae=0.13))["denoising_beats_bottleneck"]
    assert not verdicts(record(sparse=0.79))["sparse_codes"]
    assert not verdicts(record(codes=0.75))["codes_as_features"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="overcomplete_code"):
        ex.AutoencodersConfig(overcomplete_code=32)
    with pytest.raises(ConfigError, match="noise"):
        ex.AutoencodersConfig(noise=0.7)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "generative.autoencoders",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert [Path(f).name for f in rec["figures"]] == ["reconstructions.png", "codes_and_errors.png"]
    assert 0 <= rec["metrics"]["near_zero_fraction_sparse"] <= 1
    assert len(list((result.run_dir / "cache").glob("ae-*.pt"))) == 4
