r"""Two-stage detection of digits on canvases, scored by mAP; NMS removes duplicates. Notes:
discussion 5, section 2 "Object detection" (region proposals, the four losses, non-maximum
suppression) and section 1's mean average precision; the anchor is the issue's bar (issue 19,
experiment 2) for a Faster R-CNN (Ren et al. 2015) in :mod:`deepnotes.vision.detection`.

Data: :func:`deepnotes.data.scenes.digit_scenes` with ``side`` = :data:`SIDE` = 48,
``objects`` = :data:`OBJECTS` = (1, 4) digits per canvas (overlaps allowed), ``scale`` =
:data:`SCALE` = (1.5, 2.25) (digits of 12-18 pixels). ``train_size`` canvases of the training
digit pool; ``test_size`` held-out canvases of the test pool (no digit image shared).

Training: :class:`~deepnotes.vision.detection.FasterRCNN` (defaults of
:class:`~deepnotes.vision.detection.DetectorConfig`, ``channels`` from the config) on the sum
of its four losses (RPN objectness BCE, RPN smooth L1, head cross-entropy over 11 classes,
head smooth L1; weights all 1), Adam (``lr``), ``steps`` minibatches of ``batch`` canvases
drawn with replacement, through the engine's :class:`~deepnotes.core.engine.Loop`.

Evaluation: :func:`deepnotes.vision.average_precision.evaluate` with COCO's 101-point
interpolation (the one pycocotools computes) over the ten digit classes; mAP@0.5 and
mAP@[.5:.95] are reported, and VOC's all-point mAP@0.5 as a metric. The mAP@0.5 of subsets
of images (the folds below, the detector without NMS) pools one matching pass per image
(:func:`matches50`, COCO's greedy rule at IoU 0.5) with
:func:`~deepnotes.vision.average_precision.average_precision`: the same numbers as
``evaluate`` on each subset (tested), without matching every subset again.

Claims (thresholds fixed before the confirming run):

- ``map50``: mAP@0.5 with NMS on the held-out scenes >= ``map_bar``: 0.7 in the quick preset
  (the issue's bar), 0.85 in the full preset (the issue asks for "higher"; 0.85 was fixed
  before any full run).
- ``nms_raises_map``: the same trained detector scores a higher mAP@0.5 with per-class NMS
  (IoU 0.5) than without it. Test (fixed before the run): the held-out scenes are split into
  ``folds`` disjoint consecutive groups; mAP@0.5 is computed per group with and without NMS,
  and :func:`deepnotes.core.stats.paired` tests mean(with - without) > 0 one-sided at 0.025.
- check ``ap_matches_pycocotools``: this project's mAP@0.5 and mAP@[.5:.95] on the
  experiment's own detections (with NMS) equal pycocotools' COCOeval (maxDets 100, area
  "all") to 1e-6; the measured value is the larger absolute difference. Without pycocotools
  (the dev extra) the check is a known failure saying so.

Design disclosure: a first trial (48-pixel canvases, digits 10-16 pixels, 1-3 per canvas,
400 steps of 8) reached mAP@0.5 0.57; the digits were made larger (12-18 pixels), 1-4 per
canvas, training 600 steps, and the RPN kept 60 proposals before and 20 after its NMS (300 and
40 in the first trial, for speed) before any claim was written; that gave 0.83 in a trial run.

Deviations from Faster R-CNN (stated in :mod:`deepnotes.vision.detection`): one feature map
(no FPN), class-agnostic box deltas in the head, RPN positives at IoU >= 0.5 (not 0.7) for
digits of 12-18 pixels, RoIAlign instead of RoI max pooling. The full preset (3,000 steps of
16 on 8,000 scenes, 1,000 held-out scenes; about 370 s of one CPU thread) measured, at seed 0,
mAP@0.5 0.937 (bar 0.85), mAP@[.5:.95] 0.715, 0.533 without NMS; the quick preset 0.815,
0.520 and 0.465.
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
from deepnotes.core.stats import paired
from deepnotes.data.scenes import Scenes, digit_scenes
from deepnotes.vision.average_precision import (
    average_precision,
    cocoeval,
    evaluate,
    match,
    precision_recall,
)
from deepnotes.vision.boxes import box_iou
from deepnotes.vision.detection import DetectorConfig, FasterRCNN

SIDE = 48
OBJECTS = (1, 4)
SCALE = (1.5, 2.25)
CLASSES = list(range(10))
AGREEMENT = 1e-6
"""Largest allowed |ours - pycocotools| of mAP@0.5 and mAP@[.5:.95]."""
SHOWN = 5
"""Held-out scenes drawn in the detections figure."""
SHOW_SCORE = 0.3
"""Detections drawn in the figure have at least this score."""

Detections = list[tuple[Tensor, Tensor, Tensor]]


@dataclass(frozen=True)
class DetectionConfig:
    """Train the two-stage detector on digit scenes and score it on held-out ones."""

    train_size: int = 8000
    test_size: int = 1000
    steps: int = 3000
    batch: int = 16
    lr: float = 3e-3
    every: int = 100
    channels: int = 32
    folds: int = 10
    """Disjoint groups of held-out scenes for the paired NMS test."""
    map_bar: float = 0.85
    """The ``map50`` claim's bar: 0.85 full, 0.7 quick (fixed before the runs)."""

    def __post_init__(self) -> None:
        require(self.train_size >= 1, f"train_size must be >= 1, got {self.train_size}")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")
        require(self.batch >= 1 and self.lr > 0, "batch >= 1 and lr > 0 are required")
        require(self.channels >= 2, f"channels must be >= 2, got {self.channels}")
        require(
            2 <= self.folds <= self.test_size,
            f"need 2 <= folds <= test_size, got folds={self.folds}, test_size={self.test_size}",
        )
        require(0 < self.map_bar <= 1, f"map_bar must be in (0, 1], got {self.map_bar}")

    @classmethod
    def quick(cls) -> DetectionConfig:
        """2,000 training scenes, 600 steps of 8, 200 held-out scenes, bar 0.7."""
        return cls(train_size=2000, test_size=200, steps=600, batch=8, map_bar=0.7)


