"""Experiments of the foundations topic (notes, discussion 1: "Solving machine learning problems"
and "Dataset splits during training")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import confusion_figure, confusion_matrix, figure, training_curves
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.trainer import INNER_FIT, Trainer, make_optimizer
from deepnotes.data import digits, load_digits_arrays, stratified_split
from deepnotes.data.digits import normalize_pixels
from deepnotes.foundations.models import MLP

# ---------------------------------------------------------------------------------------------
# 1. The recipe: model class, loss, optimiser


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
    """Heavy-ball momentum (SGD only)."""
    weight_decay: float = 1e-4
    """L2 penalty coefficient."""
    epochs: int = 100
    """Maximum number of epochs."""
    batch_size: int = 64
    """Global minibatch size."""
    schedule: Literal["constant", "cosine", "linear", "step"] = "cosine"
    """Per-step learning-rate schedule."""
    patience: int | None = None
    """Early stopping after this many epochs without a better validation loss."""
    grad_clip: float | None = None
    """Clip the gradient norm to this value."""
    val_fraction: float = 0.2
    """Share of the digits held out for validation."""
    test_fraction: float = 0.2
    """Share of the digits held out for the single final test."""

    def __post_init__(self) -> None:
        require(all(h > 0 for h in self.hidden), f"hidden widths must be > 0, got {self.hidden}")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")

    @classmethod
    def quick(cls) -> DigitsConfig:
        return cls(epochs=60)


TARGET_TEST_ACC = 0.97  # the foundation issue's bar for an MLP on digits


@experiment("foundations.supervised_digits", topic="foundations", config=DigitsConfig)
def supervised_digits(cfg: DigitsConfig, ctx: RunContext) -> Outcome:
    """The notes' recipe: pick a model class (MLP), a loss (cross-entropy), an optimiser."""
    splits = digits(seed=ctx.seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
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
    result = trainer.fit(splits.train, splits.val, splits.test)
    assert result.test is not None and result.test_outputs is not None
    test_acc = result.test["acc"]

    curves = training_curves(
        result.history, best_epoch=result.best_epoch, title="MLP on digits: train vs validation"
    )
    y_test = splits.test.tensors[1]
    matrix = confusion_matrix(y_test, result.test_outputs.argmax(-1), splits.num_classes)
    confusion = confusion_figure(matrix, title=f"test set (accuracy {test_acc:.3f})")
    n_test = len(splits.test)
    return Outcome(
        metrics={
            "test_acc": test_acc,
            "test_loss": result.test["loss"],
            "val_acc_selected": result.best["acc"],
            "val_loss_selected": result.best["loss"],
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "train_seconds": round(result.seconds, 2),
            "n_train": len(splits.train),
            "n_val": len(splits.val),
            "n_test": n_test,
        },
        figures=[ctx.savefig(curves, "curves"), ctx.savefig(confusion, "confusion")],
        claims=[
            Claim.at_least(
                "an MLP trained with cross-entropy and Adam reaches test accuracy >= 0.97 "
                "on digits",
                test_acc,
                TARGET_TEST_ACC,
                detail=f"{n_test} test images, evaluated once with the epoch selected on "
                f"validation (epoch {result.best_epoch} of {result.epochs_run})",
            )
        ],
    )


# ---------------------------------------------------------------------------------------------
# 2. Why the test set must not be used for tuning


@dataclass(frozen=True)
class TuningConfig:
    """Best-of-K hyperparameter selection on the test set vs on the validation set."""

    repeats: int = 60
    """Independent random splits of the digits."""
    widths: tuple[int, ...] = (16, 64)
    """Hidden widths in the hyperparameter grid."""
    lrs: tuple[float, ...] = (0.003, 0.01)
    """Adam learning rates in the grid."""
    weight_decays: tuple[float, ...] = (0.0, 0.001)
    """L2 penalties in the grid (K = widths x lrs x weight_decays settings)."""
    epochs: int = 12
    """Epochs per fit (the best epoch is chosen on validation)."""
    batch_size: int = 64
    """Minibatch size."""
    train_fraction: float = 0.35
    """Share of the digits each fit trains on."""
    val_fraction: float = 0.1
    """Share used as the validation set."""
    test_fraction: float = 0.1
    """Share used as the (small) test set; the rest of the held-out pool is fresh data."""
    partitions: int = 200
    """Random test/fresh partitions of each repeat's held-out pool (averaged per repeat)."""

    def __post_init__(self) -> None:
        require(
            self.repeats >= 3,
            f"repeats must be >= 3 to estimate a standard error, got {self.repeats}",
        )
        require(self.settings >= 2, "the grid must have at least 2 settings to select from")
        used = self.train_fraction + self.val_fraction + self.test_fraction
        require(
            min(self.train_fraction, self.val_fraction, self.test_fraction) > 0 and used < 0.9,
            "fractions must be > 0 and leave at least 10% of the digits as fresh data, got "
            f"{self.train_fraction}, {self.val_fraction}, {self.test_fraction}",
        )
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.partitions >= 1, f"partitions must be >= 1, got {self.partitions}")

    @property
    def settings(self) -> int:
        """K, the number of hyperparameter settings compared."""
        return len(self.widths) * len(self.lrs) * len(self.weight_decays)

    @classmethod
    def quick(cls) -> TuningConfig:
        return cls(repeats=40)


