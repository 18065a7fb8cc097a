"""vision.localisation: claim verdicts on synthetic records and a tiny smoke run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.vision.experiments.localisation import (
    LocalisationConfig,
    LocalisationMeasurements,
    _ious,
    claims,
)


def _record(accuracy: float, iou: float) -> LocalisationMeasurements:
    z = np.zeros((1, 32, 32))
    box = np.array([[1.0, 1, 9, 9]])
    return LocalisationMeasurements(
        accuracy=accuracy,
        mean_iou=iou,
        ious=np.full(10, iou),
        curve=[],
        images=z,
        true_boxes=box,
        pred_boxes=box,
        true_labels=np.zeros(1, dtype=int),
        pred_labels=np.zeros(1, dtype=int),
    )


def _verdicts(m: LocalisationMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in claims(m, LocalisationConfig.quick())}


def test_claim_verdicts():
    assert _verdicts(_record(0.97, 0.85)) == {"class_accuracy": True, "mean_iou": True}
    assert _verdicts(_record(0.94, 0.85)) == {"class_accuracy": False, "mean_iou": True}
    assert _verdicts(_record(0.99, 0.79)) == {"class_accuracy": True, "mean_iou": False}


def test_smoke_run(tmp_path):
    result = run_experiment(
        "vision.localisation",
        preset="quick",
        overrides={"train_size": 64, "test_size": 16, "steps": 4, "every": 2, "batch": 8},
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    assert [c["key"] for c in result.record["claims"]] == ["class_accuracy", "mean_iou"]
    assert [p.rsplit("/", 1)[-1] for p in result.record["figures"]] == ["boxes.png", "curves.png"]
    assert [r["step"] for r in result.record["metrics"]["curve"]] == [2, 4]
    assert all(0.0 <= c["measured"] <= 1.0 for c in result.record["claims"])


def test_inverted_predicted_boxes_score_zero_iou():
    pred = torch.tensor([[5.0, 5, 2, 9], [1.0, 1, 9, 9]])
    true = torch.tensor([[1.0, 1, 9, 9], [1.0, 1, 9, 9]])
    assert _ious(pred, true).tolist() == [0.0, 1.0]


def test_bad_config_is_refused_with_what_was_expected():
    with pytest.raises(ConfigError, match="batch must be >= 1"):
        LocalisationConfig(batch=0)
    with pytest.raises(ConfigError, match="every <= steps"):
        LocalisationConfig(steps=10, every=20)
