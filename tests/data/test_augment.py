"""RandomShift: integer translations with zero fill, every offset reachable, bad input refused."""

from __future__ import annotations

import pytest
import torch

from deepnotes.data import RandomShift


def test_random_shift_translates_with_zero_fill() -> None:
    images = torch.zeros(1, 1, 8, 8)
    images[0, 0, 3, 4] = 1.0  # one bright pixel
    labels = torch.tensor([7])
    assert torch.equal(RandomShift(images, labels, 0)[0][0], images[0])
    torch.manual_seed(0)
    data = RandomShift(images, labels, 2)
    seen = set()
    for _ in range(200):
        image, label = data[0]
        assert image.shape == (1, 8, 8) and label == 7
        assert image.sum() == 1.0  # moved, not lost: |shift| <= 2 keeps it inside
        (row, col) = (image[0] == 1).nonzero()[0].tolist()
        assert abs(row - 3) <= 2 and abs(col - 4) <= 2
        seen.add((row, col))
    assert len(seen) == 25  # every offset in [-2, 2]^2 occurs


def test_random_shift_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"expected images \(N, C, H, W\)"):
        RandomShift(torch.zeros(3, 8, 8), torch.zeros(3), 1)
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        RandomShift(torch.zeros(3, 1, 8, 8), torch.zeros(3), -1)
