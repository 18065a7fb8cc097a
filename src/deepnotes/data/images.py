"""Image classification data as train/validation/test splits of ``(N, C, H, W)`` tensors in [0, 1].

One entry point, :func:`image_splits`, for the three image sources an experiment can train on:

- ``"digits"``: scikit-learn's bundled 8x8 digits (1797 images, 1 channel), cut into
  train/validation/test by one seeded stratified split. Always available.
- ``"mnist"``: MNIST (or Fashion-MNIST) IDX files in a folder the user gives
  (:func:`~deepnotes.data.files.load_mnist`), 28x28, 1 channel.
- ``"cifar10"``: the CIFAR-10 python batches in a folder the user gives
  (:func:`~deepnotes.data.files.load_cifar10`), 32x32, 3 channels.

For the two file data sets the files' own test split is the test set, untouched; the validation
set is a seeded stratified part of the training file, so model selection never sees the test
images. Pixels are divided by their maximum possible value (16 for the digits, 255 for the
files) and nothing else: no statistics are computed, so nothing can leak from the held-out parts.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import TensorDataset

from deepnotes.core.errors import DataFormatError
from deepnotes.data.digits import NUM_CLASSES, Splits, digits
from deepnotes.data.files import load_cifar10, load_mnist
from deepnotes.data.splits import stratified_split

IMAGE_SOURCES = ("digits", "mnist", "cifar10")
"""The names :func:`image_splits` accepts."""

NATIVE_SIDE = {"digits": 8, "mnist": 28, "cifar10": 32}
"""Side length in pixels of the images of each source as stored (MNIST files may differ)."""

_LOADERS = {"mnist": load_mnist, "cifar10": load_cifar10}


def image_splits(
    source: str = "digits",
    root: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    train_limit: int | None = None,
) -> Splits:
    """Train/validation/test splits of an image data set, images ``(N, C, H, W)`` in [0, 1].

    Arguments:
        source: ``"digits"``, ``"mnist"`` or ``"cifar10"``.
        root: the folder holding the files (required for ``"mnist"`` and ``"cifar10"``, not
            allowed for ``"digits"``, which ships with scikit-learn).
        seed: seed of the stratified split (and of the ``train_limit`` subsample).
        val_fraction: share of the training data held out for validation, in (0, 1).
        test_fraction: share of the digits used as the test set, in (0, 1); the file data sets
            use their own test file and ignore it.
        train_limit: keep about this many images of the training file (a stratified subsample,
            rounded class by class, taken before the validation split; ``None`` keeps all). For
            quick runs on a CPU.

    Returns:
        :class:`~deepnotes.data.digits.Splits` with ``input_shape`` ``(C, H, W)``, 10 classes,
        ``mean`` zeros and ``std`` ones (no normalisation beyond the [0, 1] scaling).

    Raises:
        ValueError: an unknown ``source``, a fraction outside (0, 1), a ``train_limit`` below 10
            or a ``root`` given for the digits.
        DataFormatError: ``root`` is missing for a file data set, or its files are missing or
            malformed (the message names the file and the expected format).

    Example:
        >>> splits = image_splits("mnist", "~/mnist", train_limit=10_000)  # doctest: +SKIP
        >>> splits.train.tensors[0].shape, splits.input_shape  # doctest: +SKIP
        (torch.Size([8000, 1, 28, 28]), (1, 28, 28))
    """
    if source not in IMAGE_SOURCES:
        raise ValueError(f"source must be one of {', '.join(IMAGE_SOURCES)}, got {source!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if train_limit is not None and train_limit < 10:
        raise ValueError(f"train_limit must be >= 10 images (or None for all), got {train_limit}")
    if source == "digits":
        if root is not None:
            raise ValueError("the digits ship with scikit-learn: root must be None for them")
        if train_limit is not None:
            raise ValueError("train_limit applies to the file data sets (mnist, cifar10) only")
        return digits(
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            normalize="unit",
            flatten=False,
        )
    if root is None or str(root) == "":
        raise DataFormatError(
            f"{source} is read from files: give the folder that holds them (data_root); "
            "nothing is downloaded"
        )
    load = _LOADERS[source]
    train_images, train_labels = load(root, "train")
    test_images, test_labels = load(root, "test")
    keep = np.arange(len(train_labels))
    if train_limit is not None and train_limit < len(keep):
        keep, _ = stratified_split(
            train_labels, (train_limit / len(keep), 1 - train_limit / len(keep)), seed
        )
    train_idx, val_idx = (
        keep[part]
        for part in stratified_split(train_labels[keep], (1 - val_fraction, val_fraction), seed)
    )
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataFormatError(
            f"{source} in {root}: {len(keep)} training images are too few to hold out a "
            f"validation share of {val_fraction:g}"
        )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataFormatError(
            f"{source} in {root}: training images have shape {train_images.shape[1:]} but test "
            f"images {test_images.shape[1:]}; expected the same image shape in both"
        )
    num_classes = max(NUM_CLASSES, int(max(train_labels.max(), test_labels.max())) + 1)
    images = _as_nchw(train_images)

    def part(x: torch.Tensor, y: np.ndarray, idx: np.ndarray | None = None) -> TensorDataset:
        if idx is not None:
            x, y = x[torch.as_tensor(idx)], y[idx]
        return TensorDataset(x, torch.as_tensor(y, dtype=torch.int64))

    input_shape = tuple(images.shape[1:])
    return Splits(
        train=part(images, train_labels, train_idx),
        val=part(images, train_labels, val_idx),
        test=part(_as_nchw(test_images), test_labels),
        num_classes=num_classes,
        input_shape=input_shape,
        mean=torch.zeros(input_shape),
        std=torch.ones(input_shape),
    )


def _as_nchw(images: np.ndarray) -> torch.Tensor:
    """``uint8`` images ``(N, H, W)`` or ``(N, C, H, W)`` as float32 ``(N, C, H, W)`` in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    return x.to(torch.float32).div_(255.0)
