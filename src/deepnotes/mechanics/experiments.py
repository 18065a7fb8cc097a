"""Training by hand: the notes' 3-layer network with inverted dropout, in NumPy only.

Notes: discussion 4, section 4 ("Dropout"): ``H1 = max(0, W1 X + b1)``, ``U1 = (rand < p) / p``,
``H1 *= U1``, the same for ``H2``, ``out = W3 H2 + b3``; ``predict`` is the same network without
the masks. Here it is completed with its backward pass (``deepnotes.mechanics`` layers) and a
heavy-ball momentum step (notes, discussion 2: ``v = m v + g``, ``theta -= alpha v``).

This module is an experiment, not mechanics proper: it imports torch only to build the
equivalent torch network that checks the NumPy one step by step.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import training_curves
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data import digits
from deepnotes.mechanics.activations import relu_backward, relu_forward
from deepnotes.mechanics.layers import affine_backward, affine_forward
from deepnotes.mechanics.losses import softmax_cross_entropy
from deepnotes.mechanics.normalization import dropout_backward, dropout_forward

Params = dict[str, np.ndarray]


class NumpyMLP:
    """The notes' 3-layer ReLU network with inverted dropout after each hidden layer.

    Arguments:
        sizes: (D, H1, H2, C).
        keep: the probability p of keeping a hidden unit (the notes' convention).
        rng: generator for the initialisation (He: N(0, 2 / fan_in)) and the dropout masks.

    Example:
        >>> net = NumpyMLP((64, 128, 64, 10), keep=0.8, rng=np.random.default_rng(0))
        >>> loss, grads = net.loss_and_grads(x, y)
        >>> sgd_momentum_step(net.params, grads, velocity, lr=0.05, momentum=0.9)
    """

    def __init__(self, sizes: tuple[int, int, int, int], keep: float, rng: np.random.Generator):
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        self.keep = keep
        self.rng = rng
        self.params: Params = {}
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes), start=1):
            self.params[f"W{i}"] = rng.normal(0.0, math.sqrt(2.0 / fan_in), (fan_out, fan_in))
            self.params[f"b{i}"] = np.zeros(fan_out)
        self.last_masks: list[np.ndarray | None] = []

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        """Training-mode forward (fresh dropout masks) and backward; masks kept in last_masks."""
        p = self.params
        a1, c_a1 = affine_forward(x, p["W1"], p["b1"])  # (N, H1)
        h1, c_r1 = relu_forward(a1)
        h1, c_d1 = dropout_forward(h1, self.keep, self.rng)  # H1 *= U1
        a2, c_a2 = affine_forward(h1, p["W2"], p["b2"])  # (N, H2)
        h2, c_r2 = relu_forward(a2)
        h2, c_d2 = dropout_forward(h2, self.keep, self.rng)  # H2 *= U2
        out, c_a3 = affine_forward(h2, p["W3"], p["b3"])  # (N, C)
        loss, dout = softmax_cross_entropy(out, y)
        self.last_masks = [c_d1.mask, c_d2.mask]
        grads: Params = {}
        dh2, grads["W3"], grads["b3"] = affine_backward(dout, c_a3)
        da2 = relu_backward(dropout_backward(dh2, c_d2), c_r2)
        dh1, grads["W2"], grads["b2"] = affine_backward(da2, c_a2)
        da1 = relu_backward(dropout_backward(dh1, c_d1), c_r1)
        _, grads["W1"], grads["b1"] = affine_backward(da1, c_a1)
        return loss, grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Test-time forward: the same network without dropout masks; returns logits (N, C)."""
        p = self.params
        h1 = np.maximum(0.0, x @ p["W1"].T + p["b1"])
        h2 = np.maximum(0.0, h1 @ p["W2"].T + p["b2"])
        return h2 @ p["W3"].T + p["b3"]


def sgd_momentum_step(
    params: Params, grads: Params, velocity: Params, lr: float, momentum: float
) -> None:
    """Heavy-ball momentum in place: ``v = m v + g``; ``theta -= alpha v``."""
    for name, g in grads.items():
        velocity[name] = momentum * velocity.get(name, np.zeros_like(g)) + g
        params[name] -= lr * velocity[name]


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
        h = x
        for layer, mask in zip(self.layers[:2], masks, strict=True):
            h = torch.relu(layer(h)) * mask
        return self.layers[2](h)

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
        require(min(self.hidden) >= 1, f"hidden widths must be >= 1, got {self.hidden}")
        require(self.check_steps >= 1, f"check_steps must be >= 1, got {self.check_steps}")

    @classmethod
    def quick(cls) -> NumpyMLPConfig:
        return cls(epochs=50)


MATCH_TOLERANCE = 1e-9  # the bound for NumPy vs torch, float64
TARGET_TEST_ACC = 0.95  # the bar for the hand-trained network


@experiment("mechanics.numpy_mlp", topic="mechanics", config=NumpyMLPConfig)
def numpy_mlp(cfg: NumpyMLPConfig, ctx: RunContext) -> Outcome:
    """The notes' 3-layer net with inverted dropout, trained with NumPy layers and momentum."""
    splits = digits(seed=ctx.seed)
    x_train, y_train = (t.numpy().astype(np.float64) for t in splits.train.tensors)
    x_val, y_val = (t.numpy().astype(np.float64) for t in splits.val.tensors)
    x_test, y_test = (t.numpy().astype(np.float64) for t in splits.test.tensors)
    y_train, y_val, y_test = (y.astype(np.int64) for y in (y_train, y_val, y_test))
    sizes = (x_train.shape[1], *cfg.hidden, splits.num_classes)

    # 1. the same steps by hand and by autograd, from the same initialisation and masks
    rng = np.random.default_rng(ctx.seed)
    net = NumpyMLP(sizes, cfg.keep, rng)
    twin = TorchTwin(net.params)
    optimizer = torch.optim.SGD(twin.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    velocity: Params = {}
    loss_gap = param_gap = 0.0
    for step in range(cfg.check_steps):
        batch = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
        xb, yb = x_train[batch], y_train[batch]
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

    # 2. train from a fresh initialisation; choose the epoch on validation; test once
    rng = np.random.default_rng(ctx.seed + 1)
    net = NumpyMLP(sizes, cfg.keep, rng)
    velocity = {}
    history = []
    best = (-1.0, 0, {k: v.copy() for k, v in net.params.items()})
    with ctx.progress(cfg.epochs, "numpy MLP") as bar:
        for epoch in range(1, cfg.epochs + 1):
            order = rng.permutation(len(x_train))
            losses = []
            for start in range(0, len(order), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                loss, grads = net.loss_and_grads(x_train[idx], y_train[idx])
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss} at epoch {epoch}")
                sgd_momentum_step(net.params, grads, velocity, cfg.lr, cfg.momentum)
                losses.append(loss * len(idx))
            train_logits = net.predict(x_train)
            val_logits = net.predict(x_val)
            val_acc = float((val_logits.argmax(1) == y_val).mean())
            record = {
                "epoch": epoch,
                "train_loss": float(np.sum(losses) / len(x_train)),
                "train_acc": float((train_logits.argmax(1) == y_train).mean()),
                "val_loss": softmax_cross_entropy(val_logits, y_val)[0],
                "val_acc": val_acc,
            }
            history.append(record)
            ctx.log(record)
            if val_acc > best[0]:
                best = (val_acc, epoch, {k: v.copy() for k, v in net.params.items()})
            bar.advance(loss=record["train_loss"], val_acc=val_acc)
    net.params = best[2]
    test_acc = float((net.predict(x_test).argmax(1) == y_test).mean())
    fig = training_curves(history, best_epoch=best[1], title="NumPy MLP with inverted dropout")
    return Outcome(
        metrics={
            "test_acc": test_acc,
            "val_acc_selected": best[0],
            "best_epoch": best[1],
            "max_loss_gap_vs_torch": loss_gap,
            "max_param_gap_vs_torch": param_gap,
        },
        figures=[ctx.savefig(fig, "curves")],
        claims=[
            Claim.at_most(
                f"{cfg.check_steps} momentum steps of the NumPy net and of the same torch net "
                "give the same losses and parameters (max abs difference)",
                max(loss_gap, param_gap),
                MATCH_TOLERANCE,
                detail=f"loss gap {loss_gap:.1e}, parameter gap {param_gap:.1e}; float64, "
                "same initialisation and dropout masks",
            ),
            Claim.at_least(
                "the NumPy-trained network reaches test accuracy >= 0.95 on digits",
                test_acc,
                TARGET_TEST_ACC,
                detail=f"{len(y_test)} test images, epoch {best[1]} of {cfg.epochs} chosen on "
                "validation accuracy",
            ),
        ],
    )
