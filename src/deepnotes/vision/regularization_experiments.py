"""Regularisation experiments of the vision topic: dropout and ensembles.

Notes, discussion 4, section 3 ("Ensembles") and section 4 ("Dropout").

- ``vision.dropout``: inverted dropout (``U = (rand < p) / p``, ``H *= U``) keeps the expected
  activation, is the identity at test time, and narrows the gap between training and
  validation accuracy of an MLP trained on 150 digits.
- ``vision.ensembles``: prediction averaging of N independent networks, a snapshot ensemble
  from one run with a cyclic cosine schedule, parameter averaging along one trajectory vs across
  independent runs, and a head-only ensemble, each with its training cost.

The library pieces live in :mod:`deepnotes.vision.ensembles`; networks are the foundations
topic's :class:`~deepnotes.foundations.models.MLP` on flattened 8x8 digits.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.trainer import INNER_FIT, FitResult, Trainer, make_optimizer
from deepnotes.data import digits
from deepnotes.foundations.models import MLP
from deepnotes.vision.ensembles import (
    HeadEnsemble,
    averaged_model,
    cyclic_cosine,
    cyclic_cosine_factor,
    ensemble_probabilities,
    head_ensemble_accuracy,
    majority_vote,
    multi_head_cross_entropy,
    negative_log_likelihood,
)
from deepnotes.vision.models import count_parameters


def _stream_ctx(ctx: RunContext, stream: int) -> RunContext:
    """The run context with its own shuffling seed: the Trainer draws its minibatch order from
    ``ctx.seed``, and independent runs (or successive epochs fitted one at a time) must not
    all see the same order."""
    return dataclasses.replace(ctx, seed=ctx.seed * 1_000_003 + stream)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    """Sample mean and its standard error s / sqrt(n) (0 for a single value)."""
    n = len(values)
    se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return float(values.mean()), se


# ---------------------------------------------------------------------------------------------
# 1. Dropout


@dataclass(frozen=True)
class DropoutConfig:
    """An MLP with and without inverted dropout on a small subset of the digits."""

    train_size: int = 150
    """Training examples drawn from the digits' training split (small: the net can memorise)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP."""
    dropout: float = 0.5
    """Drop probability 1 - p_keep after each hidden layer of the dropout net."""
    lr: float = 1e-3
    """Adam's learning rate."""
    epochs: int = 150
    """Training epochs of each net (no early stopping: the gap is measured at the end)."""
    batch_size: int = 32
    """Minibatch size."""
    tail_epochs: int = 10
    """The final gap is averaged over this many last epochs."""
    repeats: int = 5
    """Independent (subset, initialisation) draws; both nets share each draw."""
    masks: int = 2000
    """Dropout masks drawn for the Monte Carlo check of the expected activation."""

    def __post_init__(self) -> None:
        require(self.train_size >= 10, f"train_size must be >= 10, got {self.train_size}")
        require(all(h > 0 for h in self.hidden), f"hidden widths must be > 0, got {self.hidden}")
        require(0 < self.dropout < 1, f"dropout must be in (0, 1), got {self.dropout}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(
            1 <= self.tail_epochs <= self.epochs,
            f"tail_epochs must be in [1, epochs={self.epochs}], got {self.tail_epochs}",
        )
        require(self.repeats >= 1, f"repeats must be >= 1, got {self.repeats}")
        require(self.masks >= 2, f"masks must be >= 2, got {self.masks}")

    @classmethod
    def quick(cls) -> DropoutConfig:
        return cls(epochs=100, repeats=3)


Z_MC = 3.0  # a Monte Carlo mean within three standard errors of its expectation


def _fit_scoring_train(
    model: nn.Module,
    ctx: RunContext,
    train: TensorDataset,
    val: TensorDataset,
    cfg: DropoutConfig,
    tag: str,
    stream: int,
) -> list[dict[str, float]]:
    """Train for ``cfg.epochs`` epochs (no selection: the net keeps its last weights) and score
    the training set in eval mode after every epoch: the Trainer's own train metrics are running
    averages taken with dropout active. Returns one record per epoch."""

    def score_train(trainer: Trainer, epoch: int) -> dict[str, float]:
        stats = trainer.evaluate(train)  # eval mode: no masks
        return {"train_eval_loss": stats["loss"], "train_eval_acc": stats["acc"]}

    trainer = Trainer(
        model,
        make_optimizer("adam", model.parameters(), cfg.lr),
        _stream_ctx(ctx, stream),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        tag=tag,
        **INNER_FIT,
        keep="last",
        on_epoch_end=score_train,
    )
    return [
        {
            "epoch": r["epoch"],
            "train_loss": r["train_eval_loss"],
            "train_acc": r["train_eval_acc"],
            "val_loss": r["val_loss"],
            "val_acc": r["val_acc"],
            "train_loss_masked": r["train_loss"],
        }
        for r in trainer.fit(train, val).history
    ]


