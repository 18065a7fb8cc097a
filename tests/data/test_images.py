"""Tests for deepnotes.data.images: one split interface over the digits, MNIST and CIFAR-10."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.errors import DataFormatError
from deepnotes.data import digits, image_splits, write_cifar_batch, write_idx


def write_fake_mnist(
    root: Path, n_train: int = 300, n_test: int = 50, side: int = 6, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random uint8 images with balanced labels 0..9, in the four MNIST IDX files."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels)
        files[split] = (images, labels)
    return files


def test_digits_are_the_unit_scaled_image_digits() -> None:
    splits = image_splits("digits", seed=3)
    reference = digits(seed=3, normalize="unit", flatten=False)
    assert splits.input_shape == (1, 8, 8) and splits.num_classes == 10
    for ours, theirs in zip(
        (splits.train, splits.val, splits.test),
        (reference.train, reference.val, reference.test),
        strict=True,
    ):
        assert torch.equal(ours.tensors[0], theirs.tensors[0])
        assert torch.equal(ours.tensors[1], theirs.tensors[1])
    x = splits.train.tensors[0]
    assert x.shape[1:] == (1, 8, 8) and x.min() >= 0 and x.max() <= 1


def test_mnist_keeps_the_test_file_and_splits_the_training_file(tmp_path: Path) -> None:
    files = write_fake_mnist(tmp_path)
    splits = image_splits("mnist", tmp_path, seed=0, val_fraction=0.2)
    assert splits.input_shape == (1, 6, 6) and splits.num_classes == 10
    # the test set is the test file, untouched but for the [0, 1] scaling
    test_images, test_labels = files["test"]
    x_test, y_test = splits.test.tensors
    assert torch.allclose(x_test[:, 0], torch.from_numpy(test_images).float() / 255)
    assert torch.equal(y_test, torch.from_numpy(test_labels).long())
    # train and validation partition the training file, stratified: 30 images per class -> 24/6
    train_images, _ = files["train"]
    x_tr, y_tr = splits.train.tensors
    x_val, y_val = splits.val.tensors
    assert len(x_tr) == 240 and len(x_val) == 60
    assert np.bincount(y_val.numpy(), minlength=10).tolist() == [6] * 10
    rows = {bytes(img) for img in train_images}  # every image is distinct at this size
    seen = [bytes((x * 255).round().to(torch.uint8).numpy()[0]) for x in torch.cat([x_tr, x_val])]
    assert len(set(seen)) == 300 and set(seen) == rows
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    # the same seed gives the same split, another seed another one
    again = image_splits("mnist", tmp_path, seed=0, val_fraction=0.2)
    assert torch.equal(again.val.tensors[0], x_val)
    other = image_splits("mnist", tmp_path, seed=1, val_fraction=0.2)
    assert not torch.equal(other.val.tensors[0], x_val)


def test_train_limit_is_a_stratified_subsample_taken_before_validation(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, n_train=400)
    splits = image_splits("mnist", tmp_path, seed=0, val_fraction=0.25, train_limit=200)
    assert len(splits.train) + len(splits.val) == 200 and len(splits.val) == 50
    counts = np.bincount(splits.train.tensors[1].numpy(), minlength=10)
    assert counts.min() == counts.max() == 15
    assert len(splits.test) == 50  # the test file is never subsampled


def test_cifar10_images_keep_their_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    batches = []
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        images = rng.integers(0, 256, size=(20, 3, 32, 32), dtype=np.uint8)
        labels = (np.arange(20) + i) % 10
        write_cifar_batch(tmp_path / "cifar-10-batches-py" / name, images, labels)
        batches.append((images, labels))
    splits = image_splits("cifar10", tmp_path, seed=0, val_fraction=0.1)
    assert splits.input_shape == (3, 32, 32)
    assert len(splits.train) == 90 and len(splits.val) == 10 and len(splits.test) == 20
    test_images, test_labels = batches[-1]
    assert torch.allclose(splits.test.tensors[0], torch.from_numpy(test_images).float() / 255)
    assert splits.test.tensors[1].tolist() == test_labels.tolist()


def test_bad_input_names_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source must be one of digits, mnist, cifar10"):
        image_splits("svhn")
    with pytest.raises(ValueError, match="root must be None"):
        image_splits("digits", tmp_path)
    with pytest.raises(ValueError, match="train_limit applies to the file data sets"):
        image_splits("digits", train_limit=100)
    with pytest.raises(ValueError, match="val_fraction must be in"):
        image_splits("mnist", tmp_path, val_fraction=1.0)
    with pytest.raises(ValueError, match="train_limit must be >= 10"):
        image_splits("mnist", tmp_path, train_limit=5)
    with pytest.raises(DataFormatError, match="give the folder that holds them"):
        image_splits("mnist")
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte"):
        image_splits("mnist", tmp_path)  # an empty folder
    # training and test images of different sizes
    write_fake_mnist(tmp_path, side=6)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((50, 5, 5), np.uint8))
    with pytest.raises(DataFormatError, match=r"training images have shape \(6, 6\)"):
        image_splits("mnist", tmp_path)
