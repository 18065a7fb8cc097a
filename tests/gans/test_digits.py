"""gans.digits: verdicts on synthetic records, config errors, and one tiny smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.gans.experiments import digits as dg

CFG = dg.DigitsGANConfig.quick()
CLAIMS = ("all_classes", "confident", "fd_vs_init", "fd_vs_vae")
CHECKS = ("judge_accuracy",)
TINY = (
    "steps=6",
    "every=3",
    "batch=16",
    "g_width=4",
    "d_width=4",
    "samples=100",
    "snapshot=4",
    "judge_width=4",
    "judge_epochs=1",
    "vae_hidden=16",
    "vae_steps=4",
)


def record(
    gan_counts: tuple[int, ...] = (100,) * 10,
    confidence: float = 0.93,
    fd: dict[str, float] | None = None,
    judge_accuracy: float = 0.97,
    diverged: str = "",
) -> dg.DigitsGANMeasurements:
    base = {
        "gan": 5.0,
        "init": 150.0,
        "real": 1.2,
        "gan_binary": 8.0,
        "vae": 30.0,
        "real_binary": 1.8,
    }
    counts = {name: np.full(10, 100) for name in ("init", "vae", "real")}
    counts["gan"] = np.array(gan_counts)
    return dg.DigitsGANMeasurements(
        judge_accuracy=judge_accuracy,
        fd=base | (fd or {}),
        counts=counts,
        confidence={"gan": confidence, "init": 0.5, "vae": 0.8, "real": 0.96},
        steps=np.array([500, 1000]),
        fd_curve=np.array([20.0, 5.0]),
        confidence_curve=np.array([0.8, 0.93]),
        snapshots=np.zeros((2, 4, 1, 8, 8)),
        images={k: np.zeros((100, 1, 8, 8)) for k in ("gan", "vae", "real")},
        samples=1000,
        min_share=0.01,
        diverged=diverged,
    )


def verdicts(m: dg.DigitsGANMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in dg.claims(m, CFG)}


def test_every_declared_key_is_returned_in_order() -> None:
    exp = get_experiment("gans.digits")
    assert exp.claims == CLAIMS and exp.checks == CHECKS
    got = dg.claims(record(), CFG)
    assert [c.key for c in got] == list(CLAIMS + CHECKS)
    assert [c.kind for c in got] == ["claim"] * 4 + ["check"]


def test_a_good_generator_holds_everything() -> None:
    assert verdicts(record()) == dict.fromkeys(CLAIMS + CHECKS, True)


def test_each_claim_can_fail() -> None:
    # one class below 1% of the samples (9 of 1000): not found
    assert not verdicts(record(gan_counts=(9, *(110,) * 8, 111)))["all_classes"]
    assert verdicts(record(gan_counts=(10, *(110,) * 8, 100)))["all_classes"]
    assert not verdicts(record(confidence=0.89))["confident"]
    # "far below" is at most half, inclusive
    assert verdicts(record(fd={"gan": 75.0}))["fd_vs_init"]
    assert not verdicts(record(fd={"gan": 75.1}))["fd_vs_init"]
    assert not verdicts(record(fd={"gan_binary": 16.0, "vae": 30.0}))["fd_vs_vae"]
    # the VAE comparison uses the binary FD, not the grey one
    assert verdicts(record(fd={"gan": 29.0, "gan_binary": 8.0}))["fd_vs_vae"]
    assert not verdicts(record(judge_accuracy=0.94))["judge_accuracy"]


def test_a_diverged_gan_holds_no_claim() -> None:
    nan = math.nan
    m = record(
        gan_counts=(0,) * 10,
        confidence=nan,
        fd={"gan": nan, "gan_binary": nan},
        diverged="training diverged: [gan] loss_D is nan",
    )
    got = verdicts(m)
    assert not any(got[k] for k in CLAIMS)
    assert "diverged" in dg.claims(m, CFG)[0].detail


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="loss must be one of"):
        dg.DigitsGANConfig(loss="hinge")
    with pytest.raises(ConfigError, match="n_critic"):
        dg.DigitsGANConfig(n_critic=0)
    with pytest.raises(ConfigError, match="penalty"):
        dg.DigitsGANConfig(gp_weight=-1.0)
    with pytest.raises(ConfigError, match="min_share"):
        dg.DigitsGANConfig(min_share=0.2)
    with pytest.raises(ConfigError, match="every"):
        dg.DigitsGANConfig(steps=10, every=20)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "gans.digits",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(CLAIMS + CHECKS)
    assert [Path(f).name for f in rec["figures"]] == ["samples.png", "training.png"]
    m = rec["metrics"]
    assert m["diverged"] == "" and m["fd_gan"] > 0 and m["fd_init"] > 0
    assert sum(m["counts_gan"]) == 100
    assert len(list((result.run_dir / "snapshots").glob("gan-round-*.pt"))) == 2