DROPOUT_GAP_FAILS = (
    "on 150 training digits both nets reach training accuracy 1, and dropout changes the gap "
    "by -0.1 to +0.4 points at seeds 0-2 (each within about one standard error); the loss gap "
    "does not narrow reliably either (0.33-0.38 with and without)"
)


@experiment("vision.dropout", topic="vision", config=DropoutConfig)
def dropout(cfg: DropoutConfig, ctx: RunContext) -> Outcome:
    """Inverted dropout keeps E[activation], is off at test time, and narrows the train/val gap."""
    splits = digits(seed=ctx.seed)
    x_all, y_all = splits.train.tensors
    if cfg.train_size > len(y_all):
        raise ValueError(
            f"train_size must be <= {len(y_all)} (the training split), got {cfg.train_size}"
        )
    histories: dict[str, list[list[dict[str, float]]]] = {"plain": [], "dropout": []}
    dropout_net: nn.Module | None = None
    with ctx.progress(cfg.repeats * 2, "dropout vs plain") as bar:
        for r in range(cfg.repeats):
            subset = torch.randperm(len(y_all), generator=ctx.generator(r))[: cfg.train_size]
            train = TensorDataset(x_all[subset], y_all[subset])
            for name, p in (("plain", 0.0), ("dropout", cfg.dropout)):
                torch.manual_seed(ctx.seed * 1_009 + r)  # both nets start from the same weights
                model = MLP(64, cfg.hidden, splits.num_classes, dropout=p)
                history = _fit_scoring_train(model, ctx, train, splits.val, cfg, f"{name}-r{r}", r)
                histories[name].append(history)
                ctx.log({"net": name, "repeat": r, **history[-1]})
                if name == "dropout" and r == 0:
                    dropout_net = model
                bar.advance()
    assert dropout_net is not None

    # --- the gap between training and validation accuracy at the end of training
    def final_gap(history: list[dict[str, float]], key: str) -> float:
        tail = history[-cfg.tail_epochs :]
        if key == "acc":
            return float(np.mean([h["train_acc"] - h["val_acc"] for h in tail]))
        return float(np.mean([h["val_loss"] - h["train_loss"] for h in tail]))

    gaps = {n: np.array([final_gap(h, "acc") for h in hs]) for n, hs in histories.items()}
    loss_gaps = {n: np.array([final_gap(h, "loss") for h in hs]) for n, hs in histories.items()}
    narrowing, narrowing_se = _mean_se(gaps["plain"] - gaps["dropout"])
    (gap_plain, gap_plain_se), (gap_drop, gap_drop_se) = (_mean_se(gaps[n]) for n in gaps)
    final = {
        n: {k: float(np.mean([h[-1][k] for h in hs])) for k in ("train_acc", "val_acc")}
        for n, hs in histories.items()
    }

    # --- Monte Carlo: the expected output of a dropout layer equals its input
    mc = _dropout_expectation(dropout_net, splits.val.tensors[0][:64].to(ctx.device), cfg, ctx)

    curves = _dropout_curves(histories, cfg)
    mc_fig = _dropout_mc_figure(mc, cfg)
    detail_gap = (
        f"train acc (eval mode) - val acc, mean of the last {cfg.tail_epochs} of {cfg.epochs} "
        f"epochs, {cfg.repeats} draws of {cfg.train_size} training digits: without dropout "
        f"{100 * gap_plain:.2f} ± {100 * gap_plain_se:.2f} points, with dropout "
        f"{100 * gap_drop:.2f} ± {100 * gap_drop_se:.2f}; paired difference "
        f"{100 * narrowing:+.2f} ± {100 * narrowing_se:.2f} (mean ± SE)"
    )
    return Outcome(
        metrics={
            "gap_plain": gap_plain,
            "gap_plain_se": gap_plain_se,
            "gap_dropout": gap_drop,
            "gap_dropout_se": gap_drop_se,
            "gap_narrowing": narrowing,
            "gap_narrowing_se": narrowing_se,
            "gaps_narrowed": int((gaps["plain"] > gaps["dropout"]).sum()),
            "loss_gap_plain": float(loss_gaps["plain"].mean()),
            "loss_gap_dropout": float(loss_gaps["dropout"].mean()),
            "train_acc_plain": final["plain"]["train_acc"],
            "val_acc_plain": final["plain"]["val_acc"],
            "train_acc_dropout": final["dropout"]["train_acc"],
            "val_acc_dropout": final["dropout"]["val_acc"],
            "mc_z": mc["z"],
            "mc_max_unit_z": mc["max_unit_z"],
            "mc_units": mc["units"],
            "mc_kept_fraction": mc["kept_fraction"],
            "kept_scale_error": mc["scale_error"],
            "eval_max_abs_change": mc["eval_change"],
        },
        figures=[ctx.savefig(curves, "dropout_curves"), ctx.savefig(mc_fig, "dropout_mc")],
        claims=[
            Claim.at_most(
                "inverted dropout keeps the expected activation: the mean over masks of "
                "U * h (U = 1[u < p_keep] / p_keep) equals h (|z| of the total deviation)",
                abs(mc["z"]),
                Z_MC,
                detail=f"{cfg.masks} masks on the {mc['units']} nonzero inputs of the trained "
                f"net's first dropout layer (64 validation digits); z = sum(mean - h) / its "
                f"exact Bernoulli SE; largest single-unit |z| {mc['max_unit_z']:.2f}; kept "
                f"fraction {mc['kept_fraction']:.4f} (p_keep {1 - cfg.dropout:g}); kept units "
                f"scaled by 1/p_keep up to relative error {mc['scale_error']:.1e}",
            ),
            Claim.at_most(
                "at test time dropout is the identity: no mask and no rescaling (max |change|)",
                mc["eval_change"],
                0.0,
                detail="the dropout layer in eval mode applied to its input, and two eval-mode "
                "passes of the trained net over the same digits",
            ),
            Claim.compare(
                "dropout narrows the train/validation accuracy gap of an MLP trained on a "
                "small subset (gap without - gap with dropout)",
                narrowing,
                ">",
                0.0,
                detail=detail_gap,
                known_failure=DROPOUT_GAP_FAILS,
            ),
        ],
    )


