"""robustness.fgsm_pgd: claim verdicts on synthetic measurements, config checks, a smoke run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.robustness.experiments.fgsm_pgd import (
    ANCHOR_SHARE,
    FgsmPgdConfig,
    FgsmPgdMeasurements,
    claims,
)


def _measurements(pgd_extra: int = 0, anchor_correct: int = 0) -> FgsmPgdMeasurements:
    """100 examples, grid (0, 0.1, 0.3) for both norms; FGSM keeps 60 then `anchor_correct`."""
    n, eps = 100, np.array([0.0, 0.1, 0.3])
    fgsm = np.zeros((3, n), dtype=bool)
    fgsm[0, :96], fgsm[1, :60], fgsm[2, :anchor_correct] = True, True, True
    pgd = np.zeros((3, n), dtype=bool)
    pgd[0, :96], pgd[1, : 50 + pgd_extra] = True, True
    correct = {
        f"{m}/{norm}/{a}": (fgsm if a == "fgsm" else pgd).copy()
        for m in ("mlp", "cnn")
        for norm in ("linf", "l2")
        for a in ("fgsm", "pgd")
    }
    return FgsmPgdMeasurements(
        eps={"linf": eps, "l2": eps},
        correct=correct,
        clean_acc={"mlp": 0.96, "cnn": 0.96},
        ball_violation=0.0,
        eps_zero_identical=True,
        images=np.zeros((5, 2, 8, 8)),
        predictions=np.zeros((5, 2), dtype=int),
        labels=np.zeros(2, dtype=int),
        shown_model="mlp",
        n_test=n,
    )


def _verdicts(m: FgsmPgdMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in claims(m, FgsmPgdConfig())}


def test_claims_hold_on_a_collapse_where_pgd_is_stronger() -> None:
    v = _verdicts(_measurements())
    assert v == {
        "pgd_at_most_fgsm": True,
        "collapse": True,
        "ball_and_range": True,
        "eps_zero_identity": True,
    }


def test_pgd_above_fgsm_at_one_eps_fails_the_claim() -> None:
    m = _measurements(pgd_extra=11)  # PGD 0.61 > FGSM 0.60 at eps 0.1
    c = {c.key: c for c in claims(m, FgsmPgdConfig())}["pgd_at_most_fgsm"]
    assert not c.holds and c.measured == pytest.approx(0.01)


def test_collapse_threshold_is_the_anchor_share() -> None:
    # share = correct / 100 / 0.96; the anchor share 0.0887 allows 8 of 100 but not 9
    assert abs(ANCHOR_SHARE - 0.087 / 0.981) < 1e-15
    assert _verdicts(_measurements(anchor_correct=8))["collapse"]
    assert not _verdicts(_measurements(anchor_correct=9))["collapse"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match=r"must include 0\.3"):
        FgsmPgdConfig(eps_linf=(0.0, 0.1))
    with pytest.raises(ConfigError, match="models must be a non-empty tuple"):
        FgsmPgdConfig(models=("resnet",))
    with pytest.raises(ConfigError, match="eps_l2 must increase"):
        FgsmPgdConfig(eps_l2=(0.5, 0.1))


@pytest.mark.slow
def test_smoke_run(tmp_path: Path) -> None:
    result = run_experiment(
        "robustness.fgsm_pgd",
        overrides=[
            "models=mlp",
            "epochs=2",
            "test_limit=40",
            "pgd_steps=3",
            "eps_linf=0,0.1,0.3",
            "eps_l2=0,1",
            "show_eps=0.1,0.3",
            "show=2",
        ],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    outcome = json.loads((result.run_dir / "outcome.json").read_text())
    keys = {c["key"]: c for c in outcome["claims"]}
    assert set(keys) == {"pgd_at_most_fgsm", "collapse", "ball_and_range", "eps_zero_identity"}
    assert keys["ball_and_range"]["holds"] and keys["eps_zero_identity"]["holds"]
    acc = outcome["metrics"]["acc_mlp_linf_fgsm"]
    assert acc[0] > acc[-1]  # the attack lowers the accuracy
    assert (result.run_dir / "accuracy_vs_eps.png").exists()
    assert (result.run_dir / "adversarial_digits.png").exists()
