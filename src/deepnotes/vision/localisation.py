r"""Object localisation: one backbone, a box head and a class head, trained on the notes' summed
loss. Notes: discussion 5, section 1 "Review of Vision Problems" (object localisation: "a loss
objective that is the sum of the two loss terms, the L_2 and the cross-entropy loss").

The model (:class:`Localiser`) keeps the spatial layout of the image in both heads instead of
flattening the feature map into one vector:

- **box head** (per-cell regression under a spatial softmax, as in FCOS's per-location box
  distances, Tian et al. 2019, pooled by a soft-argmax): on the stride-4 map (``g x g`` cells,
  cell ``c`` centred at ``(u_c, v_c)`` in pixels) a 1x1 convolution gives, per cell, a location
  logit ``s_c`` and four distances ``d_c = 4 softplus(.)`` from the cell centre to the box's
  left, top, right and bottom edges. With ``p = softmax_c(s)`` over the cells,

  .. math:: \hat b = \sum_c p_c \, (u_c - d_{c,1},\; v_c - d_{c,2},\; u_c + d_{c,3},\;
            v_c + d_{c,4}),

  the box ``(x1, y1, x2, y2)`` in pixels (exclusive ends, as :mod:`deepnotes.data.scenes`);
- **class head** (Fast R-CNN's RoI pooling, Girshick 2015): the stride-2 map is max-pooled over
  the predicted box (:func:`deepnotes.vision.boxes.roi_pool`, ``roi x roi`` bins), so the
  classifier reads the features at the located digit, rescaled to a fixed grid whatever the
  digit's size, and a linear-ReLU-linear layer gives the 10 logits. The RoI is the predicted box
  with its gradient stopped (Fast R-CNN also treats the RoI as given), so the cross-entropy
  trains the backbone and the class head, and the box loss alone trains the box head.

Loss (:func:`localisation_loss`), the notes' sum of the two terms, per canvas and averaged over
the batch: ``CE(logits, y) + box_weight * ||b_hat / S - b / S||_2^2``, the squared L2 norm of the
four coordinates divided by the canvas side ``S``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepnotes.core.errors import ConfigError
from deepnotes.vision.boxes import roi_pool

STRIDE = 4
"""Pixels per cell of the box head's map."""


class Localiser(nn.Module):
    """Class and box of the single object on a square canvas.

    Arguments:
        side: canvas side S in pixels (a multiple of 4).
        widths: channels of the backbone's convolutions (c1, c2, c3): ``conv3x3(1, c1)``, pool,
            ``conv3x3(c1, c2)`` (the stride-2 map the class head pools), pool, two
            ``conv3x3(c3)`` (the stride-4 map of the box head); ReLU after each convolution.
        roi: bins per side of the RoI pooling in the class head.
        hidden: units of the class head's hidden layer.
        classes: number of classes.

    Example:
        >>> net = Localiser(side=32)
        >>> logits, boxes = net(torch.zeros(2, 1, 32, 32))
        >>> logits.shape, boxes.shape
        (torch.Size([2, 10]), torch.Size([2, 4]))
    """

    def __init__(
        self,
        side: int = 32,
        widths: tuple[int, int, int] = (16, 32, 48),
        roi: int = 4,
        hidden: int = 128,
        classes: int = 10,
    ) -> None:
        super().__init__()
        if side < STRIDE or side % STRIDE:
            raise ConfigError(f"side must be a positive multiple of {STRIDE}, got {side}")
        c1, c2, c3 = widths
        self.side = side
        self.roi = roi
        self.stride2 = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
        )
        self.stride4 = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c3, c3, 3, padding=1),
            nn.ReLU(),
        )
        self.box_head = nn.Conv2d(c3, 5, 1)  # per cell: location logit s_c, distances d_c (4)
        self.class_head = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * roi * roi, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )
        g = side // STRIDE
        centre = torch.arange(g, dtype=torch.float32) * STRIDE + STRIDE / 2  # (g,)
        self.register_buffer("u", centre.repeat(g), persistent=False)  # (g*g,) column centres
        self.register_buffer("v", centre.repeat_interleave(g), persistent=False)  # row centres

    def boxes_from_map(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """The soft-argmax box (N, 4) in pixels and the location weights ``p`` (N, g*g) from the
        box head's output (N, 5, g, g)."""
        out = out.flatten(2)  # (N, 5, g*g)
        p = out[:, 0].softmax(-1)  # (N, g*g) spatial softmax over the cells
        d = STRIDE * F.softplus(out[:, 1:])  # (N, 4, g*g) distances to the four edges
        corners = torch.stack(
            [self.u - d[:, 0], self.v - d[:, 1], self.u + d[:, 2], self.v + d[:, 3]], 1
        )
        return (p.unsqueeze(1) * corners).sum(-1), p  # (N, 4): sum_c p_c (box of cell c)

    def rois(self, boxes: Tensor) -> Tensor:
        """RoIs (N, 5) for :func:`roi_pool` from boxes (N, 4) (pixels, exclusive ends): batch
        index, then the first and last pixel covered, clipped to the canvas; no gradient."""
        b = boxes.detach()
        first = b[:, :2].clamp(0.0, self.side - 1.0)
        last = (b[:, 2:] - 1.0).clamp(0.0, self.side - 1.0)  # exclusive end -> last pixel
        index = torch.arange(len(b), dtype=b.dtype, device=b.device).unsqueeze(1)
        return torch.cat([index, first, torch.maximum(last, first)], 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (N, classes) and boxes (N, 4) in pixels from canvases (N, 1, S, S)."""
        if x.ndim != 4 or x.shape[1:] != (1, self.side, self.side):
            raise ConfigError(
                f"expected canvases (N, 1, {self.side}, {self.side}), got {tuple(x.shape)}"
            )
        h2 = self.stride2(x)  # (N, c2, S/2, S/2)
        boxes, _ = self.boxes_from_map(self.box_head(self.stride4(h2)))
        pooled = roi_pool(h2, self.rois(boxes), (self.roi, self.roi), spatial_scale=0.5)
        return self.class_head(pooled), boxes  # (N, classes), (N, 4)


def localisation_loss(
    logits: Tensor, boxes: Tensor, labels: Tensor, true_boxes: Tensor, side: int, box_weight: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The notes' summed loss and its two terms, averaged over the batch.

    ``CE(logits, labels) + box_weight * mean_n ||boxes_n / side - true_boxes_n / side||_2^2``.

    Arguments:
        logits: (N, classes); boxes, true_boxes: (N, 4) pixels; labels: (N,) int64.

    Returns:
        (loss, cross-entropy, squared L2 box error), scalars.
    """
    if boxes.shape != true_boxes.shape or boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ConfigError(
            f"boxes and true_boxes must both be (N, 4), got {tuple(boxes.shape)} and "
            f"{tuple(true_boxes.shape)}"
        )
    ce = F.cross_entropy(logits, labels)
    l2 = ((boxes - true_boxes) / side).pow(2).sum(1).mean()
    return ce + box_weight * l2, ce, l2