Z_SIGNIFICANT = 2.0  # a mean more than two standard errors from zero (about 95% two-sided)


@experiment("foundations.test_set_tuning", topic="foundations", config=TuningConfig)
def test_set_tuning(cfg: TuningConfig, ctx: RunContext) -> Outcome:
    """Never tune on the test set: best-of-K by test accuracy overstates the accuracy."""
    pixels, labels = load_digits_arrays()
    pool_fraction = 1.0 - cfg.train_fraction - cfg.val_fraction
    n_test = round(cfg.test_fraction * len(labels))
    grid = [(w, lr, wd) for w in cfg.widths for lr in cfg.lrs for wd in cfg.weight_decays]
    # Per repeat: a fresh train/validation/held-out split and K models trained on it. The
    # held-out pool is then cut many times into a small test set and fresh data; averaging the
    # gaps over those cuts removes most of the test-sampling noise from each repeat's estimate.
    gap_test, gap_val = np.zeros(cfg.repeats), np.zeros(cfg.repeats)
    # accuracies of the selected model, reported (test) and actual (fresh), by protocol
    reported, actual = np.zeros((cfg.repeats, 2)), np.zeros((cfg.repeats, 2))
    with ctx.progress(cfg.repeats, "random splits") as bar:
        for r in range(cfg.repeats):
            split_seed = ctx.seed * 10_007 + r
            parts = stratified_split(
                labels, (cfg.train_fraction, cfg.val_fraction, pool_fraction), split_seed
            )
            x, _, _ = normalize_pixels(pixels, parts[0], "standard")
            train, val, pool = (_tensor_dataset(x, labels, idx) for idx in parts)
            val_acc = np.zeros(len(grid))
            correct = np.zeros((len(grid), len(pool)), dtype=bool)  # (K, pool)
            for k, (width, lr, wd) in enumerate(grid):
                torch.manual_seed(split_seed * 131 + k)
                model = MLP(64, (width,), 10)
                trainer = Trainer(
                    model,
                    make_optimizer("adam", model.parameters(), lr, weight_decay=wd),
                    ctx,
                    epochs=cfg.epochs,
                    batch_size=cfg.batch_size,
                    tag=f"r{r}-k{k}",
                    **INNER_FIT,
                )
                val_acc[k] = trainer.fit(train, val).best["acc"]
                _, outputs = trainer.evaluate(pool, return_outputs=True)
                correct[k] = (outputs.argmax(-1) == pool.tensors[1]).numpy()
            rng = np.random.default_rng(split_seed)
            cut = np.argsort(rng.random((cfg.partitions, len(pool))), axis=1)[:, :n_test]
            test_acc = correct[:, cut].mean(axis=-1)  # (K, P)
            n_fresh = len(pool) - n_test
            fresh_acc = (correct.sum(axis=1, keepdims=True) - n_test * test_acc) / n_fresh
            columns = np.arange(cfg.partitions)
            k_test = test_acc.argmax(axis=0)  # the forbidden protocol: best test number, (P,)
            k_val = int(val_acc.argmax())  # the notes' protocol: pick on validation, test once
            reported[r] = test_acc[k_test, columns].mean(), test_acc[k_val].mean()
            actual[r] = fresh_acc[k_test, columns].mean(), fresh_acc[k_val].mean()
            gap_test[r], gap_val[r] = reported[r] - actual[r]
            ctx.log(
                {
                    "repeat": r,
                    "gap_select_on_test": gap_test[r],
                    "gap_select_on_val": gap_val[r],
                    "k_val": k_val,
                }
            )
            bar.advance()
    m_test, se_test = _mean_se(gap_test)
    m_val, se_val = _mean_se(gap_val)
    m_diff, se_diff = _mean_se(gap_test - gap_val)
    z_test, z_val, z_diff = _z(m_test, se_test), _z(m_val, se_val), _z(m_diff, se_diff)

    fig, (ax_gap, ax_acc) = figure(ncols=2)
    for i, gaps in enumerate((gap_test, gap_val)):
        jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(gaps))
        ax_gap.scatter(i + jitter, 100 * gaps, s=10, alpha=0.5)
        mean, se = _mean_se(gaps)
        ax_gap.errorbar(i, 100 * mean, yerr=200 * se, fmt="o", color="black", capsize=6)
    ax_gap.axhline(0, color="grey", lw=0.8)
    ax_gap.set_xticks([0, 1], ["select on test", "select on val"])
    ax_gap.set_ylabel("reported test acc - fresh acc (points)")
    ax_gap.set_title(f"gap per training split; mean ± 2 SE ({cfg.repeats} splits)")
    reported, actual = list(reported.mean(axis=0)), list(actual.mean(axis=0))
    positions = np.arange(2)
    ax_acc.bar(positions - 0.2, reported, 0.4, label="reported (test set)")
    ax_acc.bar(positions + 0.2, actual, 0.4, label="fresh data")
    ax_acc.set_xticks(positions, ["select on test", "select on val"])
    ax_acc.set_ylim(min(actual + reported) - 0.03, max(actual + reported) + 0.02)
    ax_acc.set_ylabel("mean accuracy of the selected model")
    ax_acc.legend(fontsize=8)
    detail = (
        f"K = {cfg.settings} settings, {cfg.repeats} training splits x {cfg.partitions} "
        f"test/fresh cuts, test sets of {n_test} images"
    )
    return Outcome(
        metrics={
            "gap_select_on_test": m_test,
            "gap_select_on_test_se": se_test,
            "gap_select_on_val": m_val,
            "gap_select_on_val_se": se_val,
            "gap_difference": m_diff,
            "gap_difference_se": se_diff,
            "settings": cfg.settings,
            "n_test": n_test,
            "reported_acc_select_on_test": reported[0],
            "reported_acc_select_on_val": reported[1],
            "fresh_acc_select_on_test": actual[0],
            "fresh_acc_select_on_val": actual[1],
        },
        figures=[ctx.savefig(fig, "gaps")],
        claims=[
            Claim.at_least(
                "picking the best of K settings by test accuracy overstates the accuracy on "
                "fresh data (z = mean gap / SE)",
                z_test,
                Z_SIGNIFICANT,
                detail=f"gap {100 * m_test:+.2f} ± {100 * se_test:.2f} points (mean ± SE); "
                + detail,
            ),
            Claim.at_most(
                "selecting on validation and testing once gives an unbiased test accuracy "
                "(|z| of its gap)",
                abs(z_val),
                Z_SIGNIFICANT,
                detail=f"gap {100 * m_val:+.2f} ± {100 * se_val:.2f} points (mean ± SE); {detail}",
            ),
            Claim.at_least(
                "the test-selection gap exceeds the validation-selection gap (paired z)",
                z_diff,
                Z_SIGNIFICANT,
                detail=f"difference {100 * m_diff:+.2f} ± {100 * se_diff:.2f} points",
            ),
        ],
    )


def _tensor_dataset(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.as_tensor(x[idx], dtype=torch.float32), torch.as_tensor(y[idx], dtype=torch.long)
    )


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    """Sample mean and its standard error s / sqrt(n)."""
    n = len(values)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(n))


def _z(mean: float, se: float) -> float:
    """mean / se, with 0/0 = 0 (all gaps identical to zero) and x/0 = +-inf."""
    if se > 0:
        return mean / se
    return 0.0 if mean == 0 else math.copysign(math.inf, mean)


# The estimation experiments live in their own module; importing it registers them.
from deepnotes.foundations import statistics_experiments  # noqa: E402, F401
