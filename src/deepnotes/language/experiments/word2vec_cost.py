r"""What the full softmax costs: time per skip-gram step against the vocabulary size, full softmax
vs negative sampling, at equal quality on the planted categories. Notes: discussion 8, part 1,
section 1.1.2 "Making Word2Vec Tractable" ("the normalizing factor ... involves summing the
logits for every word in the entire vocabulary, which is very slow"); issue 17, item 1.

**Cost.** For each ``words_per_category`` of ``sweep`` a planted corpus of
``timing_documents`` documents is drawn (:func:`deepnotes.data.language.planted_corpus`; its
vocabulary is ``13 w + 14`` words plus the 7 special and BERT tokens, from about 125 to several
thousand) and a fresh :class:`~deepnotes.language.word2vec.SkipGram` of width ``dim`` takes
``timed_steps`` SGD steps of ``batch`` pairs with each objective (negatives drawn inside the
step, as in training); the wall time of the block divided by ``timed_steps`` is one repeat, and
the median of ``repeats`` repeats is the time per step. The full softmax's step does
:math:`6 B |V| D` matmul FLOPs, negative sampling's :math:`6 B (k + 1) D`
(:mod:`deepnotes.language.problems`), so the first should grow linearly with :math:`|V|` and
the second not at all. The exponent is the least-squares slope of log time on log :math:`|V|`
(:func:`~deepnotes.sequence.complexity.power_law_exponent`).

**Quality.** At the main size (``words_per_category``, ``documents`` documents) both objectives
are trained for ``epochs`` epochs (:func:`~deepnotes.language.word2vec.fit_skipgram`, each fit
cached) and scored by category purity: the mean share of each categorised word's
``neighbours`` nearest neighbours (cosine on ``(u + v) / 2``) in its own category, chance about
1/13 (:func:`~deepnotes.language.word2vec.category_purity`).

Claims (thresholds from issue 17, fixed before the run):

- ``softmax_slope``: the full softmax's time per step grows with exponent >= 0.8 in
  :math:`|V|`.
- ``negative_slope``: negative sampling's exponent is <= 0.2.
- ``negative_purity``: negative sampling's category purity is >= 0.9 at the main size.
- ``softmax_purity``: the full softmax reaches the same bar, 0.9 (the issue's "at equal
  quality").

The two objectives share every setting but the learning rate (``lr_negative``,
``lr_softmax``): the SGD step moves each touched row by the mean of its gradients in the
minibatch, and in the full softmax every row of ``U`` is touched by every pair, so its context
rows move ``B`` times less per step than with negative sampling at the same rate.
Timings are always taken on one CPU thread (:func:`deepnotes.core.threads.limit_threads`):
the claim is about the work of a step, and with two threads the larger full-softmax steps
parallelise better than the small ones, which flattened the measured exponent to 0.76 in a
seed-0 tour (1.02-1.10 on one thread); the single-thread timing was introduced after that run,
the thresholds were not changed. On a busy machine the medians carry the noise.

``softmax_slope`` is marked a known failure because it is not reliable (:data:`SLOPE_UNRELIABLE`):
across single-thread runs at seed 0 it measured 0.93-1.21 in fresh processes and 0.65 in one
66-experiment tour process (issue 19's tour), where the step at the largest vocabulary took
9.4 ms against 17-34 ms elsewhere. A step has a fixed cost of about 1 ms besides its O(|V|)
work, so the exponent over |V| = 125..2,111 depends on how the process's memory allocator and
caches serve the larger steps; the threshold is unchanged.
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
from deepnotes.core.threads import limit_threads
from deepnotes.data.language import encode_sentences, planted_corpus
from deepnotes.language.word2vec import (
    SkipGram,
    Word2VecSettings,
    category_purity,
    discard_probability,
    draw_negatives,
    fit_skipgram,
    noise_distribution,
    noise_table,
    skipgram_pairs,
)
from deepnotes.sequence.complexity import power_law_exponent

OBJECTIVES = ("softmax", "negative")
SOFTMAX_SLOPE = 0.8
SLOPE_UNRELIABLE = (
    "not reliable: on one thread at seed 0 the exponent measured 0.93-1.21 in fresh processes "
    "and 0.65 in a 66-experiment tour process, whose step at |V| = 2,111 took 9.4 ms against "
    "17-34 ms elsewhere; with a fixed cost of about 1 ms per step besides the O(|V|) work, the "
    "exponent over this range of |V| depends on how the process serves the larger steps"
)
"""The full softmax's time-per-step exponent in |V| must be at least this (issue 17)."""
NEGATIVE_SLOPE = 0.2
"""Negative sampling's exponent must be at most this (issue 17)."""
PURITY = 0.9
"""Category purity both objectives must reach at the main size (issue 17)."""


