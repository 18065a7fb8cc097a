r"""5-way 1-shot and 5-shot classification of generated glyphs: Prototypical Networks, Matching
Networks, MAML and the black-box LSTM learner against a fine-tuning baseline. Notes: discussion
12, section 2 "Meta Learning for Supervised Learning" (2.1-2.3); the issue's item 3.

Data: :func:`deepnotes.data.glyphs.glyph_splits` (``classes`` procedural characters of
``per_class`` renderings at ``side`` pixels, split 70/10/20 into meta-train / meta-validation /
meta-test classes, never shared); episodes from :func:`deepnotes.data.episodes.episode_batch`.
The validation classes are not used: every learner trains for a fixed number of steps, no model
selection. Learners (:mod:`deepnotes.meta.fewshot`), each with its own :class:`ConvEmbedding`
(4 blocks of ``width`` channels; 64 in the papers, 16 in the quick preset):

- ``protonet``: Prototypical Networks, the paper's negative squared Euclidean score;
- ``matching``: Matching Networks, cosine kernel of sharpness ``matching_sharpness``, no
  full-context embeddings;
- ``maml``: MAML with a 5-way head (zero at the start, see
  :class:`~deepnotes.meta.fewshot.MAMLLearner`), ``maml_inner_steps`` inner steps of
  ``maml_inner_lr`` (Finn et al.'s 1 step of 0.4 for 5-way Omniglot), second order
  (``maml_first_order=True`` for FOMAML; at the quick preset FOMAML reached 40-42%, second
  order 71-77% at seed 0);
- ``blackbox``: the LSTM learner (``lstm_hidden`` units);
- ``finetune``: the baseline, an embedding pretrained with a softmax over every meta-train class
  (``steps`` steps of batches of ``pretrain_batch``), then a new linear head fit on each
  episode's support (``head_steps`` Adam steps of ``head_lr``).

Each meta-learner is meta-trained for ``steps`` Adam steps (``lr``) of ``tasks`` episodes with
``queries`` queries per class, alternating the shots of ``train_shots``; one model per learner
serves both test settings. Test: ``test_episodes`` 5-way 5-shot episodes of the meta-test classes
(own stream); the 1-shot episode of each keeps the first support example of every class and the
same queries, so every method is scored on the same episodes and both shot counts on the same
queries (paired). Accuracy: mean over episodes with a 95% interval (1.96 SE).

Claims (fixed before the run; the house's one-sided paired test at level 0.025, Bonferroni):

- ``<method>_beats_baseline_<k>shot`` for the 4 meta-learners and k in {1, 5}: the
  meta-learner's accuracy exceeds the fine-tuning baseline's on the same episodes (one family of
  :data:`BEATS_FAMILY` = 8 tests);
- ``more_shots_help_<method>`` for all 5 methods: 5-shot accuracy exceeds 1-shot accuracy on the
  same queries (one family of :data:`SHOTS_FAMILY` = 5 tests).

Anchors, not claims (Omniglot, 28 px, 64-channel CNNs trained for hours, do not transfer to
generated glyphs): MAML 98.7 / 99.9 (Finn et al. 2017), ProtoNets 98.8 / 99.7 (Snell et al.
2017), Matching Networks 98.1 / 98.9 (Vinyals et al. 2016) for 1 / 5 shots, drawn beside the
measured table.

Quick preset: 300 classes of 10 renderings at 16 px, width 16, 150 steps of one episode per
learner (4 queries per class), 100 test episodes of 5 queries per class (deviations from the
full preset's 1,200 classes of 20 at 28 px, width 64, 2,000 steps of 4 episodes, 1,000 test
episodes of 15 queries). At the quick preset MAML learns (71% / 77%) but stays below the
baseline, the black-box LSTM stays at chance and Matching Networks tie the baseline at 5 shots:
those claims are known failures there
(:data:`QUICK_FAILS`, with the measured numbers), not in the full preset, which was not run
on this CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import paired
from deepnotes.data.episodes import Episode, episode_batch
from deepnotes.data.glyphs import glyph_splits
from deepnotes.meta.fewshot import (
    BlackBoxLearner,
    ConvEmbedding,
    FewShotLearner,
    FineTuneBaseline,
    MAMLLearner,
    MatchingNet,
    ProtoNet,
    episode_accuracy,
    fewer_shots,
    interval95,
    pretrain_embedding,
    train_episodes,
)

META = ("protonet", "matching", "maml", "blackbox")
"""The meta-learners, each claimed to beat the baseline."""
METHODS = (*META, "finetune")
BASELINE = "finetune"
SHOTS = (1, 5)
"""The test settings: 5-way 1-shot and 5-way 5-shot."""
WAYS = 5
NAMES = {
    "protonet": "Prototypical Networks",
    "matching": "Matching Networks",
    "maml": "MAML",
    "blackbox": "black-box LSTM",
    "finetune": "fine-tuning baseline",
}
ANCHORS = {"maml": (98.7, 99.9), "protonet": (98.8, 99.7), "matching": (98.1, 98.9)}
"""Omniglot 5-way accuracy (%) at 1 / 5 shots: Finn et al., Snell et al., Vinyals et al."""
BEATS_FAMILY = len(META) * len(SHOTS)
SHOTS_FAMILY = len(METHODS)
EXAMPLES = 2
"""Test episodes drawn with every method's predictions (1-shot)."""
SHOWN_QUERIES = 10
QUICK_STEPS = 150
"""Meta-training steps of the quick preset."""
_QUICK_RUN = f"at seed 0 after {QUICK_STEPS} meta-training steps of one episode, width 16"
QUICK_FAILS = {
    **{
        f"maml_{claim}": (
            "at the quick preset MAML learns but stays below the baseline (70.7% / 77.0% at 1 / 5 "
            f"shots against 79.5% / 91.4%, {_QUICK_RUN}, query loss 0.83); probes with 2 "
            "episodes per step (70.6% / 75.8%) or Finn et al.'s 3 inner steps at test time "
            "(23-26%: 0.4 overshoots after the one trained step) did not close the gap. Finn et "
            "al. train 60,000 meta-iterations of 32 tasks"
        )
        for claim in ("beats_baseline_1shot", "beats_baseline_5shot")
    },
    **{
        f"blackbox_{claim}": (
            f"the black-box LSTM stays at chance at the quick preset (20%, {_QUICK_RUN}, query "
            "loss ln 5 = 1.609 throughout); probes at seed 0 with 2,000 steps (lr 3e-3, 128 "
            "units; or layer-normalised embeddings at lr 1e-2) and with each query read before "
            "the support stayed at chance too: the long initial plateau of memory-based "
            "learners, whose curves in Santoro et al. (2016) run over 100,000 episodes"
        )
        for claim in ("beats_baseline_1shot", "beats_baseline_5shot")
    },
    "more_shots_help_blackbox": "the black-box LSTM is at chance at the quick preset (20%)",
    "matching_beats_baseline_5shot": (
        "at the quick preset Matching Networks tie the baseline at 5 shots (91.5% vs 91.4% at "
        "seed 0): a softmax-pretrained embedding with a head fit per task is a strong 5-shot "
        "baseline (Chen et al. 2019, 'A closer look at few-shot classification')"
    ),
}
"""Claims measured not to hold at the quick preset (``steps <= QUICK_STEPS``), with why."""


