r"""Box operations of detection (notes, discussion 5, sections 1-2): IoU, anchor encoding,
non-maximum suppression, anchors and RoI pooling.

Boxes are ``(x1, y1, x2, y2)`` in pixels with ``x1 <= x2`` and ``y1 <= y2``; width ``x2 - x1``
and height ``y2 - y1`` (continuous coordinates, as COCO's ``[x, y, w, h]`` with
``w = x2 - x1``). A box with ``x2 < x1`` or ``y2 < y1`` is refused with a ConfigError.

Anchor encoding (Faster R-CNN, Ren et al. 2015, eq. 2): with centres ``(x, y)``, sizes
``(w, h)`` of a box and ``(x_a, y_a, w_a, h_a)`` of its anchor,
:math:`t_x = (x - x_a) / w_a,\ t_y = (y - y_a) / h_a,\ t_w = \log(w / w_a),\ t_h = \log(h / h_a)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from deepnotes.core.errors import ConfigError

BOX_FORMAT = "(x1, y1, x2, y2) with x1 <= x2 and y1 <= y2"


def check_boxes(boxes: Tensor, name: str = "boxes", positive: bool = False) -> Tensor:
    """Validate boxes (N, 4) in :data:`BOX_FORMAT` (widths and heights > 0 if ``positive``)."""
    boxes = torch.as_tensor(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ConfigError(
            f"{name} must have shape (N, 4) as {BOX_FORMAT}, got {tuple(boxes.shape)}"
        )
    if not torch.isfinite(boxes).all():
        raise ConfigError(f"{name} must be finite, {BOX_FORMAT}")
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bad = (w <= 0) | (h <= 0) if positive else (w < 0) | (h < 0)
    if bad.any():
        i = int(bad.nonzero()[0])
        need = "x1 < x2 and y1 < y2" if positive else "x1 <= x2 and y1 <= y2"
        raise ConfigError(
            f"{name}[{i}] = {boxes[i].tolist()} is degenerate: "
            f"expected (x1, y1, x2, y2) with {need}"
        )
    return boxes


def box_area(boxes: Tensor) -> Tensor:
    """Areas (N,) of boxes (N, 4)."""
    boxes = check_boxes(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union (N, M) of boxes ``a`` (N, 4) and ``b`` (M, 4); 0 where the union
    is empty (two zero-area boxes)."""
    a, b = check_boxes(a, "a"), check_boxes(b, "b")
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w, h


def encode(boxes: Tensor, anchors: Tensor) -> Tensor:
    """Deltas (N, 4) = (t_x, t_y, t_w, t_h) of ``boxes`` (N, 4) against ``anchors`` (N, 4), both
    with positive widths and heights (see the module docstring)."""
    boxes = check_boxes(boxes, "boxes", positive=True)
    anchors = check_boxes(anchors, "anchors", positive=True)
    if boxes.shape != anchors.shape:
        raise ConfigError(
            f"boxes {tuple(boxes.shape)} and anchors must pair up, got {tuple(anchors.shape)}"
        )
    x, y, w, h = _centre_size(boxes)
    xa, ya, wa, ha = _centre_size(anchors)
    return torch.stack([(x - xa) / wa, (y - ya) / ha, torch.log(w / wa), torch.log(h / ha)], 1)


