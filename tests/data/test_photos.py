"""deepnotes.data.photos: scikit-learn's two photographs as (1, 3, H, W) tensors in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_sample_images

from deepnotes.core.errors import UsageError
from deepnotes.data.photos import PHOTOS, photo


@pytest.mark.parametrize("name", PHOTOS)
def test_original_size_equals_sklearn_pixels(name):
    images = load_sample_images()
    index = [f.replace("\\", "/").rsplit("/", 1)[-1] for f in images.filenames].index(f"{name}.jpg")
    x = photo(name)
    assert x.shape == (1, 3, 427, 640) and x.dtype == torch.float32
    expected = images.images[index].astype(np.float32) / 255.0
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, atol=1e-7)


def test_resized_shapes_range_and_mean():
    short = photo("china", 96)
    assert short.shape == (1, 3, 96, 144)  # 427x640 -> shorter side 96, aspect kept
    exact = photo("flower", (40, 50))
    assert exact.shape == (1, 3, 40, 50)
    for x in (short, exact):
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # antialiased resizing keeps each channel's mean close to the original's
    np.testing.assert_allclose(
        short.mean((0, 2, 3)).numpy(), photo("china").mean((0, 2, 3)).numpy(), atol=0.01
    )


def test_photos_differ_and_the_cache_is_not_mutated():
    a = photo("china", 32)
    a.fill_(0.0)
    assert float(photo("china", 32).max()) > 0.5
    assert not torch.equal(photo("china", 32), photo("flower", 32))


@pytest.mark.parametrize(
    ("name", "size", "match"),
    [
        ("cat", None, "one of"),
        ("china", 0, ">= 1"),
        ("china", (10,), "pair"),
        ("china", (10, 0), "pair"),
        ("china", 9.5, "int"),
    ],
)
def test_bad_input_names_what_was_expected(name, size, match):
    with pytest.raises(UsageError, match=match):
        photo(name, size)