@dataclass(frozen=True)
class CostConfig:
    """Time skip-gram steps over a sweep of vocabulary sizes; train both objectives once."""

    words_per_category: int = 8
    """The main size (about 125 words), where both objectives are trained."""
    documents: int = 4000
    sweep: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)
    """words_per_category of the timing sweep."""
    timing_documents: int = 500
    timed_steps: int = 10
    repeats: int = 7
    dim: int = 32
    window: int = 2
    negatives: int = 5
    subsample: float = 1e-3
    batch: int = 1024
    epochs: int = 20
    lr_negative: float = 1.0
    lr_softmax: float = 4.0
    neighbours: int = 5
    """k of the category purity."""

    def __post_init__(self) -> None:
        require(self.words_per_category >= 3, "words_per_category must be >= 3")
        require(self.documents >= 10 and self.timing_documents >= 10, "need >= 10 documents")
        require(
            len(set(self.sweep)) >= 2 and all(w >= 3 for w in self.sweep),
            f"sweep needs >= 2 distinct words_per_category >= 3, got {self.sweep}",
        )
        require(self.timed_steps >= 1 and self.repeats >= 1, "timed_steps, repeats must be >= 1")
        require(self.dim >= 1 and self.window >= 1 and self.negatives >= 1, "need >= 1")
        require(self.subsample >= 0, f"subsample must be >= 0, got {self.subsample}")
        require(self.batch >= 1 and self.epochs >= 1, "batch and epochs must be >= 1")
        require(self.lr_negative > 0 and self.lr_softmax > 0, "learning rates must be > 0")
        require(self.neighbours >= 1, f"neighbours must be >= 1, got {self.neighbours}")

    @classmethod
    def quick(cls) -> CostConfig:
        """Four sizes, 5 repeats, 2,000 documents, 10 epochs (about 20 s on one thread)."""
        return cls(documents=2000, sweep=(8, 32, 128, 512), repeats=5, epochs=10)

    def settings(self, objective: str) -> Word2VecSettings:
        lr = self.lr_softmax if objective == "softmax" else self.lr_negative
        return Word2VecSettings(
            objective=objective,
            dim=self.dim,
            window=self.window,
            negatives=self.negatives,
            subsample=self.subsample,
            epochs=self.epochs,
            batch=self.batch,
            lr=lr,
        )


@dataclass(frozen=True)
class CostMeasurements:
    """Seconds per step over the sweep, and the two fits at the main size."""

    vocab_sizes: np.ndarray
    """|V| of each sweep point, (S,)."""
    step_seconds: dict[str, np.ndarray]
    """Per objective, (S, repeats) seconds per step."""
    purity: dict[str, float]
    chance: float
    loss: dict[str, list[float]]
    """Per objective, the mean per-pair training loss of each epoch."""
    main_vocab: int

    def median_seconds(self, objective: str) -> np.ndarray:
        return np.median(self.step_seconds[objective], axis=1)

    def slope(self, objective: str) -> float:
        return power_law_exponent(self.vocab_sizes, self.median_seconds(objective))

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "vocab_sizes": self.vocab_sizes.tolist(),
            "chance": self.chance,
            "main_vocab": self.main_vocab,
        }
        for objective in OBJECTIVES:
            out[f"ms_per_step_{objective}"] = (1e3 * self.median_seconds(objective)).tolist()
            out[f"slope_{objective}"] = self.slope(objective)
            out[f"purity_{objective}"] = self.purity[objective]
        return out