def decode(deltas: Tensor, anchors: Tensor) -> Tensor:
    """Boxes (N, 4) from deltas (N, 4) against anchors (N, 4): the inverse of :func:`encode`."""
    anchors = check_boxes(anchors, "anchors", positive=True)
    if deltas.shape != anchors.shape:
        raise ConfigError(
            f"deltas {tuple(deltas.shape)} and anchors must pair up, got {tuple(anchors.shape)}"
        )
    xa, ya, wa, ha = _centre_size(anchors)
    x, y = xa + deltas[:, 0] * wa, ya + deltas[:, 1] * ha
    w, h = wa * torch.exp(deltas[:, 2]), ha * torch.exp(deltas[:, 3])
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 1)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: indices (K,) int64 of the kept boxes, by falling score.

    The highest-scoring box is kept and every remaining box whose IoU with it is above
    ``iou_threshold`` is dropped; repeat on what remains. Ties in score keep the lower index
    first (a stable sort).
    """
    boxes = check_boxes(boxes)
    scores = torch.as_tensor(scores)
    if scores.shape != (boxes.shape[0],):
        raise ConfigError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")
    if not 0 <= iou_threshold <= 1:
        raise ConfigError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes, boxes)
    alive = torch.ones(len(order), dtype=torch.bool)
    keep = []
    for pos, i in enumerate(order.tolist()):
        if not alive[pos]:
            continue
        keep.append(i)
        alive[pos + 1 :] &= iou[i, order[pos + 1 :]] <= iou_threshold
    return torch.as_tensor(keep, dtype=torch.int64)


def anchors(
    feature_size: tuple[int, int],
    stride: float,
    sizes: Sequence[float],
    ratios: Sequence[float],
) -> Tensor:
    """Anchor boxes (H * W * len(sizes) * len(ratios), 4) on a feature map (H, W).

    Cell ``(i, j)`` is centred at ``((j + 0.5) stride, (i + 0.5) stride)`` in pixels; for size
    ``s`` and ratio ``r = h / w`` the anchor has ``w = s / sqrt(r)``, ``h = s sqrt(r)`` (area
    ``s^2``). Order: rows, columns, sizes, ratios (the last varies fastest).
    """
    h, w = feature_size
    if h < 1 or w < 1 or stride <= 0:
        raise ConfigError(
            f"need feature_size >= (1, 1) and stride > 0, got {feature_size}, {stride}"
        )
    if not sizes or not ratios or min(sizes) <= 0 or min(ratios) <= 0:
        raise ConfigError(f"sizes and ratios must be non-empty and > 0, got {sizes}, {ratios}")
    shapes = torch.tensor(
        [[s / math.sqrt(r), s * math.sqrt(r)] for s in sizes for r in ratios], dtype=torch.float32
    )  # (A, 2) widths, heights
    ys, xs = torch.meshgrid(
        (torch.arange(h, dtype=torch.float32) + 0.5) * stride,
        (torch.arange(w, dtype=torch.float32) + 0.5) * stride,
        indexing="ij",
    )
    centres = torch.stack([xs, ys], -1).reshape(-1, 1, 2)  # (H W, 1, 2)
    half = shapes[None] / 2
    return torch.cat([centres - half, centres + half], -1).reshape(-1, 4)


def roi_pool(
    features: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float = 1.0
) -> Tensor:
    """RoI max pooling (Fast R-CNN): (K, C, oh, ow) from features (N, C, H, W) and rois (K, 5)
    rows ``(batch index, x1, y1, x2, y2)`` in input pixels.

    Coordinates are scaled by ``spatial_scale`` and rounded to feature cells; the RoI covers
    cells ``x1 .. x2`` and ``y1 .. y2`` inclusive (at least one cell, clipped to the map), split
    into ``oh x ow`` bins, bin ``p`` spanning cells ``floor(p L / o) .. ceil((p + 1) L / o) - 1``
    of the RoI's length ``L``; each bin is max-pooled (the bins of ``F.adaptive_max_pool2d``).
    """
    if features.ndim != 4:
        raise ConfigError(f"features must be (N, C, H, W), got {tuple(features.shape)}")
    rois = torch.as_tensor(rois)
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ConfigError(
            f"rois must be (K, 5) rows (batch index, x1, y1, x2, y2), got {tuple(rois.shape)}"
        )
    check_boxes(rois[:, 1:], "rois[:, 1:]")
    n, _, height, width = features.shape
    out = []
    for row in rois.tolist():
        b = int(row[0])
        if not 0 <= b < n:
            raise ConfigError(f"roi batch index must be in [0, {n}), got {b}")
        x1, y1, x2, y2 = (round(v * spatial_scale) for v in row[1:])
        x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
        x2, y2 = min(max(x2, x1), width - 1), min(max(y2, y1), height - 1)
        crop = features[b : b + 1, :, y1 : y2 + 1, x1 : x2 + 1]
        out.append(F.adaptive_max_pool2d(crop, output_size))
    if not out:
        return features.new_zeros((0, features.shape[1], *output_size))
    return torch.cat(out, 0)
