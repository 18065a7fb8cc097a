"""Canvases of real handwritten digits with boxes, labels and per-pixel masks (notes, discussion 5).

The localisation, detection and segmentation experiments need images whose objects have known
boxes and classes. :func:`digit_scenes` builds them from scikit-learn's real 8x8 digits
(:func:`deepnotes.data.digits.load_digits_arrays`), so nothing is downloaded.

How a canvas is made (``seed`` and ``split`` fix everything):

- the digits are split once, with a fixed stratified split (seed 0, fractions 0.6 / 0.2 / 0.2),
  into a "train", "val" and "test" pool; a scene of one split only uses digit images of that
  pool, so no digit image appears in both the train and the test scenes;
- each canvas (``side`` x ``side``, black) gets ``k`` digits, ``k`` uniform in
  ``objects = (lo, hi)``;
- each digit (pixels ``p / 16`` in [0, 1]) is resized by bilinear interpolation to ``d x d``
  pixels with ``d = round(8 s)``, ``s`` uniform in ``scale = (lo, hi)``, and pasted at a uniform
  random position inside the canvas; digits are max-composited (``canvas = max(canvas, digit)``);
- a digit's box is the tight box of its ink (pasted pixels > :data:`INK`) as
  ``(x1, y1, x2, y2)`` in pixels with exclusive ends: columns ``x1 .. x2 - 1`` and rows
  ``y1 .. y2 - 1``, so ``x2 - x1`` is the box's width in pixels;
- the mask is 0 on background and ``1 + class`` where a digit's ink (> :data:`INK`) lies; where
  digits overlap, the later one wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from deepnotes.core.errors import ConfigError
from deepnotes.data.digits import load_digits_arrays
from deepnotes.data.splits import stratified_split

INK = 0.25
"""Pixel value above which a pasted digit pixel counts as ink (mask and tight box)."""

SPLITS = ("train", "val", "test")
_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
_SPLIT_SEED = 0


@dataclass(frozen=True)
class Scenes:
    """A batch of digit canvases.

    Attributes:
        images: (N, 1, S, S) float32 in [0, 1].
        boxes: N tensors (k_i, 4) float32, (x1, y1, x2, y2) in pixels, exclusive ends.
        labels: N tensors (k_i,) int64 digit classes 0..9, in the order the digits were pasted.
        masks: (N, S, S) int64, 0 background, 1 + class on a digit's ink (later digit wins).
    """

    images: Tensor
    boxes: list[Tensor]
    labels: list[Tensor]
    masks: Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _pool(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Digit images (M, 8, 8) in [0, 1] and labels (M,) of one split's pool."""
    pixels, labels = load_digits_arrays()
    parts = stratified_split(labels, _SPLIT_FRACTIONS, _SPLIT_SEED)
    idx = np.sort(parts[SPLITS.index(split)])
    return (pixels[idx] / 16.0).reshape(-1, 8, 8), labels[idx]


def _resized(pool: np.ndarray, size: int) -> np.ndarray:
    """Every pool digit resized bilinearly to (size, size): (M, size, size) in [0, 1]."""
    x = torch.as_tensor(pool, dtype=torch.float32).unsqueeze(1)
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return out.squeeze(1).clamp(0.0, 1.0).numpy()


def digit_scenes(
    n: int,
    *,
    side: int = 32,
    objects: tuple[int, int] = (1, 3),
    scale: tuple[float, float] = (1.0, 2.0),
    seed: int = 0,
    split: str = "train",
) -> Scenes:
    """``n`` canvases of real digits with boxes, labels and masks (see the module docstring).

    Arguments:
        n: number of canvases (>= 1).
        side: canvas side S in pixels; must hold the largest digit, ``side >= round(8 * scale[1])``.
        objects: (lo, hi) inclusive range of the number of digits per canvas, 1 <= lo <= hi.
        scale: (lo, hi) range of the resize factor of the 8x8 digits, 0 < lo <= hi.
        seed: same seed and split, same scenes.
        split: "train", "val" or "test": which digit pool the digits come from.

    Example:
        >>> s = digit_scenes(4, objects=(1, 1), split="test")
        >>> s.images.shape, s.boxes[0].shape, s.labels[0].shape, s.masks.shape
        (torch.Size([4, 1, 32, 32]), torch.Size([1, 4]), torch.Size([1]), torch.Size([4, 32, 32]))
    """
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be an integer >= 1 (number of canvases), got {n!r}")
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    lo_k, hi_k = objects
    if not (isinstance(lo_k, int) and isinstance(hi_k, int) and 1 <= lo_k <= hi_k):
        raise ConfigError(f"objects must be integers (lo, hi) with 1 <= lo <= hi, got {objects!r}")
    lo_s, hi_s = (float(v) for v in scale)
    if not (math.isfinite(lo_s) and math.isfinite(hi_s) and 0 < lo_s <= hi_s):
        raise ConfigError(f"scale must be (lo, hi) with 0 < lo <= hi, got {scale!r}")
    smallest, largest = max(1, round(8 * lo_s)), round(8 * hi_s)
    if not isinstance(side, int) or side < largest:
        raise ConfigError(
            f"side must be an integer >= round(8 * scale[1]) = {largest} so every digit fits, "
            f"got {side!r}"
        )
    pool, pool_labels = _pool(split)
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    resized: dict[int, np.ndarray] = {}
    images = np.zeros((n, side, side), dtype=np.float32)
    masks = np.zeros((n, side, side), dtype=np.int64)
    boxes: list[Tensor] = []
    labels: list[Tensor] = []
    for i in range(n):
        k = int(rng.integers(lo_k, hi_k + 1))
        which = rng.integers(0, len(pool), size=k)
        sizes = np.clip(np.rint(8 * rng.uniform(lo_s, hi_s, size=k)), smallest, largest)
        box_rows = np.zeros((k, 4), dtype=np.float32)
        for j in range(k):
            d = int(sizes[j])
            if d not in resized:
                resized[d] = _resized(pool, d)
            digit = resized[d][which[j]]
            y0, x0 = (int(v) for v in rng.integers(0, side - d + 1, size=2))
            window = images[i, y0 : y0 + d, x0 : x0 + d]
            np.maximum(window, digit, out=window)
            ink = digit > INK
            masks[i, y0 : y0 + d, x0 : x0 + d][ink] = 1 + pool_labels[which[j]]
            rows, cols = np.nonzero(ink)
            box_rows[j] = (x0 + cols.min(), y0 + rows.min(), x0 + cols.max(), y0 + rows.max())
        box_rows[:, 2:] += 1.0
        boxes.append(torch.as_tensor(box_rows))
        labels.append(torch.as_tensor(pool_labels[which], dtype=torch.int64))
    return Scenes(
        images=torch.as_tensor(images).unsqueeze(1),
        boxes=boxes,
        labels=labels,
        masks=torch.as_tensor(masks),
    )
