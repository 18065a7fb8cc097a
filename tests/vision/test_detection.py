"""The two-stage detector: labelling and sampling rules on hand cases, shapes, errors, the four
losses, NMS on/off and empty detections."""

from __future__ import annotations

import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.data.scenes import digit_scenes
from deepnotes.vision.boxes import box_iou
from deepnotes.vision.detection import (
    NUM_CLASSES,
    DetectorConfig,
    FasterRCNN,
    label_anchors,
    label_rois,
    sample,
)

SIDE = 24


def _scenes(n: int = 2):
    return digit_scenes(n, side=SIDE, objects=(1, 2), scale=(1.0, 1.5), seed=5, split="train")


def _detector(**kw) -> FasterRCNN:
    torch.manual_seed(0)
    return FasterRCNN(SIDE, DetectorConfig(channels=8, hidden=16, **kw))


def test_anchor_labels_by_hand():
    gt = torch.tensor([[0.0, 0, 10, 10], [40.0, 40, 44, 44]])
    anchor_boxes = torch.tensor(
        [
            [0.0, 0, 10, 10],  # IoU 1 with box 0: positive
            [0.0, 0, 10, 5],  # IoU 0.5 = rpn_pos: positive
            [0.0, 0, 10, 4],  # IoU 0.4, between the bars: ignored
            [20.0, 20, 30, 30],  # IoU 0: negative
            [38.0, 38, 46, 46],  # IoU 0.25 < 0.3 with box 1, but its best anchor: positive
        ]
    )
    labels, which = label_anchors(anchor_boxes, gt, pos=0.5, neg=0.3)
    assert labels.tolist() == [1, 1, -1, 0, 1]
    assert which[[0, 1, 4]].tolist() == [0, 0, 1]
    # no ground truth: every anchor is a negative
    none, _ = label_anchors(anchor_boxes, torch.zeros(0, 4), pos=0.5, neg=0.3)
    assert none.tolist() == [0] * 5


def test_roi_labels_by_hand():
    gt = torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]])
    rois = torch.tensor(
        [[0.0, 0, 10, 5], [0.0, 0, 10, 4.9], [21.0, 21, 30, 30], [50.0, 50, 60, 60]]
    )
    classes, which = label_rois(rois, gt, torch.tensor([7, 2]), fg=0.5)
    # IoU 0.5 -> digit 7 (class 8); 0.49 -> background; 0.81 -> digit 2 (class 3); 0 -> background
    assert classes.tolist() == [8, 0, 3, 0]
    assert which[[0, 2]].tolist() == [0, 1]


def test_sampling_caps_positives_and_skips_ignored():
    labels = torch.tensor([1] * 10 + [-1] * 50 + [0] * 30)
    g = torch.Generator().manual_seed(0)
    idx = sample(labels, batch=16, positive_fraction=0.25, g=g)
    assert len(idx) == 16 and len(set(idx.tolist())) == 16
    assert (labels[idx] == 1).sum() == 4 and (labels[idx] == 0).sum() == 12
    # too few negatives: the sample is smaller, never an ignored item
    few = sample(torch.tensor([1, 1, -1, 0]), batch=8, positive_fraction=0.5, g=g)
    assert sorted(few.tolist()) == [0, 1, 3]


def test_shapes_and_errors():
    det = _detector()
    with pytest.raises(ConfigError, match=r"\(N, 1, 24, 24\)"):
        det.detect(torch.zeros(2, 3, SIDE, SIDE))
    with pytest.raises(ConfigError, match=r"\(N, 1, 24, 24\)"):
        det.losses(torch.zeros(1, 1, 20, 20), [torch.zeros(0, 4)], [torch.zeros(0)], None)
    with pytest.raises(ConfigError, match="multiple of 4"):
        FasterRCNN(30)
    with pytest.raises(ConfigError, match="rpn_neg <= rpn_pos"):
        DetectorConfig(rpn_pos=0.2, rpn_neg=0.3)
    feats, obj, deltas = det.rpn(torch.zeros(2, 1, SIDE, SIDE))
    m = (SIDE // 4) ** 2 * det.cfg.num_anchors
    assert feats.shape == (2, 8, 6, 6) and obj.shape == (2, m) and deltas.shape == (2, m, 4)
    assert det.anchor_boxes.shape == (m, 4)
    props = det.proposals(obj, deltas)
    logits, box = det.head_outputs(feats, props)  # class-agnostic deltas: 4 per RoI
    assert logits.shape == (sum(map(len, props)), NUM_CLASSES) and box.shape == (len(logits), 4)
    for p in props:
        assert len(p) <= det.cfg.post_nms
        assert (p >= 0).all() and (p <= SIDE).all()
        assert (p[:, 2:] - p[:, :2] >= det.cfg.min_size).all()


def test_four_losses_train_jointly():
    s = _scenes()
    det = _detector()
    opt = torch.optim.Adam(det.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    first = None
    for _ in range(12):
        parts = det.losses(s.images, s.boxes, s.labels, g)
        assert set(parts) == {"rpn_objectness", "rpn_box", "head_class", "head_box"}
        loss = sum(parts.values())
        opt.zero_grad()
        loss.backward()
        if first is None:
            first = float(loss.detach())
            grads = [p.grad for p in det.backbone.parameters()]
            assert all(gr is not None and gr.abs().sum() > 0 for gr in grads)
        opt.step()
    assert float(loss.detach()) < 0.6 * first


def test_detect_with_and_without_nms_and_empty():
    det = _detector(score_min=0.0)
    images = _scenes(3).images
    with_nms, without = det.detect(images, nms=True), det.detect(images, nms=False)
    assert len(with_nms) == len(without) == 3
    for (b, s, lab), (_, rs, _) in zip(with_nms, without, strict=True):
        assert b.shape[1] == 4 and s.shape == lab.shape == (len(b),)
        assert lab.dtype == torch.int64 and ((lab >= 0) & (lab < NUM_CLASSES - 1)).all()
        assert (s[:-1] >= s[1:]).all() and len(rs) >= len(s)
        for c in lab.unique():  # NMS left no same-class pair above its IoU bar
            iou = box_iou(b[lab == c], b[lab == c]).fill_diagonal_(0)
            assert (iou <= det.cfg.nms_iou).all()
    empty = _detector(score_min=1.0).detect(images)
    for b, s, lab in empty:
        assert b.shape == (0, 4) and s.shape == (0,) and lab.shape == (0,)
