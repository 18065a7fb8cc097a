"""The standard classifiers the robustness experiments attack, and their cached training.

Two models of the project (notes, discussion 11, part 2 attacks "a learned model"): the
foundations room's :class:`~deepnotes.foundations.models.MLP` (two hidden layers of 128 ReLU
units) and the vision room's :class:`~deepnotes.vision.models.LeNet5` sized for small images
(3x3 kernels, padding 1, ReLU, max pooling). :func:`fit_classifier` trains either with the core
:class:`~deepnotes.core.trainer.Trainer` (Adam, model selection on validation accuracy, the test
split scored once), optionally on perturbed training batches (adversarial training, ``perturb``),
and keeps the weights in the run folder's cache so that several experiments, or a resumed run,
share one fit.

Example:
    >>> splits = image_splits("digits", seed=ctx.seed)
    >>> fitted = fit_classifier(ClassifierSettings("cnn"), ctx, splits, tag="cnn")
    >>> fitted.test_acc, fitted.model.training
    (0.97..., False)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.errors import ConfigError
from deepnotes.core.trainer import Perturb, Trainer
from deepnotes.data.digits import Splits
from deepnotes.foundations.models import MLP
from deepnotes.vision.models import LeNet5

MODELS = ("mlp", "cnn")
"""The standard classifiers: a two-hidden-layer MLP and a small LeNet-5."""

MLP_HIDDEN = (128, 128)
"""Hidden widths of the standard MLP."""


def build_classifier(kind: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """A fresh standard classifier (initialised from the global generator: build it inside
    ``ctx.seeded(...)``).

    Arguments:
        kind: "mlp" (``C*H*W -> 128 -> 128 -> K``, ReLU) or "cnn" (LeNet-5 with 3x3 kernels,
            padding 1, ReLU and max pooling, for square images of side >= 4).
        input_shape: (C, H, W) of one image.
        num_classes: K.

    Returns:
        An ``nn.Module`` mapping (B, C, H, W) images to (B, K) logits.
    """
    if kind not in MODELS:
        raise ConfigError(f"model kind must be one of {MODELS}, got {kind!r}")
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ConfigError(f"input_shape must be (C, H, W) with sizes >= 1, got {input_shape}")
    channels, height, width = input_shape
    if kind == "mlp":
        return MLP(channels * height * width, MLP_HIDDEN, num_classes)
    if height != width or height < 4:
        raise ConfigError(f"the cnn needs square images of side >= 4, got {height}x{width}")
    return LeNet5(
        num_classes,
        channels,
        input_size=height,
        kernel_size=3,
        padding=1,
        activation="relu",
        pool="max",
    )


@dataclass(frozen=True)
class ClassifierSettings:
    """How a standard classifier is trained."""

    kind: str = "mlp"
    """"mlp" or "cnn" (:data:`MODELS`)."""
    epochs: int = 30
    """Training epochs (the weights of the best validation accuracy are kept)."""
    batch: int = 64
    """Minibatch size."""
    lr: float = 1e-3
    """Adam's learning rate."""

    def __post_init__(self) -> None:
        require(self.kind in MODELS, f"kind must be one of {MODELS}, got {self.kind!r}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
        require(
            math.isfinite(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr}"
        )


@dataclass
class Fitted:
    """A trained classifier (eval mode, on ``ctx.device``) and what its training cost."""

    model: nn.Module
    test_acc: float
    """Accuracy on the test split (scored once, with the selected weights)."""
    seconds: float
    """Wall time of the fit (as measured when it ran, also when read back from the cache)."""
    epoch_seconds: float
    """Seconds per epoch in the training steps alone (the Trainer's ``train_seconds`` over the
    epochs run: no validation, checkpoint or logging), the cost of an epoch of training."""
    epochs: int
    """Epochs run (the Trainer may stop early)."""


def data_fingerprint(splits: Splits) -> str:
    """A short hash of every split's tensors: the data part of a cache key."""
    h = hashlib.blake2b(digest_size=10)
    for part in (splits.train, splits.val, splits.test):
        for t in part.tensors:
            h.update(str((tuple(t.shape), t.dtype)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def fit_classifier(
    settings: ClassifierSettings,
    ctx: RunContext,
    splits: Splits,
    *,
    tag: str,
    perturb: Perturb | None = None,
    perturb_key: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> Fitted:
    """Train (or read back from the run's cache) one standard classifier.

    Built under ``ctx.seeded(tag, "init")``, shuffled by ``ctx.child(tag, "order")``, trained by
    the core Trainer (Adam, selection on validation accuracy, a checkpoint per epoch, no progress
    bar), the test split scored once. The state dict, test accuracy and timings are cached under
    ``{tag, settings, perturb_key, data fingerprint}``: a second call with the same key (in this
    or another experiment of the same run folder, or a resumed run) loads instead of training.

    Arguments:
        settings: model kind and training knobs.
        ctx: the run context.
        splits: train/val/test image splits (inputs in [0, 1]).
        tag: names the fit (cache key, checkpoint file, seed streams); a plain name.
        perturb: applied to every training batch (adversarial training); see
            :class:`~deepnotes.core.trainer.Trainer`.
        perturb_key: what ``perturb`` is, for the cache key (e.g. ``{"attack": "pgd", "eps":
            0.1, "steps": 7}``); required with ``perturb``.
        state: what ``perturb`` draws from (its ``torch.Generator``), carried by the
            checkpoint so that a fit killed mid-way resumes to the same weights.

    Returns:
        :class:`Fitted` with the model in eval mode on ``ctx.device``.
    """
    if perturb is not None and perturb_key is None:
        raise ConfigError("perturb_key must describe perturb (it is part of the cache key)")
    shape = tuple(splits.input_shape)
    if len(shape) != 3:
        raise ConfigError(f"splits must hold (C, H, W) images, got input_shape {shape}")
    input_shape = (int(shape[0]), int(shape[1]), int(shape[2]))

    def build() -> nn.Module:
        with ctx.seeded(tag, "init"):
            return build_classifier(settings.kind, input_shape, splits.num_classes)

    def train() -> dict[str, Any]:
        model = build()
        trainer = Trainer(
            model,
            torch.optim.Adam(model.parameters(), lr=settings.lr),
            ctx.child(tag, "order"),
            epochs=settings.epochs,
            batch_size=settings.batch,
            select="acc",
            tag=tag,
            checkpoint=True,
            progress=False,
            log=False,
            perturb=perturb,
            state=state,
        )
        result = trainer.fit(splits.train, splits.val, splits.test)
        assert result.test is not None
        return {
            "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "test_acc": float(result.test["acc"]),
            "seconds": float(result.seconds),
            "epoch_seconds": float(result.train_seconds) / max(result.epochs_run, 1),
            "epochs": int(result.epochs_run),
        }

    key = {
        "tag": tag,
        "settings": asdict(settings),
        "perturb": perturb_key or {},
        "data": data_fingerprint(splits),
    }
    stored = ctx.cached("classifier", key, train)
    model = build()
    model.load_state_dict(stored["state"])
    model.to(ctx.device).eval()
    return Fitted(
        model=model,
        test_acc=float(stored["test_acc"]),
        seconds=float(stored["seconds"]),
        epoch_seconds=float(stored["epoch_seconds"]),
        epochs=int(stored["epochs"]),
    )
