"""Data augmentation for image tensors, written for the few cases deepnotes needs (there is no
CPU torchvision here): random translations."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


class RandomShift(Dataset):
    """A training set whose images are translated by a random integer offset on every access
    (the augmentation LeNet-era digit recognisers used; a CPU stand-in for torchvision's).

    Each image is shifted by ``(dy, dx)`` drawn uniformly from ``[-max_shift, max_shift]`` with
    the uncovered border filled with 0 (the blank background of the "unit" pixel scale). The
    offsets come from the global torch generator, which the run seeds and the Trainer's
    checkpoints save, so runs and resumed runs are reproducible.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, max_shift: int) -> None:
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(
                f"expected images (N, C, H, W) and labels (N,), got {tuple(images.shape)}, "
                f"{tuple(labels.shape)}"
            )
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.images, self.labels, self.max_shift = images, labels, max_shift

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, m = self.images[index], self.max_shift  # (C, H, W)
        if m == 0:
            return image, self.labels[index]
        h, w = image.shape[-2:]
        dy, dx = torch.randint(-m, m + 1, (2,)).tolist()
        padded = F.pad(image, (m, m, m, m))  # (C, H + 2m, W + 2m)
        return padded[:, m + dy : m + dy + h, m + dx : m + dx + w], self.labels[index]
