"""Figure helpers shared by every topic (matplotlib's object API with the Agg canvas).

Figures are built with :class:`matplotlib.figure.Figure` directly, never through pyplot, so no
global plotting state exists and nothing needs a display. Save them with ``ctx.savefig``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure


def figure(
    ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (4.8, 3.6)
) -> tuple[Figure, Any]:
    """A new figure with a grid of axes (``size`` is per panel, in inches)."""
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel() if nrows * ncols > 1 else axes[0, 0]


def training_curves(
    history: Sequence[dict[str, Any]],
    metrics: Sequence[str] = ("loss", "acc"),
    best_epoch: int | None = None,
    title: str = "",
) -> Figure:
    """Train and validation curves per epoch, one panel per metric, best epoch marked."""
    fig, axes = figure(ncols=len(metrics))
    axes = np.atleast_1d(axes)
    epochs = [r["epoch"] for r in history]
    for ax, metric in zip(axes, metrics, strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            key = f"{split}_{metric}"
            if key in history[0]:
                ax.plot(epochs, [r[key] for r in history], style, label=split)
        if best_epoch is not None:
            ax.axvline(
                best_epoch, color="grey", lw=0.8, ls=":", label=f"selected (epoch {best_epoch})"
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``C[i, j]`` of examples of true class i predicted as j, shape (K, K)."""
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"expected two label vectors of shape (N,), got {y_true.shape}, {y_pred.shape}"
        )
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} must hold class indices in [0, {num_classes}), got values in "
                f"[{labels.min().item()}, {labels.max().item()}]"
            )
    index = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_figure(
    matrix: torch.Tensor, labels: Sequence[str] | None = None, title: str = ""
) -> Figure:
    """A confusion matrix drawn as a heat map with the counts written in the cells."""
    counts = matrix.cpu().numpy()
    k = counts.shape[0]
    labels = list(labels) if labels is not None else [str(i) for i in range(k)]
    fig, ax = figure(size=(4.8, 4.4))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = counts.max() / 2 if counts.size else 0
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                color = "white" if counts[i, j] > threshold else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    if title:
        ax.set_title(title)
    return fig


def image_grid(images: np.ndarray | torch.Tensor, columns: int = 8, gap: int = 1) -> np.ndarray:
    """Tile ``(n, H, W)`` or single-channel ``(n, 1, H, W)`` images in [0, 1] into one array,
    ``columns`` per row, separated by ``gap`` pixels of light grey (0.25)."""
    images = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"images must be (n, H, W) or (n, 1, H, W), got {images.shape}")
    n, h, w = images.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap), 0.25)
    for k in range(n):
        r, c = divmod(k, columns)
        top, left = gap + r * (h + gap), gap + c * (w + gap)
        out[top : top + h, left : left + w] = images[k]
    return out


def show_images(
    ax: Any, images: np.ndarray | torch.Tensor, title: str = "", columns: int = 8
) -> None:
    """Draw :func:`image_grid` of ``images`` on ``ax``: value 1 as black ink on white, pixels
    upscaled without smoothing, no ticks."""
    ax.imshow(image_grid(images, columns), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_axis_off()
