"""The notes' discussion-5 problems as answered by deepnotes.vision.problems."""

from __future__ import annotations

import numpy as np
import pytest

from deepnotes.mechanics.problems_conv import _transposed_conv
from deepnotes.vision.problems import IOUS, _map_problem, _transposed_convolution, candidate_ap


def test_map_problem_values():
    answer = dict(_map_problem().quantities)
    assert answer["true positives at IoU 0.5"] == ["C", "E"]
    listed, by_iou = answer[
        "confidence order, AP@0.5, mean AP over t in (0, 1), mean AP over 0.5:0.95"
    ]
    # Listed order at 0.5: hits at ranks 3 and 5 -> P 1/3 at R 1/6 and 2/5 at R 2/6; the
    # envelope is 2/5 for both recall steps.
    assert listed[1] == pytest.approx(2 / 5 * 2 / 6)
    # Ordered by IoU, every hit comes first: AP(t) = (number of IoUs >= t) / 6, whose mean
    # over t in (0, 1) is sum(IoU) / 6.
    assert by_iou[1] == pytest.approx(2 / 6)
    assert by_iou[2] == pytest.approx(sum(IOUS.values()) / 6)


def test_candidate_ap_is_zero_without_hits():
    ious = np.array(list(IOUS.values()))
    assert candidate_ap(ious, ious, 0.95) == 0.0


def test_transposed_convolution_is_the_mechanics_answer():
    ours, theirs = _transposed_convolution(), _transposed_conv()
    assert np.array_equal(ours.quantities[0][1], theirs.quantities[0][1])