@torch.no_grad()
def _dropout_expectation(
    net: nn.Module, x: torch.Tensor, cfg: DropoutConfig, ctx: RunContext
) -> dict[str, Any]:
    """Apply the net's first dropout layer to its real input ``masks`` times and compare the
    Monte Carlo mean with the input, using the exact variance ``h^2 (1 - q) / q`` of ``U h``."""
    layer = next(m for m in net.modules() if isinstance(m, nn.Dropout))
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
    net.eval()
    first, second = net(x), net(x)
    handle.remove()
    h = captured[0]  # (B, H) hidden activations entering the dropout layer
    q = 1.0 - layer.p  # p_keep
    layer.train()
    torch.manual_seed(ctx.seed * 7_919 + 1)
    total = torch.zeros_like(h, dtype=torch.float64)
    kept = 0
    scale_error = 0.0
    for _ in range(cfg.masks):
        out = layer(h)  # U * h with U = 1[u < q] / q
        total += out.double()
        mask = out != 0
        kept += int((mask & (h != 0)).sum())
        if mask.any():
            ratio = out[mask].double() / h[mask].double()
            scale_error = max(scale_error, float((ratio * q - 1).abs().max()))
    layer.eval()
    eval_change = max(float((layer(h) - h).abs().max()), float((first - second).abs().max()))
    mean = total / cfg.masks
    active = h != 0  # a zero input stays exactly zero under every mask
    h64 = h.double()[active]
    deviation = mean[active] - h64  # (units,)
    variance = h64.pow(2) * (1 - q) / (q * cfg.masks)  # Var of each Monte Carlo mean
    unit_z = deviation / variance.sqrt()
    units = int(active.sum())
    return {
        "z": float(deviation.sum() / variance.sum().sqrt()),
        "unit_z": unit_z.cpu().numpy(),
        "max_unit_z": float(unit_z.abs().max()),
        "units": units,
        "input": h64.cpu().numpy(),
        "mean": mean[active].cpu().numpy(),
        "kept_fraction": kept / (units * cfg.masks),
        "scale_error": scale_error,
        "eval_change": eval_change,
    }


