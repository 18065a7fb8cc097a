r"""Object localisation: a class head and a box head on one small CNN backbone, trained on the
sum of a cross-entropy and an L2 box loss. Notes: discussion 5, section 1 "Review of Vision
Problems" (object localisation: "a loss objective that is the sum of the two loss terms, the
L_2 and the cross-entropy loss"); the anchor is the issue's bar (issue 19, experiment 1).

Data: :func:`deepnotes.data.scenes.digit_scenes` with ``objects=(1, 1)``: one real digit per
32x32 canvas, resized to 8-16 pixels, at a random position; training canvases use the training
digits, the held-out canvases the test digits (no digit image shared). The box target is the
digit's tight ink box ``(x1, y1, x2, y2)`` in pixels (exclusive ends).

Model: :class:`deepnotes.vision.localisation.Localiser`: a box head that regresses the box per
cell of the stride-4 map and pools the cells with a spatial softmax (soft-argmax), and a class
head that RoI-pools the stride-2 map over the predicted box. Loss per canvas:
``CE(logits, y) + box_weight * ||b_hat / 32 - b / 32||^2`` (:func:`localisation_loss`),
``box_weight`` = 10 (stated; it puts the two terms on similar scales at the start). Adam with a
one-cycle learning-rate schedule (peak ``lr``), ``steps`` minibatches of ``batch``, through the
engine's :class:`~deepnotes.core.engine.Loop`.

Claims (thresholds from the issue, fixed before the run), on ``test_size`` held-out canvases:

- ``class_accuracy``: class accuracy >= :data:`ACCURACY_BAR` = 0.95;
- ``mean_iou``: mean IoU of the predicted and true boxes >= :data:`IOU_BAR` = 0.8.

Disclosed design history (the bars never changed):

- a first draft (three conv-pool blocks flattened into one 128-unit layer shared by a linear
  class head and a linear sigmoid box head, constant learning rate) reached accuracy 0.86-0.92
  and mean IoU 0.71-0.76, below both bars, with up to 3000 steps of 64; the model above (spatial
  box head, RoI-pooled class head) and the one-cycle schedule replaced it after that failure;
- with it, the quick preset first had 3,000 canvases and 1,500 steps: accuracy / IoU
  0.988 / 0.884 (seed 0) and 0.976 / 0.889 (seed 1; both runs clipped a RoI ending at the
  canvas border one pixel short, fixed since), but 57 s of CPU, over the budget; cut to
  1,000 steps it gave 0.982 / 0.877 (seed 0) and 0.950 / 0.884 (seed 1: the accuracy claim
  failed, 0.94999 in float32), with a training cross-entropy of 0.04 against a held-out
  accuracy below 0.97 (over-fitting the 3,000 canvases); the quick preset now draws 6,000
  canvases for the same 1,000 steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data.scenes import Scenes, digit_scenes
from deepnotes.vision.boxes import box_iou
from deepnotes.vision.localisation import Localiser, localisation_loss

ACCURACY_BAR = 0.95
IOU_BAR = 0.8
SIDE = 32
SHOWN = 8
"""Held-out canvases drawn in the figure."""


@dataclass(frozen=True)
class LocalisationConfig:
    """Train the two-headed CNN on one-digit canvases."""

    train_size: int = 12000
    """Training canvases (training digits)."""
    test_size: int = 1000
    """Held-out canvases (test digits)."""
    steps: int = 4000
    """Adam steps."""
    batch: int = 64
    """Canvases per step, drawn with replacement."""
    lr: float = 3e-3
    """Peak learning rate of the one-cycle schedule."""
    box_weight: float = 10.0
    """Weight of the L2 box term in the summed loss."""
    every: int = 250
    """Steps per logged round (held-out accuracy and IoU evaluated)."""

    def __post_init__(self) -> None:
        require(self.train_size >= 1 and self.test_size >= 1, "train_size, test_size >= 1")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
        require(self.lr > 0 and self.box_weight > 0, "lr and box_weight must be > 0")

    @classmethod
    def quick(cls) -> LocalisationConfig:
        """6,000 canvases, 1,000 steps of 32."""
        return cls(train_size=6000, test_size=500, steps=1000, batch=32, every=100)


@dataclass(frozen=True)
class LocalisationMeasurements:
    accuracy: float
    mean_iou: float
    ious: np.ndarray
    """Per held-out canvas, (test_size,)."""
    curve: list[dict[str, float]]
    """One record per round: step, loss, ce, l2, test_accuracy, test_iou."""
    images: np.ndarray
    """The first held-out canvases (k, 32, 32) for the figure."""
    true_boxes: np.ndarray
    """(k, 4) pixels."""
    pred_boxes: np.ndarray
    """(k, 4) pixels."""
    true_labels: np.ndarray
    """(k,)."""
    pred_labels: np.ndarray
    """(k,)."""

    def metrics(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "mean_iou": self.mean_iou, "curve": self.curve}


def _targets(scenes: Scenes) -> tuple[Tensor, Tensor]:
    """The single digit's box (N, 4) and label (N,) of each canvas."""
    boxes = torch.stack([b[0] for b in scenes.boxes])
    labels = torch.stack([label[0] for label in scenes.labels])
    return boxes, labels


