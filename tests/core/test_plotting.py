"""Tests for deepnotes.core.plotting: confusion matrices and the shared figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from deepnotes.core.plotting import confusion_figure, confusion_matrix, figure, training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(epochs: int = 4) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "val_loss": 1.2 / e,
            "train_acc": 1 - 0.5 / e,
            "val_acc": 1 - 0.6 / e,
        }
        for e in range(1, epochs + 1)
    ]


# ----------------------------------------------------------------------------- confusion_matrix


def test_confusion_matrix_hand_computed() -> None:
    y_true = torch.tensor([0, 0, 1, 2, 2, 2, 1, 0])
    y_pred = torch.tensor([0, 1, 1, 2, 0, 2, 1, 0])
    expected = torch.tensor(
        [
            [2, 1, 0],  # class 0: two right, one predicted as 1
            [0, 2, 0],
            [1, 0, 2],  # class 2: one predicted as 0
        ]
    )
    matrix = confusion_matrix(y_true, y_pred, 3)
    assert matrix.shape == (3, 3)
    assert torch.equal(matrix, expected)


def test_confusion_matrix_unseen_classes_are_zero_rows() -> None:
    matrix = confusion_matrix(torch.tensor([1, 1]), torch.tensor([1, 3]), 5)
    expected = torch.zeros(5, 5, dtype=torch.int64)
    expected[1, 1] = 1
    expected[1, 3] = 1
    assert torch.equal(matrix, expected)


def test_confusion_matrix_empty_input() -> None:
    empty = torch.zeros(0, dtype=torch.int64)
    assert torch.equal(confusion_matrix(empty, empty, 4), torch.zeros(4, 4, dtype=torch.int64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_matrix_matches_numpy_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 7
    y_true = rng.integers(0, k, size=500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, k, size=500))
    expected = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        expected[t, p] += 1
    # int32 inputs are accepted too
    true_t = torch.as_tensor(y_true, dtype=torch.int32)
    matrix = confusion_matrix(true_t, torch.as_tensor(y_pred), k)
    np.testing.assert_array_equal(matrix.numpy(), expected)
    assert matrix.sum().item() == 500
    assert matrix.diagonal().sum().item() == int((y_true == y_pred).sum())


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [
        (torch.tensor([0, 1, 2]), torch.tensor([0, 1])),
        (torch.tensor([[0, 1]]), torch.tensor([[0, 1]])),
        (torch.tensor(1), torch.tensor(1)),
    ],
)
def test_confusion_matrix_shape_mismatch_raises(y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
    with pytest.raises(ValueError) as info:
        confusion_matrix(y_true, y_pred, 3)
    message = str(info.value)
    assert "expected two label vectors of shape (N,)" in message
    assert str(y_true.shape) in message and str(y_pred.shape) in message


def test_confusion_matrix_out_of_range_label_raises() -> None:
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([10, 3]), 10)


# ----------------------------------------------------------------------------- figures


def _assert_png(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=40)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 100


def test_figure_grid() -> None:
    fig, ax = figure()
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert not isinstance(ax, np.ndarray)
    fig, axes = figure(ncols=3, nrows=2, size=(2.0, 1.5))
    assert axes.shape == (6,)
    assert len(fig.axes) == 6
    assert tuple(fig.get_size_inches()) == pytest.approx((6.0, 3.0))


def test_training_curves_two_panels(tmp_path: Path) -> None:
    history = _history(5)
    fig = training_curves(history, best_epoch=3, title="digits")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    for ax, metric in zip(fig.axes, ("loss", "acc"), strict=True):
        assert ax.get_ylabel() == metric
        assert ax.get_xlabel() == "epoch"
        lines = ax.get_lines()
        assert len(lines) == 3  # train, val and the selected-epoch marker
        train, val, marker = lines
        assert list(train.get_xdata()) == [1, 2, 3, 4, 5]
        assert list(train.get_ydata()) == [r[f"train_{metric}"] for r in history]
        assert list(val.get_ydata()) == [r[f"val_{metric}"] for r in history]
        assert list(marker.get_xdata()) == [3, 3]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["train", "val", "selected (epoch 3)"]
    assert fig._suptitle is not None and fig._suptitle.get_text() == "digits"
    _assert_png(fig, tmp_path / "curves.png")


def test_training_curves_single_metric_without_val_or_best(tmp_path: Path) -> None:
    history = [{"epoch": e, "train_loss": 2.0 - e} for e in range(3)]
    fig = training_curves(history, metrics=("loss",))
    assert len(fig.axes) == 1
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_ydata()) == [2.0, 1.0, 0.0]
    assert fig._suptitle is None
    _assert_png(fig, tmp_path / "one.png")


def test_confusion_figure(tmp_path: Path) -> None:
    matrix = torch.tensor([[5, 0, 1], [0, 4, 0], [2, 0, 3]])
    fig = confusion_figure(matrix, labels=["a", "b", "c"], title="cm")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # the heat map and its colour bar
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), matrix.numpy())
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(str(v) for v in matrix.flatten().tolist() if v)  # zeros not written
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "cm")
    _assert_png(fig, tmp_path / "cm.png")


def test_confusion_figure_default_labels(tmp_path: Path) -> None:
    fig = confusion_figure(torch.eye(4, dtype=torch.int64) * 7)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
    assert sorted(t.get_text() for t in ax.texts) == ["7"] * 4
    _assert_png(fig, tmp_path / "eye.png")


def test_image_grid_tiles_images_in_order_with_gaps() -> None:
    from deepnotes.core.plotting import image_grid

    images = np.arange(3 * 2 * 2, dtype=float).reshape(3, 1, 2, 2) / 12
    out = image_grid(images, columns=2)
    assert out.shape == (1 + 2 * 3, 1 + 2 * 3)  # 2 rows, 2 columns of 2x2 with 1-pixel gaps
    assert np.array_equal(out[1:3, 1:3], images[0, 0]) and np.array_equal(
        out[1:3, 4:6], images[1, 0]
    )
    assert np.array_equal(out[4:6, 1:3], images[2, 0])
    assert np.all(out[4:6, 4:6] == 0.25) and np.all(out[0] == 0.25)  # the empty cell and gaps
    with pytest.raises(ValueError, match=r"\(n, H, W\)"):
        image_grid(np.zeros((2, 3, 4, 4)))
