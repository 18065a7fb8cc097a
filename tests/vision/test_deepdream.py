"""vision.deepdream: claim verdicts on synthetic records, config validation and a smoke run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError, DataFormatError
from deepnotes.vision.experiments.deepdream import (
    DeepDreamConfig,
    DeepDreamMeasurements,
    claims,
)


def _record(norm_after: float, gradient_error: float = 0.0, excursion: float = 0.0):
    image = np.zeros((4, 6, 3))
    return DeepDreamMeasurements(
        before=image,
        after=image,
        norm_before=10.0,
        norm_after=norm_after,
        curve=[],
        gradient_error=gradient_error,
        excursion=excursion,
        network="random",
    )


def _verdicts(m: DeepDreamMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in claims(m, DeepDreamConfig.quick())}


def test_claim_verdicts():
    everything = {"activation_rises": True, "gradient_is_activation": True, "image_in_range": True}
    assert _verdicts(_record(20.0)) == everything
    assert _verdicts(_record(19.9))["activation_rises"] is False
    assert _verdicts(_record(30.0, gradient_error=1e-6))["gradient_is_activation"] is False
    assert _verdicts(_record(30.0, excursion=1e-3))["image_in_range"] is False
    kinds = {c.key: c.kind for c in claims(_record(20.0), DeepDreamConfig.quick())}
    assert kinds == {
        "activation_rises": "claim",
        "gradient_is_activation": "check",
        "image_in_range": "check",
    }


def test_config_validation(tmp_path):
    with pytest.raises(ConfigError, match="existing VGG-19"):
        DeepDreamConfig(weights=str(tmp_path / "absent.pth"))
    with pytest.raises(ConfigError, match="layer must be one of"):
        DeepDreamConfig(layer="fc7")
    with pytest.raises(ConfigError, match="photo must be one of"):
        DeepDreamConfig(photo="lena")


def test_weights_in_the_wrong_layout_stop_the_run(tmp_path):
    path = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3)}, path)
    with pytest.raises(DataFormatError, match="missing keys"):
        run_experiment(
            "vision.deepdream",
            overrides=[f"weights={path}", "size=16", "steps=1", "every=1"],
            out=tmp_path,
            show_progress=False,
            threads=1,
        )


def test_smoke_run(tmp_path):
    result = run_experiment(
        "vision.deepdream",
        preset="quick",
        overrides=["size=24", "steps=3", "every=3", "octaves=2", "width=4", "check_size=8"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record = result.record
    assert [c["key"] for c in record["claims"]] == [
        "activation_rises",
        "gradient_is_activation",
        "image_in_range",
    ]
    checks = {c["key"]: c["holds"] for c in record["claims"] if c["kind"] == "check"}
    assert checks == {"gradient_is_activation": True, "image_in_range": True}
    assert record["metrics"]["norm_after"] > record["metrics"]["norm_before"]
    assert [p.rsplit("/", 1)[-1] for p in record["figures"]] == ["dream.png"]