@dataclass(frozen=True)
class FewShotConfig:
    """Meta-train four few-shot learners and a fine-tuning baseline on glyphs, test 5-way."""

    classes: int = 1200
    """Glyph classes generated (70% meta-train, 10% validation, 20% meta-test)."""
    per_class: int = 20
    side: int = 28
    width: int = 64
    """Channels of each of the embedding's 4 conv blocks."""
    queries: int = 15
    """Queries per class in a training episode (test episodes use ``test_queries``)."""
    test_queries: int = 15
    train_shots: tuple[int, ...] = (1, 5)
    """Meta-training alternates these shot counts, step by step."""
    tasks: int = 4
    """Episodes per meta-training step."""
    steps: int = 2000
    lr: float = 1e-3
    every: int = 100
    maml_inner_lr: float = 0.4
    maml_inner_steps: int = 1
    maml_first_order: bool = False
    """Second-order MAML (the paper's); True for FOMAML (at the quick preset FOMAML stays at
    40-42%: with the zero head the first-order meta-gradient cannot reach the embedding through
    the support set, see :class:`~deepnotes.meta.fewshot.MAMLLearner`)."""
    lstm_hidden: int = 128
    matching_sharpness: float = 10.0
    pretrain_batch: int = 64
    head_steps: int = 50
    head_lr: float = 0.1
    test_episodes: int = 1000

    def __post_init__(self) -> None:
        require(self.classes >= 5 * WAYS, f"classes must be >= {5 * WAYS}, got {self.classes}")
        require(
            self.per_class >= max(SHOTS) + self.test_queries,
            f"per_class must be >= {max(SHOTS)} + test_queries = "
            f"{max(SHOTS) + self.test_queries}, got {self.per_class}",
        )
        require(
            len(self.train_shots) >= 1
            and all(k >= 1 and k + self.queries <= self.per_class for k in self.train_shots),
            f"train_shots must be non-empty, each >= 1 with shots + queries <= per_class "
            f"({self.per_class}), got {self.train_shots} with queries {self.queries}",
        )
        require(self.side >= 16, f"side must be >= 16 (4 pooling blocks), got {self.side}")
        require(
            self.width >= 8 and self.width % 8 == 0,
            f"width must be a multiple of 8, got {self.width}",
        )
        require(self.queries >= 1 and self.test_queries >= 1, "queries must be >= 1")
        require(self.tasks >= 1 and self.steps >= 1, "tasks and steps must be >= 1")
        require(1 <= self.every <= self.steps, f"need 1 <= every <= steps, got {self.every}")
        require(self.lr > 0 and self.maml_inner_lr > 0 and self.head_lr > 0, "rates must be > 0")
        require(self.maml_inner_steps >= 1, "maml_inner_steps must be >= 1")
        require(self.lstm_hidden >= 1 and self.pretrain_batch >= 2, "lstm_hidden, pretrain_batch")
        require(self.matching_sharpness > 0, "matching_sharpness must be > 0")
        require(self.head_steps >= 1, "head_steps must be >= 1")
        require(
            self.test_episodes >= max(EXAMPLES, 2),
            f"test_episodes must be >= {max(EXAMPLES, 2)}, got {self.test_episodes}",
        )

    @classmethod
    def quick(cls) -> FewShotConfig:
        """300 classes of 10 renderings at 16 px, width 16, 150 steps, 100 test episodes."""
        return cls(
            classes=300,
            per_class=10,
            side=16,
            width=16,
            queries=4,
            test_queries=5,
            tasks=1,
            steps=QUICK_STEPS,
            every=50,
            lstm_hidden=64,
            test_episodes=100,
        )


