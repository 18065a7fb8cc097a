"""The localiser's soft-argmax box, RoIs, stop-gradient and summed loss against by-hand values."""

from __future__ import annotations

import math

import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.vision.boxes import roi_pool
from deepnotes.vision.localisation import STRIDE, Localiser, localisation_loss


def _net() -> Localiser:
    torch.manual_seed(0)
    return Localiser(side=16, widths=(4, 6, 8), roi=2, hidden=8).double()


def test_soft_argmax_box_equals_a_loop_over_cells():
    net = _net()
    out = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    boxes, p = net.boxes_from_map(out)
    for n in range(2):
        z = sum(math.exp(out[n, 0, i, j]) for i in range(4) for j in range(4))
        expected = [0.0] * 4
        for i in range(4):  # rows
            for j in range(4):  # columns
                u, v = STRIDE * j + STRIDE / 2, STRIDE * i + STRIDE / 2
                d = [STRIDE * math.log1p(math.exp(out[n, 1 + e, i, j])) for e in range(4)]
                w = math.exp(out[n, 0, i, j]) / z
                assert float(p[n, 4 * i + j]) == pytest.approx(w, rel=1e-12)
                for e, corner in enumerate((u - d[0], v - d[1], u + d[2], v + d[3])):
                    expected[e] += w * corner
        assert boxes[n].tolist() == pytest.approx(expected, rel=1e-12)


def test_a_peaked_location_gives_that_cells_box():
    net = _net()
    out = torch.full((1, 5, 4, 4), -50.0, dtype=torch.float64)
    out[0, 0, 2, 1] = 50.0  # the cell at row 2, column 1: centre (u, v) = (6, 10)
    out[0, 1:, 2, 1] = math.log(math.expm1(0.75))  # softplus = 0.75 -> distance 3 pixels
    boxes, _ = net.boxes_from_map(out)
    assert boxes[0].tolist() == pytest.approx([3.0, 7.0, 9.0, 13.0], abs=1e-12)


def test_rois_take_exclusive_ends_to_last_pixels_clipped_and_detached():
    net = _net()
    boxes = torch.tensor([[2.0, 3, 7, 9], [-4, 5, 30, 5.5]], requires_grad=True)
    rois = net.rois(boxes)
    assert not rois.requires_grad
    assert rois.tolist() == [[0.0, 2, 3, 6, 8], [1.0, 0, 5, 15, 5]]


def test_class_logits_read_the_roi_pooled_stride2_map():
    net = _net()
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    logits, boxes = net(x)
    h2 = net.stride2(x)
    expected = net.class_head(roi_pool(h2, net.rois(boxes), (2, 2), spatial_scale=0.5))
    assert torch.equal(logits, expected)


def test_cross_entropy_does_not_train_the_box_head_and_box_loss_not_the_class_head():
    net = _net()
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    logits, boxes = net(x)
    labels = torch.tensor([0, 4, 9])
    torch.nn.functional.cross_entropy(logits, labels).backward(retain_graph=True)
    assert all(p.grad is None for p in net.box_head.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.class_head.parameters())
    net.zero_grad(set_to_none=True)
    boxes.pow(2).sum().backward()
    assert all(p.grad is None for p in net.class_head.parameters())
    assert all(p.grad.abs().sum() > 0 for p in net.box_head.parameters())


def test_loss_is_the_sum_of_cross_entropy_and_weighted_squared_l2():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 10, generator=g, dtype=torch.float64)
    labels = torch.tensor([1, 0, 7])
    boxes = torch.rand(3, 4, generator=g, dtype=torch.float64) * 16
    true = torch.rand(3, 4, generator=g, dtype=torch.float64) * 16
    loss, ce, l2 = localisation_loss(logits, boxes, labels, true, side=16, box_weight=2.5)
    ce_hand = (
        sum(
            -float(logits[n, labels[n]]) + math.log(sum(math.exp(v) for v in logits[n].tolist()))
            for n in range(3)
        )
        / 3
    )
    l2_hand = (
        sum(
            sum(((float(boxes[n, e]) - float(true[n, e])) / 16) ** 2 for e in range(4))
            for n in range(3)
        )
        / 3
    )
    assert float(ce) == pytest.approx(ce_hand, rel=1e-12)
    assert float(l2) == pytest.approx(l2_hand, rel=1e-12)
    assert float(loss) == pytest.approx(ce_hand + 2.5 * l2_hand, rel=1e-12)


def test_bad_shapes_are_refused_with_what_was_expected():
    net = _net()
    with pytest.raises(ConfigError, match=r"\(N, 1, 16, 16\)"):
        net(torch.zeros(2, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ConfigError, match="multiple of 4"):
        Localiser(side=30)
    with pytest.raises(ConfigError, match=r"\(N, 4\)"):
        localisation_loss(
            torch.zeros(2, 10), torch.zeros(2, 3), torch.zeros(2).long(), torch.zeros(2, 3), 16, 1.0
        )
