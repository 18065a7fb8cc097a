"""Tests for deepnotes.data.splits (stratified splits) and deepnotes.data.digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from deepnotes.data import Splits, digits, load_digits_arrays, stratified_split
from deepnotes.data.digits import normalize_pixels

N_DIGITS = 1797


@pytest.fixture(scope="module")
def sk_digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = sk_load_digits()
    return bunch.data, bunch.target


@pytest.fixture(scope="module")
def standard() -> Splits:
    return digits(seed=0)


@pytest.fixture(scope="module")
def unit() -> Splits:
    return digits(seed=0, normalize="unit")


def _row_index(raw: np.ndarray) -> dict[bytes, int]:
    """Map every raw pixel row (as bytes) to its index; the 1797 rows are all distinct."""
    index = {row.astype(np.int64).tobytes(): i for i, row in enumerate(raw)}
    assert len(index) == len(raw)
    return index


def _indices_of(x: torch.Tensor, index: dict[bytes, int]) -> np.ndarray:
    """Recover dataset indices of unit-normalised inputs by matching rows of x * 16."""
    pixels = np.rint(x.reshape(len(x), -1).numpy().astype(np.float64) * 16).astype(np.int64)
    return np.array([index[row.tobytes()] for row in pixels])


# ----------------------------------------------------------------------------- stratified_split


def _labels(seed: int = 0, n: int = 503, k: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(k, size=n, p=[0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.5, 0.5), (0.7, 0.1, 0.1, 0.1), (1.0,)])
def test_split_partitions_all_indices(fractions: tuple[float, ...]) -> None:
    labels = _labels()
    parts = stratified_split(labels, fractions, seed=3)
    assert len(parts) == len(fractions)
    for part in parts:
        assert np.all(np.diff(part) > 0)  # sorted, no duplicates
    joined = np.concatenate(parts)
    assert len(joined) == len(labels)
    np.testing.assert_array_equal(np.sort(joined), np.arange(len(labels)))


def test_split_accepts_python_lists() -> None:
    labels = [0, 1] * 10
    train, test = stratified_split(labels, [0.5, 0.5], seed=0)
    assert len(train) == len(test) == 10
    assert sorted(np.asarray(labels)[train].tolist()) == [0] * 5 + [1] * 5


def test_split_same_seed_same_split_different_seed_different_split() -> None:
    labels = _labels()
    first = stratified_split(labels, (0.6, 0.2, 0.2), seed=11)
    again = stratified_split(labels.copy(), (0.6, 0.2, 0.2), seed=11)
    other = stratified_split(labels, (0.6, 0.2, 0.2), seed=12)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    # the sizes depend only on the class counts, not on the seed
    assert [len(p) for p in first] == [len(p) for p in other]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.34, 0.33, 0.33), (0.9, 0.1)])
def test_split_class_proportions_within_one_example(
    seed: int, fractions: tuple[float, ...]
) -> None:
    labels = _labels(seed)
    parts = stratified_split(labels, fractions, seed=seed)
    for cls in np.unique(labels):
        n_cls = int((labels == cls).sum())
        for part, fraction in zip(parts, fractions, strict=True):
            count = int((labels[part] == cls).sum())
            assert abs(count - fraction * n_cls) <= 1.0, (cls, fraction, count, n_cls)


def test_split_tiny_class_and_unequal_labels() -> None:
    labels = np.array([5] * 10 + [9])  # arbitrary label values, a class of one
    parts = stratified_split(labels, (0.5, 0.5), seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(11))
    assert sum(int((labels[p] == 9).sum()) for p in parts) == 1
    assert [int((labels[p] == 5).sum()) for p in parts] == [5, 5]


@pytest.mark.parametrize(
    "fractions",
    [
        (0.5, 0.6),
        (0.5, 0.4),
        (1.0, 0.0),
        (1.2, -0.2),
        (),
        (0.3, 0.3, 0.3),
        # issue 11: NaN passed both checks (comparisons with NaN are false) and cut at garbage
        (0.5, math.nan, 0.5),
        (math.nan, 1.0),
        (math.inf, -math.inf, 1.0),
        (2.0, -1.0),
    ],
)
def test_split_bad_fractions_raise(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError) as info:
        stratified_split(_labels(), fractions, seed=0)
    assert "fractions must each be in (0, 1] and sum to 1" in str(info.value)
    assert str([float(f) for f in fractions]) in str(info.value)


def test_split_labels_must_be_one_dimensional() -> None:
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\), got \(2, 3\)"):
        stratified_split(np.zeros((2, 3), dtype=int), (0.5, 0.5), seed=0)


# ----------------------------------------------------------------------------- digits


def test_load_digits_arrays_matches_sklearn(sk_digits: tuple[np.ndarray, np.ndarray]) -> None:
    pixels, labels = load_digits_arrays()
    assert pixels.shape == (N_DIGITS, 64) and pixels.dtype == np.float64
    assert labels.shape == (N_DIGITS,) and labels.dtype == np.int64
    np.testing.assert_array_equal(pixels, sk_digits[0])
    np.testing.assert_array_equal(labels, sk_digits[1])


def test_digits_sizes_shapes_and_dtypes(standard: Splits) -> None:
    sizes = [len(standard.train), len(standard.val), len(standard.test)]
    assert sum(sizes) == N_DIGITS
    # per class the parts are within one example of the fractions, so overall within 10
    for size, fraction in zip(sizes, (0.6, 0.2, 0.2), strict=True):
        assert abs(size - fraction * N_DIGITS) <= 10
    assert standard.num_classes == 10
    assert standard.input_shape == (64,)
    for part in (standard.train, standard.val, standard.test):
        x, y = part.tensors
        assert x.shape == (len(part), 64) and x.dtype == torch.float32
        assert y.shape == (len(part),) and y.dtype == torch.int64
        assert set(y.tolist()) == set(range(10))
    assert standard.mean.shape == (64,) and standard.mean.dtype == torch.float32
    assert standard.std.shape == (64,) and standard.std.dtype == torch.float32


def test_digits_unflattened_images(standard: Splits) -> None:
    images = digits(seed=0, flatten=False)
    assert images.input_shape == (1, 8, 8)
    for flat_part, image_part in zip(
        (standard.train, standard.val, standard.test),
        (images.train, images.val, images.test),
        strict=True,
    ):
        x_img, y_img = image_part.tensors
        assert x_img.shape == (len(flat_part), 1, 8, 8) and x_img.dtype == torch.float32
        # the image is the row-major reshape of the 64 pixels
        torch.testing.assert_close(x_img.reshape(len(x_img), 64), flat_part.tensors[0])
        assert torch.equal(y_img, flat_part.tensors[1])


def test_digits_unit_is_raw_over_16(unit: Splits, sk_digits: tuple[np.ndarray, np.ndarray]) -> None:
    raw, target = sk_digits
    index = _row_index(raw)
    recovered = []
    for part in (unit.train, unit.val, unit.test):
        x, y = part.tensors
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
        idx = _indices_of(x, index)
        np.testing.assert_allclose(x.numpy(), raw[idx] / 16.0, rtol=0, atol=1e-7)
        np.testing.assert_array_equal(y.numpy(), target[idx])
        recovered.append(idx)
    # together the three parts are every digit exactly once
    np.testing.assert_array_equal(np.sort(np.concatenate(recovered)), np.arange(N_DIGITS))
    torch.testing.assert_close(unit.mean, torch.zeros(64))
    torch.testing.assert_close(unit.std, torch.ones(64))


def test_digits_split_is_stratified_split_of_labels(
    unit: Splits, sk_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    raw, target = sk_digits
    index = _row_index(raw)
    expected = stratified_split(target, (0.6, 0.2, 0.2), seed=0)
    for part, idx in zip((unit.train, unit.val, unit.test), expected, strict=True):
        np.testing.assert_array_equal(np.sort(_indices_of(part.tensors[0], index)), idx)


def test_digits_standard_uses_training_statistics(standard: Splits, unit: Splits) -> None:
    # the split depends only on the seed, so the unit-normalised parts are the same examples
    for s_part, u_part in zip(
        (standard.train, standard.val, standard.test),
        (unit.train, unit.val, unit.test),
        strict=True,
    ):
        assert torch.equal(s_part.tensors[1], u_part.tensors[1])
    train_unit = unit.train.tensors[0].double().numpy()
    mean = train_unit.mean(axis=0)
    std = train_unit.std(axis=0)
    varying = std > 1e-6
    assert 40 < varying.sum() < 64  # some border pixels are constant (zero) on training data
    safe_std = np.where(varying, std, 1.0)

    np.testing.assert_allclose(standard.mean.numpy(), mean, atol=1e-6)
    np.testing.assert_allclose(standard.std.numpy(), safe_std, atol=1e-6)
    for s_part, u_part in zip(
        (standard.train, standard.val, standard.test),
        (unit.train, unit.val, unit.test),
        strict=True,
    ):
        expected = (u_part.tensors[0].double().numpy() - mean) / safe_std
        np.testing.assert_allclose(s_part.tensors[0].numpy(), expected, atol=1e-5)

    # on the training split: mean ~0 and std ~1 for every non-constant pixel
    train_std = standard.train.tensors[0].double().numpy()
    np.testing.assert_allclose(train_std.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(train_std.std(axis=0)[varying], 1.0, atol=1e-5)
    np.testing.assert_allclose(train_std[:, ~varying], 0.0, atol=1e-7)

    # validation data use the training statistics, not their own: their mean is not exactly 0
    val_std = standard.val.tensors[0].double().numpy()
    val_mean = val_std.mean(axis=0)
    assert np.abs(val_mean[varying]).max() > 0.01
    own = (val_std - val_mean) / np.where(val_std.std(axis=0) > 1e-6, val_std.std(axis=0), 1.0)
    assert not np.allclose(own, val_std, atol=1e-3)


def test_digits_same_seed_same_split_other_seed_other_split(standard: Splits) -> None:
    again = digits(seed=0)
    other = digits(seed=1)
    assert torch.equal(again.train.tensors[0], standard.train.tensors[0])
    assert torch.equal(again.test.tensors[1], standard.test.tensors[1])
    assert not torch.equal(other.test.tensors[1], standard.test.tensors[1])


def test_digits_custom_fractions() -> None:
    splits = digits(seed=0, val_fraction=0.1, test_fraction=0.3, normalize="unit")
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sum(sizes) == N_DIGITS
    for size, fraction in zip(sizes, (0.6, 0.1, 0.3), strict=True):
        assert abs(size - fraction * N_DIGITS) <= 10


@pytest.mark.parametrize(
    ("val_fraction", "test_fraction"),
    [
        (0.0, 0.2),
        (0.2, 0.0),
        (1.0, 0.2),
        (-0.1, 0.2),
        (0.5, 0.5),
        (0.6, 0.5),
        (math.nan, 0.2),
        (0.2, math.nan),
        (math.inf, 0.2),
    ],
)
def test_digits_bad_fractions_raise(val_fraction: float, test_fraction: float) -> None:
    with pytest.raises(ValueError) as info:
        digits(val_fraction=val_fraction, test_fraction=test_fraction)
    message = str(info.value)
    assert "val_fraction and test_fraction must be in (0, 1) with sum < 1" in message
    assert f"got {val_fraction}, {test_fraction}" in message


@pytest.mark.parametrize("normalize", ["minmax", "Standard", ""])
def test_digits_bad_normalize_raises(normalize: str) -> None:
    with pytest.raises(ValueError) as info:
        digits(normalize=normalize)
    assert "normalize must be 'standard' or 'unit'" in str(info.value)
    assert f"got {normalize!r}" in str(info.value)


def test_normalize_pixels_constant_pixel_is_only_centred() -> None:
    pixels = np.array([[0.0, 16.0], [0.0, 8.0], [4.0, 0.0], [8.0, 8.0]])
    train = np.array([0, 1])  # pixel 0 is constant (0) on these rows
    x, mean, std = normalize_pixels(pixels, train, "standard")
    np.testing.assert_allclose(mean, [0.0, 0.75])
    np.testing.assert_allclose(std, [1.0, 0.25])
    np.testing.assert_allclose(x[:, 0], [0.0, 0.0, 0.25, 0.5])
    np.testing.assert_allclose(x[:, 1], [1.0, -1.0, -3.0, -1.0])