@dataclass(frozen=True)
class FewShotMeasurements:
    """Per-episode test accuracies of every method at every shot count."""

    accuracy: dict[str, dict[int, np.ndarray]]
    """[method][shots] -> (E,) query accuracy per test episode (same episodes for all)."""
    train_seconds: dict[str, float]
    final_train_loss: dict[str, float]
    examples: list[dict[str, Any]]
    """1-shot episodes to draw: support and query images, labels and every method's predictions."""

    def table(self) -> dict[str, dict[int, tuple[float, float]]]:
        """[method][shots] -> (mean accuracy, 95% half-width), as fractions."""
        return {m: {k: interval95(self.accuracy[m][k]) for k in SHOTS} for m in METHODS}

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m, row in self.table().items():
            for k, (mean, half) in row.items():
                out[f"acc_{m}_{k}shot"] = mean
                out[f"ci95_{m}_{k}shot"] = half
            out[f"train_seconds_{m}"] = self.train_seconds[m]
            out[f"final_train_loss_{m}"] = self.final_train_loss[m]
        return out


def _learner(cfg: FewShotConfig, ctx: RunContext, method: str) -> FewShotLearner:
    with ctx.seeded("init", method):
        embedding = ConvEmbedding(1, cfg.width, 4, cfg.side)
        if method == "protonet":
            return ProtoNet(embedding, score="euclidean")
        if method == "matching":
            return MatchingNet(embedding, "cosine", cfg.matching_sharpness)
        if method == "maml":
            return MAMLLearner(
                embedding,
                WAYS,
                inner_lr=cfg.maml_inner_lr,
                inner_steps=cfg.maml_inner_steps,
                first_order=cfg.maml_first_order,
            )
        if method == "blackbox":
            return BlackBoxLearner(embedding, WAYS, cfg.lstm_hidden)
        return FineTuneBaseline(embedding, head_steps=cfg.head_steps, head_lr=cfg.head_lr)


