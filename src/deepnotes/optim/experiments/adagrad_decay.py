"""Adagrad's effective step only shrinks; RMSProp's grows again. Notes: discussion 2, section 3.5
"RMSProp and Adagrad".

Adagrad and RMSProp each train the same MLP on the digits (the same initial weights, from the
stream ``"init"``, and the same minibatch order, from ``"order"``), and an
:class:`~deepnotes.optim.tracking.EffectiveStepTracker` reads every coordinate's effective step
``alpha / sqrt(s_k + eps)`` after each update.

- Check ``adagrad_never_grows``: the largest increase of any coordinate's effective step between
  consecutive updates is <= 0. The notes state it ("for Adagrad, s monotonically increases,
  causing the effective learning rate of each coordinate to decrease monotonically"), but it is
  an identity of the update rule (s is a sum of non-negative terms, and floating-point addition
  of a non-negative number never decreases s): it can fail only on a bug, so it is a check.
- Claim ``rmsprop_grows_again``: the fraction of coordinates whose RMSProp effective step grew at
  least once is > 0. The notes contrast RMSProp's *running average* with Adagrad's sum: it
  forgets large past gradients, so the step can grow again. Threshold 0: the notes' statement is
  that it happens at all.

A run that diverges (the engine's DivergenceError) makes both verdicts NaN with a detail that
says so; both fits are cached, so a killed run resumes with the finished one read back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.errors import DivergenceError
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.trainer import INNER_FIT, Trainer
from deepnotes.data import digits
from deepnotes.foundations.models import MLP
from deepnotes.optim.optimizers import Adagrad, RMSProp
from deepnotes.optim.tracking import EffectiveStepTracker

METHODS = ("Adagrad", "RMSProp")


@dataclass(frozen=True)
class DecayConfig:
    """Per-coordinate effective steps alpha / sqrt(s + eps) of Adagrad and RMSProp on digits."""

    hidden: tuple[int, ...] = (64,)
    """Hidden widths of the MLP."""
    epochs: int = 10
    """Training epochs of each run."""
    batch_size: int = 32
    """Minibatch size."""
    adagrad_lr: float = 0.05
    """Adagrad's step alpha."""
    rmsprop_lr: float = 1e-3
    """RMSProp's step alpha."""
    beta: float = 0.9
    """RMSProp's decay beta."""
    eps: float = 1e-8
    """epsilon of both (> 0)."""
    traced: int = 5
    """Coordinates (of the first layer's weights) whose effective step is drawn individually."""

    def __post_init__(self) -> None:
        require(all(h > 0 for h in self.hidden), f"hidden widths must be > 0, got {self.hidden}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(min(self.adagrad_lr, self.rmsprop_lr) > 0, "learning rates must be > 0")
        require(0 <= self.beta < 1, f"beta must be in [0, 1), got {self.beta}")
        require(
            self.eps > 0,
            f"eps must be > 0 (with 0, a weight whose gradient stays 0, such as one of an "
            f"always-blank pixel, steps by 0 / sqrt(0) = NaN), got {self.eps}",
        )
        require(self.traced >= 0, f"traced must be >= 0, got {self.traced}")

    def lr(self, name: str) -> float:
        """The step alpha of ``name`` ("Adagrad" or "RMSProp")."""
        return self.adagrad_lr if name == "Adagrad" else self.rmsprop_lr

    @classmethod
    def quick(cls) -> DecayConfig:
        return cls(epochs=4)


@dataclass(frozen=True)
class DecayMeasurements:
    """What each run recorded (by method name), and the size of the model."""

    parameters: int
    """Coordinates of the MLP."""
    runs: dict[str, dict[str, Any]]
    """Per method: :meth:`EffectiveStepTracker.summary` plus ``val_loss`` (best validation loss),
    ``diverged`` (the DivergenceError's message, empty when the run finished) and
    ``parameters``."""

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"parameters": self.parameters}
        for name, run in self.runs.items():
            key = name.lower()
            out[f"{key}_updates"] = run["updates"]
            out[f"{key}_max_increase"] = run["max_increase"]
            out[f"{key}_fraction_increased"] = run["fraction_increased"]
            out[f"{key}_fraction_pairs_increased"] = run["increases"] / max(run["pairs"], 1)
            out[f"{key}_val_loss"] = run["val_loss"]
        return out


