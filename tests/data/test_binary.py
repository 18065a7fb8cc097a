"""Binarised images: the fixed threshold, the splits, and the one input check of Bernoulli
models."""

from __future__ import annotations

import pytest
import torch

from deepnotes.core.errors import DataFormatError
from deepnotes.data.binary import THRESHOLD, binarize, binary_images, check_binary
from deepnotes.data.images import image_splits


def test_binary_images_threshold_the_unit_images_and_keep_the_split() -> None:
    binary, unit = binary_images(seed=3), image_splits(seed=3)
    for b, u in ((binary.train, unit.train), (binary.test, unit.test)):
        assert torch.equal(b.tensors[0], (u.tensors[0] >= THRESHOLD).float())
        assert torch.equal(b.tensors[1], u.tensors[1])
    assert binary.input_shape == (1, 8, 8)
    assert set(binary.test.tensors[0].unique().tolist()) == {0.0, 1.0}


def test_binarize_is_deterministic_at_the_threshold() -> None:
    x = torch.tensor([0.0, 0.49, 0.5, 0.51, 1.0])
    assert binarize(x).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_check_binary_names_what_was_expected() -> None:
    ok = torch.ones(2, 1, 8, 8)
    assert check_binary(ok, (1, 8, 8), "model") is ok
    with pytest.raises(DataFormatError, match=r"shape \(N, 1, 8, 8\), got \(2, 1, 7, 8\)"):
        check_binary(torch.ones(2, 1, 7, 8), (1, 8, 8), "model")
    with pytest.raises(DataFormatError, match="NaN"):
        check_binary(torch.full((1, 1, 8, 8), float("nan")), (1, 8, 8), "model")
    with pytest.raises(DataFormatError, match=r"0 or 1, found 0\.5"):
        check_binary(torch.full((1, 1, 8, 8), 0.5), (1, 8, 8), "model")
    with pytest.raises(DataFormatError, match="tensor"):
        check_binary([[0, 1]], (2,), "model")  # type: ignore[arg-type]