def _test_episodes(cfg: FewShotConfig, ctx: RunContext, test: torch.Tensor) -> list[Episode]:
    return episode_batch(
        test, WAYS, max(SHOTS), cfg.test_queries, cfg.test_episodes, ctx.stream("test")
    )


def _shown(e: Episode) -> torch.Tensor:
    """Indices of the drawn queries: up to SHOWN_QUERIES, spread over the (label-grouped) set."""
    count = len(e.query_y)
    return torch.linspace(0, count - 1, min(SHOWN_QUERIES, count)).round().long()


def _fit(
    cfg: FewShotConfig, ctx: RunContext, method: str, train: torch.Tensor, test: list[Episode]
) -> dict[str, Any]:
    learner = _learner(cfg, ctx, method)
    data = ctx.stream("train", method)
    t0 = time.perf_counter()
    if method == BASELINE:
        history = pretrain_embedding(
            learner.embedding,
            train,
            ctx,
            tag=method,
            steps=cfg.steps,
            batch=cfg.pretrain_batch,
            lr=cfg.lr,
            every=cfg.every,
            data=data,
        )
    else:
        history = train_episodes(
            learner,
            train,
            ctx,
            tag=method,
            ways=WAYS,
            shots=cfg.train_shots,
            queries=cfg.queries,
            tasks=cfg.tasks,
            steps=cfg.steps,
            lr=cfg.lr,
            every=cfg.every,
            data=data,
        )
    seconds = time.perf_counter() - t0
    accuracy = {}
    predictions = []
    for k in SHOTS:
        episodes = [fewer_shots(e, k) for e in test]
        accuracy[str(k)] = episode_accuracy(learner, episodes)
    learner.eval()
    with torch.no_grad():
        for e in (fewer_shots(e, 1) for e in test[:EXAMPLES]):
            logits = learner.logits(e.support_x, e.support_y, e.query_x, e.ways)
            predictions.append(logits.argmax(1)[_shown(e)])
    return {
        "accuracy": accuracy,
        "seconds": seconds,
        "final_loss": history[-1]["loss"],
        "predictions": predictions,
    }


def measure(cfg: FewShotConfig, ctx: RunContext) -> FewShotMeasurements:
    """Generate the glyphs, train every method (each fit cached), score them on shared episodes."""
    splits = glyph_splits(cfg.classes, cfg.per_class, side=cfg.side, seed=ctx.seed_for("glyphs"))
    test = _test_episodes(cfg, ctx, splits.test)
    fits: dict[str, dict[str, Any]] = {}
    with ctx.progress(len(METHODS), "learners") as bar:
        for method in METHODS:
            key = {"method": method, **{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}}
            fits[method] = ctx.cached(
                "fit", key, lambda method=method: _fit(cfg, ctx, method, splits.train, test)
            )
            bar.advance()
    examples = []
    for i, e in enumerate(fewer_shots(e, 1) for e in test[:EXAMPLES]):
        examples.append(
            {
                "support_x": e.support_x,
                "support_y": e.support_y,
                "query_x": e.query_x[_shown(e)],
                "query_y": e.query_y[_shown(e)],
                "predictions": {m: fits[m]["predictions"][i] for m in METHODS},
            }
        )
    return FewShotMeasurements(
        accuracy={
            m: {k: np.asarray(fits[m]["accuracy"][str(k)], dtype=float) for k in SHOTS}
            for m in METHODS
        },
        train_seconds={m: float(fits[m]["seconds"]) for m in METHODS},
        final_train_loss={m: float(fits[m]["final_loss"]) for m in METHODS},
        examples=examples,
    )


def _percent(mean: float, half: float) -> str:
    return f"{100 * mean:.1f} ± {100 * half:.1f}"


