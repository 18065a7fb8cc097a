"""AP and mAP against pycocotools' COCOeval (a test dependency) and hand cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.vision.average_precision import (
    COCO_THRESHOLDS,
    average_precision,
    cocoeval,
    evaluate,
    match,
)

pycocotools = pytest.importorskip("pycocotools")


def _random_set(seed: int, images: int = 12, classes: int = 3):
    """Ground truth and detections (jittered copies of the truth plus random boxes)."""
    rng = np.random.default_rng(seed)
    gt_boxes, gt_labels, det_boxes, det_scores, det_labels = [], [], [], [], []
    for _ in range(images):
        g = int(rng.integers(0, 5))
        xy = rng.uniform(0, 60, size=(g, 2))
        wh = rng.uniform(4, 30, size=(g, 2))
        gb = np.concatenate([xy, xy + wh], 1)
        gl = rng.integers(0, classes, size=g)
        jitter = gb + rng.normal(0, 3, size=gb.shape)
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 1)
        extra = int(rng.integers(0, 6))
        exy = rng.uniform(0, 60, size=(extra, 2))
        eb = np.concatenate([exy, exy + rng.uniform(4, 30, size=(extra, 2))], 1)
        keep = rng.random(g) < 0.8
        db = np.concatenate([jitter[keep], eb])
        dl = np.concatenate(
            [
                np.where(rng.random(keep.sum()) < 0.9, gl[keep], (gl[keep] + 1) % classes),
                rng.integers(0, classes, size=extra),
            ]
        )
        gt_boxes.append(torch.as_tensor(gb))
        gt_labels.append(torch.as_tensor(gl))
        det_boxes.append(torch.as_tensor(db))
        det_scores.append(torch.as_tensor(rng.random(len(db))))
        det_labels.append(torch.as_tensor(dl))
    return det_boxes, det_scores, det_labels, gt_boxes, gt_labels


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_equals_pycocotools_on_random_detections(seed):
    data = _random_set(seed)
    ours = evaluate(*data, classes=[0, 1, 2])
    ev = cocoeval(*data, classes=[0, 1, 2])
    precision = ev.eval["precision"][:, :, :, 0, 0]  # (T, R, K)
    for k in range(3):
        for t in range(len(COCO_THRESHOLDS)):
            col = precision[t, :, k]
            theirs = col.mean() if (col > -1).all() else np.nan
            if np.isnan(theirs):
                assert np.isnan(ours.ap[t, k])
            else:
                assert ours.ap[t, k] == pytest.approx(theirs, abs=1e-6)
    valid = precision[precision > -1]
    assert ours.map == pytest.approx(valid.mean(), abs=1e-6)
    at50 = precision[0]
    assert ours.map_at(0.5) == pytest.approx(at50[at50 > -1].mean(), abs=1e-6)


def test_voc_all_point_by_hand():
    # TP, FP, TP with 3 objects: P = 1, 1/2, 2/3 at R = 1/3, 1/3, 2/3;
    # envelope 1, 2/3, 2/3 -> AP = 1/3 * 1 + 1/3 * 2/3.
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 3, "voc")
    assert ap == pytest.approx(1 / 3 + 2 / 9)
    # 101-point: r = 0..0.33 -> 1 (34 points), 0.34..0.66 -> 2/3 (33 points), rest 0.
    coco = average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 3, "coco")
    assert coco == pytest.approx((34 + 33 * 2 / 3) / 101)


def test_empty_detections_and_no_ground_truth():
    assert average_precision(np.zeros(0), np.zeros(0, dtype=bool), 4) == 0.0
    assert np.isnan(average_precision(np.array([0.5]), np.array([False]), 0))
    empty = torch.zeros(0, 4)
    ev = evaluate(
        [empty],
        [torch.zeros(0)],
        [torch.zeros(0)],
        [torch.tensor([[0.0, 0, 4, 4]])],
        [torch.tensor([1])],
    )
    assert ev.map == 0.0


def test_greedy_matching_takes_the_best_free_box():
    iou = np.array([[0.6, 0.8], [0.7, 0.9]])
    assert match(iou, 0.5).tolist() == [True, True]  # first takes box 1, second box 0
    assert match(iou, 0.65).tolist() == [True, True]
    assert match(iou, 0.75).tolist() == [True, False]


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="x1 <= x2"):
        evaluate(
            [torch.tensor([[5.0, 0, 1, 4]])],
            [torch.tensor([0.5])],
            [torch.tensor([0])],
            [torch.tensor([[0.0, 0, 4, 4]])],
            [torch.tensor([0])],
        )
    with pytest.raises(ConfigError, match="interpolation"):
        average_precision(np.array([0.5]), np.array([True]), 1, "eleven")
