"""Box ops against brute-force references and hand cases."""

from __future__ import annotations

import itertools

import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.vision.boxes import anchors, box_iou, decode, encode, nms, roi_pool


def _random_boxes(n: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 20
    return torch.cat([xy, xy + 1 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 10], 1)


def test_iou_by_hand_and_brute_force():
    a = torch.tensor([[0.0, 0, 2, 2]])
    b = torch.tensor([[1.0, 1, 3, 3], [2.0, 2, 4, 4], [0.0, 0, 2, 2]])
    assert box_iou(a, b)[0].tolist() == pytest.approx([1 / 7, 0.0, 1.0])
    g = torch.Generator().manual_seed(0)
    p, q = _random_boxes(5, g), _random_boxes(6, g)
    iou = box_iou(p, q)
    for i, j in itertools.product(range(5), range(6)):
        w = max(0.0, min(p[i, 2], q[j, 2]) - max(p[i, 0], q[j, 0]))
        h = max(0.0, min(p[i, 3], q[j, 3]) - max(p[i, 1], q[j, 1]))
        area = lambda r: float((r[2] - r[0]) * (r[3] - r[1]))  # noqa: E731
        assert float(iou[i, j]) == pytest.approx(w * h / (area(p[i]) + area(q[j]) - w * h))


def test_degenerate_boxes_are_refused_with_the_format():
    with pytest.raises(ConfigError, match=r"\(x1, y1, x2, y2\) with x1 <= x2"):
        box_iou(torch.tensor([[3.0, 0, 1, 2]]), torch.tensor([[0.0, 0, 1, 1]]))


def test_encode_decode_round_trip_and_values():
    g = torch.Generator().manual_seed(1)
    boxes, anc = _random_boxes(7, g), _random_boxes(7, g)
    assert torch.allclose(decode(encode(boxes, anc), anc), boxes, atol=1e-10)
    t = encode(torch.tensor([[2.0, 0, 6, 2]]), torch.tensor([[0.0, 0, 2, 2]]))
    assert t[0].tolist() == pytest.approx([1.5, 0.0, float(torch.log(torch.tensor(2.0))), 0.0])


def _nms_reference(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    keep = []
    for i in order:
        if all(float(box_iou(boxes[i : i + 1], boxes[j : j + 1])) <= thr for j in keep):
            keep.append(i)
    return keep


def test_nms_hand_case_and_brute_force():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 11, 11], [20.0, 20, 30, 30], [0.0, 0, 9, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    g = torch.Generator().manual_seed(2)
    for thr in (0.1, 0.3, 0.7):
        b, s = _random_boxes(30, g), torch.rand(30, generator=g)
        assert nms(b, s, thr).tolist() == _nms_reference(b, s, thr)


def test_anchors_layout():
    a = anchors((2, 3), 8.0, sizes=(4.0,), ratios=(1.0, 4.0))
    assert a.shape == (12, 4)
    assert a[0].tolist() == pytest.approx([2.0, 2.0, 6.0, 6.0])
    assert a[1].tolist() == pytest.approx([3.0, 0.0, 5.0, 8.0])  # w = 2, h = 8
    assert a[2].tolist() == pytest.approx([10.0, 2.0, 14.0, 6.0])  # next column
    areas = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    assert torch.allclose(areas, torch.full((12,), 16.0))


def test_roi_pool_against_crop_and_pool():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(2, 3, 9, 11, generator=g)
    rois = torch.tensor(
        [[0, 0.0, 0, 10, 8], [1, 2.0, 3, 6, 5], [1, 4.0, 4, 4, 4], [0, 3.0, 1, 9, 7]]
    )
    out = roi_pool(feats, rois, (2, 3))
    for k, row in enumerate(rois.tolist()):
        b, x1, y1, x2, y2 = (round(v) for v in row)
        h, w = y2 - y1 + 1, x2 - x1 + 1
        for p, q in itertools.product(range(2), range(3)):
            r0, r1 = y1 + (p * h) // 2, y1 + -(-((p + 1) * h) // 2)
            c0, c1 = x1 + (q * w) // 3, x1 + -(-((q + 1) * w) // 3)
            ref = feats[b, :, r0:r1, c0:c1].amax(dim=(1, 2))
            assert torch.equal(out[k, :, p, q], ref)