def draw(m: FewShotMeasurements, cfg: FewShotConfig, ctx: RunContext) -> list[Path]:
    """The measured table beside the Omniglot anchors, and a few 1-shot episodes."""
    table = m.table()
    fig, ax = figure(size=(8.0, 0.32 * (len(METHODS) + 1)))
    ax.axis("off")
    rows = []
    for method in METHODS:
        anchor = ANCHORS.get(method)
        rows.append(
            [NAMES[method]]
            + [_percent(*table[method][k]) for k in SHOTS]
            + ([f"{a:.1f}" for a in anchor] if anchor else ["—", "—"])
        )
    columns = ["method", "glyphs 1-shot", "glyphs 5-shot", "Omniglot 1-shot", "Omniglot 5-shot"]
    cell = ax.table(cellText=rows, colLabels=columns, cellLoc="center", bbox=[0, 0, 1, 1])
    cell.auto_set_font_size(False)
    cell.set_fontsize(8)
    ax.set_title(
        f"5-way accuracy (%) ± 95% interval over {cfg.test_episodes} test episodes of generated "
        f"glyphs ({cfg.side} px, width {cfg.width}, {cfg.steps} steps); Omniglot: published",
        fontsize=9,
    )
    paths = [ctx.savefig(fig, "table")]

    letters = {"protonet": "P", "matching": "M", "maml": "A", "blackbox": "B", "finetune": "F"}
    shown = min(len(ex["query_y"]) for ex in m.examples)
    cols = WAYS + 1 + shown
    fig, axes = figure(ncols=cols, nrows=len(m.examples), size=(0.8, 1.6))
    axes = np.asarray(axes).reshape(len(m.examples), cols)
    for row, ex in enumerate(m.examples):
        order = torch.argsort(ex["support_y"])
        for j in range(cols):
            ax = axes[row, j]
            ax.set_axis_off()
            if j < WAYS:
                s = order[j]
                ax.imshow(ex["support_x"][s, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
                ax.set_title(f"support {int(ex['support_y'][s])}", fontsize=7)
            elif j > WAYS:
                q = j - WAYS - 1
                truth = int(ex["query_y"][q])
                ax.imshow(ex["query_x"][q, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
                ax.set_title(f"query, y={truth}", fontsize=7)
                for n, method in enumerate(METHODS):
                    guess = int(ex["predictions"][method][q])
                    ax.text(
                        0.5,
                        -0.12 - 0.14 * n,
                        f"{letters[method]}: {guess}",
                        transform=ax.transAxes,
                        ha="center",
                        va="top",
                        fontsize=7,
                        color="green" if guess == truth else "red",
                    )
    legend = ", ".join(f"{letters[k]} = {NAMES[k]}" for k in METHODS)
    fig.suptitle(
        f"two 5-way 1-shot test episodes: predictions ({legend}); green right, red wrong",
        fontsize=8,
    )
    paths.append(ctx.savefig(fig, "episodes"))
    return paths


def _known(cfg: FewShotConfig, key: str) -> str:
    return QUICK_FAILS.get(key, "") if cfg.steps <= QUICK_STEPS else ""


def claims(m: FewShotMeasurements, cfg: FewShotConfig) -> list[Claim]:
    out = []
    base = m.accuracy[BASELINE]
    for method in META:
        for k in SHOTS:
            acc = m.accuracy[method][k]
            out.append(
                Claim.from_test(
                    f"{NAMES[method]} beats the fine-tuning baseline at 5-way {k}-shot",
                    paired(acc, base[k], family=BEATS_FAMILY),
                    f"accuracy {100 * acc.mean():.1f}% vs {100 * base[k].mean():.1f}% over "
                    f"{len(acc)} shared test episodes",
                    key=f"{method}_beats_baseline_{k}shot",
                    known_failure=_known(cfg, f"{method}_beats_baseline_{k}shot"),
                )
            )
    for method in METHODS:
        one, five = m.accuracy[method][1], m.accuracy[method][5]
        out.append(
            Claim.from_test(
                f"more shots help {NAMES[method]}: 5-shot accuracy above 1-shot",
                paired(five, one, family=SHOTS_FAMILY),
                f"{100 * five.mean():.1f}% vs {100 * one.mean():.1f}% on the same queries",
                key=f"more_shots_help_{method}",
                known_failure=_known(cfg, f"more_shots_help_{method}"),
            )
        )
    return out


CLAIM_KEYS = tuple(f"{m}_beats_baseline_{k}shot" for m in META for k in SHOTS) + tuple(
    f"more_shots_help_{m}" for m in METHODS
)


@experiment("meta.few_shot", topic="meta", config=FewShotConfig, claims=CLAIM_KEYS)
def few_shot(cfg: FewShotConfig, ctx: RunContext) -> Outcome:
    """Prototypical Networks, Matching Networks, MAML and a black-box LSTM each beat a
    fine-tuned pretrained network on 5-way glyph episodes, and more shots help every method."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
