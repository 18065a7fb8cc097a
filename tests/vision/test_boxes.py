"""Box ops against brute-force references and hand cases."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.vision.boxes import anchors, box_iou, decode, encode, nms, roi_align, roi_pool


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


# ---------------------------------------------------------------------------------- RoIAlign


def _bilinear_by_hand(plane: list[list[float]], y: float, x: float) -> float:
    """One point read from a (H, W) plane as in Mask R-CNN's reference (0 beyond one cell)."""
    h, w = len(plane), len(plane[0])
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return (
        (1 - ly) * (1 - lx) * plane[y0][x0]
        + (1 - ly) * lx * plane[y0][x1]
        + ly * (1 - lx) * plane[y1][x0]
        + ly * lx * plane[y1][x1]
    )


def _roi_align_by_hand(features, rois, out, scale, ratio, aligned):
    """Loop over RoIs, channels, bins and sample points; bilinear by hand; mean per bin."""
    oh, ow = out
    result = torch.zeros(len(rois), features.shape[1], oh, ow, dtype=torch.float64)
    off = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = ratio if ratio > 0 else max(1, math.ceil(rh / oh))
        gw = ratio if ratio > 0 else max(1, math.ceil(rw / ow))
        for c in range(features.shape[1]):
            plane = features[int(b), c].tolist()
            for p in range(oh):
                for q in range(ow):
                    total = 0.0
                    for iy in range(gh):
                        y = sy + p * rh / oh + (iy + 0.5) * rh / oh / gh
                        for ix in range(gw):
                            x = sx + q * rw / ow + (ix + 0.5) * rw / ow / gw
                            total += _bilinear_by_hand(plane, y, x)
                    result[k, c, p, q] = total / (gh * gw)
    return result


@pytest.mark.parametrize(
    ("ratio", "aligned", "scale"),
    [(2, True, 0.5), (1, False, 0.5), (0, True, 1.0), (3, False, 1.0)],
)
def test_roi_align_equals_brute_force_crop_and_pool(ratio, aligned, scale):
    g = torch.Generator().manual_seed(3)
    features = torch.randn(2, 3, 6, 7, generator=g, dtype=torch.float64)
    boxes = _random_boxes(5, g) * 0.7 - 1.5  # some RoIs poke out of the map
    boxes = torch.cat([boxes, torch.tensor([[2.0, 3.0, 2.0, 3.0]], dtype=torch.float64)])
    index = torch.tensor([0, 1, 1, 0, 1, 0], dtype=torch.float64)[:, None]
    rois = torch.cat([index, boxes], 1)
    got = roi_align(features, rois, (2, 3), scale, sampling_ratio=ratio, aligned=aligned)
    want = _roi_align_by_hand(features, rois, (2, 3), scale, ratio, aligned)
    assert got.shape == (6, 3, 2, 3)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_roi_align_hand_case():
    # a 4x4 ramp f[i, j] = 4 i + j: bilinear in the interior, so a bin's value is the ramp at
    # the bin's centre; aligned=True puts pixel centres on cell centres.
    f = torch.arange(16.0, dtype=torch.float64).reshape(1, 1, 4, 4)
    whole = roi_align(f, torch.tensor([[0.0, 0, 0, 4, 4]]), (2, 2), sampling_ratio=2)
    assert whole[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]  # 2x2 cell means
    # RoI (1, 1)-(3, 3) in pixels: centre 2 - 0.5 = 1.5 in cells -> 4 * 1.5 + 1.5
    centre = roi_align(f, torch.tensor([[0.0, 1, 1, 3, 3]]), (1, 1), sampling_ratio=4)
    assert centre.item() == pytest.approx(7.5)
    # without the half-pixel offset the same RoI is centred on cell (2, 2): 4 * 2 + 2
    unaligned = roi_align(
        f, torch.tensor([[0.0, 1, 1, 3, 3]]), (1, 1), sampling_ratio=4, aligned=False
    )
    assert unaligned.item() == pytest.approx(10.0)


def test_roi_align_gradients_flow_to_the_features():
    g = torch.Generator().manual_seed(4)
    features = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0.0, 0.3, 0.6, 3.7, 4.1], [0.0, 1.2, 0.1, 2.9, 2.2]], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda f: roi_align(f, rois, (2, 2), 1.0, sampling_ratio=2), (features,)
    )


@pytest.mark.parametrize("layer", [roi_align, roi_pool])
def test_roi_layers_refuse_bad_input_and_accept_no_roi(layer):
    f = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ConfigError, match=r"\(N, C, H, W\)"):
        layer(torch.zeros(2, 4, 4), torch.zeros(1, 5), (2, 2))
    with pytest.raises(ConfigError, match=r"\(K, 5\)"):
        layer(f, torch.zeros(1, 4), (2, 2))
    with pytest.raises(ConfigError, match="degenerate"):
        layer(f, torch.tensor([[0.0, 3, 0, 1, 2]]), (2, 2))
    for index in (1.0, -1.0, 0.5):
        with pytest.raises(ConfigError, match="batch indices"):
            layer(f, torch.tensor([[index, 0, 0, 2, 2]]), (2, 2))
    assert layer(f, torch.zeros(0, 5), (3, 3)).shape == (0, 2, 3, 3)
