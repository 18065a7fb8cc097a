"""The notes' recipe on the 8x8 digits. Notes: discussion 1, sections "Solving machine learning
problems" (pick a model class, a loss, an optimiser) and "Dataset splits during training"
(train on the training set, select on the validation set, run the test set once).

An MLP (the model class) is trained with cross-entropy (the loss) and Adam (the optimiser) by the
:class:`~deepnotes.core.trainer.Trainer`; the epoch is selected on validation loss and the test
set is scored once, with the selected weights.

Claim ``test_accuracy``: the recipe reaches test accuracy >= ``TARGET_TEST_ACC`` = 0.97. The
notes give no number: 0.97 is the project's bar for an MLP on these digits, fixed before the
first run by the issue that introduced the experiment. A run whose training diverges stops with
the engine's DivergenceError (exit 3, naming the step and the last good checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from deepnotes.core.config import require, require_fractions
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import confusion_figure, confusion_matrix, training_curves
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.trainer import Trainer, make_optimizer
from deepnotes.data import digits
from deepnotes.foundations.models import MLP

TARGET_TEST_ACC = 0.97
"""The project's bar for an MLP on the 8x8 digits (not from the notes; see the module doc)."""


@dataclass(frozen=True)
class DigitsConfig:
    """An MLP on the 8x8 digits with cross-entropy, trained by the Trainer."""

    hidden: tuple[int, ...] = (1024,)
    """Widths of the hidden layers (the model class)."""
    activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu"
    """Hidden nonlinearity."""
    dropout: float = 0.3
    """Dropout probability after each hidden layer."""
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    """The optimiser."""
    lr: float = 1e-3
    """Base learning rate."""
    momentum: float = 0.9
    """Heavy-ball momentum in [0, 1) (SGD only)."""
    weight_decay: float = 1e-4
    """L2 penalty coefficient (>= 0)."""
    epochs: int = 100
    """Maximum number of epochs."""
    batch_size: int = 64
    """Global minibatch size."""
    schedule: Literal["constant", "cosine", "linear", "step"] = "cosine"
    """Per-step learning-rate schedule."""
    patience: int | None = None
    """Early stopping after this many (>= 1) epochs without a better validation loss (None:
    never)."""
    grad_clip: float | None = None
    """Clip the gradient norm to this value, > 0 (None: no clipping)."""
    val_fraction: float = 0.2
    """Share of the digits held out for validation, in (0, 1)."""
    test_fraction: float = 0.2
    """Share of the digits held out for the single final test, in (0, 1); the two shares sum to
    less than 1 (the training set gets the rest)."""

    def __post_init__(self) -> None:
        require(all(h > 0 for h in self.hidden), f"hidden widths must be > 0, got {self.hidden}")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(
            self.patience is None or self.patience >= 1,
            f"patience must be >= 1 epoch or none, got {self.patience}",
        )
        require(
            self.grad_clip is None or self.grad_clip > 0,
            f"grad_clip must be > 0 or none, got {self.grad_clip}",
        )
        require_fractions({"val_fraction": self.val_fraction, "test_fraction": self.test_fraction})

    @classmethod
    def quick(cls) -> DigitsConfig:
        return cls(epochs=60)


@dataclass(frozen=True)
class DigitsMeasurements:
    """One fit: its history, the selected epoch and the single test evaluation."""

    test_acc: float
    """Test accuracy of the selected weights."""
    test_loss: float
    """Test cross-entropy of the selected weights."""
    val_acc_selected: float
    """Validation accuracy at the selected epoch."""
    val_loss_selected: float
    """Validation loss at the selected epoch (the selection criterion)."""
    best_epoch: int
    """The epoch selected on validation loss."""
    epochs_run: int
    """Epochs trained (fewer than ``epochs`` with early stopping)."""
    train_seconds: float
    """Wall time of the fit."""
    n_train: int
    n_val: int
    n_test: int
    history: list[dict[str, Any]]
    """One record per epoch (train and validation loss and accuracy)."""
    confusion: np.ndarray
    """Test confusion matrix (true class x predicted class)."""

    def metrics(self) -> dict[str, float]:
        return {
            "test_acc": self.test_acc,
            "test_loss": self.test_loss,
            "val_acc_selected": self.val_acc_selected,
            "val_loss_selected": self.val_loss_selected,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "train_seconds": round(self.train_seconds, 2),
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
        }


def measure(cfg: DigitsConfig, ctx: RunContext) -> DigitsMeasurements:
    """Train once with validation-based epoch selection; score the test set once."""
    splits = digits(
        seed=ctx.seed_for("split"), val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction
    )
    sizes = {"n_train": len(splits.train), "n_val": len(splits.val), "n_test": len(splits.test)}
    with ctx.seeded("init"):
        model = MLP(64, cfg.hidden, splits.num_classes, cfg.activation, cfg.dropout)
    optimizer = make_optimizer(
        cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay
    )
    trainer = Trainer(
        model,
        optimizer,
        ctx,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        schedule=cfg.schedule,
        patience=cfg.patience,
        grad_clip=cfg.grad_clip,
    )
    # a divergence propagates: this experiment is one fit, and the CLI exits 3 naming the step
    result = trainer.fit(splits.train, splits.val, splits.test)
    assert result.test is not None and result.test_outputs is not None
    y_test = splits.test.tensors[1]
    matrix = confusion_matrix(y_test, result.test_outputs.argmax(-1), splits.num_classes)
    return DigitsMeasurements(
        test_acc=result.test["acc"],
        test_loss=result.test["loss"],
        val_acc_selected=result.best["acc"],
        val_loss_selected=result.best["loss"],
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        train_seconds=result.seconds,
        **sizes,
        history=result.history,
        confusion=matrix.numpy(),
    )


def draw(m: DigitsMeasurements, cfg: DigitsConfig, ctx: RunContext) -> list[Path]:
    curves = training_curves(
        m.history, best_epoch=m.best_epoch, title="MLP on digits: train vs validation"
    )
    confusion = confusion_figure(
        torch.as_tensor(m.confusion), title=f"test set (accuracy {m.test_acc:.3f})"
    )
    return [ctx.savefig(curves, "curves"), ctx.savefig(confusion, "confusion")]


def claims(m: DigitsMeasurements, cfg: DigitsConfig) -> list[Claim]:
    how = (
        f"{m.n_test} test images, evaluated once with the epoch selected on validation "
        f"(epoch {m.best_epoch} of {m.epochs_run})"
    )
    return [
        Claim.at_least(
            f"an MLP trained with cross-entropy and {cfg.optimizer} reaches test accuracy "
            f">= {TARGET_TEST_ACC} on digits",
            m.test_acc,
            TARGET_TEST_ACC,
            detail=f"{how}; the bar is the project's (fixed before the first run), not the notes'",
            key="test_accuracy",
        )
    ]


@experiment(
    "foundations.supervised_digits",
    topic="foundations",
    config=DigitsConfig,
    claims=("test_accuracy",),
)
def supervised_digits(cfg: DigitsConfig, ctx: RunContext) -> Outcome:
    """The notes' recipe (an MLP model class, the cross-entropy loss, the Adam optimiser, the
    epoch selected on validation and the test set scored once) classifies the 8x8 digits."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