def _fit(name: str, cfg: DecayConfig, ctx: RunContext) -> dict[str, Any]:
    """One tracked run of ``name``: plain values for the cache."""
    splits = digits(seed=ctx.seed)
    with ctx.seeded("init"):  # the same initial weights for both methods
        model = MLP(64, cfg.hidden, splits.num_classes)
    first_layer = model.net[0].weight.numel()
    traced = torch.randperm(first_layer, generator=ctx.stream("traced"))[: cfg.traced]
    builders: dict[str, Callable[[list[torch.Tensor]], Optimizer]] = {
        "Adagrad": lambda p: Adagrad(p, lr=cfg.adagrad_lr, eps=cfg.eps),
        "RMSProp": lambda p: RMSProp(p, lr=cfg.rmsprop_lr, beta=cfg.beta, eps=cfg.eps),
    }
    optimizer = builders[name](list(model.parameters()))
    tracker = EffectiveStepTracker(traced)
    optimizer.register_step_post_hook(tracker)
    trainer = Trainer(
        model,
        optimizer,
        ctx.child("order"),  # the same minibatch order for both methods
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        **INNER_FIT,
        tag=name,
    )
    try:
        val_loss, diverged = trainer.fit(splits.train, splits.val).best["loss"], ""
    except DivergenceError as err:
        val_loss, diverged = math.nan, str(err)
    parameters = sum(p.numel() for p in model.parameters())
    run = {
        **tracker.summary(),
        "val_loss": val_loss,
        "diverged": diverged,
        "parameters": parameters,
    }
    ctx.log({k: v for k, v in run.items() if not isinstance(v, np.ndarray)} | {"method": name})
    return run


def measure(cfg: DecayConfig, ctx: RunContext) -> DecayMeasurements:
    """Train both methods (each fit cached) and record their effective steps."""
    runs = {}
    for name in METHODS:
        key = {
            "method": name,
            "hidden": list(cfg.hidden),
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr(name),
            "beta": cfg.beta if name == "RMSProp" else None,
            "eps": cfg.eps,
            "traced": cfg.traced,
        }
        runs[name] = ctx.cached("fit", key, lambda name=name: _fit(name, cfg, ctx))
    return DecayMeasurements(parameters=runs[METHODS[0]]["parameters"], runs=runs)


def draw(m: DecayMeasurements, cfg: DecayConfig, ctx: RunContext) -> list[Path]:
    """The effective steps over training: quantiles over coordinates, and a few single ones."""
    fig, axes = figure(ncols=2, size=(5.2, 3.8))
    for ax, name in zip(axes, METHODS, strict=True):
        run = m.runs[name]
        q, traces = run["quantiles"], run["traces"]
        steps = np.arange(1, len(q) + 1)
        if len(q):
            ax.fill_between(steps, q[:, 0], q[:, 2], alpha=0.2, label="10-90% of coordinates")
            ax.plot(steps, q[:, 1], lw=1.5, label="median")
            for j in range(traces.shape[1]):
                ax.plot(steps, traces[:, j], lw=0.7, alpha=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("update t")
        ax.set_ylabel("effective step alpha / sqrt(s_k + eps)")
        state = " (diverged)" if run["diverged"] else ""
        ax.set_title(
            f"{name} (alpha = {cfg.lr(name):g}){state}, thin lines: single weights", fontsize=9
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("Effective per-coordinate step while training an MLP on the digits")
    return [ctx.savefig(fig, "effective_steps")]


def claims(m: DecayMeasurements, cfg: DecayConfig) -> list[Claim]:
    """The check on Adagrad and the claim on RMSProp, from the record only."""
    ada, rms = m.runs["Adagrad"], m.runs["RMSProp"]

    def value(run: dict[str, Any], field: str) -> tuple[float, str]:
        if run["diverged"]:
            return math.nan, f"the run diverged: {run['diverged']}"
        return run[field], ""

    ada_max, ada_note = value(ada, "max_increase")
    rms_fraction, rms_note = value(rms, "fraction_increased")
    return [
        Claim.at_most(
            "Adagrad's effective step never increases: largest increase of any coordinate's "
            "alpha / sqrt(s + eps) between consecutive updates",
            ada_max,
            0.0,
            detail=ada_note
            or f"{m.parameters} coordinates x {max(ada['updates'] - 1, 0)} consecutive pairs of "
            "updates; s is a sum of non-negative terms, so this holds exactly unless the update "
            "rule is wrong",
            key="adagrad_never_grows",
            kind="check",
        ),
        Claim.compare(
            "RMSProp's effective step grows again: fraction of coordinates whose "
            "alpha / sqrt(s + eps) grew at least once between consecutive updates",
            rms_fraction,
            ">",
            0.0,
            detail=rms_note
            or f"{rms['increases']} of {rms['pairs']} (coordinate, update) pairs grew; the "
            f"running average (beta = {cfg.beta:g}) forgets large past gradients",
            key="rmsprop_grows_again",
        ),
    ]


@experiment(
    "optim.adagrad_decay",
    topic="optim",
    config=DecayConfig,
    claims=("rmsprop_grows_again",),
    checks=("adagrad_never_grows",),
)
def adagrad_decay(cfg: DecayConfig, ctx: RunContext) -> Outcome:
    """While an MLP trains on the digits, Adagrad's per-coordinate effective step only shrinks
    and RMSProp's grows again for some coordinates."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