def _dropout_curves(histories: dict[str, list[list[dict[str, float]]]], cfg: DropoutConfig) -> Any:
    fig, (ax_acc, ax_loss) = figure(ncols=2, size=(5.2, 3.8))
    colors = {"plain": "tab:red", "dropout": "tab:blue"}
    labels = {"plain": "no dropout", "dropout": f"dropout {cfg.dropout:g}"}
    epochs = np.arange(1, cfg.epochs + 1)
    for name, hs in histories.items():

        def mean_of(key: str, hs: list[list[dict[str, float]]] = hs) -> np.ndarray:
            return np.mean([[h[key] for h in history] for history in hs], axis=0)

        for split, style in (("train", "-"), ("val", "--")):
            ax_acc.plot(
                epochs,
                mean_of(f"{split}_acc"),
                style,
                color=colors[name],
                label=f"{labels[name]}, {split}",
            )
            ax_loss.plot(
                epochs,
                mean_of(f"{split}_loss"),
                style,
                color=colors[name],
                label=f"{labels[name]}, {split}",
            )
        if name == "dropout":
            ax_loss.plot(
                epochs,
                mean_of("train_loss_masked"),
                ":",
                color=colors[name],
                label=f"{labels[name]}, train (masks on)",
            )
    ax_acc.set_ylim(0.5, 1.01)
    ax_acc.set_ylabel("accuracy")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy")
    for ax in (ax_acc, ax_loss):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"MLP on {cfg.train_size} training digits, mean of {cfg.repeats} draws "
        "(train scored in eval mode)"
    )
    return fig


def _dropout_mc_figure(mc: dict[str, Any], cfg: DropoutConfig) -> Any:
    fig, (ax_mean, ax_z) = figure(ncols=2)
    ax_mean.scatter(mc["input"], mc["mean"], s=3, alpha=0.4)
    top = float(max(mc["input"].max(), mc["mean"].max()))
    ax_mean.plot([0, top], [0, top], color="black", lw=0.8, label="mean = input")
    ax_mean.set_xlabel("input activation h")
    ax_mean.set_ylabel(f"mean of U h over {cfg.masks} masks")
    ax_mean.legend(fontsize=8)
    ax_mean.set_title(f"p_keep = {1 - cfg.dropout:g}")
    grid = np.linspace(-4, 4, 200)
    ax_z.hist(mc["unit_z"], bins=40, density=True, alpha=0.6, label="per-unit z")
    ax_z.plot(
        grid, np.exp(-(grid**2) / 2) / math.sqrt(2 * math.pi), color="black", lw=1, label="N(0, 1)"
    )
    ax_z.set_xlabel("(mean - h) / exact SE")
    ax_z.set_title(f"total deviation z = {mc['z']:+.2f}")
    ax_z.legend(fontsize=8)
    for ax in (ax_mean, ax_z):
        ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------
# 2. Ensembles


@dataclass(frozen=True)
class EnsemblesConfig:
    """Prediction, snapshot, parameter-averaged and head-only ensembles of MLPs on digits."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of every network (the head-only ensemble shares all hidden layers)."""
    members: int = 5
    """N: independently trained networks, and heads of the head-only ensemble."""
    epochs: int = 40
    """Epochs of every run (the snapshot run spends them on its cycles)."""
    batch_size: int = 64
    """Minibatch size."""
    lr: float = 0.05
    """Base learning rate of SGD (peak of every cosine cycle)."""
    momentum: float = 0.9
    """Heavy-ball momentum."""
    weight_decay: float = 5e-4
    """L2 penalty coefficient."""
    cycles: int = 5
    """M: cosine cycles (snapshots) of the snapshot run."""
    averaged_snapshots: int = 3
    """The trajectory average is the mean of the weights of this many last snapshots."""

    def __post_init__(self) -> None:
        require(all(h > 0 for h in self.hidden), f"hidden widths must be > 0, got {self.hidden}")
        require(len(self.hidden) >= 1, "hidden must have at least one layer (the shared trunk)")
        require(self.members >= 2, f"members must be >= 2 to form an ensemble, got {self.members}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(
            2 <= self.cycles <= self.epochs,
            f"cycles must be in [2, epochs={self.epochs}], got {self.cycles}",
        )
        require(
            2 <= self.averaged_snapshots <= self.cycles,
            f"averaged_snapshots must be in [2, cycles={self.cycles}], got "
            f"{self.averaged_snapshots}",
        )

    @classmethod
    def quick(cls) -> EnsemblesConfig:
        return cls(epochs=30)


INDEPENDENT_AVERAGE_DROP = 0.20  # the brief: "far lower", at least 20 points below one net
TRAJECTORY_TOLERANCE = 0.02  # "within a point or two" of the run's own final weights
HEAD_TIME_RATIO = 0.5  # "faster": at most half the training time of N full networks


