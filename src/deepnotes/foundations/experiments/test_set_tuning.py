"""Why the test set must not be used for tuning. Notes: discussion 1, section "Dataset splits
during training" ("never tune your hyper-parameters on your test set or choose the best model
based on the performance on the test set"; "the test set should only be run once after you
have finalized your model").

Per repeat: a fresh stratified split of the digits into a training set, a validation set and a
held-out pool, and K MLPs (a grid of width x learning rate x weight decay) trained on it, the
epoch of each selected on validation. The pool is cut many times into a small test set and
fresh data; the fresh data stands for the accuracy the chosen model really has. Two protocols
choose one of the K models and report an accuracy:

- tuning on the test set (forbidden): choose the best test accuracy, report it;
- the notes' protocol: choose on validation accuracy, run the test set once, report it.

Claims (house policy of :mod:`deepnotes.core.stats`: one-sided tests over the independent
repeats at level 0.025):

- ``test_tuning_overstates``: the reported accuracy of the test-tuned model exceeds its accuracy
  on fresh data (the mean over repeats of reported - fresh is > 0).
- ``selection_score_overstates``: the same holds for any set used to choose: the validation
  accuracy of the validation-selected model exceeds its accuracy on the whole held-out pool.
  This is why a number used for a choice cannot be reported, and a test set that took no part
  in any choice is kept and run once.

Check ``test_once_unbiased`` (an identity of the protocol, not a claim: it holds whenever the
test set takes no part in the choice, so it cannot fail except through a leak between the sets
or a bug): the validation-selected model's single test accuracy agrees with its fresh-data
accuracy, |mean gap| / SE within the two-sided agreement bound (alpha 0.01).

Each of the repeats x K fits is cached (``ctx.cached``) with its weights from
``ctx.seeded("init", r, k)`` and its minibatch order from ``ctx.child("fit", r, k)``: a killed
run resumes with only the missing fits retrained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.trainer import INNER_FIT, Trainer, make_optimizer
from deepnotes.data import load_digits_arrays, stratified_split
from deepnotes.data.digits import normalize_pixels
from deepnotes.foundations.models import MLP

PROTOCOLS = ("select on test", "select on val")


@dataclass(frozen=True)
class TuningConfig:
    """Best-of-K hyperparameter selection on the test set vs on the validation set."""

    repeats: int = 60
    """Independent random splits of the digits."""
    widths: tuple[int, ...] = (16, 64)
    """Hidden widths in the hyperparameter grid (each >= 1)."""
    lrs: tuple[float, ...] = (0.003, 0.01)
    """Adam learning rates in the grid (each > 0)."""
    weight_decays: tuple[float, ...] = (0.0, 0.001)
    """L2 penalties in the grid, each >= 0 (K = widths x lrs x weight_decays settings)."""
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
        require(all(w >= 1 for w in self.widths), f"widths must be >= 1, got {self.widths}")
        require(all(lr > 0 for lr in self.lrs), f"lrs must be > 0, got {self.lrs}")
        require(
            all(wd >= 0 for wd in self.weight_decays),
            f"weight_decays must be >= 0, got {self.weight_decays}",
        )
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.partitions >= 1, f"partitions must be >= 1, got {self.partitions}")

    @property
    def settings(self) -> int:
        """K, the number of hyperparameter settings compared."""
        return len(self.widths) * len(self.lrs) * len(self.weight_decays)

    @classmethod
    def quick(cls) -> TuningConfig:
        return cls(repeats=40)

    @property
    def grid(self) -> list[tuple[int, float, float]]:
        """The K settings (width, lr, weight decay)."""
        return [(w, lr, wd) for w in self.widths for lr in self.lrs for wd in self.weight_decays]


@dataclass(frozen=True)
class TuningMeasurements:
    """Per repeat: the K fits' validation and pool accuracies and both protocols' numbers."""

    val_acc: np.ndarray
    """Validation accuracy of each fit at its selected epoch, (R, K) (NaN: diverged)."""
    pool_acc: np.ndarray
    """Accuracy of each fit on the whole held-out pool, (R, K)."""
    reported: np.ndarray
    """Reported (test) accuracy of the chosen model, averaged over the cuts, (R, 2) by
    :data:`PROTOCOLS`."""
    fresh: np.ndarray
    """Fresh-data accuracy of the chosen model, averaged over the cuts, (R, 2)."""
    k_val: np.ndarray
    """The setting chosen on validation in each repeat, (R,)."""
    n_test: int
    """Test-set size."""

    @property
    def gap(self) -> np.ndarray:
        """Reported minus fresh accuracy per repeat, (R, 2) by :data:`PROTOCOLS`."""
        return self.reported - self.fresh

    @property
    def selection_gap(self) -> np.ndarray:
        """Validation minus pool accuracy of the validation-selected model, (R,)."""
        rows = np.arange(len(self.k_val))
        return self.val_acc[rows, self.k_val] - self.pool_acc[rows, self.k_val]

    def metrics(self) -> dict[str, float]:
        (m_test, se_test), (m_val, se_val) = (stats.mean_se(g) for g in self.gap.T)
        m_sel, se_sel = stats.mean_se(self.selection_gap)
        reported, fresh = self.reported.mean(axis=0), self.fresh.mean(axis=0)
        return {
            "gap_select_on_test": m_test,
            "gap_select_on_test_se": se_test,
            "gap_select_on_val": m_val,
            "gap_select_on_val_se": se_val,
            "val_selection_gap": m_sel,
            "val_selection_gap_se": se_sel,
            "settings": int(self.val_acc.shape[1]),
            "n_test": self.n_test,
            "reported_acc_select_on_test": float(reported[0]),
            "reported_acc_select_on_val": float(reported[1]),
            "fresh_acc_select_on_test": float(fresh[0]),
            "fresh_acc_select_on_val": float(fresh[1]),
        }


def _tensor_dataset(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> TensorDataset:
    return TensorDataset(
        torch.as_tensor(x[idx], dtype=torch.float32), torch.as_tensor(y[idx], dtype=torch.long)
    )


def _fit(
    cfg: TuningConfig,
    ctx: RunContext,
    data: tuple[TensorDataset, TensorDataset, TensorDataset],
    r: int,
    k: int,
) -> dict[str, Any]:
    """Train setting k on repeat r's split: its validation accuracy and, per pool example,
    whether it is classified correctly (NaN everywhere if training diverged)."""
    train, val, pool = data
    width, lr, wd = cfg.grid[k]
    with ctx.seeded("init", r, k):
        model = MLP(64, (width,), 10)
    trainer = Trainer(
        model,
        make_optimizer("adam", model.parameters(), lr, weight_decay=wd),
        ctx.child("fit", r, k),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        tag=f"r{r}-k{k}",
        **INNER_FIT,
    )
    try:
        val_acc = trainer.fit(train, val).best["acc"]
    except DivergenceError:
        return {"val_acc": math.nan, "correct": np.full(len(pool), math.nan)}
    _, outputs = trainer.evaluate(pool, return_outputs=True)
    correct = (outputs.argmax(-1) == pool.tensors[1]).numpy().astype(np.float64)
    return {"val_acc": float(val_acc), "correct": correct}


def measure(cfg: TuningConfig, ctx: RunContext) -> TuningMeasurements:
    """Train the K settings on every repeat's split (cached per fit), then apply both protocols
    to ``partitions`` random test/fresh cuts of the held-out pool and average per repeat (which
    removes most of the test-sampling noise from each repeat's estimate)."""
    pixels, labels = load_digits_arrays()
    pool_fraction = 1.0 - cfg.train_fraction - cfg.val_fraction
    n_test = round(cfg.test_fraction * len(labels))
    K, R = cfg.settings, cfg.repeats
    val_acc, pool_acc = np.zeros((R, K)), np.zeros((R, K))
    reported, fresh = np.zeros((R, 2)), np.zeros((R, 2))
    k_val = np.zeros(R, dtype=int)
    with ctx.progress(R, "random splits") as bar:
        for r in range(R):
            parts = stratified_split(
                labels,
                (cfg.train_fraction, cfg.val_fraction, pool_fraction),
                ctx.seed_for("split", r),
            )
            x, _, _ = normalize_pixels(pixels, parts[0], "standard")
            data = tuple(_tensor_dataset(x, labels, idx) for idx in parts)
            correct = np.zeros((K, len(parts[2])))  # (K, pool)
            for k in range(K):
                key = {
                    "repeat": r,
                    "setting": list(cfg.grid[k]),
                    "epochs": cfg.epochs,
                    "batch_size": cfg.batch_size,
                    "fractions": [cfg.train_fraction, cfg.val_fraction],
                }
                fit = ctx.cached("fit", key, lambda d=data, r=r, k=k: _fit(cfg, ctx, d, r, k))
                val_acc[r, k], correct[k] = fit["val_acc"], fit["correct"]
            pool_acc[r] = correct.mean(axis=1)
            cut = np.argsort(ctx.numpy_rng("cuts", r).random((cfg.partitions, correct.shape[1])))
            cut = cut[:, :n_test]  # (P, n_test): the test set of each cut; the rest is fresh
            test_acc = correct[:, cut].mean(axis=-1)  # (K, P)
            n_fresh = correct.shape[1] - n_test
            fresh_acc = (correct.sum(axis=1, keepdims=True) - n_test * test_acc) / n_fresh
            columns = np.arange(cfg.partitions)
            k_test = np.argmax(np.nan_to_num(test_acc, nan=-np.inf), axis=0)  # forbidden, (P,)
            k_val[r] = int(np.argmax(np.nan_to_num(val_acc[r], nan=-np.inf)))  # the notes'
            reported[r] = test_acc[k_test, columns].mean(), test_acc[k_val[r]].mean()
            fresh[r] = fresh_acc[k_test, columns].mean(), fresh_acc[k_val[r]].mean()
            if np.isnan(val_acc[r]).any():  # a diverged fit: no protocol number can be trusted
                reported[r] = fresh[r] = math.nan
            gap = reported[r] - fresh[r]
            ctx.log(
                {
                    "repeat": r,
                    "gap_select_on_test": gap[0],
                    "gap_select_on_val": gap[1],
                    "k_val": int(k_val[r]),
                }
            )
            bar.advance()
    return TuningMeasurements(
        val_acc=val_acc,
        pool_acc=pool_acc,
        reported=reported,
        fresh=fresh,
        k_val=k_val,
        n_test=n_test,
    )


def draw(m: TuningMeasurements, cfg: TuningConfig, ctx: RunContext) -> list[Path]:
    fig, (ax_gap, ax_acc) = figure(ncols=2)
    gaps = [*m.gap.T, m.selection_gap]
    names = [*PROTOCOLS, "val score of\nval-selected"]
    jitter_rng = np.random.default_rng(0)  # horizontal jitter of the dots, drawing only
    for i, values in enumerate(gaps):
        jitter = jitter_rng.uniform(-0.12, 0.12, len(values))
        ax_gap.scatter(i + jitter, 100 * values, s=10, alpha=0.5)
        mean, se = stats.mean_se(values)
        ax_gap.errorbar(i, 100 * mean, yerr=200 * se, fmt="o", color="black", capsize=6)
    ax_gap.axhline(0, color="grey", lw=0.8)
    ax_gap.set_xticks(range(len(names)), names, fontsize=8)
    ax_gap.set_ylabel("reported - actual accuracy (points)")
    ax_gap.set_title(f"gap per training split; mean ± 2 SE ({cfg.repeats} splits)")
    reported, fresh = list(m.reported.mean(axis=0)), list(m.fresh.mean(axis=0))
    positions = np.arange(2)
    ax_acc.bar(positions - 0.2, reported, 0.4, label="reported (test set)")
    ax_acc.bar(positions + 0.2, fresh, 0.4, label="fresh data")
    ax_acc.set_xticks(positions, list(PROTOCOLS))
    if all(np.isfinite(reported + fresh)):
        ax_acc.set_ylim(min(fresh + reported) - 0.03, max(fresh + reported) + 0.02)
    ax_acc.set_ylabel("mean accuracy of the selected model")
    ax_acc.legend(fontsize=8)
    return [ctx.savefig(fig, "gaps")]


def claims(m: TuningMeasurements, cfg: TuningConfig) -> list[Claim]:
    setting = (
        f"K = {m.val_acc.shape[1]} settings, {len(m.k_val)} training splits x {cfg.partitions} "
        f"test/fresh cuts, test sets of {m.n_test} images"
    )
    diverged = int(np.isnan(m.val_acc).sum())
    if diverged:
        setting += f"; {diverged} fits diverged (NaN: the claims cannot hold)"
    gap_test, gap_val = m.gap.T
    mean_val, se_val = stats.mean_se(gap_val)
    z_val = stats.standardized(mean_val, se_val)
    bound = stats.agreement_bound(1)
    return [
        Claim.from_test(
            "picking the best of K settings by test accuracy overstates the accuracy on "
            "fresh data (reported - fresh, one-sided over the splits)",
            stats.one_sample(gap_test, "greater"),
            detail=f"accuracies in [0, 1]; {setting}",
            key="test_tuning_overstates",
        ),
        Claim.from_test(
            "the set a choice is made on overstates the chosen model's accuracy: the validation "
            "accuracy of the validation-selected model exceeds its held-out accuracy",
            stats.one_sample(m.selection_gap, "greater"),
            detail=f"validation minus held-out-pool accuracy of the chosen model, per split; "
            f"the epoch and the setting are both chosen on validation; {setting}",
            key="selection_score_overstates",
        ),
        Claim.at_most(
            "selecting on validation and running the test set once: the reported test accuracy "
            "agrees with the fresh-data accuracy (|mean gap| / SE)",
            abs(z_val),
            bound,
            detail=f"gap {100 * mean_val:+.2f} ± {100 * se_val:.2f} points (mean ± SE); zero in "
            f"expectation whenever the test set takes no part in the choice, so only a leak "
            f"between the sets or a bug fails it; bound {bound:.2f} = two-sided agreement at "
            f"alpha = {stats.ALPHA_AGREEMENT:g}; {setting}",
            key="test_once_unbiased",
            kind="check",
        ),
    ]


@experiment(
    "foundations.test_set_tuning",
    topic="foundations",
    config=TuningConfig,
    claims=("test_tuning_overstates", "selection_score_overstates"),
    checks=("test_once_unbiased",),
)
def test_set_tuning(cfg: TuningConfig, ctx: RunContext) -> Outcome:
    """Choosing the best of K models by test accuracy overstates the accuracy the chosen model
    has on fresh data, while choosing on validation and running the test set once does not."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
