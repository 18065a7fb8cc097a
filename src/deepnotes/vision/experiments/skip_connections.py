"""Skip connections and vanishing gradients. Notes: discussion 4, section 1, "Problem: Vanishing
Gradients in ResNet".

The notes ask how the skip connection of a ResNet helps against vanishing gradients: the block
``y = x + f(x)`` has the Jacobian ``I + df/dx``, which carries the gradient back through the
identity however small ``df/dx`` is. Measured: the Frobenius norm of ``dL/dW_l`` for every layer
of a deep MLP at initialisation, plain against residual (same initial weights, same batch of
training digits, float64), with sigmoid and with ReLU, over ``repeats`` initialisations.

Claims (each a one-sample t test over the replicates, house policy of
:mod:`deepnotes.core.stats`, on ``log10`` of the ratio, which is what multiplies through depth):

- ``sigmoid_residual_gain`` / ``relu_residual_gain``: the first layer's gradient of the residual
  net is more than 100 times the plain net's ("orders of magnitude": two, fixed before the
  confirming run);
- ``sigmoid_plain_vanishes``: in the plain sigmoid net the first hidden layer's gradient is less
  than 1/100 of the last hidden layer's (sigmoid' <= 1/4 shrinks it at every layer);
- ``relu_plain_balanced``: in the plain ReLU net it stays above 1/10 of it (a bias-free ReLU net
  is positively homogeneous in each W_l, so <W_l, dL/dW_l> is the same for every layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import geometric_mean, one_sample
from deepnotes.data import digits
from deepnotes.vision.deep_nets import layer_gradient_norms, plain_mlp, residual_mlp

ORDERS_OF_MAGNITUDE = 100.0  # "orders of magnitude": a ratio of at least 10^2
VANISHED = 1e-2  # a gradient that shrank by at least two orders of magnitude through the net
NOT_VANISHED = 0.1  # ... or one that stayed within one order of magnitude
ACTIVATIONS = ("sigmoid", "relu")
VARIANTS = tuple((act, res) for act in ACTIVATIONS for res in (False, True))


@dataclass(frozen=True)
class SkipConfig:
    """Gradient norm per layer at initialisation, plain vs residual, sigmoid vs ReLU."""

    depth: int = 50
    """Number of hidden layers L (the residual net has skip connections around layers 2..L)."""
    width: int = 128
    """Width of every hidden layer."""
    init: Literal["xavier", "he", "default"] = "xavier"
    """Weight initialisation of both nets (Xavier: the notes' Var(W) = 1/D_a)."""
    batch_size: int = 256
    """Training digits in the batch whose loss is differentiated."""
    repeats: int = 10
    """Independent initialisations (and batches) the tests run over."""

    def __post_init__(self) -> None:
        require(self.depth >= 2, f"depth must be >= 2, got {self.depth}")
        require(self.width >= 1, f"width must be >= 1, got {self.width}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.repeats >= 2, f"repeats must be >= 2 for a test, got {self.repeats}")

    @classmethod
    def quick(cls) -> SkipConfig:
        return cls(depth=30, repeats=5)


@dataclass(frozen=True)
class SkipMeasurements:
    """||dL/dW_l|| per variant, each of shape (repeats, depth + 1): hidden layers, then head."""

    norms: dict[str, np.ndarray]
    """Keyed "sigmoid_plain", "sigmoid_residual", "relu_plain", "relu_residual"."""

    def first(self, act: str, kind: str) -> np.ndarray:
        return self.norms[f"{act}_{kind}"][:, 0]

    def decay(self, act: str, kind: str) -> np.ndarray:
        """First over last hidden layer's gradient norm, (repeats,)."""
        g = self.norms[f"{act}_{kind}"]
        return g[:, 0] / g[:, -2]

    def gain(self, act: str) -> np.ndarray:
        """Residual over plain first-layer gradient norm, (repeats,)."""
        return self.first(act, "residual") / self.first(act, "plain")

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for act in ACTIVATIONS:
            for kind in ("plain", "residual"):
                out[f"{act}_{kind}_first_grad"] = _geomean(self.first(act, kind))
                out[f"{act}_{kind}_first_over_last"] = _geomean(self.decay(act, kind))
            out[f"{act}_residual_over_plain_first"] = _geomean(self.gain(act))
            out[f"{act}_residual_over_plain_first_min"] = float(np.min(self.gain(act)))
        return out


def _geomean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(values) & (values > 0)):
        return math.nan
    return geometric_mean(values)


def _log10(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.asarray(values, dtype=float))


def _name(act: str, residual: bool) -> str:
    return f"{act}_{'residual' if residual else 'plain'}"


def measure(cfg: SkipConfig, ctx: RunContext) -> SkipMeasurements:
    """Gradient norms of the four variants at ``repeats`` initialisations (no training)."""
    splits = digits(seed=ctx.seed)
    x_train, y_train = splits.train.tensors
    norms = {_name(a, r): np.zeros((cfg.repeats, cfg.depth + 1)) for a, r in VARIANTS}
    with ctx.progress(cfg.repeats, "initialisations") as bar:
        for r in range(cfg.repeats):
            pick = torch.randperm(len(x_train), generator=ctx.stream("batch", r))
            x = x_train[pick[: cfg.batch_size]].double()
            y = y_train[pick[: cfg.batch_size]]
            for activation, residual in VARIANTS:
                build = residual_mlp if residual else plain_mlp
                with ctx.seeded("init", r):  # the same weights for all four variants
                    net = build(
                        64,
                        cfg.width,
                        cfg.depth,
                        splits.num_classes,
                        activation=activation,
                        init=cfg.init,
                    ).double()
                # float64: the plain sigmoid net's first gradients approach float32's limits
                norms[_name(activation, residual)][r] = layer_gradient_norms(net, x, y).numpy()
            bar.advance()
    return SkipMeasurements(norms)


def draw(m: SkipMeasurements, cfg: SkipConfig, ctx: RunContext) -> list[Path]:
    """Gradient norm per layer: median and range over the initialisations."""
    fig, ax = figure(size=(6.4, 4.4))
    layers = np.arange(1, cfg.depth + 2)
    colors = {"sigmoid": "tab:blue", "relu": "tab:orange"}
    for activation, residual in VARIANTS:
        g = m.norms[_name(activation, residual)]
        label = f"{activation}, {'residual' if residual else 'plain'}"
        style = "--" if residual else "-"
        ax.plot(layers, np.median(g, axis=0), style, color=colors[activation], label=label, lw=1.8)
        ax.fill_between(layers, g.min(axis=0), g.max(axis=0), color=colors[activation], alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel(f"layer (1 = first hidden layer, {cfg.depth + 1} = output layer)")
    ax.set_ylabel("||dL/dW_l|| at initialisation")
    ax.set_title(
        f"gradient per layer, depth {cfg.depth}, {cfg.init} init\n"
        f"median and range over {cfg.repeats} inits, batches of {cfg.batch_size} digits",
        fontsize=10,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return [ctx.savefig(fig, "gradient_per_layer")]


def claims(m: SkipMeasurements, cfg: SkipConfig) -> list[Claim]:
    """The verdicts, from the record and the config only."""
    setting = (
        f"depth {cfg.depth}, width {cfg.width}, {cfg.init} init, batches of {cfg.batch_size} "
        "training digits, float64"
    )
    gain_note = {
        "sigmoid": "",
        "relu": ". With Var(W) = 1/D_a, ReLU halves the variance of the signal at every plain "
        "layer in both directions, while h + f(h) multiplies it by 1.5: part of the ratio is the "
        "residual net's growth, not only the plain net's decay",
    }
    out = []
    for act, label in (("sigmoid", "sigmoid"), ("relu", "ReLU")):
        out.append(
            Claim.from_test(
                f"{label}, depth {cfg.depth}: the first layer's gradient norm of the residual net "
                f"is more than {ORDERS_OF_MAGNITUDE:g} times the plain net's (test of log10 of "
                f"the ratio against {math.log10(ORDERS_OF_MAGNITUDE):g})",
                one_sample(_log10(m.gain(act)), "greater", null=math.log10(ORDERS_OF_MAGNITUDE)),
                detail=f"{setting}; same initial weights for both nets; geometric mean of the "
                f"ratio {_geomean(m.gain(act)):.3g}, smallest {np.min(m.gain(act)):.3g}"
                + gain_note[act],
                key=f"{act}_residual_gain",
            )
        )
    out.insert(
        1,
        Claim.from_test(
            "sigmoid, plain net: the gradient vanishes with depth (first / last hidden layer's "
            f"gradient norm below {VANISHED:g}; test of log10 against {math.log10(VANISHED):g})",
            one_sample(_log10(m.decay("sigmoid", "plain")), "less", null=math.log10(VANISHED)),
            detail=f"{setting}; geometric mean {_geomean(m.decay('sigmoid', 'plain')):.3g}; "
            "sigmoid' <= 1/4 shrinks it at every layer",
            key="sigmoid_plain_vanishes",
        ),
    )
    out.append(
        Claim.from_test(
            "ReLU, plain net: the weight gradient does not vanish from the last hidden layer to "
            f"the first (first / last above {NOT_VANISHED:g}; test of log10 against "
            f"{math.log10(NOT_VANISHED):g})",
            one_sample(_log10(m.decay("relu", "plain")), "greater", null=math.log10(NOT_VANISHED)),
            detail=f"{setting}; geometric mean {_geomean(m.decay('relu', 'plain')):.3g}; a "
            "bias-free ReLU net is positively homogeneous in each W_l, so <W_l, dL/dW_l> is the "
            "same at every layer and the weight gradients stay balanced, even though dL/dh_l "
            "itself shrinks",
            key="relu_plain_balanced",
        )
    )
    return out


@experiment(
    "vision.skip_connections",
    topic="vision",
    config=SkipConfig,
    claims=(
        "sigmoid_residual_gain",
        "sigmoid_plain_vanishes",
        "relu_residual_gain",
        "relu_plain_balanced",
    ),
)
def skip_connections(cfg: SkipConfig, ctx: RunContext) -> Outcome:
    """Skip connections keep the gradient of the first layers of a deep net alive: orders of
    magnitude larger than in the plain net, where sigmoid makes it vanish."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