def _fit(cfg: LocalisationConfig, ctx: RunContext) -> dict[str, Any]:
    train = digit_scenes(
        cfg.train_size, side=SIDE, objects=(1, 1), seed=ctx.seed_for("train"), split="train"
    )
    test = digit_scenes(
        cfg.test_size, side=SIDE, objects=(1, 1), seed=ctx.seed_for("test"), split="test"
    )
    x, (boxes, labels) = train.images, _targets(train)
    tx, (tboxes, tlabels) = test.images, _targets(test)
    with ctx.seeded("init"):
        model = Localiser(side=SIDE)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    data = ctx.stream("batches")

    def step(_: int) -> dict[str, float]:
        model.train()
        idx = torch.randint(0, cfg.train_size, (cfg.batch,), generator=data)
        logits, pred = model(x[idx])
        loss, ce, l2 = localisation_loss(
            logits, pred, labels[idx], boxes[idx], SIDE, cfg.box_weight
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        return {"loss": float(loss.detach()), "ce": float(ce.detach()), "l2": float(l2.detach())}

    def predict() -> tuple[Tensor, Tensor]:
        model.eval()
        with torch.no_grad():
            logits, pred = model(tx)
        return logits.argmax(1), pred

    def evaluate(_: int) -> dict[str, float]:
        cls, pred = predict()
        return {
            "test_accuracy": float((cls == tlabels).float().mean()),
            "test_iou": float(_ious(pred, tboxes).mean()),
        }

    loop = Loop(
        ctx,
        tag="localiser",
        track={"model": model, "opt": opt, "schedule": schedule, "data": data},
        progress=False,
    )
    history = loop.run(step, steps=cfg.steps, every=cfg.every, evaluate=evaluate).history
    cls, pred = predict()
    return {
        "ious": _ious(pred, tboxes),
        "pred_labels": cls,
        "pred_boxes": pred,
        "true_boxes": tboxes,
        "true_labels": tlabels,
        "images": tx[:SHOWN, 0],
        "curve": [
            {k: float(v) for k, v in rec.items() if isinstance(v, int | float)} for rec in history
        ],
    }


def _ious(pred: Tensor, true: Tensor) -> Tensor:
    """IoU (N,) of each predicted box (N, 4) with its true box; a predicted box with x2 < x1 or
    y2 < y1 (possible early in training) is scored with its ends clipped to its start (IoU 0)."""
    pred = torch.cat([pred[:, :2], torch.maximum(pred[:, 2:], pred[:, :2])], 1)
    return box_iou(pred, true).diagonal()


def measure(cfg: LocalisationConfig, ctx: RunContext) -> LocalisationMeasurements:
    """Train once (cached), score the held-out canvases."""
    fit = ctx.cached("fit", dict(vars(cfg)), lambda: _fit(cfg, ctx))
    ious = fit["ious"].numpy()
    return LocalisationMeasurements(
        accuracy=float((fit["pred_labels"] == fit["true_labels"]).float().mean()),
        mean_iou=float(ious.mean()),
        ious=ious,
        curve=fit["curve"],
        images=fit["images"].numpy(),
        true_boxes=fit["true_boxes"][:SHOWN].numpy(),
        pred_boxes=fit["pred_boxes"][:SHOWN].numpy(),
        true_labels=fit["true_labels"][:SHOWN].numpy(),
        pred_labels=fit["pred_labels"][:SHOWN].numpy(),
    )


def draw(m: LocalisationMeasurements, cfg: LocalisationConfig, ctx: RunContext) -> list[Path]:
    """Held-out canvases with the true and predicted boxes and labels; the learning curves."""
    from matplotlib.patches import Rectangle

    k = len(m.images)
    fig, axes = figure(ncols=k, size=(1.8, 2.0))
    for i, ax in enumerate(np.atleast_1d(axes)):
        ax.imshow(m.images[i], cmap="gray", vmin=0, vmax=1)
        for box, color in ((m.true_boxes[i], "lime"), (m.pred_boxes[i], "red")):
            x1, y1, x2, y2 = box  # exclusive ends: pixel k spans [k - 0.5, k + 0.5] in imshow
            ax.add_patch(
                Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec=color, lw=1.3)
            )
        wrong = m.true_labels[i] != m.pred_labels[i]
        ax.set_title(
            f"true {m.true_labels[i]}, pred {m.pred_labels[i]}\nIoU {m.ious[i]:.2f}",
            fontsize=8,
            color="red" if wrong else "black",
        )
        ax.set_axis_off()
    fig.suptitle(
        "held-out canvases: true box green, predicted red; a wrong class in red "
        f"(accuracy {m.accuracy:.3f}, mean IoU {m.mean_iou:.3f})",
        fontsize=9,
    )
    paths = [ctx.savefig(fig, "boxes")]

    fig, (ax_loss, ax_test) = figure(ncols=2, size=(4.4, 3.2))
    steps = [r["step"] for r in m.curve]
    for key, label in (("ce", "cross-entropy"), ("l2", f"L2 box term (x{cfg.box_weight:g})")):
        scale = cfg.box_weight if key == "l2" else 1.0
        ax_loss.plot(steps, [scale * r[key] for r in m.curve], label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("training loss terms (round means)", fontsize=9)
    for key, label, bar in (
        ("test_accuracy", "class accuracy", ACCURACY_BAR),
        ("test_iou", "mean IoU", IOU_BAR),
    ):
        (line,) = ax_test.plot(steps, [r[key] for r in m.curve], marker=".", label=label)
        ax_test.axhline(bar, color=line.get_color(), ls=":", lw=1, label=f"bar {bar}")
    ax_test.set_ylim(0, 1)
    ax_test.set_xlabel("step")
    ax_test.set_title("held-out canvases", fontsize=9)
    for ax in (ax_loss, ax_test):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    paths.append(ctx.savefig(fig, "curves"))
    return paths


def claims(m: LocalisationMeasurements, cfg: LocalisationConfig) -> list[Claim]:
    n = len(m.ious)
    return [
        Claim.at_least(
            f"class accuracy >= {ACCURACY_BAR} on held-out canvases",
            m.accuracy,
            ACCURACY_BAR,
            f"{n} test-digit canvases after {cfg.steps} steps",
            key="class_accuracy",
        ),
        Claim.at_least(
            f"mean IoU of predicted and true boxes >= {IOU_BAR} on held-out canvases",
            m.mean_iou,
            IOU_BAR,
            f"{n} canvases; IoU quartiles "
            f"{np.round(np.quantile(m.ious, [0.25, 0.5, 0.75]), 3).tolist()}",
            key="mean_iou",
        ),
    ]


@experiment(
    "vision.localisation",
    topic="vision",
    config=LocalisationConfig,
    claims=("class_accuracy", "mean_iou"),
)
def localisation(cfg: LocalisationConfig, ctx: RunContext) -> Outcome:
    """One backbone with a class head and a box head, trained on cross-entropy plus an L2 box
    loss, classifies and localises a held-out digit on a canvas."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