def _time_steps(cfg: CostConfig, ctx: RunContext, words: int) -> dict[str, Any]:
    """Seconds per step of each objective on a vocabulary of ``words`` per category."""
    corpus = planted_corpus(cfg.timing_documents, words_per_category=words, seed=ctx.seed)
    vocab = corpus.vocabulary()
    ids = encode_sentences(corpus.sentences(), vocab)
    counts = torch.bincount(torch.tensor([i for s in ids for i in s]), minlength=len(vocab))
    rng = ctx.numpy_rng("timing", words, "pairs")
    discard = discard_probability(counts, cfg.subsample).numpy()
    centres, contexts = skipgram_pairs(ids, cfg.window, rng=rng, discard=discard)
    table = noise_table(noise_distribution(counts), Word2VecSettings().table_size)
    generator = ctx.stream("timing", words, "draws")
    model = SkipGram(len(vocab), cfg.dim, generator)
    out: dict[str, Any] = {"vocab": len(vocab)}
    for objective in OBJECTIVES:
        lr = cfg.settings(objective).lr
        seconds = []
        for _ in range(cfg.repeats):
            picks = torch.randint(len(centres), (cfg.timed_steps, cfg.batch), generator=generator)
            c = torch.from_numpy(centres)[picks]  # (steps, B)
            o = torch.from_numpy(contexts)[picks]
            with limit_threads(1):  # the cost on one core, not how well it parallelises
                start = time.perf_counter()
                for t in range(cfg.timed_steps):
                    negatives = None
                    if objective == "negative":
                        negatives = draw_negatives(table, cfg.batch, cfg.negatives, generator)
                    model.step(objective, c[t], o[t], lr, negatives)
                seconds.append((time.perf_counter() - start) / cfg.timed_steps)
        out[objective] = seconds
    return out


def _fit(cfg: CostConfig, ctx: RunContext, objective: str) -> dict[str, Any]:
    corpus = planted_corpus(cfg.documents, words_per_category=cfg.words_per_category, seed=ctx.seed)
    vocab = corpus.vocabulary()
    ids = encode_sentences(corpus.sentences(), vocab)
    model, result = fit_skipgram(
        ids, len(vocab), None, cfg.settings(objective), ctx, tag=f"fit-{objective}"
    )
    purity, chance = category_purity(model.embeddings(), vocab, corpus.category_of, cfg.neighbours)
    return {
        "purity": purity,
        "chance": chance,
        "loss": [r["loss"] for r in result.history],
        "vocab": len(vocab),
    }


def measure(cfg: CostConfig, ctx: RunContext) -> CostMeasurements:
    """Time the sweep (not cached: timings belong to the run), then fit both objectives."""
    timings = []
    with ctx.progress(len(cfg.sweep), "timing sweep") as bar:
        for words in cfg.sweep:
            timings.append(_time_steps(cfg, ctx, words))
            bar.advance()
    fits = {}
    for objective in OBJECTIVES:
        key = {"objective": objective, "seed": ctx.seed, **cfg.__dict__}
        key.pop("sweep"), key.pop("timing_documents"), key.pop("timed_steps"), key.pop("repeats")
        fits[objective] = ctx.cached("fit", key, lambda o=objective: _fit(cfg, ctx, o))
    return CostMeasurements(
        vocab_sizes=np.array([t["vocab"] for t in timings], dtype=float),
        step_seconds={o: np.array([t[o] for t in timings]) for o in OBJECTIVES},
        purity={o: float(fits[o]["purity"]) for o in OBJECTIVES},
        chance=float(fits["negative"]["chance"]),
        loss={o: list(fits[o]["loss"]) for o in OBJECTIVES},
        main_vocab=int(fits["negative"]["vocab"]),
    )


