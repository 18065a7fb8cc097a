"""robustness.other_perturbations: verdicts on synthetic records, the containment answers and
one tiny smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.robustness.experiments import other_perturbations as op

CFG = op.OtherPerturbationsConfig.quick()
CLAIMS = ("smaller_ball", "larger_ball_drop", "l2_inside", "dimming_drop", "dimming_outside")
CHECKS = ("containment", "l2_deltas_inside")
N = 400


def hits(acc: float) -> np.ndarray:
    out = np.zeros(N)
    out[: round(acc * N)] = 1.0
    return out


def record(
    small: float = 0.9,
    at_eps: float = 0.6,
    large: float = 0.05,
    l2: float = 0.9,
    dim: float = 0.8,
    nearest: float = 0.5,
    reach: float = 0.14,
) -> op.OtherPerturbationsMeasurements:
    pgd = {
        "clean": hits(0.95),
        "linf eps/5": hits(small),
        "linf eps": hits(at_eps),
        "linf 2eps": hits(large),
        "l2 eps": hits(l2),
        "l2 2eps": hits(0.8),
        "dim 0.3": hits(dim),
    }
    return op.OtherPerturbationsMeasurements(
        eps=0.15,
        dim=64,
        correct={"standard": dict(pgd), "pgd": pgd},
        factors=(0.5, 0.3),
        reach_linf={"l2 eps": reach, "l2 2eps": 0.3},
        dim_distance={"dim 0.5": (0.3, 0.5), "dim 0.3": (nearest, 0.7)},
        containment_errors=0,
        examples={},
    )


def verdicts(m: op.OtherPerturbationsMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in op.claims(m, CFG)}


def test_declared_keys_and_the_phenomenon_holds_all() -> None:
    exp = get_experiment("robustness.other_perturbations")
    assert exp.claims == CLAIMS and exp.checks == CHECKS
    got = op.claims(record(), CFG)
    assert [c.key for c in got] == [*CLAIMS, *CHECKS] and all(c.holds for c in got)


def test_each_claim_can_fail() -> None:
    assert not verdicts(record(small=0.55))["smaller_ball"]
    assert not verdicts(record(large=0.35))["larger_ball_drop"]
    assert not verdicts(record(l2=0.5))["l2_inside"]
    assert not verdicts(record(dim=0.95))["dimming_drop"]
    assert not verdicts(record(nearest=0.15))["dimming_outside"]  # strict: on the sphere is in
    assert not verdicts(record(reach=0.16))["l2_deltas_inside"]


@pytest.mark.parametrize(("eps", "dim"), [(0.15, 64), (0.5, 784), (0.01, 1)])
def test_containment_answers_agree_with_their_witnesses(eps: float, dim: int) -> None:
    assert op.containment_errors(eps, dim) == 0


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="factors"):
        op.OtherPerturbationsConfig(factors=(0.3, 0.5))
    with pytest.raises(ConfigError, match="train_eps"):
        op.OtherPerturbationsConfig(train_eps=0.6)
    with pytest.raises(ConfigError, match="eval"):
        op.OtherPerturbationsConfig(eval_steps=0)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "robustness.other_perturbations",
        preset="quick",
        overrides=("epochs=1", "batch=512", "pgd_steps=1", "eval_steps=2", "factors=0.3"),
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record_ = result.record
    assert [c["key"] for c in record_["claims"]] == [*CLAIMS, *CHECKS]
    checks = {c["key"]: c["holds"] for c in record_["claims"] if c["kind"] == "check"}
    assert checks == dict.fromkeys(CHECKS, True)
    m = record_["metrics"]
    assert m["dim_linf_distance_min_median"]["dim 0.3"][0] > 0.15  # every digit has ink
    assert [Path(f).name for f in record_["figures"]] == ["other_perturbations.png"]
