"""Training by hand: the notes' 3-layer network with inverted dropout, in NumPy only. Notes:
discussion 4, section "Dropout" (the network and its masks); discussion 2 (the heavy-ball
momentum update ``v = m v + g``, ``theta -= alpha v``).

The network and the update are :mod:`deepnotes.mechanics.mlp`; this module trains it on the
8x8 digits with the engine's :class:`~deepnotes.core.engine.Loop` (resumable, with the
divergence guard), choosing the epoch on validation accuracy and scoring the test set once.
It imports torch only to build the equivalent torch network that checks the NumPy one.

Check ``matches_torch`` (an identity of the implementation): ``check_steps`` momentum steps of
the NumPy network and of the same network in torch (float64, same initialisation, same dropout
masks, ``torch.optim.SGD`` with momentum) give the same losses and parameters to
``MATCH_TOLERANCE`` = 1e-9 (float64 rounding over a few steps is around 1e-15).

Claim ``test_accuracy``: the hand-trained network reaches test accuracy >= ``TARGET_TEST_ACC``
= 0.95. The notes give no number: 0.95 is the project's bar for this network, fixed before the
first run by the issue that introduced the experiment (a little below the 0.97 asked of the
torch MLP of ``foundations.supervised_digits``, which has a wider layer and Adam). A run that
diverges reports NaN and the claim does not hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import WEIGHT, Loop
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import training_curves
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data import digits
from deepnotes.mechanics.losses import softmax_cross_entropy
from deepnotes.mechanics.mlp import NumpyMLP, Params, sgd_momentum_step

MATCH_TOLERANCE = 1e-9
"""Largest |NumPy - torch| allowed for losses and parameters (float64)."""
TARGET_TEST_ACC = 0.95
"""The project's bar for the hand-trained network (not from the notes; see the module doc)."""


class TorchTwin(nn.Module):
    """The same network in torch (float64), fed the NumPy net's dropout masks."""

    def __init__(self, params: Params) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for i in (1, 2, 3):
            weight = torch.tensor(params[f"W{i}"])
            layer = nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
            with torch.no_grad():
                layer.weight.copy_(weight)
                layer.bias.copy_(torch.tensor(params[f"b{i}"]))
            self.layers.append(layer)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
        h = x  # (N, D)
        for layer, mask in zip(self.layers[:2], masks, strict=True):
            h = torch.relu(layer(h)) * mask  # H *= U
        return self.layers[2](h)  # (N, C)

    def as_params(self) -> Params:
        out = {}
        for i, layer in enumerate(self.layers, start=1):
            out[f"W{i}"] = layer.weight.detach().numpy().copy()
            out[f"b{i}"] = layer.bias.detach().numpy().copy()
        return out


@dataclass(frozen=True)
class NumpyMLPConfig:
    """The notes' 3-layer network with dropout, trained on digits with NumPy only."""

    hidden: tuple[int, int] = (128, 64)
    """Widths H1 and H2."""
    keep: float = 0.8
    """Probability p of keeping a hidden unit (the notes' dropout convention)."""
    lr: float = 0.02
    """Step size alpha."""
    momentum: float = 0.9
    """Heavy-ball coefficient m."""
    epochs: int = 80
    """Passes over the training split; the epoch is chosen on validation accuracy."""
    batch_size: int = 64
    """Minibatch size."""
    check_steps: int = 3
    """Momentum steps compared with the torch twin (momentum matters from the second on)."""

    def __post_init__(self) -> None:
        require(0 < self.keep <= 1, f"keep must be in (0, 1], got {self.keep}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1")
        require(
            len(self.hidden) == 2 and min(self.hidden) >= 1,
            f"hidden must be two widths >= 1, got {self.hidden}",
        )
        require(self.check_steps >= 1, f"check_steps must be >= 1, got {self.check_steps}")

    @classmethod
    def quick(cls) -> NumpyMLPConfig:
        return cls(epochs=50)


@dataclass(frozen=True)
class NumpyMLPMeasurements:
    """The torch comparison and the training run."""

    loss_gap: float
    """Largest |NumPy loss - torch loss| over the checked steps."""
    param_gap: float
    """Largest |NumPy parameter - torch parameter| after each checked step."""
    test_acc: float
    """Test accuracy of the epoch chosen on validation (NaN if training diverged)."""
    val_acc_selected: float
    """Validation accuracy of that epoch."""
    best_epoch: int
    """The chosen epoch (0 if none)."""
    epochs_run: int
    """Epochs trained."""
    n_test: int
    """Test images."""
    history: list[dict[str, Any]]
    """One record per epoch: train_loss, train_acc, val_loss, val_acc."""
    diverged: str = ""
    """Empty, or the engine's divergence message."""

    def metrics(self) -> dict[str, float]:
        return {
            "test_acc": self.test_acc,
            "val_acc_selected": self.val_acc_selected,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "max_loss_gap_vs_torch": self.loss_gap,
            "max_param_gap_vs_torch": self.param_gap,
        }


