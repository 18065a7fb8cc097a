"""The notes' vision problems of discussion 5, answered by the library.

- Problem 1 (mAP): six candidates A-F with IoUs 0.29, 0.11, 0.701, 0.001, 0.92, 0.45 against
  their objects. The notes leave open the detector's confidence order and the number of objects;
  interpretation stated here: six objects, each candidate paired with its own object (so a
  candidate is a true positive at threshold ``t`` iff its IoU >= ``t``, else a false positive
  and its object is missed), confidences in the listed order (A most confident). AP is the
  all-point (VOC) area under the precision-recall curve
  (:func:`deepnotes.vision.average_precision.average_precision`); "mAP over the thresholds
  (0, 1)" is read as the mean of AP over thresholds uniform in (0, 1), computed exactly by the
  midpoint rule on a 0.001 grid (AP only changes at the IoUs, which lie on the grid). The same
  numbers with the confidences ordered by IoU, and COCO's 0.5:0.95 mean, are given too.
- Problem 2 (2-D transposed convolution): answered in mechanics; listed here by calling it.
- Problem 3 (the U-Net questions): :mod:`deepnotes.vision.problems_unet`, imported below so
  that the catalogue finds it with this topic's problems.
"""

from __future__ import annotations

import importlib

import numpy as np

from deepnotes.core.catalog import Answer, problem
from deepnotes.mechanics.problems_conv import _transposed_conv
from deepnotes.vision.average_precision import COCO_THRESHOLDS, average_precision

IOUS = {"A": 0.29, "B": 0.11, "C": 0.701, "D": 0.001, "E": 0.92, "F": 0.45}
GRID = (np.arange(1000) + 0.5) / 1000
"""Midpoints of a 0.001 grid on (0, 1)."""


def candidate_ap(ious: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """All-point AP when candidate ``i`` (confidence ``scores[i]``) is paired with object ``i``:
    a true positive iff ``ious[i] >= threshold``; ``len(ious)`` objects in all."""
    return average_precision(scores, ious >= threshold, len(ious), "voc")


@problem("Calculate mAP", topic="vision", source="discussion 5, section 1, problem 1")
def _map_problem() -> Answer:
    ious = np.array(list(IOUS.values()))
    listed = np.linspace(1.0, 0.5, len(ious))  # A most confident
    rows = []
    for name, scores in (("listed order", listed), ("ordered by IoU", ious)):
        at_half = candidate_ap(ious, scores, 0.5)
        mean_01 = float(np.mean([candidate_ap(ious, scores, t) for t in GRID]))
        coco = float(np.mean([candidate_ap(ious, scores, t) for t in COCO_THRESHOLDS]))
        rows.append([name, at_half, mean_01, coco])
    return Answer(
        [
            ("true positives at IoU 0.5", [k for k, v in IOUS.items() if v >= 0.5]),
            ("confidence order, AP@0.5, mean AP over t in (0, 1), mean AP over 0.5:0.95", rows),
        ],
        note="Six objects, candidate i paired with object i (TP iff IoU >= t), all-point AP. "
        "Listed order: A most confident; at 0.5 only C and E are hits, so recall stops at 2/6. "
        "The mean over (0, 1) integrates AP(t) exactly (midpoints of a 0.001 grid).",
    )


@problem(
    "2D transposed convolution mechanics (vision listing)",
    topic="vision",
    source="discussion 5, section 3, problem 2 (answered in mechanics)",
)
def _transposed_convolution() -> Answer:
    return _transposed_conv()


importlib.import_module("deepnotes.vision.problems_unet")  # problem 3, registered on import