@dataclass(frozen=True)
class DetectionMeasurements:
    """mAP with and without NMS, per fold, pycocotools' values and what the figures need."""

    map50: float
    map_coco: float
    """mAP@[.5:.95] with NMS."""
    map50_voc: float
    map50_raw: float
    ap50: np.ndarray
    """Per class (10,) AP@0.5 with NMS (NaN for a class without ground truth)."""
    fold_map50: np.ndarray
    """(folds,) mAP@0.5 with NMS per group of held-out scenes."""
    fold_map50_raw: np.ndarray
    coco_map50: float
    """pycocotools' mAP@0.5 (NaN when it is not installed)."""
    coco_map: float
    detections: int
    detections_raw: int
    curves: dict[int, tuple[np.ndarray, np.ndarray]]
    """Per class with ground truth, (precision, recall) at IoU 0.5 with NMS."""
    curve: list[dict[str, float]]
    images: np.ndarray
    """(SHOWN, S, S) held-out canvases."""
    shown: dict[str, Any]
    """"nms" and "raw": detections on the shown canvases; "gt": their boxes."""

    @property
    def coco_difference(self) -> float:
        """max |ours - pycocotools| over mAP@0.5 and mAP@[.5:.95] (NaN without pycocotools)."""
        return max(abs(self.map50 - self.coco_map50), abs(self.map_coco - self.coco_map))

    def metrics(self) -> dict[str, Any]:
        return {
            "map50": self.map50,
            "map_50_95": self.map_coco,
            "map50_voc": self.map50_voc,
            "map50_without_nms": self.map50_raw,
            "ap50_per_class": self.ap50.tolist(),
            "fold_map50": self.fold_map50.tolist(),
            "fold_map50_without_nms": self.fold_map50_raw.tolist(),
            "pycocotools_map50": self.coco_map50,
            "pycocotools_map_50_95": self.coco_map,
            "detections": self.detections,
            "detections_without_nms": self.detections_raw,
            "curve": self.curve,
        }


