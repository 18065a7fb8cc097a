"""Binarised images for likelihood models: the digits (or MNIST files) as 0/1 pixels.

One fixed rule, so that every negative log-likelihood of the generative room is measured on the
same data and can be compared: images are scaled to [0, 1] by
:func:`~deepnotes.data.images.image_splits` (the digits' 0..16 divided by 16, MNIST's 0..255 by
255) and a pixel is 1 when its value is at least :data:`THRESHOLD` = 0.5, else 0 (a fixed
threshold, not a random draw: the test set is the same in every run). The digits give 8x8
images of 64 binary pixels, 1797 of them split train/validation/test by the seeded stratified
split of the rest of the project.

:func:`check_binary` is the one validation a Bernoulli model applies to its input: a tensor of
the expected image shape whose entries are exactly 0 or 1 (no NaN), else a clear error.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import TensorDataset

from deepnotes.core.errors import DataFormatError
from deepnotes.data.digits import Splits
from deepnotes.data.images import image_splits

THRESHOLD = 0.5
"""A pixel in [0, 1] is 1 when it is >= this."""


def binarize(images: torch.Tensor) -> torch.Tensor:
    """``(images >= THRESHOLD)`` as float32 0/1, any shape."""
    return (images >= THRESHOLD).to(torch.float32)


def binary_images(
    source: str = "digits",
    root: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    train_limit: int | None = None,
) -> Splits:
    """:func:`~deepnotes.data.images.image_splits` with every pixel binarised at
    :data:`THRESHOLD`; images ``(N, C, H, W)`` of 0/1 float32, labels kept.

    Example:
        >>> splits = binary_images(seed=0)
        >>> x, y = splits.train.tensors   # (1078, 1, 8, 8) of 0.0 / 1.0
    """
    splits = image_splits(
        source,
        root,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        train_limit=train_limit,
    )

    def binary(part: TensorDataset) -> TensorDataset:
        x, y = part.tensors
        return TensorDataset(binarize(x), y)

    return Splits(
        train=binary(splits.train),
        val=binary(splits.val),
        test=binary(splits.test),
        num_classes=splits.num_classes,
        input_shape=splits.input_shape,
        mean=splits.mean,
        std=splits.std,
    )


def check_binary(x: torch.Tensor, shape: tuple[int, ...], who: str) -> torch.Tensor:
    """``x`` unchanged if it is a batch ``(N, *shape)`` of exact 0/1 values; otherwise a
    DataFormatError naming ``who`` and what was expected."""
    if not isinstance(x, torch.Tensor):
        raise DataFormatError(f"{who} expects a tensor of images, got {type(x).__name__}")
    if tuple(x.shape[1:]) != tuple(shape) or x.ndim != len(shape) + 1:
        raise DataFormatError(
            f"{who} expects binary images of shape (N, {', '.join(map(str, shape))}), "
            f"got {tuple(x.shape)}"
        )
    if torch.isnan(x).any():
        raise DataFormatError(f"{who} expects binary images; the input contains NaN")
    if not ((x == 0) | (x == 1)).all():
        bad = x[(x != 0) & (x != 1)].flatten()[0].item()
        raise DataFormatError(
            f"{who} models Bernoulli pixels: every value must be 0 or 1, found {bad:g} "
            "(binarise with deepnotes.data.binary.binarize)"
        )
    return x