def _compare_with_torch(
    cfg: NumpyMLPConfig, ctx: RunContext, x: np.ndarray, y: np.ndarray, sizes: tuple[int, ...]
) -> tuple[float, float]:
    """The same momentum steps by hand and by autograd, from the same initialisation and masks:
    the largest loss and parameter differences."""
    net = NumpyMLP(sizes, cfg.keep, ctx.numpy_rng("check"))
    twin = TorchTwin(net.params)
    optimizer = torch.optim.SGD(twin.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    velocity: Params = {}
    loss_gap = param_gap = 0.0
    for step in range(cfg.check_steps):
        batch = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
        xb, yb = x[batch], y[batch]
        loss, grads = net.loss_and_grads(xb, yb)
        sgd_momentum_step(net.params, grads, velocity, cfg.lr, cfg.momentum)
        masks = [torch.tensor(m if m is not None else 1.0) for m in net.last_masks]
        torch_loss = nn.functional.cross_entropy(twin(torch.tensor(xb), masks), torch.tensor(yb))
        optimizer.zero_grad()
        torch_loss.backward()
        optimizer.step()
        loss_gap = max(loss_gap, abs(loss - torch_loss.item()))
        theirs = twin.as_params()
        param_gap = max(param_gap, *(np.abs(net.params[k] - theirs[k]).max() for k in theirs))
    return float(loss_gap), float(param_gap)


def measure(cfg: NumpyMLPConfig, ctx: RunContext) -> NumpyMLPMeasurements:
    """Compare with torch, then train from a fresh initialisation (the epoch chosen on
    validation accuracy) and score the test set once."""
    splits = digits(seed=ctx.seed_for("split"))
    x_train, x_val, x_test = (
        s.tensors[0].numpy().astype(np.float64) for s in (splits.train, splits.val, splits.test)
    )
    y_train, y_val, y_test = (
        s.tensors[1].numpy().astype(np.int64) for s in (splits.train, splits.val, splits.test)
    )
    sizes = (x_train.shape[1], *cfg.hidden, splits.num_classes)
    loss_gap, param_gap = _compare_with_torch(cfg, ctx, x_train, y_train, sizes)

    net = NumpyMLP(sizes, cfg.keep, ctx.numpy_rng("init and masks"))
    order_rng = ctx.numpy_rng("order")
    velocity: Params = {}
    best: dict[str, Any] = {"val_acc": -1.0, "epoch": 0}
    loop = Loop(
        ctx,
        tag="numpy_mlp",
        track={
            "params": net.params,
            "velocity": velocity,
            "best": best,
            "masks_rng": net.rng,
            "order_rng": order_rng,
        },
    )

    def batches(epoch: int) -> list[np.ndarray]:
        order = order_rng.permutation(len(x_train))
        return [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]

    def step(idx: np.ndarray) -> dict[str, float]:
        loss, grads = net.loss_and_grads(x_train[idx], y_train[idx])
        sgd_momentum_step(net.params, grads, velocity, cfg.lr, cfg.momentum)
        return {"train_loss": loss, WEIGHT: len(idx)}

    def evaluate(epoch: int) -> dict[str, float]:
        val_logits = net.predict(x_val)
        val_acc = float((val_logits.argmax(1) == y_val).mean())
        if val_acc > best["val_acc"]:
            best.update(
                val_acc=val_acc, epoch=epoch, **{k: v.copy() for k, v in net.params.items()}
            )
        return {
            "train_acc": float((net.predict(x_train).argmax(1) == y_train).mean()),
            "val_loss": softmax_cross_entropy(val_logits, y_val)[0],
            "val_acc": val_acc,
        }

    try:
        result = loop.run(step, epochs=cfg.epochs, batches=batches, evaluate=evaluate)
    except DivergenceError as err:
        return NumpyMLPMeasurements(
            loss_gap=loss_gap,
            param_gap=param_gap,
            test_acc=math.nan,
            val_acc_selected=math.nan,
            best_epoch=int(best["epoch"]),
            epochs_run=len(loop.history),
            n_test=len(y_test),
            history=loop.history,
            diverged=str(err),
        )
    chosen = {k: best[k] for k in net.params}
    net.params.update(chosen)
    return NumpyMLPMeasurements(
        loss_gap=loss_gap,
        param_gap=param_gap,
        test_acc=float((net.predict(x_test).argmax(1) == y_test).mean()),
        val_acc_selected=float(best["val_acc"]),
        best_epoch=int(best["epoch"]),
        epochs_run=result.rounds,
        n_test=len(y_test),
        history=result.history,
    )


def draw(m: NumpyMLPMeasurements, cfg: NumpyMLPConfig, ctx: RunContext) -> list[Path]:
    if not m.history:
        return []
    fig = training_curves(
        m.history, best_epoch=m.best_epoch or None, title="NumPy MLP with inverted dropout"
    )
    return [ctx.savefig(fig, "curves")]


def claims(m: NumpyMLPMeasurements, cfg: NumpyMLPConfig) -> list[Claim]:
    how = (
        f"training diverged: {m.diverged}"
        if m.diverged
        else f"{m.n_test} test images, epoch {m.best_epoch} of {m.epochs_run} chosen on "
        "validation accuracy"
    )
    return [
        Claim.at_most(
            f"{cfg.check_steps} momentum steps of the NumPy net and of the same torch net "
            "give the same losses and parameters (max abs difference)",
            max(m.loss_gap, m.param_gap),
            MATCH_TOLERANCE,
            detail=f"loss gap {m.loss_gap:.1e}, parameter gap {m.param_gap:.1e}; float64, "
            "same initialisation and dropout masks, torch.optim.SGD with momentum",
            key="matches_torch",
            kind="check",
        ),
        Claim.at_least(
            f"the NumPy-trained network reaches test accuracy >= {TARGET_TEST_ACC} on digits",
            m.test_acc,
            TARGET_TEST_ACC,
            detail=f"{how}; the bar is the project's (fixed before the first run), not the notes'",
            key="test_accuracy",
        ),
    ]


@experiment(
    "mechanics.numpy_mlp",
    topic="mechanics",
    config=NumpyMLPConfig,
    claims=("test_accuracy",),
    checks=("matches_torch",),
)
def numpy_mlp(cfg: NumpyMLPConfig, ctx: RunContext) -> Outcome:
    """The notes' 3-layer network with inverted dropout, written and trained by hand in NumPy
    with momentum, matches the same network in torch step for step and learns the digits."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