def _scenes(n: int, ctx: RunContext, split: str) -> Scenes:
    return digit_scenes(
        n, side=SIDE, objects=OBJECTS, scale=SCALE, seed=ctx.seed_for(split), split=split
    )


def _fit(cfg: DetectionConfig, ctx: RunContext) -> dict[str, Any]:
    """Train the detector, then detect on the held-out scenes with and without NMS."""
    train = _scenes(cfg.train_size, ctx, "train")
    test = _scenes(cfg.test_size, ctx, "test")
    with ctx.seeded("init"):
        model = FasterRCNN(SIDE, DetectorConfig(channels=cfg.channels))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    draws = ctx.stream("batches")

    def step(_: int) -> dict[str, float]:
        idx = torch.randint(0, cfg.train_size, (cfg.batch,), generator=draws).tolist()
        parts = model.losses(
            train.images[idx], [train.boxes[i] for i in idx], [train.labels[i] for i in idx], draws
        )
        loss = sum(parts.values())  # the four losses, weights 1
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}

    loop = Loop(
        ctx, tag="detector", track={"model": model, "opt": opt, "draws": draws}, progress=False
    )
    history = loop.run(step, steps=cfg.steps, every=cfg.every).history
    model.eval()

    def as_lists(dets: Detections) -> list[list[Tensor]]:
        return [[b, s, lab] for b, s, lab in dets]

    return {
        "nms": as_lists(model.detect(test.images, nms=True)),
        "raw": as_lists(model.detect(test.images, nms=False)),
        "curve": [
            {k: float(v) for k, v in rec.items() if isinstance(v, int | float)} for rec in history
        ],
    }


def _evaluate(dets: list[list[Tensor]], test: Scenes, **kwargs: Any) -> Any:
    return evaluate(
        [d[0] for d in dets],
        [d[1] for d in dets],
        [d[2] for d in dets],
        test.boxes,
        test.labels,
        classes=CLASSES,
        **kwargs,
    )


def pycocotools_maps(dets: list[list[Tensor]], test: Scenes) -> tuple[float, float]:
    """pycocotools' COCOeval mAP@0.5 and mAP@[.5:.95] (maxDets 100, area "all") of the
    detections (:func:`~deepnotes.vision.average_precision.cocoeval`); NaN, NaN when
    pycocotools is not installed."""
    if not any(len(db) for db, _, _ in dets):
        return 0.0, 0.0
    try:
        ev = cocoeval(*zip(*dets, strict=True), test.boxes, test.labels, classes=CLASSES)
    except ImportError:
        return float("nan"), float("nan")
    precision = ev.eval["precision"][:, :, :, 0, 0]  # (T, R, K); -1 where no ground truth
    at50 = precision[0]
    return float(at50[at50 > -1].mean()), float(precision[precision > -1].mean())


Matches = list[dict[int, tuple[np.ndarray, np.ndarray]]]
"""Per image, per class: (scores, true-positive flags) of its detections at IoU 0.5."""


def matches50(dets: list[list[Tensor]], test: Scenes) -> Matches:
    """COCO's greedy matching (:func:`~deepnotes.vision.average_precision.match`) at IoU 0.5,
    per image and class, detections by falling score (stable): done once, then pooled over any
    set of images by :func:`map50` and :func:`pr_curves`."""
    out = []
    for (db, ds, dl), gb, gl in zip(dets, test.boxes, test.labels, strict=True):
        per_class = {}
        for c in CLASSES:
            sel = dl == c
            s = ds[sel]
            order = torch.sort(s, descending=True, stable=True).indices
            iou = box_iou(db[sel][order].double(), gb[gl == c].double()).numpy()
            per_class[c] = (s[order].double().numpy(), match(iou, 0.5))
        out.append(per_class)
    return out


