"""robustness.adversarial_training: verdicts on synthetic records and one tiny smoke run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.robustness.experiments import adversarial_training as at

CFG = at.AdvTrainingConfig.quick()
CLAIMS = ("pgd_robust", "robust_gain", "clean_falls", "pgd_cost", "fgsm_rs_robust", "fgsm_rs_cost")
CHECKS = ("eps0_is_clean", "in_ball")
N = 400


def hits(acc: float) -> np.ndarray:
    """N per-example outcomes with the first ``acc * N`` correct."""
    out = np.zeros(N)
    out[: round(acc * N)] = 1.0
    return out


def record(
    robust_pgd: float = 0.7,
    robust_std: float = 0.1,
    robust_fgsm: float = 0.6,
    clean_pgd: float = 0.9,
    seconds: tuple[float, float, float] = (1.0, 2.1, 7.5),
    excess: float = 0.0,
) -> at.AdvTrainingMeasurements:
    eps = np.array([0.0, 0.15])
    clean = {"standard": 0.95, "fgsm_rs": 0.93, "pgd": clean_pgd}
    robust = {"standard": robust_std, "fgsm_rs": robust_fgsm, "pgd": robust_pgd}
    return at.AdvTrainingMeasurements(
        eps_grid=eps,
        train_eps=0.15,
        pgd_steps=7,
        robust={t: np.array([clean[t], robust[t]]) for t in at.TRAINED},
        correct_at_train_eps={t: hits(robust[t]) for t in at.TRAINED},
        clean_correct={t: hits(clean[t]) for t in at.TRAINED},
        test_acc=clean,
        epoch_seconds=dict(zip(at.TRAINED, seconds, strict=True)),
        inner_seconds={"standard": 0.0, "fgsm_rs": 0.5, "pgd": 5.0},
        ball_excess=excess,
        examples={},
    )


def verdicts(m: at.AdvTrainingMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in at.claims(m, CFG)}


def test_declared_keys_and_the_phenomenon_holds_all() -> None:
    exp = get_experiment("robustness.adversarial_training")
    assert exp.claims == CLAIMS and exp.checks == CHECKS
    got = at.claims(record(), CFG)
    assert [c.key for c in got] == [*CLAIMS, *CHECKS]
    assert all(c.holds for c in got)


def test_each_claim_can_fail() -> None:
    assert not verdicts(record(robust_pgd=0.45))["pgd_robust"]
    assert not verdicts(record(robust_pgd=0.55, robust_std=0.2))["robust_gain"]
    assert not verdicts(record(clean_pgd=0.95))["clean_falls"]
    assert not verdicts(record(seconds=(1.0, 2.0, 3.9)))["pgd_cost"]
    assert not verdicts(record(seconds=(1.0, 3.1, 8.0)))["fgsm_rs_cost"]
    assert not verdicts(record(robust_fgsm=0.49))["fgsm_rs_robust"]
    assert not verdicts(record(excess=1e-3))["in_ball"]
    assert not verdicts(record(seconds=(1.0, 2.0, math.nan)))["pgd_cost"]


def test_the_digits_known_failures() -> None:
    (claim,) = [c for c in at.claims(record(clean_pgd=0.97), CFG) if c.key == "clean_falls"]
    assert not claim.holds and claim.known_failure
    cnn = at.AdvTrainingConfig(model="cnn")
    (claim,) = [c for c in at.claims(record(clean_pgd=0.97), cnn) if c.key == "clean_falls"]
    assert not claim.known_failure
    (cost,) = [c for c in at.claims(record(seconds=(1.0, 2.0, 3.0)), CFG) if c.key == "pgd_cost"]
    assert not cost.holds and cost.known_failure


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="contain train_eps"):
        at.AdvTrainingConfig(eps_grid=(0.0, 0.1))
    with pytest.raises(ConfigError, match="increase from 0"):
        at.AdvTrainingConfig(eps_grid=(0.15, 0.1))
    with pytest.raises(ConfigError, match="data_root"):
        at.AdvTrainingConfig(data="mnist")


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "robustness.adversarial_training",
        preset="quick",
        overrides=("epochs=1", "batch=512", "pgd_steps=1", "eval_steps=1", "eps_grid=0,0.15"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record_ = result.record
    assert [c["key"] for c in record_["claims"]] == [*CLAIMS, *CHECKS]
    checks = {c["key"]: c["holds"] for c in record_["claims"] if c["kind"] == "check"}
    assert checks == dict.fromkeys(CHECKS, True)
    m = record_["metrics"]
    assert m["inner_seconds_per_epoch"]["pgd"] > 0
    assert m["robust_acc_standard"][1] <= m["robust_acc_standard"][0]
    assert [Path(f).name for f in record_["figures"]] == ["adversarial_training.png"]
