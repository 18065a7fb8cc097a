"""Smoke runs of the CNN-zoo experiments through the real runner, in tiny presets."""

from __future__ import annotations

from pathlib import Path

import pytest

import deepnotes.vision.zoo_experiments  # noqa: F401  (registers the experiments)
from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.vision.zoo_experiments import DigitsCNNConfig, ParameterCountConfig


def test_parameter_counts_claims_hold(tmp_path: Path) -> None:
    result = run_experiment(
        "vision.parameter_counts",
        overrides=["vgg_depths=16", "resnet_depths=18,152"],
        out=tmp_path,
        show_progress=False,
    )
    record = result.record
    assert len(record["claims"]) == 4
    assert record["all_hold"], [c for c in record["claims"] if not c["holds"]]
    metrics = record["metrics"]
    assert metrics["vgg16_params"] == 138_357_544
    assert metrics["resnet152_params"] == 60_192_808
    assert metrics["resnet50_params_per_layer"] < metrics["resnet34_params_per_layer"]
    assert record["figures"] == ["parameter_counts.png"]
    assert (result.run_dir / "parameter_counts.png").read_bytes()[:4] == b"\x89PNG"


def test_digits_cnns_learn_far_above_chance(tmp_path: Path) -> None:
    result = run_experiment(
        "vision.digits_cnns",
        overrides=["lenet_epochs=4", "resnet_epochs=3", "resnet_width=8", "resnet_size=8"],
        out=tmp_path,
        show_progress=False,
    )
    record = result.record
    assert len(record["claims"]) == 2
    assert all(c["threshold"] == 0.98 for c in record["claims"])  # the fixed bar
    metrics = record["metrics"]
    # chance is 0.1; a few epochs already learn most digits
    assert metrics["lenet_test_acc"] > 0.5
    assert metrics["resnet_test_acc"] > 0.4
    assert metrics["lenet_params"] == 61_706  # the paper's LeNet-5 at 32x32
    assert [Path(f).name for f in record["figures"]] == ["lenet_curves.png", "resnet_curves.png"]
    for name in record["figures"]:
        assert (result.run_dir / name).read_bytes()[:4] == b"\x89PNG"


def test_presets_and_config_checks() -> None:
    quick, full = preset(DigitsCNNConfig, "quick"), preset(DigitsCNNConfig, "full")
    assert quick.lenet_epochs <= full.lenet_epochs and quick.resnet_epochs <= full.resnet_epochs
    assert preset(ParameterCountConfig, "quick") == ParameterCountConfig()
    with pytest.raises(ConfigError, match="lenet_size"):
        DigitsCNNConfig(lenet_size=8)
    with pytest.raises(ConfigError, match="resnet_size"):
        DigitsCNNConfig(resnet_size=12)
    with pytest.raises(ConfigError, match="vgg_depths"):
        ParameterCountConfig(vgg_depths=(15,))