def draw(m: CostMeasurements, cfg: CostConfig, ctx: RunContext) -> list[Path]:
    fig, (ax, bx) = figure(ncols=2, size=(5.2, 4.0))
    styles = {
        "softmax": ("C3", "full softmax"),
        "negative": ("C0", f"negative sampling, k = {cfg.negatives}"),
    }
    grid = np.geomspace(m.vocab_sizes.min(), m.vocab_sizes.max(), 50)
    for objective in OBJECTIVES:
        color, label = styles[objective]
        ms = 1e3 * m.step_seconds[objective]  # (S, repeats)
        med = np.median(ms, axis=1)
        ax.scatter(np.repeat(m.vocab_sizes, ms.shape[1]), ms.ravel(), s=6, color=color, alpha=0.3)
        slope = m.slope(objective)
        fit = np.exp(np.polyfit(np.log(m.vocab_sizes), np.log(med), 1)[1]) * grid**slope
        ax.plot(m.vocab_sizes, med, "o", color=color, label=f"{label}: slope {slope:.2f}")
        ax.plot(grid, fit, "--", color=color, lw=1)
        bx.plot(
            np.arange(1, len(m.loss[objective]) + 1),
            m.loss[objective],
            color=color,
            label=f"{label}: purity {m.purity[objective]:.2f}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("vocabulary size |V|")
    ax.set_ylabel("ms per step (median; dots: repeats)")
    ax.set_title(f"one SGD step of {cfg.batch} pairs, D = {cfg.dim}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    bx.set_xlabel("epoch")
    bx.set_ylabel("training loss per pair")
    bx.set_title(f"|V| = {m.main_vocab}: category purity (chance {m.chance:.2f})")
    bx.grid(alpha=0.3)
    bx.legend(fontsize=8)
    return [ctx.savefig(fig, "cost")]


def claims(m: CostMeasurements, cfg: CostConfig) -> list[Claim]:
    ms = {o: np.round(1e3 * m.median_seconds(o), 3).tolist() for o in OBJECTIVES}
    sizes = m.vocab_sizes.astype(int).tolist()
    return [
        Claim.at_least(
            f"the full softmax's time per step grows like |V|^p with p >= {SOFTMAX_SLOPE:g}",
            m.slope("softmax"),
            SOFTMAX_SLOPE,
            f"median ms per step {ms['softmax']} at |V| = {sizes}",
            known_failure=SLOPE_UNRELIABLE,
            key="softmax_slope",
        ),
        Claim.at_most(
            f"negative sampling's time per step grows like |V|^p with p <= {NEGATIVE_SLOPE:g}",
            m.slope("negative"),
            NEGATIVE_SLOPE,
            f"median ms per step {ms['negative']} at |V| = {sizes}, k = {cfg.negatives}",
            key="negative_slope",
        ),
        Claim.at_least(
            f"negative sampling's nearest-neighbour category purity is >= {PURITY:g} "
            f"(|V| = {m.main_vocab})",
            m.purity["negative"],
            PURITY,
            f"k = {cfg.neighbours} neighbours, chance {m.chance:.3f}, {cfg.epochs} epochs",
            key="negative_purity",
        ),
        Claim.at_least(
            f"the full softmax reaches the same purity bar {PURITY:g} (equal quality)",
            m.purity["softmax"],
            PURITY,
            f"k = {cfg.neighbours} neighbours, chance {m.chance:.3f}, {cfg.epochs} epochs",
            key="softmax_purity",
        ),
    ]


@experiment(
    "language.word2vec_cost",
    topic="language",
    config=CostConfig,
    claims=("softmax_slope", "negative_slope", "negative_purity", "softmax_purity"),
)
def word2vec_cost(cfg: CostConfig, ctx: RunContext) -> Outcome:
    """The full softmax's step cost grows linearly with the vocabulary, negative sampling's does
    not, and negative sampling still learns the planted word categories."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
