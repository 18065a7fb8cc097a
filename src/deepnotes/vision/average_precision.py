r"""Average precision and mAP of a detector (notes, discussion 5, section 1, problem 1).

Matching (COCO's rules, pycocotools ``COCOeval.evaluateImg`` with no crowd boxes and the area
range "all"): per image and class, detections are taken by falling score (stable on ties, at
most ``max_dets`` per image and class); each takes, among the ground-truth boxes not yet taken,
the one of highest IoU provided that IoU is >= the threshold (on equal IoU the later box); else
it is a false positive.

Then per class, all images' detections are pooled and sorted by falling score (stable);
precision ``P_i = TP_i / (TP_i + FP_i)`` and recall ``R_i = TP_i / n_gt`` after the first ``i``
detections; the precision envelope ``P^*_i = max_{j >= i} P_j``. AP is

- ``"voc"`` (all-point, VOC 2010+): :math:`\sum_i (R_i - R_{i-1}) P^*_i` with :math:`R_0 = 0`;
- ``"coco"`` (101-point): the mean over ``r in {0, 0.01, ..., 1}`` of :math:`P^*` at the first
  ``i`` with :math:`R_i \ge r` (0 when recall never reaches ``r``).

Defined edge cases: a class with no ground-truth box has no AP (NaN, left out of every mean,
as COCO does); a class with ground truth and no detection has AP 0. mAP is the mean of AP over
the classes with ground truth and over the IoU thresholds (COCO's 0.5:0.05:0.95 by default).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deepnotes.core.errors import ConfigError
from deepnotes.vision.boxes import box_iou, check_boxes

COCO_THRESHOLDS = np.linspace(0.5, 0.95, 10)
"""COCO's IoU thresholds 0.5:0.05:0.95 (computed as pycocotools does)."""
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
INTERPOLATIONS = ("voc", "coco")


def match(iou: np.ndarray, threshold: float) -> np.ndarray:
    """True positives (D,) bool of detections already sorted by falling score, given their IoU
    with the ground truth (D, G), by COCO's greedy rule (module docstring)."""
    d, g = iou.shape
    taken = np.zeros(g, dtype=bool)
    tp = np.zeros(d, dtype=bool)
    bar = min(threshold, 1 - 1e-10)
    for i in range(d):
        best, m = bar, -1
        for j in range(g):
            if taken[j] or iou[i, j] < best:
                continue
            best, m = iou[i, j], j
        if m >= 0:
            taken[m] = tp[i] = True
    return tp


