"""vision.parameter_counts: claims on synthetic records, and a run through the real runner."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from deepnotes.core.config import preset
from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.vision.experiments import parameter_counts as pc

CLAIMS = (
    "vgg16_about_138m",
    "resnet152_about_60m",
    "resnets_fewer_than_vgg",
    "bottleneck_cheaper_per_layer",
)
CHECKS = ("vgg16_torchvision", "resnet152_torchvision", "imagenet_shapes")


def record() -> pc.ParameterCountMeasurements:
    shapes = dict(pc.FEATURE_SHAPES) | {f"{n} logits": (1000,) for n in ("VGG-16", "ResNet-50")}
    return pc.ParameterCountMeasurements(
        vgg={16: 138_357_544},
        resnet={34: 21_797_672, 50: 25_557_032, 152: 60_192_808},
        full={"LeNet-5": 61_706, "AlexNet": 1, "GoogLeNet": 1, "VGG-16": 138_357_544}
        | {"ResNet-50": 25_557_032, "ResNet-152": 60_192_808},
        small={"a": 1, "b": 2, "c": 3},
        shapes=shapes,
    )


def verdicts(m: pc.ParameterCountMeasurements) -> dict[str, bool]:
    return {c.key: c.holds for c in pc.claims(m, pc.ParameterCountConfig())}


def test_the_published_counts_hold() -> None:
    v = verdicts(record())
    assert tuple(v) == CLAIMS + CHECKS and all(v.values())


def test_a_wrong_count_or_shape_fails() -> None:
    m = record()
    wide = dataclasses.replace(
        m,
        vgg={16: 139_000_000},
        full=m.full | {"VGG-16": 139_000_000},
        shapes=m.shapes | {"VGG-16 features": (512, 14, 14)},
    )
    v = verdicts(wide)
    assert not v["vgg16_about_138m"] and not v["vgg16_torchvision"]
    assert not v["imagenet_shapes"]
    assert v["resnet152_about_60m"] and v["resnet152_torchvision"]
    # a ResNet-50 heavier per layer than ResNet-34 fails the bottleneck claim
    heavy = dataclasses.replace(m, resnet=m.resnet | {50: 40_000_000})
    assert not verdicts(heavy)["bottleneck_cheaper_per_layer"]
    kinds = {c.key: c.kind for c in pc.claims(m, pc.ParameterCountConfig())}
    assert [kinds[k] for k in CHECKS] == ["check"] * 3


def test_config_checks() -> None:
    assert preset(pc.ParameterCountConfig, "quick") == pc.ParameterCountConfig()
    with pytest.raises(ConfigError, match="vgg_depths"):
        pc.ParameterCountConfig(vgg_depths=(15,))


def test_parameter_counts_run(tmp_path: Path) -> None:
    result = run_experiment(
        "vision.parameter_counts",
        overrides=["vgg_depths=16", "resnet_depths=18,152"],
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    record = result.record
    assert [c["key"] for c in record["claims"]] == list(CLAIMS + CHECKS)
    assert record["all_hold"], [c for c in record["claims"] if not c["holds"]]
    metrics = record["metrics"]
    assert metrics["vgg16_params"] == 138_357_544
    assert metrics["resnet152_params"] == 60_192_808
    assert metrics["resnet50_params_per_layer"] < metrics["resnet34_params_per_layer"]
    assert record["figures"] == ["parameter_counts.png"]
    assert (result.run_dir / "parameter_counts.png").read_bytes()[:4] == b"\x89PNG"
