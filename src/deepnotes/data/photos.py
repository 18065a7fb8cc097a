"""The two colour photographs scikit-learn ships, as image tensors: real photos, offline.

:func:`sklearn.datasets.load_sample_images` returns ``china.jpg`` (a temple, 427x640) and
``flower.jpg`` (a flower, 427x640) as ``uint8`` arrays (H, W, 3); they are installed with
scikit-learn, so nothing downloads. :func:`photo` returns one of them as a float tensor
(1, 3, H, W) in [0, 1], resized with antialiased bilinear interpolation. They are the content
and style images of :mod:`deepnotes.vision.experiments.style_transfer` and the input of
:mod:`deepnotes.vision.experiments.deepdream`.

Example:
    >>> x = photo("china", 96)  # shorter side 96, aspect kept: (1, 3, 96, 144)
    >>> y = photo("flower", (64, 64))  # exactly 64x64
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from deepnotes.core.errors import UsageError

PHOTOS = ("china", "flower")
"""The names :func:`photo` accepts (the file names without ``.jpg``)."""


@functools.cache
def _raw(name: str) -> np.ndarray:
    """The photograph ``name`` as scikit-learn stores it, (H, W, 3) uint8 (read once)."""
    from sklearn.datasets import load_sample_images

    images = load_sample_images()
    for path, image in zip(images.filenames, images.images, strict=True):
        if path.replace("\\", "/").rsplit("/", 1)[-1] == f"{name}.jpg":
            image.setflags(write=False)
            return image
    raise UsageError(f"scikit-learn's sample images hold no {name}.jpg")  # pragma: no cover


def photo(name: str, size: int | tuple[int, int] | None = None) -> Tensor:
    """One of scikit-learn's photographs as a float32 tensor (1, 3, H, W) in [0, 1].

    Arguments:
        name: one of :data:`PHOTOS`.
        size: ``None`` keeps the original 427x640; an int is the shorter side (the aspect ratio
            kept, the longer side rounded); a pair ``(height, width)`` is the exact size.

    Raises:
        UsageError: an unknown name, or a size that is not positive.
    """
    if name not in PHOTOS:
        raise UsageError(f"photo name must be one of {PHOTOS}, got {name!r}")
    raw = _raw(name)
    h, w = raw.shape[:2]
    if size is None:
        target = (h, w)
    elif isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise UsageError(f"photo size must be >= 1, got {size}")
        short = min(h, w)
        target = (max(1, round(h * size / short)), max(1, round(w * size / short)))
    elif (
        isinstance(size, tuple)
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        target = (size[0], size[1])
    else:
        raise UsageError(
            f"photo size must be None, an int >= 1 or a (height, width) pair of ints >= 1, "
            f"got {size!r}"
        )
    x = torch.from_numpy(np.array(raw, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    if target != (h, w):  # (1, 3, H, W) -> (1, 3, *target)
        x = F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=True)
    return x.clamp_(0.0, 1.0).contiguous()
