r"""A two-stage detector in the Faster R-CNN mould, small enough for a CPU (notes, discussion 5,
section 2 "Object detection": region proposals, then classification and box regression of each
region; "four losses": RPN objectness, RPN box, head class, head box).

References: Ren, He, Girshick & Sun 2015, "Faster R-CNN: Towards Real-Time Object Detection
with Region Proposal Networks" (https://arxiv.org/abs/1506.01497); RoIAlign from He et al.
2017, "Mask R-CNN" (https://arxiv.org/abs/1703.06870).

Architecture (single feature map, stride :data:`STRIDE` = 4):

- backbone: conv 3x3 (1 -> c/2), ReLU, conv 3x3 stride 2 (-> c), ReLU, conv 3x3 stride 2
  (-> c), ReLU, conv 3x3 (-> c), ReLU: features (N, c, S/4, S/4);
- RPN: conv 3x3 + ReLU, then per cell and anchor an objectness logit (1x1 conv, A outputs) and
  box deltas (1x1 conv, 4A outputs) against :func:`~deepnotes.vision.boxes.anchors`;
- proposals per image: decode the deltas (:func:`~deepnotes.vision.boxes.decode`, deltas
  clamped at ``log(1000/16)`` as in Detectron), clip to the canvas, drop boxes under
  ``min_size`` pixels, keep the ``pre_nms`` best by objectness, NMS at ``rpn_nms`` (0.7),
  keep the ``post_nms`` best;
- RoI head: :func:`~deepnotes.vision.boxes.roi_align` (7x7, ``sampling_ratio`` 2, aligned) on
  the features, a fully connected layer, then 11 class logits (0 = background, 1 + digit) and
  class-agnostic box deltas (4), scaled by :data:`BOX_WEIGHTS` (10, 10, 5, 5) as in
  Detectron/torchvision.

Deviations from the paper (each pinned by a test in tests/vision/test_detection.py): one
feature map, no feature pyramid; class-agnostic box deltas (the paper regresses per class);
RoIAlign instead of RoI max pooling (Mask R-CNN's layer); RPN positives at IoU >= 0.5 instead
of 0.7, because digits of 12-18 pixels rarely reach 0.7 with a handful of anchor shapes.

Labelling and sampling rules (Faster R-CNN, section 3.1.2, with the IoU bars of small
objects):

- an anchor is **positive** if its IoU with some ground-truth box is >= ``rpn_pos`` (0.5:
  digits of 10-16 pixels rarely reach 0.7 with a fixed anchor set) or it is, for some
  ground-truth box, the anchor of highest IoU (ties all positive); **negative** if its best IoU
  is < ``rpn_neg`` (0.3) and it is not positive; otherwise ignored. Each image samples
  ``rpn_batch`` anchors, at most half positive, the rest negatives (uniformly without
  replacement from the detector's generator);
- a RoI (the proposals, detached, plus the ground-truth boxes) is **foreground** with the class
  of its best ground-truth box if that IoU is >= ``roi_fg`` (0.5), else **background** (class
  0). Each image samples ``roi_batch`` RoIs, at most ``roi_fg_fraction`` (1/2) foreground.

Loss (the four terms, weights all 1, stated):
:math:`L = L_{obj} + L_{rpn\,box} + L_{cls} + L_{box}` with :math:`L_{obj}` the binary
cross-entropy of the sampled anchors' objectness, :math:`L_{rpn\,box}` the smooth L1
(:math:`\beta = 1/9`) of the positive anchors' deltas against
:func:`~deepnotes.vision.boxes.encode` summed and divided by the number of sampled anchors,
:math:`L_{cls}` the cross-entropy of the sampled RoIs over 11 classes, and :math:`L_{box}` the
smooth L1 (:math:`\beta = 1/9`) of the foreground RoIs' scaled deltas, divided by the number
of sampled RoIs (torchvision's normalisation).

Inference (:meth:`FasterRCNN.detect`): per proposal the softmax class scores; for each digit
class, the decoded box (clipped) with that class's score, kept if the score is > ``score_min``;
with ``nms=True`` per-class NMS at ``nms_iou`` (0.5); at most ``max_dets`` per image by score.
An image with no detection gives empty tensors (AP 0 for its objects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepnotes.core.errors import ConfigError
from deepnotes.vision.boxes import anchors, box_iou, decode, encode, roi_align
from deepnotes.vision.boxes import nms as non_max_suppression

STRIDE = 4
"""Feature stride of the backbone in pixels."""
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
"""The RoI head regresses ``encode(gt, roi) * BOX_WEIGHTS`` (Detectron's normalisation)."""
DELTA_CLAMP = math.log(1000.0 / 16)
"""Width/height deltas are clamped here before ``exp`` (Detectron)."""
SMOOTH_L1_BETA = 1.0 / 9
NUM_CLASSES = 11
"""Background + the ten digits."""


@dataclass(frozen=True)
class DetectorConfig:
    """Sizes and rules of :class:`FasterRCNN` (module docstring)."""

    channels: int = 32
    """Backbone and RPN width c."""
    anchor_sizes: tuple[float, ...] = (8.0, 12.0, 16.0)
    """Anchor sides in pixels (area size^2)."""
    anchor_ratios: tuple[float, ...] = (1.0, 1.6)
    """Height over width; digits' ink boxes are taller than wide."""
    rpn_pos: float = 0.5
    """An anchor with IoU >= this with a ground-truth box is positive."""
    rpn_neg: float = 0.3
    """An anchor whose best IoU is below this is negative."""
    rpn_batch: int = 64
    """Anchors sampled per image for the RPN losses (at most half positive)."""
    pre_nms: int = 60
    """Proposals kept per image by objectness before the RPN's NMS."""
    post_nms: int = 20
    """Proposals kept per image after it."""
    rpn_nms: float = 0.7
    """IoU bar of the RPN's NMS."""
    min_size: float = 1.0
    """Proposals narrower or lower than this many pixels are dropped."""
    roi_size: int = 7
    """RoIAlign output side."""
    roi_fg: float = 0.5
    """A RoI with IoU >= this with a ground-truth box is foreground."""
    roi_batch: int = 32
    """RoIs sampled per image for the head's losses."""
    roi_fg_fraction: float = 0.5
    """At most this fraction of them foreground."""
    hidden: int = 128
    """Width of the head's fully connected layer."""
    score_min: float = 0.05
    """Detections need a class score above this."""
    nms_iou: float = 0.5
    """IoU bar of the per-class NMS at inference."""
    max_dets: int = 100
    """Detections kept per image."""

    def __post_init__(self) -> None:
        if self.channels < 2 or self.hidden < 1 or self.roi_size < 1:
            raise ConfigError("channels >= 2, hidden >= 1 and roi_size >= 1 are required")
        if not 0 <= self.rpn_neg <= self.rpn_pos <= 1 or not 0 < self.roi_fg <= 1:
            raise ConfigError(
                f"need 0 <= rpn_neg <= rpn_pos <= 1 and 0 < roi_fg <= 1, got "
                f"{self.rpn_neg}, {self.rpn_pos}, {self.roi_fg}"
            )
        if min(self.rpn_batch, self.roi_batch, self.pre_nms, self.post_nms, self.max_dets) < 1:
            raise ConfigError("rpn_batch, roi_batch, pre_nms, post_nms and max_dets must be >= 1")
        if not 0 < self.roi_fg_fraction <= 1:
            raise ConfigError(f"roi_fg_fraction must be in (0, 1], got {self.roi_fg_fraction}")

    @property
    def num_anchors(self) -> int:
        """Anchors per feature cell, A."""
        return len(self.anchor_sizes) * len(self.anchor_ratios)


def label_anchors(
    anchor_boxes: Tensor, gt: Tensor, pos: float, neg: float
) -> tuple[Tensor, Tensor]:
    """RPN labels (M,) int64 of anchors (M, 4) against ground truth (G, 4): 1 positive, 0
    negative, -1 ignored (module docstring), and the index (M,) of each anchor's best box
    (0 when G = 0)."""
    m = anchor_boxes.shape[0]
    labels = torch.full((m,), -1, dtype=torch.int64)
    if gt.shape[0] == 0:
        labels[:] = 0
        return labels, torch.zeros(m, dtype=torch.int64)
    iou = box_iou(anchor_boxes, gt)  # (M, G)
    best, which = iou.max(1)
    labels[best < neg] = 0
    labels[best >= pos] = 1
    top = iou.max(0).values  # (G,) each box's best anchor IoU
    is_top = ((iou == top[None]) & (top[None] > 0)).any(1)
    labels[is_top] = 1
    return labels, which


def label_rois(rois: Tensor, gt: Tensor, gt_labels: Tensor, fg: float) -> tuple[Tensor, Tensor]:
    """Head classes (R,) int64 of RoIs (R, 4): ``1 + digit`` of the best ground-truth box if its
    IoU is >= ``fg``, else 0 (background); and the index (R,) of that best box."""
    r = rois.shape[0]
    if gt.shape[0] == 0:
        return torch.zeros(r, dtype=torch.int64), torch.zeros(r, dtype=torch.int64)
    best, which = box_iou(rois, gt).max(1)
    classes = torch.where(best >= fg, gt_labels[which] + 1, 0)
    return classes, which


def sample(labels: Tensor, batch: int, positive_fraction: float, g: torch.Generator) -> Tensor:
    """Indices of a sample of at most ``batch`` items: up to ``positive_fraction * batch`` of
    the positives (``labels >= 1``), the rest from the negatives (``labels == 0``); ignored
    items (-1) are never drawn. Uniform without replacement from ``g``."""
    pos = torch.nonzero(labels >= 1).flatten()
    negs = torch.nonzero(labels == 0).flatten()
    n_pos = min(len(pos), int(batch * positive_fraction))
    n_neg = min(len(negs), batch - n_pos)
    pos = pos[torch.randperm(len(pos), generator=g)[:n_pos]]
    negs = negs[torch.randperm(len(negs), generator=g)[:n_neg]]
    return torch.cat([pos, negs])


def clip_boxes(boxes: Tensor, side: int) -> Tensor:
    """Boxes (N, 4) clipped to the canvas ``[0, side]^2``."""
    return boxes.clamp(0.0, float(side))


def _decode(deltas: Tensor, base: Tensor) -> Tensor:
    dw = deltas[:, 2:].clamp(max=DELTA_CLAMP)
    return decode(torch.cat([deltas[:, :2], dw], 1), base)


def _smooth_l1(pred: Tensor, target: Tensor) -> Tensor:
    return F.smooth_l1_loss(pred, target, beta=SMOOTH_L1_BETA, reduction="sum")


class FasterRCNN(nn.Module):
    """Backbone, RPN and RoI head on canvases (N, 1, side, side) (module docstring).

    Arguments:
        side: canvas side S in pixels (a multiple of :data:`STRIDE`).
        cfg: sizes and rules.

    Example:
        >>> det = FasterRCNN(32)
        >>> boxes, scores, labels = det.detect(torch.zeros(2, 1, 32, 32))[0]
        >>> boxes.shape[1], scores.ndim, labels.dtype
        (4, 1, torch.int64)
    """

    def __init__(self, side: int, cfg: DetectorConfig | None = None) -> None:
        super().__init__()
        if side < STRIDE or side % STRIDE:
            raise ConfigError(f"side must be a positive multiple of {STRIDE}, got {side}")
        self.side = side
        self.cfg = cfg = cfg or DetectorConfig()
        c, a = cfg.channels, cfg.num_anchors
        self.backbone = nn.Sequential(
            nn.Conv2d(1, c // 2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(),
        )
        self.rpn_conv = nn.Conv2d(c, c, 3, padding=1)
        self.rpn_objectness = nn.Conv2d(c, a, 1)
        self.rpn_deltas = nn.Conv2d(c, 4 * a, 1)
        cell = side // STRIDE
        self.register_buffer(
            "anchor_boxes",
            anchors((cell, cell), STRIDE, cfg.anchor_sizes, cfg.anchor_ratios),
            persistent=False,
        )  # (cell * cell * A, 4)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c * cfg.roi_size**2, cfg.hidden), nn.ReLU()
        )
        self.classify = nn.Linear(cfg.hidden, NUM_CLASSES)
        self.box = nn.Linear(cfg.hidden, 4)
        self.register_buffer("box_weights", torch.tensor(BOX_WEIGHTS), persistent=False)

    # ---------------------------------------------------------------------- pieces
    def _check(self, images: Tensor) -> Tensor:
        images = torch.as_tensor(images)
        if images.ndim != 4 or images.shape[1:] != (1, self.side, self.side):
            raise ConfigError(
                f"images must be (N, 1, {self.side}, {self.side}) canvases, "
                f"got {tuple(images.shape)}"
            )
        return images.float()

    def rpn(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Features (N, c, S/4, S/4), objectness logits (N, M) and deltas (N, M, 4) for the
        M = (S/4)^2 A anchors in :func:`~deepnotes.vision.boxes.anchors` order."""
        feats = self.backbone(images)
        h = F.relu(self.rpn_conv(feats))
        n, a = h.shape[0], self.cfg.num_anchors
        obj = self.rpn_objectness(h).permute(0, 2, 3, 1).reshape(n, -1)  # (N, H W A)
        deltas = self.rpn_deltas(h).permute(0, 2, 3, 1).reshape(n, -1, a, 4).reshape(n, -1, 4)
        return feats, obj, deltas

    def proposals(self, obj: Tensor, deltas: Tensor) -> list[Tensor]:
        """Per image the proposal boxes (P, 4), P <= ``post_nms`` (no gradient)."""
        cfg, out = self.cfg, []
        with torch.no_grad():
            for logits, d in zip(obj, deltas, strict=True):
                boxes = clip_boxes(_decode(d, self.anchor_boxes), self.side)
                wh = boxes[:, 2:] - boxes[:, :2]
                keep = torch.nonzero((wh >= cfg.min_size).all(1)).flatten()
                top = logits[keep].argsort(descending=True)[: cfg.pre_nms]
                keep = keep[top]
                kept = non_max_suppression(boxes[keep], logits[keep], cfg.rpn_nms)[: cfg.post_nms]
                out.append(boxes[keep[kept]])
        return out

    def head_outputs(self, feats: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Class logits (R, 11) and scaled box deltas (R, 4) of the RoIs of every image."""
        index = torch.cat(
            [torch.full((len(r), 1), float(i)) for i, r in enumerate(rois)] or [torch.zeros(0, 1)]
        )
        rows = torch.cat([index, torch.cat(rois) if rois else torch.zeros(0, 4)], 1)
        pooled = roi_align(
            feats, rows, (self.cfg.roi_size,) * 2, 1.0 / STRIDE, sampling_ratio=2, aligned=True
        )
        h = self.head(pooled)
        return self.classify(h), self.box(h)

    # ---------------------------------------------------------------------- training
    def losses(
        self, images: Tensor, gt_boxes: list[Tensor], gt_labels: list[Tensor], g: torch.Generator
    ) -> dict[str, Tensor]:
        """The four losses on a batch (module docstring): ``rpn_objectness``, ``rpn_box``,
        ``head_class``, ``head_box``; samples drawn from ``g``."""
        images = self._check(images)
        if len(gt_boxes) != images.shape[0] or len(gt_labels) != images.shape[0]:
            raise ConfigError("need one gt_boxes and one gt_labels entry per image")
        cfg = self.cfg
        feats, obj, deltas = self.rpn(images)
        obj_terms, rpn_box, rpn_count = [], obj.new_zeros(()), 0
        for i, gt in enumerate(gt_boxes):
            labels, which = label_anchors(self.anchor_boxes, gt, cfg.rpn_pos, cfg.rpn_neg)
            idx = sample(labels, cfg.rpn_batch, 0.5, g)
            obj_terms.append(
                F.binary_cross_entropy_with_logits(
                    obj[i, idx], labels[idx].float(), reduction="sum"
                )
            )
            pos = idx[labels[idx] == 1]
            if len(pos):
                target = encode(gt[which[pos]], self.anchor_boxes[pos])
                rpn_box = rpn_box + _smooth_l1(deltas[i, pos], target)
            rpn_count += len(idx)
        props = self.proposals(obj, deltas)
        rois, classes, targets = [], [], []
        for i, (gt, gl) in enumerate(zip(gt_boxes, gt_labels, strict=True)):
            cand = torch.cat([props[i], gt])
            cls, which = label_rois(cand, gt, gl, cfg.roi_fg)
            idx = sample(cls, cfg.roi_batch, cfg.roi_fg_fraction, g)
            rois.append(cand[idx])
            classes.append(cls[idx])
            fg = cls[idx] > 0
            t = torch.zeros(len(idx), 4)
            if fg.any():
                t[fg] = encode(gt[which[idx][fg]], cand[idx][fg]) * self.box_weights
            targets.append(t)
        logits, box = self.head_outputs(feats, rois)
        cls_all, t_all = torch.cat(classes), torch.cat(targets)
        fg = cls_all > 0
        n_rois = max(len(cls_all), 1)
        return {
            "rpn_objectness": torch.stack(obj_terms).sum() / max(rpn_count, 1),
            "rpn_box": rpn_box / max(rpn_count, 1),
            "head_class": F.cross_entropy(logits, cls_all, reduction="sum") / n_rois,
            "head_box": _smooth_l1(box[fg], t_all[fg]) / n_rois,
        }

    # ---------------------------------------------------------------------- inference
    @torch.no_grad()
    def detect(self, images: Tensor, nms: bool = True) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per image ``(boxes (D, 4), scores (D,), labels (D,) int64 digits 0..9)``, by falling
        score; ``nms=False`` skips the per-class NMS (the duplicates stay)."""
        images = self._check(images)
        cfg = self.cfg
        feats, obj, deltas = self.rpn(images)
        props = self.proposals(obj, deltas)
        logits, box = self.head_outputs(feats, props)
        probs = logits.softmax(1)
        out, start = [], 0
        for p in props:
            r = len(p)
            pr, bx = probs[start : start + r], box[start : start + r]
            start += r
            boxes = clip_boxes(_decode(bx / self.box_weights, p), self.side) if r else p
            ok = (boxes[:, 2:] > boxes[:, :2]).all(1)
            keep_b, keep_s, keep_l = [], [], []
            for c in range(1, NUM_CLASSES):
                sel = torch.nonzero((pr[:, c] > cfg.score_min) & ok).flatten()
                b, s = boxes[sel], pr[sel, c]
                if nms and len(sel):
                    k = non_max_suppression(b, s, cfg.nms_iou)
                    b, s = b[k], s[k]
                keep_b.append(b)
                keep_s.append(s)
                keep_l.append(torch.full((len(s),), c - 1, dtype=torch.int64))
            b, s, lab = torch.cat(keep_b), torch.cat(keep_s), torch.cat(keep_l)
            order = torch.sort(s, descending=True, stable=True).indices[: cfg.max_dets]
            out.append((b[order], s[order], lab[order]))
        return out
