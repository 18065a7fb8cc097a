r"""Box operations of detection (notes, discussion 5, sections 1-2): IoU, anchor encoding,
non-maximum suppression, anchors, RoI pooling and RoIAlign.

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


def _check_rois(features: Tensor, rois: Tensor) -> Tensor:
    """Validate features (N, C, H, W) and rois (K, 5) rows ``(batch index, x1, y1, x2, y2)``
    with integer batch indices in [0, N) and non-degenerate boxes; the rois as a tensor."""
    if features.ndim != 4:
        raise ConfigError(f"features must be (N, C, H, W), got {tuple(features.shape)}")
    rois = torch.as_tensor(rois)
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ConfigError(
            f"rois must be (K, 5) rows (batch index, x1, y1, x2, y2), got {tuple(rois.shape)}"
        )
    check_boxes(rois[:, 1:], "rois[:, 1:]")
    n, index = features.shape[0], rois[:, 0]
    if ((index < 0) | (index >= n) | (index % 1 != 0)).any():
        raise ConfigError(f"roi batch indices must be integers in [0, {n}), got {index.tolist()}")
    return rois


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
    rois = _check_rois(features, rois)
    _, _, height, width = features.shape
    out = []
    for row in rois.tolist():
        b = int(row[0])
        x1, y1, x2, y2 = (round(v * spatial_scale) for v in row[1:])
        x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
        x2, y2 = min(max(x2, x1), width - 1), min(max(y2, y1), height - 1)
        crop = features[b : b + 1, :, y1 : y2 + 1, x1 : x2 + 1]
        out.append(F.adaptive_max_pool2d(crop, output_size))
    if not out:
        return features.new_zeros((0, features.shape[1], *output_size))
    return torch.cat(out, 0)


def _axis_weights(
    start: Tensor, length: Tensor, bins: int, grid: int, size: int, aligned: bool
) -> Tensor:
    """RoIAlign along one axis as a matrix (K, bins, size): row ``p`` holds the weights of the
    ``size`` cells in the mean over bin ``p``'s ``grid`` samples of their bilinear
    interpolation.

    Sample ``j`` of bin ``p`` is at ``start + (p + (j + 0.5) / grid) * length / bins``. A sample
    outside ``[-1, size]`` weighs nothing; one in ``[-1, 0)`` is clamped to 0 and one past the
    last cell centre to it (Mask R-CNN's reference implementation in Detectron and
    torchvision). Bilinear interpolation and the bin mean are both separable in x and y, so
    RoIAlign is ``A_y F A_x^T`` per channel.
    """
    if not aligned:  # the original layer forces a RoI of at least one cell
        length = length.clamp(min=1.0)
    frac = (torch.arange(bins * grid, dtype=start.dtype, device=start.device) + 0.5) / grid
    coords = start[:, None] + frac[None] * (length / bins)[:, None]  # (K, bins * grid)
    inside = ((coords >= -1.0) & (coords <= size)).to(coords.dtype)
    c = coords.clamp(min=0.0)
    low = c.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    c = torch.where(low >= size - 1, low.to(c.dtype), c)
    w_high = (c - low.to(c.dtype)) * inside
    w_low = (1.0 - (c - low.to(c.dtype))) * inside
    weights = coords.new_zeros((*coords.shape, size))  # (K, bins * grid, size)
    weights.scatter_add_(2, low[..., None], w_low[..., None])
    weights.scatter_add_(2, high[..., None], w_high[..., None])
    return weights.reshape(coords.shape[0], bins, grid, size).mean(2)


def _roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    grid: tuple[int, int],
    aligned: bool,
) -> Tensor:
    """RoIAlign of rois (K, 5) with ``grid = (gh, gw)`` samples per bin: (K, C, oh, ow)."""
    oh, ow = output_size
    _, _, height, width = features.shape
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    a_y = _axis_weights(y1, roi_h, oh, grid[0], height, aligned)  # (K, oh, H)
    a_x = _axis_weights(x1, roi_w, ow, grid[1], width, aligned)  # (K, ow, W)
    per_roi = features[rois[:, 0].long()]  # (K, C, H, W)
    return torch.einsum("koh,kchw,kpw->kcop", a_y, per_roi, a_x)


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> Tensor:
    r"""RoIAlign (Mask R-CNN, He et al. 2017, section 3): (K, C, oh, ow) from features
    (N, C, H, W) and rois (K, 5) rows ``(batch index, x1, y1, x2, y2)`` in input pixels.

    No rounding: the RoI, scaled by ``spatial_scale`` to continuous feature coordinates (cell
    ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)`` when ``aligned``), is split into
    ``oh x ow`` equal bins; each bin is sampled at a regular ``g x g`` grid of points (``g =
    sampling_ratio``; ``sampling_ratio <= 0`` takes ``g = ceil(bin size)`` per RoI and axis,
    the adaptive rule), each point is read by bilinear interpolation of the four nearest cell
    centres, and the bin is the mean of its points. Sample ``j`` of bin ``p`` along x is at
    :math:`x_1 + (p + (j + 1/2) / g)\, w / o_w`.

    ``aligned=True`` shifts the scaled RoI by -0.5 so that a pixel's centre lands on a cell's
    centre (Detectron2's fix of the half-pixel misalignment); ``aligned=False`` is the original
    paper's layer, which also forces RoIs of at least one cell. A point more than one cell
    outside the map contributes 0 (and still counts in the bin's mean); coordinates in
    ``[-1, 0)`` or past the last cell centre are clamped to the border, as Detectron and
    torchvision do. Differentiable in ``features``.

    Example:
        >>> f = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> roi_align(f, torch.tensor([[0.0, 0, 0, 4, 4]]), (1, 1)).item()  # mean of the map
        7.5
    """
    rois = _check_rois(features, rois)
    oh, ow = output_size
    if oh < 1 or ow < 1 or spatial_scale <= 0:
        raise ConfigError(
            f"need output_size >= (1, 1) and spatial_scale > 0, got {output_size}, {spatial_scale}"
        )
    rois = rois.to(features.dtype)
    if rois.shape[0] == 0:
        return features.new_zeros((0, features.shape[1], oh, ow))
    if sampling_ratio > 0:
        grid = (sampling_ratio, sampling_ratio)
        return _roi_align(features, rois, (oh, ow), spatial_scale, grid, aligned)
    out = []
    for roi in rois:  # adaptive: the grid depends on each RoI's size
        w = float(roi[3] - roi[1]) * spatial_scale
        h = float(roi[4] - roi[2]) * spatial_scale
        if not aligned:
            w, h = max(w, 1.0), max(h, 1.0)
        grid = (max(1, math.ceil(h / oh)), max(1, math.ceil(w / ow)))
        out.append(_roi_align(features, roi[None], (oh, ow), spatial_scale, grid, aligned))
    return torch.cat(out, 0)