def _pooled(m: Matches, test: Scenes, images: Any, c: int) -> tuple[np.ndarray, np.ndarray, int]:
    idx = list(images)
    num_gt = sum(int((test.labels[i] == c).sum()) for i in idx)
    scores = np.concatenate([m[i][c][0] for i in idx])
    hits = np.concatenate([m[i][c][1] for i in idx])
    return scores, hits, num_gt


def map50(m: Matches, test: Scenes, images: Any, interpolation: str = "coco") -> float:
    """mAP@0.5 over the given images: AP per class with ground truth among them
    (:func:`~deepnotes.vision.average_precision.average_precision`), averaged; the same
    pooling as :func:`~deepnotes.vision.average_precision.evaluate` (tested equal)."""
    aps = [average_precision(*_pooled(m, test, images, c), interpolation) for c in CLASSES]
    valid = [ap for ap in aps if not np.isnan(ap)]
    return float(np.mean(valid)) if valid else float("nan")


def pr_curves(m: Matches, test: Scenes) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per class with ground truth, (precision, recall) at IoU 0.5 over all held-out images."""
    out = {}
    for c in CLASSES:
        scores, hits, num_gt = _pooled(m, test, range(len(test)), c)
        if num_gt:
            out[c] = precision_recall(scores, hits, num_gt)
    return out


def measure(cfg: DetectionConfig, ctx: RunContext) -> DetectionMeasurements:
    """Train once (cached), evaluate with and without NMS, per fold, and with pycocotools."""
    key = {k: v for k, v in vars(cfg).items() if k != "map_bar"}
    fit = ctx.cached("fit", key, lambda: _fit(cfg, ctx))
    test = _scenes(cfg.test_size, ctx, "test")
    with_nms = _evaluate(fit["nms"], test)
    found = {kind: matches50(fit[kind], test) for kind in ("nms", "raw")}
    everything = range(cfg.test_size)
    folds = np.array_split(np.arange(cfg.test_size), cfg.folds)
    fold_maps = {kind: np.array([map50(found[kind], test, f) for f in folds]) for kind in found}
    coco50, coco = pycocotools_maps(fit["nms"], test)
    return DetectionMeasurements(
        map50=with_nms.map_at(0.5),
        map_coco=with_nms.map,
        map50_voc=map50(found["nms"], test, everything, "voc"),
        map50_raw=map50(found["raw"], test, everything),
        ap50=with_nms.ap[0],
        fold_map50=fold_maps["nms"],
        fold_map50_raw=fold_maps["raw"],
        coco_map50=coco50,
        coco_map=coco,
        detections=sum(len(d[1]) for d in fit["nms"]),
        detections_raw=sum(len(d[1]) for d in fit["raw"]),
        curves=pr_curves(found["nms"], test),
        curve=fit["curve"],
        images=test.images[:SHOWN, 0].numpy(),
        shown={
            "nms": [[t.numpy() for t in d] for d in fit["nms"][:SHOWN]],
            "raw": [[t.numpy() for t in d] for d in fit["raw"][:SHOWN]],
            "gt": [b.numpy() for b in test.boxes[:SHOWN]],
        },
    )


def draw(m: DetectionMeasurements, cfg: DetectionConfig, ctx: RunContext) -> list[Path]:
    from matplotlib.patches import Rectangle

    k = len(m.images)
    fig, axes = figure(ncols=k, nrows=2, size=(2.2, 2.4))
    axes = np.asarray(axes).reshape(2, k)
    colours = [f"C{c}" for c in CLASSES]
    for row, kind in enumerate(("nms", "raw")):
        for i in range(k):
            ax = axes[row, i]
            ax.imshow(m.images[i], cmap="gray", vmin=0, vmax=1)
            for x1, y1, x2, y2 in m.shown["gt"][i]:
                ax.add_patch(
                    Rectangle(
                        (x1 - 0.5, y1 - 0.5),
                        x2 - x1,
                        y2 - y1,
                        fill=False,
                        ec="white",
                        lw=0.8,
                        ls="--",
                    )
                )
            boxes, scores, labels = m.shown[kind][i]
            shown = 0
            for (x1, y1, x2, y2), s, c in zip(boxes, scores, labels, strict=True):
                if s < SHOW_SCORE:
                    continue
                shown += 1
                col = colours[int(c)]
                ax.add_patch(
                    Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec=col, lw=1.2)
                )
                top = y1 >= 5  # the label above the box, or under it at the canvas's top
                ax.text(
                    x1 - 0.5,
                    y1 - 1.0 if top else y2 + 0.5,
                    f"{int(c)} {s:.2f}",
                    color=col,
                    fontsize=7,
                    va="bottom" if top else "top",
                    bbox={"fc": "black", "alpha": 0.5, "pad": 0.5, "lw": 0},
                )
            ax.set_title(f"{'NMS' if kind == 'nms' else 'no NMS'}: {shown} shown", fontsize=8)
            ax.set_axis_off()
    fig.suptitle(
        f"held-out scenes, detections with score >= {SHOW_SCORE} (colour = digit), truth dashed; "
        f"mAP@0.5 {m.map50:.3f} with NMS, {m.map50_raw:.3f} without",
        fontsize=9,
    )
    paths = [ctx.savefig(fig, "detections")]

    fig, ax = figure(size=(6.0, 4.5))
    for c, (precision, recall) in m.curves.items():
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        ax.step(
            np.concatenate([[0.0], recall]),
            np.concatenate([[envelope[0] if len(envelope) else 0.0], envelope]),
            where="pre",
            color=colours[c],
            lw=1.3,
            label=f"{c}: AP {m.ap50[c]:.2f}",
        )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (interpolated envelope)")
    ax.set_title(f"precision-recall per digit at IoU 0.5, with NMS (mAP@0.5 {m.map50:.3f})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    paths.append(ctx.savefig(fig, "precision_recall"))
    return paths


def claims(m: DetectionMeasurements, cfg: DetectionConfig) -> list[Claim]:
    test = paired(m.fold_map50, m.fold_map50_raw)
    missing = np.isnan(m.coco_map50)
    return [
        Claim.at_least(
            f"mAP@0.5 >= {cfg.map_bar:g} on held-out test-pool scenes",
            m.map50,
            cfg.map_bar,
            f"{cfg.test_size} scenes of {OBJECTS[0]}-{OBJECTS[1]} digits after {cfg.steps} steps "
            f"of {cfg.batch}; mAP@[.5:.95] {m.map_coco:.3f}; VOC all-point mAP@0.5 "
            f"{m.map50_voc:.3f}; AP@0.5 per digit {np.round(m.ap50, 3).tolist()}",
            key="map50",
        ),
        Claim.from_test(
            "NMS raises the mAP@0.5 of the same trained detector (duplicates removed)",
            test,
            f"mAP@0.5 with NMS minus without, over {cfg.folds} disjoint groups of held-out "
            f"scenes; overall {m.map50:.3f} vs {m.map50_raw:.3f} ({m.detections} vs "
            f"{m.detections_raw} detections)",
            key="nms_raises_map",
        ),
        Claim.at_most(
            f"this project's mAP@0.5 and mAP@[.5:.95] equal pycocotools' to {AGREEMENT:g}",
            m.coco_difference,
            AGREEMENT,
            f"ours {m.map50:.8f} / {m.map_coco:.8f}, pycocotools {m.coco_map50:.8f} / "
            f"{m.coco_map:.8f} on the experiment's {m.detections} detections",
            known_failure="pycocotools not installed" if missing else "",
            key="ap_matches_pycocotools",
            kind="check",
        ),
    ]


@experiment(
    "vision.detection",
    topic="vision",
    config=DetectionConfig,
    claims=("map50", "nms_raises_map"),
    checks=("ap_matches_pycocotools",),
)
def detection(cfg: DetectionConfig, ctx: RunContext) -> Outcome:
    """A small Faster R-CNN trained on its four losses detects held-out digits with a high
    mAP, and non-maximum suppression raises that mAP by removing duplicate boxes."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