def _scores(probabilities: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Test accuracy and mean NLL of predicted probabilities (B, C)."""
    return {
        "acc": float((probabilities.argmax(-1) == target).double().mean()),
        "nll": float(negative_log_likelihood(probabilities, target).mean()),
    }


def _sgd_fit(
    model: nn.Module,
    cfg: EnsemblesConfig,
    ctx: RunContext,
    splits: Any,
    tag: str,
    stream: int,
    schedule: Any = "cosine",
    **trainer_kw: Any,
) -> FitResult:
    """One run of ``cfg.epochs`` epochs of SGD with momentum, with its own minibatch order; the
    test set is scored once with the epoch selected on validation."""
    optimizer = make_optimizer("sgd", model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    trainer = Trainer(
        model,
        optimizer,
        _stream_ctx(ctx, stream),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        schedule=schedule,
        tag=tag,
        **INNER_FIT,
        **trainer_kw,
    )
    result = trainer.fit(splits.train, splits.val, splits.test)
    assert result.test is not None and result.test_outputs is not None
    ctx.log(
        {
            "run": tag,
            "best_epoch": result.best_epoch,
            "val_loss": result.best["loss"],
            "test_acc": result.test["acc"],
            "seconds": round(result.seconds, 3),
        }
    )
    return result


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(x).cpu()


SNAPSHOT_FAILS = (
    "at seeds 0-2 the snapshot ensemble (5 cosine cycles of 6 epochs) scores 0.975 test "
    "accuracy against 0.977-0.983 for a single net of the same cost, and a lower NLL at one "
    "seed of three: its early snapshots, each trained for a sixth of the budget, are weak "
    "(0.971-0.977) and barely diverse. The notes only say snapshots make an ensemble cheaper"
)


@experiment("vision.ensembles", topic="vision", config=EnsemblesConfig)
def ensembles(cfg: EnsemblesConfig, ctx: RunContext) -> Outcome:
    """Prediction averaging works; parameter averaging only along one trajectory; cheap variants."""
    splits = digits(seed=ctx.seed)
    x_test, y_test = splits.test.tensors
    x_dev = x_test.to(ctx.device)
    k = splits.num_classes
    steps = cfg.epochs * math.ceil(len(splits.train) / cfg.batch_size)

    def net() -> MLP:
        return MLP(64, cfg.hidden, k)

    n = cfg.members
    with ctx.progress(n + 2, "ensembles") as bar:
        # --- N independent networks (different initialisation and minibatch order)
        members, member_results = [], []
        for i in range(n):
            torch.manual_seed(ctx.seed * 1_009 + i)
            members.append(net())
            member_results.append(_sgd_fit(members[-1], cfg, ctx, splits, f"member{i}", i))
            bar.advance()

        # --- one run with M cosine cycles, a snapshot at the end of each
        torch.manual_seed(ctx.seed * 1_009 + n)
        snap_net = net()
        schedule = cyclic_cosine(cfg.cycles, snapshot_model=snap_net)
        snap_result = _sgd_fit(snap_net, cfg, ctx, splits, "snapshots", n, schedule=schedule)
        assert schedule.last is not None
        snapshots, snapshot_steps = schedule.last.snapshots, schedule.last.snapshot_steps
        bar.advance()

        # --- head-only ensemble: the hidden layers shared, N linear heads
        torch.manual_seed(ctx.seed * 1_009 + n + 1)
        trunk = nn.Sequential(MLP(64, cfg.hidden[:-1], cfg.hidden[-1]), nn.ReLU())
        heads = HeadEnsemble(trunk, cfg.hidden[-1], k, n)
        head_result = _sgd_fit(
            heads,
            cfg,
            ctx,
            splits,
            "heads",
            n + 1,
            loss_fn=multi_head_cross_entropy,
            metrics={"acc": head_ensemble_accuracy},
        )
        bar.advance()
    member_logits = [r.test_outputs for r in member_results]
    member_seconds = [r.seconds for r in member_results]

    # --- scores on the test set (every model is scored once)
    singles = [_scores(z.softmax(-1), y_test) for z in member_logits]
    single_acc = float(np.mean([s["acc"] for s in singles]))
    single_nll = float(np.mean([s["nll"] for s in singles]))
    ensemble = _scores(ensemble_probabilities(member_logits), y_test)
    vote_acc = float((majority_vote(member_logits) == y_test).double().mean())

    snap_logits = []
    for state in snapshots:
        model = net().to(ctx.device)
        model.load_state_dict(state)
        snap_logits.append(_logits(model, x_dev))
    snap_each = [_scores(z.softmax(-1), y_test) for z in snap_logits]
    snap_growing = [
        _scores(ensemble_probabilities(snap_logits[: m + 1]), y_test)
        for m in range(len(snap_logits))
    ]
    snapshot_ensemble = snap_growing[-1]
    # for the reader only (no claim): the ensemble of the same last snapshots that are averaged
    late_ensemble = _scores(ensemble_probabilities(snap_logits[-cfg.averaged_snapshots :]), y_test)
    last_snapshot = snap_each[-1]

    trajectory = _scores(
        _logits(averaged_model(snap_net, snapshots[-cfg.averaged_snapshots :]), x_dev).softmax(-1),
        y_test,
    )
    member_states = [m.state_dict() for m in members]
    independent = _scores(
        _logits(averaged_model(members[0], member_states), x_dev).softmax(-1), y_test
    )
    midpoint = _scores(
        _logits(averaged_model(members[0], member_states[:2]), x_dev).softmax(-1), y_test
    )

    head_logits = head_result.test_outputs  # (B, N, C)
    assert head_logits is not None
    head_ensemble = _scores(ensemble_probabilities(head_logits.transpose(0, 1)), y_test)
    head_each = [_scores(head_logits[:, i].softmax(-1), y_test) for i in range(n)]

    # --- costs: parameters, optimiser steps x parameters ("parameter updates"), seconds
    full_params = count_parameters(members[0])
    head_params = count_parameters(heads)
    seconds_single = float(np.mean(member_seconds))
    seconds_members = float(np.sum(member_seconds))
    time_ratio = head_result.seconds / seconds_members
    param_ratio = head_params / (n * full_params)
    one_run = steps * full_params
    variants = {
        "single net (mean)": (one_run, seconds_single, single_acc, single_nll),
        f"prediction average of {n}": (
            n * one_run,
            seconds_members,
            ensemble["acc"],
            ensemble["nll"],
        ),
        f"snapshot ensemble ({cfg.cycles})": (
            one_run,
            snap_result.seconds,
            snapshot_ensemble["acc"],
            snapshot_ensemble["nll"],
        ),
        f"trajectory weight average ({cfg.averaged_snapshots})": (
            one_run,
            snap_result.seconds,
            trajectory["acc"],
            trajectory["nll"],
        ),
        f"weight average of {n} independent": (
            n * one_run,
            seconds_members,
            independent["acc"],
            independent["nll"],
        ),
        f"head-only ensemble ({n} heads)": (
            steps * head_params,
            head_result.seconds,
            head_ensemble["acc"],
            head_ensemble["nll"],
        ),
    }
    single_points = [
        (one_run, r.seconds, s["acc"], s["nll"])
        for r, s in zip(member_results, singles, strict=True)
    ]
    cost_fig = _cost_figure(variants, single_points, one_run, cfg)
    snap_fig = _snapshot_figure(
        member_results[0].history,
        snap_result.history,
        steps,
        snapshot_steps,
        snap_each,
        snap_growing,
        single_acc,
        cfg,
    )

    jensen = (
        "by Jensen's inequality (-log is convex) -log(mean_i p_i(y)) <= mean_i -log p_i(y) on "
        "every test digit, so this holds whenever the members disagree at all"
    )
    same_cost = (
        f"both spend {steps} SGD steps ({cfg.epochs} epochs); the single-model reference is the "
        f"mean over the {n} independent nets, each trained with one cosine cycle"
    )
    metrics = {
        "single_acc": single_acc,
        "single_nll": single_nll,
        "single_acc_min": min(s["acc"] for s in singles),
        "single_acc_max": max(s["acc"] for s in singles),
        "ensemble_acc": ensemble["acc"],
        "ensemble_nll": ensemble["nll"],
        "vote_acc": vote_acc,
        "snapshot_ensemble_acc": snapshot_ensemble["acc"],
        "snapshot_ensemble_nll": snapshot_ensemble["nll"],
        "late_snapshot_ensemble_acc": late_ensemble["acc"],
        "late_snapshot_ensemble_nll": late_ensemble["nll"],
        "snapshot_mean_acc": float(np.mean([s["acc"] for s in snap_each])),
        "last_snapshot_acc": last_snapshot["acc"],
        "last_snapshot_nll": last_snapshot["nll"],
        "trajectory_average_acc": trajectory["acc"],
        "trajectory_average_nll": trajectory["nll"],
        "independent_average_acc": independent["acc"],
        "independent_average_nll": independent["nll"],
        "midpoint_of_two_acc": midpoint["acc"],
        "head_ensemble_acc": head_ensemble["acc"],
        "head_ensemble_nll": head_ensemble["nll"],
        "head_mean_acc": float(np.mean([s["acc"] for s in head_each])),
        "params_full_net": full_params,
        "params_head_ensemble": head_params,
        "param_ratio_heads_vs_n_nets": param_ratio,
        "seconds_single_mean": seconds_single,
        "seconds_n_nets": seconds_members,
        "seconds_snapshot_run": snap_result.seconds,
        "seconds_head_ensemble": head_result.seconds,
        "time_ratio_heads_vs_n_nets": time_ratio,
        "steps_per_run": steps,
        "n_test": len(y_test),
    }
    return Outcome(
        metrics=metrics,
        figures=[ctx.savefig(cost_fig, "ensembles_cost"), ctx.savefig(snap_fig, "snapshots")],
        claims=[
            Claim.compare(
                f"prediction averaging: the test NLL of {n} averaged nets is below their mean "
                "single NLL",
                ensemble["nll"],
                "<",
                single_nll,
                detail=jensen,
            ),
            Claim.at_least(
                f"prediction averaging: the accuracy of {n} averaged nets is at least their mean "
                "single accuracy",
                ensemble["acc"],
                single_acc,
                detail=f"single nets {min(s['acc'] for s in singles):.4f} to "
                f"{max(s['acc'] for s in singles):.4f}; majority vote {vote_acc:.4f}; "
                f"{len(y_test)} test digits",
            ),
            Claim.at_least(
                f"a snapshot ensemble ({cfg.cycles} cosine cycles of one run) is at least as "
                "accurate as a single net trained for the same number of steps",
                snapshot_ensemble["acc"],
                single_acc,
                detail=same_cost
                + "; snapshots alone: "
                + ", ".join(f"{s['acc']:.3f}" for s in snap_each),
                known_failure=SNAPSHOT_FAILS,
            ),
            Claim.compare(
                "a snapshot ensemble has a lower test NLL than a single net trained for the "
                "same number of steps",
                snapshot_ensemble["nll"],
                "<",
                single_nll,
                detail=same_cost,
                known_failure=SNAPSHOT_FAILS,
            ),
            Claim.at_least(
                f"averaging the weights of {n} independently trained nets fails: its accuracy "
                "is at least 20 points below the mean single accuracy (drop shown)",
                single_acc - independent["acc"],
                INDEPENDENT_AVERAGE_DROP,
                detail=f"weight average {independent['acc']:.4f} vs single {single_acc:.4f}; "
                f"midpoint of two nets {midpoint['acc']:.4f}",
            ),
            Claim.at_least(
                f"averaging the weights of the last {cfg.averaged_snapshots} snapshots of one "
                "run stays within 2 points of that run's final weights (difference shown)",
                trajectory["acc"] - last_snapshot["acc"],
                -TRAJECTORY_TOLERANCE,
                detail=f"trajectory average {trajectory['acc']:.4f}, final snapshot "
                f"{last_snapshot['acc']:.4f}",
            ),
            Claim.at_most(
                f"a head-only ensemble ({n} heads on a shared trunk) trains in at most half the "
                f"time of {n} full nets (time ratio)",
                time_ratio,
                HEAD_TIME_RATIO,
                detail=f"{head_result.seconds:.2f} s vs {seconds_members:.2f} s; parameters "
                f"{head_params} vs {n} x {full_params} (ratio {param_ratio:.3f}); accuracy "
                f"{head_ensemble['acc']:.4f} vs {ensemble['acc']:.4f} for {n} full nets",
            ),
        ],
    )


def _cost_figure(
    variants: dict[str, tuple[float, float, float, float]],
    singles: list[tuple[float, float, float, float]],
    one_run: float,
    cfg: EnsemblesConfig,
) -> Any:
    """Test error and NLL of every variant against its training cost, in parameter updates
    (relative to one net) and in measured seconds. Tuples: (updates, seconds, acc, nll).

    The y-axes are zoomed on the working variants; a point far above (the weight average of
    independent nets) is drawn at the top edge as an arrow labelled with its value.
    """
    fig, axes = figure(ncols=3, size=(4.2, 3.8))
    panels = (
        (axes[0], 0, 2, "parameter updates (SGD steps x parameters), in single-net runs"),
        (axes[1], 1, 2, "measured training time (s)"),
        (axes[2], 0, 3, "parameter updates, in single-net runs"),
    )
    colors = [f"C{i}" for i in range(len(variants))]
    markers = "osD^vP*X"
    for ax, x_index, y_index, x_label in panels:

        def xy(values: tuple[float, ...], x_index: int = x_index, y_index: int = y_index) -> tuple:
            x = values[x_index] / one_run if x_index == 0 else values[x_index]
            y = 100 * (1 - values[y_index]) if y_index == 2 else values[y_index]
            return x, y

        points = {label: xy(values) for label, values in variants.items()}
        single_xy = [xy(v) for v in singles]
        ys = sorted(y for _, y in [*points.values(), *single_xy])
        top = 2.0 * np.median(ys)  # variants above twice the median are off the scale
        top = max(y for y in ys if y <= top) * 1.25
        ax.scatter(*zip(*single_xy, strict=True), s=14, color="lightgrey", label="each single net")
        for (label, (x, y)), marker, color in zip(points.items(), markers, colors, strict=False):
            if y <= top:
                ax.scatter(x, y, s=60, marker=marker, color=color, label=label, zorder=3)
                continue
            ax.scatter(x, top * 0.97, s=60, marker=marker, color=color, label=label, zorder=3)
            ax.annotate(
                f"{y:.1f}{'%' if y_index == 2 else ''}, off scale",
                (x, top * 0.97),
                xytext=(-8, -4),
                textcoords="offset points",
                ha="right",
                va="top",
                fontsize=7,
                color=color,
                arrowprops={"arrowstyle": "-"},
            )
        ax.set_ylim(0, top)
        ax.set_xlabel(x_label, fontsize=8)
        ax.set_ylabel("test error (%)" if y_index == 2 else "test NLL (nats)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(f"Ensembles of MLPs {cfg.hidden} on digits, {cfg.epochs} epochs per run")
    return fig


def _snapshot_figure(
    single_history: list[dict[str, Any]],
    snapshot_history: list[dict[str, Any]],
    steps: int,
    snapshot_steps: list[int],
    snap_each: list[dict[str, float]],
    snap_growing: list[dict[str, float]],
    single_acc: float,
    cfg: EnsemblesConfig,
) -> Any:
    fig, (ax_lr, ax_acc) = figure(ncols=2)
    cycle = math.ceil(steps / cfg.cycles)
    t = np.arange(steps)
    steps_per_epoch = steps / cfg.epochs
    ax_lr.plot(
        t / steps_per_epoch,
        [cfg.lr * cyclic_cosine_factor(s, cycle) for s in t],
        label=f"cyclic cosine, M = {cfg.cycles}",
    )
    ax_lr.plot(
        t / steps_per_epoch,
        [cfg.lr * 0.5 * (1 + math.cos(math.pi * s / steps)) for s in t],
        "--",
        label="one cosine cycle",
    )
    for s in snapshot_steps:
        ax_lr.axvline(s / steps_per_epoch, color="grey", lw=0.6, ls=":")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    ax_lr.legend(fontsize=8)
    epochs = [r["epoch"] for r in snapshot_history]
    ax_acc.plot(
        epochs,
        [r["val_acc"] for r in snapshot_history],
        color="tab:blue",
        label="snapshot run (val)",
    )
    ax_acc.plot(
        [r["epoch"] for r in single_history],
        [r["val_acc"] for r in single_history],
        "--",
        color="tab:orange",
        label="one-cycle run (val)",
    )
    snap_epochs = [s / steps_per_epoch for s in snapshot_steps]
    ax_acc.scatter(
        snap_epochs,
        [s["acc"] for s in snap_each],
        color="tab:blue",
        marker="o",
        label="each snapshot (test)",
        zorder=4,
    )
    ax_acc.plot(
        snap_epochs,
        [s["acc"] for s in snap_growing],
        "-s",
        color="tab:green",
        label="ensemble of snapshots so far (test)",
        zorder=3,
    )
    ax_acc.axhline(single_acc, color="tab:orange", lw=0.8, label="single nets, mean (test)")
    low = min([s["acc"] for s in snap_each] + [single_acc]) - 0.03
    ax_acc.set_ylim(max(0.0, low), 1.0)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend(fontsize=7)
    for ax in (ax_lr, ax_acc):
        ax.grid(alpha=0.3)
    return fig
