"""vision.detection: verdicts on synthetic records, pycocotools on hand cases, a smoke run."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.context import run_experiment
from deepnotes.core.errors import ConfigError
from deepnotes.core.registry import get_experiment
from deepnotes.data.scenes import Scenes, digit_scenes
from deepnotes.vision.experiments import detection as de

CFG = de.DetectionConfig.quick()
KEYS = ("map50", "nms_raises_map", "ap_matches_pycocotools")
TINY = (
    "train_size=6",
    "test_size=4",
    "steps=2",
    "every=1",
    "batch=1",
    "folds=2",
    "channels=4",
)


def record(**changes) -> de.DetectionMeasurements:
    base = de.DetectionMeasurements(
        map50=0.82,
        map_coco=0.52,
        map50_voc=0.83,
        map50_raw=0.46,
        ap50=np.full(10, 0.82),
        fold_map50=np.array([0.80, 0.85, 0.78, 0.84, 0.83]),
        fold_map50_raw=np.array([0.45, 0.50, 0.41, 0.47, 0.44]),
        coco_map50=0.82,
        coco_map=0.52,
        detections=2000,
        detections_raw=6000,
        curves={},
        curve=[],
        images=np.zeros((1, 48, 48)),
        shown={},
    )
    return dataclasses.replace(base, **changes)


def claims(m: de.DetectionMeasurements) -> dict[str, object]:
    return {c.key: c for c in de.claims(m, CFG)}


def test_every_declared_key_is_returned() -> None:
    exp = get_experiment("vision.detection")
    assert exp.claims == KEYS[:2] and exp.checks == KEYS[2:]
    got = de.claims(record(), CFG)
    assert [c.key for c in got] == list(KEYS)
    assert [c.kind for c in got] == ["claim", "claim", "check"]


def test_the_phenomenon_holds_everything() -> None:
    assert all(c.holds and not c.known_failure for c in claims(record()).values())


def test_each_claim_can_fail() -> None:
    assert not claims(record(map50=0.69))["map50"].holds
    full = {c.key: c for c in de.claims(record(map50=0.8), de.DetectionConfig())}
    assert not full["map50"].holds  # the full preset's bar is 0.85
    same = record(fold_map50_raw=np.array([0.80, 0.85, 0.78, 0.84, 0.83]))
    assert not claims(same)["nms_raises_map"].holds
    noisy = record(fold_map50_raw=np.array([0.70, 0.95, 0.60, 0.95, 0.90]))
    assert not claims(noisy)["nms_raises_map"].holds  # mean gain 0.004, large spread
    off = claims(record(coco_map=0.52 + 2e-6))["ap_matches_pycocotools"]
    assert not off.holds and off.measured == pytest.approx(2e-6)


def test_missing_pycocotools_is_a_known_failure() -> None:
    check = claims(record(coco_map50=math.nan, coco_map=math.nan))["ap_matches_pycocotools"]
    assert not check.holds and check.known_failure == "pycocotools not installed"


def _hand_scenes() -> Scenes:
    boxes = [torch.tensor([[2.0, 2, 10, 12], [20.0, 20, 30, 34]]), torch.tensor([[5.0, 5, 15, 15]])]
    return Scenes(
        images=torch.zeros(2, 1, 48, 48),
        boxes=boxes,
        labels=[torch.tensor([3, 7]), torch.tensor([3])],
        masks=torch.zeros(2, 48, 48, dtype=torch.int64),
    )


def test_pycocotools_and_pr_curves_on_hand_cases() -> None:
    pytest.importorskip("pycocotools")
    test = _hand_scenes()
    perfect = [
        [b, torch.linspace(0.9, 0.8, len(b)), lab]
        for b, lab in zip(test.boxes, test.labels, strict=True)
    ]
    # a duplicate of image 1's box (a false positive below it) and a shifted 7
    dup = [
        [
            torch.tensor([[2.0, 2, 10, 12], [24.0, 26, 34, 40]]),
            torch.tensor([0.9, 0.6]),
            torch.tensor([3, 7]),
        ],
        [
            torch.tensor([[5.0, 5, 15, 15], [5.0, 5, 15, 14]]),
            torch.tensor([0.8, 0.7]),
            torch.tensor([3, 3]),
        ],
    ]
    for dets in (perfect, dup):
        ours = de._evaluate(dets, test)
        coco50, coco = de.pycocotools_maps(dets, test)
        assert ours.map_at(0.5) == pytest.approx(coco50, abs=1e-12)
        assert ours.map == pytest.approx(coco, abs=1e-12)
    assert de.pycocotools_maps(perfect, test) == (1.0, 1.0)
    # empty detections are valid: AP 0
    empty = [[torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64)]] * 2
    assert de.pycocotools_maps(empty, test) == (0.0, 0.0)
    assert de._evaluate(empty, test).map == 0.0
    found = de.matches50(dup, test)
    curves = de.pr_curves(found, test)
    assert sorted(curves) == [3, 7]
    precision, recall = curves[3]  # TP (0.9), TP (0.8), FP (0.7): 2 of 2 found
    np.testing.assert_allclose(precision, [1, 1, 2 / 3], atol=1e-12)
    np.testing.assert_allclose(recall, [0.5, 1, 1])
    np.testing.assert_allclose(curves[7][1], [0.0])  # the shifted 7 misses (IoU < 0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_map50_over_image_subsets_equals_evaluate(seed: int) -> None:
    """The matching done once and pooled per fold equals evaluate() run on the fold."""
    test = digit_scenes(12, side=48, objects=(1, 4), scale=(1.5, 2.25), seed=seed)
    g = torch.Generator().manual_seed(seed)
    dets = []
    for b, lab in zip(test.boxes, test.labels, strict=True):
        jitter = b + torch.randn(b.shape, generator=g) * 1.5
        extra = torch.rand(3, 2, generator=g) * 30
        boxes = torch.cat([jitter, torch.cat([extra, extra + 10], 1)])
        boxes = torch.cat([boxes[:, :2], torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)], 1)
        labels = torch.cat([lab, torch.randint(0, 10, (3,), generator=g)])
        dets.append([boxes, torch.rand(len(boxes), generator=g), labels])
    found = de.matches50(dets, test)
    for idx in ([0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11], list(range(12))):
        part = Scenes(
            images=test.images[idx],
            boxes=[test.boxes[i] for i in idx],
            labels=[test.labels[i] for i in idx],
            masks=test.masks[idx],
        )
        for interpolation in ("coco", "voc"):
            ev = de._evaluate(
                [dets[i] for i in idx], part, thresholds=[0.5], interpolation=interpolation
            )
            got = de.map50(found, test, idx, interpolation)
            assert got == pytest.approx(ev.map_at(0.5), abs=1e-12)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="folds"):
        de.DetectionConfig(test_size=5, folds=6)
    with pytest.raises(ConfigError, match="map_bar"):
        de.DetectionConfig(map_bar=1.5)


def test_smoke(tmp_path: Path) -> None:
    result = run_experiment(
        "vision.detection",
        preset="quick",
        overrides=TINY,
        out=tmp_path,
        show_progress=False,
        threads=1,
    )
    rec = result.record
    assert [c["key"] for c in rec["claims"]] == list(KEYS)
    assert [Path(f).name for f in rec["figures"]] == ["detections.png", "precision_recall.png"]
    m = rec["metrics"]
    assert len(m["fold_map50"]) == 2 and 0 <= m["map50"] <= 1
    assert m["detections_without_nms"] >= m["detections"]