def precision_recall(
    scores: np.ndarray, tp: np.ndarray, num_gt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall (D,) after each detection in falling-score order (stable sort)."""
    if num_gt < 1:
        raise ConfigError(f"num_gt must be >= 1 for a precision-recall curve, got {num_gt}")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    hits = np.asarray(tp, dtype=bool)[order]
    tps = np.cumsum(hits).astype(float)
    fps = np.cumsum(~hits).astype(float)
    return tps / (tps + fps + np.spacing(1)), tps / num_gt


def average_precision(
    scores: np.ndarray, tp: np.ndarray, num_gt: int, interpolation: str = "voc"
) -> float:
    """AP of one class from pooled detections: scores (D,), true-positive flags (D,), the
    number of ground-truth boxes; NaN when ``num_gt == 0``, 0 when there is no detection."""
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if num_gt == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    precision, recall = precision_recall(scores, tp, num_gt)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if interpolation == "voc":
        steps = np.diff(np.concatenate([[0.0], recall]))
        return float(np.sum(steps * envelope))
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    q = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)
    return float(q.mean())


@dataclass(frozen=True)
class Evaluation:
    """AP per IoU threshold and class, and its means."""

    thresholds: np.ndarray
    """IoU thresholds (T,)."""
    classes: list[int]
    ap: np.ndarray
    """(T, C) AP; NaN for a class without ground truth."""

    @property
    def map(self) -> float:
        """Mean over thresholds and classes with ground truth (NaN if none has)."""
        valid = self.ap[~np.isnan(self.ap)]
        return float(valid.mean()) if valid.size else float("nan")

    def map_at(self, threshold: float) -> float:
        """Mean over classes at one of the thresholds."""
        hit = np.flatnonzero(np.isclose(self.thresholds, threshold))
        if hit.size == 0:
            raise ConfigError(f"threshold {threshold} was not evaluated; have {self.thresholds}")
        row = self.ap[hit[0]]
        return float(np.nanmean(row)) if (~np.isnan(row)).any() else float("nan")


def _as_list(name: str, items: Sequence[Tensor], n: int) -> list[np.ndarray]:
    if len(items) != n:
        raise ConfigError(f"{name} must have one entry per image ({n}), got {len(items)}")
    return [torch.as_tensor(x).detach().cpu().double().numpy() for x in items]


def evaluate(
    det_boxes: Sequence[Tensor],
    det_scores: Sequence[Tensor],
    det_labels: Sequence[Tensor],
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    *,
    thresholds: Sequence[float] | np.ndarray = COCO_THRESHOLDS,
    interpolation: str = "coco",
    max_dets: int = 100,
    classes: Sequence[int] | None = None,
) -> Evaluation:
    """AP per threshold and class over a set of images (one list entry per image).

    Arguments:
        det_boxes, det_scores, det_labels: per image (k, 4) boxes (x1, y1, x2, y2), (k,)
            scores, (k,) integer classes; k may be 0.
        gt_boxes, gt_labels: per image (g, 4) and (g,).
        thresholds: IoU thresholds in [0, 1].
        interpolation: "coco" (101-point, default) or "voc" (all-point).
        max_dets: detections kept per image and class (highest scores).
        classes: the classes to report (default: every label seen in the ground truth).
    """
    n = len(gt_boxes)
    gb = [check_boxes(torch.as_tensor(b).reshape(-1, 4), "gt_boxes").double() for b in gt_boxes]
    db = [
        check_boxes(torch.as_tensor(b).reshape(-1, 4), "det_boxes").double()
        for b in _as_list("det_boxes", det_boxes, n)
    ]
    ds = _as_list("det_scores", det_scores, n)
    dl = _as_list("det_labels", det_labels, n)
    gl = _as_list("gt_labels", gt_labels, n)
    for i in range(n):
        if not (len(ds[i]) == len(dl[i]) == len(db[i])) or len(gl[i]) != len(gb[i]):
            raise ConfigError(f"image {i}: boxes, scores and labels must have the same length")
    thr = np.asarray(thresholds, dtype=float)
    if thr.ndim != 1 or thr.size == 0 or (thr < 0).any() or (thr > 1).any():
        raise ConfigError(f"thresholds must be a non-empty 1-D list in [0, 1], got {thresholds}")
    if classes is None:
        classes = sorted({int(c) for labels in gl for c in labels})
    ap = np.full((len(thr), len(classes)), np.nan)
    for k, c in enumerate(classes):
        num_gt = sum(int((labels == c).sum()) for labels in gl)
        scores, hits = [], [[] for _ in thr]
        for i in range(n):
            dsel, gsel = dl[i] == c, gl[i] == c
            s = ds[i][dsel]
            order = np.argsort(-s, kind="mergesort")[:max_dets]
            boxes = db[i][torch.as_tensor(np.flatnonzero(dsel)[order], dtype=torch.long)]
            gts = gb[i][torch.as_tensor(np.flatnonzero(gsel), dtype=torch.long)]
            iou = box_iou(boxes, gts).numpy()
            scores.append(s[order])
            for t, bar in enumerate(thr):
                hits[t].append(match(iou, float(bar)))
        pooled = np.concatenate(scores) if scores else np.zeros(0)
        for t in range(len(thr)):
            tp = np.concatenate(hits[t]) if hits[t] else np.zeros(0, dtype=bool)
            ap[t, k] = average_precision(pooled, tp, num_gt, interpolation)
    return Evaluation(thresholds=thr, classes=list(classes), ap=ap)


def cocoeval(
    det_boxes: Sequence[Tensor],
    det_scores: Sequence[Tensor],
    det_labels: Sequence[Tensor],
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    classes: Sequence[int],
) -> Any:
    """pycocotools' ``COCOeval`` (bbox, maxDets 100, area range "all", no crowd boxes), run on
    the same inputs as :func:`evaluate`: the independent reference this module is checked
    against. Image ``i`` becomes COCO image ``i + 1`` and class ``c`` category ``c + 1``; boxes
    are converted to COCO's ``[x, y, w, h]``. Its ``eval["precision"][t, r, k, 0, 0]`` is the
    101-point precision envelope (-1 where class ``k`` has no ground truth).

    Raises:
        ImportError: pycocotools is not installed (it is a test dependency: ``.[dev]``).
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:
        raise ImportError(
            "cocoeval needs pycocotools (pip install pycocotools, or the project's dev extra)"
        ) from err

    def xywh(b: Sequence[float]) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    anns: list[dict[str, Any]] = []
    for i, (gb, gl) in enumerate(zip(gt_boxes, gt_labels, strict=True)):
        for b, c in zip(torch.as_tensor(gb).tolist(), torch.as_tensor(gl).tolist(), strict=True):
            box = xywh(b)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    results = [
        {"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "score": float(s)}
        for i, (db, ds, dl) in enumerate(zip(det_boxes, det_scores, det_labels, strict=True))
        for b, s, c in zip(
            torch.as_tensor(db).tolist(),
            torch.as_tensor(ds).tolist(),
            torch.as_tensor(dl).tolist(),
            strict=True,
        )
    ]
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i + 1} for i in range(len(gt_boxes))],
        "annotations": anns,
        "categories": [{"id": int(c) + 1} for c in classes],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results) if results else COCO(), "bbox")
        ev.params.maxDets = [100]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    return ev
