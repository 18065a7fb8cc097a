"""scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes) as torch tensors.

The data ship inside scikit-learn, so nothing is downloaded. Pixels are integers 0..16.

Normalisation (``normalize``):
- ``"standard"`` (default): each of the 64 pixels is centred and scaled with the mean and
  standard deviation of that pixel over the *training* split only, ``x = (p/16 - mean) / std``;
  pixels that are constant on the training split (std < 1e-6) are only centred. Validation and
  test data use the training statistics, so no information leaks from them.
- ``"unit"``: ``x = p / 16`` in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from deepnotes.data.splits import stratified_split

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class Splits:
    """Train/validation/test TensorDatasets of (inputs float32, labels int64)."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple[int, ...]
    mean: torch.Tensor
    std: torch.Tensor


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits: pixels (N, 64) float64 in 0..16 and labels (N,) int64."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64)


def normalize_pixels(
    pixels: np.ndarray, train_idx: np.ndarray, normalize: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply a documented normalisation using statistics of ``pixels[train_idx]`` only."""
    unit = pixels / 16.0
    if normalize == "unit":
        return unit, np.zeros(unit.shape[1]), np.ones(unit.shape[1])
    if normalize != "standard":
        raise ValueError(f"normalize must be 'standard' or 'unit', got {normalize!r}")
    mean = unit[train_idx].mean(axis=0)
    std = unit[train_idx].std(axis=0)
    std = np.where(std < 1e-6, 1.0, std)
    return (unit - mean) / std, mean, std


def digits(
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    normalize: str = "standard",
    flatten: bool = True,
) -> Splits:
    """The digits, split train/val/test with a seeded stratified split.

    Arguments:
        seed: the split's seed (same seed, same split).
        val_fraction, test_fraction: sizes of the validation and test parts, each in (0, 1);
            the training part gets the rest.
        normalize: "standard" or "unit" (see the module docstring).
        flatten: inputs of shape (64,) if True, else images (1, 8, 8).

    Example:
        >>> splits = digits(seed=0)
        >>> x, y = splits.train.tensors   # (1078, 64) float32, (1078,) int64
    """
    train_fraction = 1.0 - val_fraction - test_fraction
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and train_fraction > 0):
        raise ValueError(
            "val_fraction and test_fraction must be in (0, 1) with sum < 1, got "
            f"{val_fraction}, {test_fraction}"
        )
    pixels, labels = load_digits_arrays()
    train_idx, val_idx, test_idx = stratified_split(
        labels, (train_fraction, val_fraction, test_fraction), seed
    )
    x, mean, std = normalize_pixels(pixels, train_idx, normalize)
    shape = (64,) if flatten else IMAGE_SHAPE
    inputs = torch.as_tensor(x, dtype=torch.float32).reshape(-1, *shape)
    targets = torch.as_tensor(labels)

    def part(idx: np.ndarray) -> TensorDataset:
        index = torch.as_tensor(idx)
        return TensorDataset(inputs[index], targets[index])

    return Splits(
        train=part(train_idx),
        val=part(val_idx),
        test=part(test_idx),
        num_classes=NUM_CLASSES,
        input_shape=shape,
        mean=torch.as_tensor(mean, dtype=torch.float32),
        std=torch.as_tensor(std, dtype=torch.float32),
    )
