r"""With few labels, pretrained representations beat the same model trained from scratch. Notes:
discussion 8, part 1, section 1.2 "Pretrained Language Models" ("We can use BERT for downstream
tasks both by simply finetuning the entire model on the downstream tasks, or taking combinations
of the hidden states as fixed representations"), and the transfer-learning paragraph of the
meta-learning discussion ("the neural network can learn new image-based tasks more efficiently
by drawing on the features learned by the network pretrained"). Anchor: Devlin et al. (2019),
BERT, sections 4-5 (fine-tuning and the feature-based approach).

A small :class:`~deepnotes.language.bert.Bert` is pretrained once (MLM + sentence order,
:func:`~deepnotes.language.bert.train_bert`, cached) on the unlabelled sentence pairs of
``documents`` planted documents (seed ``corpus_seed``). The downstream task is the topic of a
sentence (4 topics, :attr:`PlantedCorpus.sentence_topics`), carried only by topic words of which
most are never seen labelled when the budget is small. Labelled examples are drawn, ``n`` per
class (:func:`~deepnotes.language.downstream.sample_budget`, stream ``("labels", n, r)``), from
the sentences of ``pool_documents`` other documents (seed ``corpus_seed + 1``); every method is
scored on the same ``test_documents`` documents' sentences (seed ``corpus_seed + 2``). For each
label count ``n`` in ``sizes`` and replicate ``r`` (one label draw, shared by every method: the
comparisons are paired), the methods are:

- ``finetuned``: the pretrained BERT with a linear head on its mean state (``finetune_pool``),
  every weight trained;
- ``scratch``: the same architecture and schedule from a random initialisation;
- ``frozen_cls``, ``frozen_mean``: logistic regression on the frozen pretrained ``[CLS]`` /
  mean-of-tokens states;
- ``word2vec`` (when ``word2vec``): logistic regression on the average of the sentence's skip-gram
  (negative sampling) embeddings, trained on the same unlabelled sentences;
- ``elmo`` (when ``elmo``): logistic regression on the average of a biLM's contextual states
  (both directions, the scalar mix at its initial mean of the layers), trained on the same
  sentences.

Claims (fixed before the run; one-sided paired tests of :mod:`deepnotes.core.stats` over the
replicates, the small label counts being those ``<= small_max``, Bonferroni over them):

- ``finetune_beats_scratch``: fine-tuned BERT's test accuracy exceeds the from-scratch model's at
  every small label count (the weakest test is reported).
- ``frozen_beats_scratch``: logistic regression on frozen BERT features (``frozen_pool``, mean
  by default) exceeds the from-scratch model at every small label count.
- ``finetune_beats_frozen``: at the largest label count, fine-tuning exceeds the same frozen
  features (the issue: "or say honestly that it does not").

Design changed after the first run failed (disclosed; the thresholds did not change). The first
version (uniform 15% masking, 400 pretraining steps, a ``[CLS]`` head for fine-tuning and from
scratch) failed the two few-label claims badly (paired t -11.8 and -7.3): its masked-language
model had learned syntax and function words but no topic at all (on a masked topic word of a
test sentence its prediction had the right topic 0.25 of the time, chance 0.25). Measured
diagnosis: the task does let pretraining help (at 2 labels per class about 70% of the test
sentences hold no topic word seen among the labels, so a model that only memorises labelled words
is capped near 0.48; a model knowing every word's topic scores 1.0), and the unlabelled pairs do
put topic words in topic-coherent contexts (word2vec, trained for 0.1 s on them, has nearest-
neighbour topic purity 0.98). The MLM sits on a plateau (the words of the four noun, verb or
adjective categories are interchangeable for syntax) and leaves it between 1,000 and 1,600
steps with uniform masking, too late for the quick budget. Changes: (1) salient-word masking
(``content_mask_prob``: the planted categories' words chosen at 40% instead of 15%, the
salient-span masking of REALM), after which the plateau ends by ~1,000 steps; the quick preset
pretrains 1,200 steps (masked topic words: right topic 0.64 of the time at 1,000 steps);
(2) the fine-tuned and from-scratch classifiers both pool the mean state (``finetune_pool``;
``[CLS]`` is trained only on sentence order, which the first word decides, and the same head
is used for both, so the comparison stays paired and fair).

Known failures (measured at the quick preset, seed 0): :data:`FEW_LABELS_FAIL` and
:data:`CEILING_FAIL`.

Deviations: no labelled validation set (a fixed number of updates, the last weights kept; see
:mod:`deepnotes.language.downstream`); the quick preset drops dropout (it halves the speed of a
transformer this small on a CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core import stats
from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.stats import TestResult
from deepnotes.data.language import planted_corpus
from deepnotes.data.parallel import Vocabulary
from deepnotes.language.bert import (
    Bert,
    BertSettings,
    bert_from_state,
    sentence_features,
    train_bert,
)
from deepnotes.language.downstream import DownstreamSettings, fine_tune, fit_probe, sample_budget
from deepnotes.language.elmo import BiLM, BiLMSettings, contextual, pad_ids, train_bilm
from deepnotes.language.word2vec import Word2VecSettings, train_word2vec

FINETUNED, SCRATCH = "finetuned", "scratch"
FROZEN = ("frozen_cls", "frozen_mean")
BASELINES = ("word2vec", "elmo")
FEW_LABELS_FAIL = (
    "measured at the quick preset (salient-word masking, 1,200 pretraining steps): pretraining "
    "now helps on average (fine-tuned 0.40 / 0.92 vs scratch 0.34 / 0.53 at 2 / 5 labels per "
    "class, frozen mean features 0.41 / 0.67), but at 2 labels per class the gain (~0.07 +- "
    "0.025 SE over 4 label draws) is below the Bonferroni-corrected t threshold with 3 df: the "
    "MLM learns only part of the topic coherence in the budget (right topic on 0.64 of masked "
    "topic words at 1,000 steps), and 4 replicates of 8 labelled sentences are few"
)
"""Why the two few-label claims fail at the small budgets this runs at (measured, not assumed)."""
CEILING_FAIL = (
    "measured at the quick preset: at 50 labels per class both are at the ceiling (fine-tuned "
    "1.000 vs frozen mean 0.989 over 4 label draws), a gain too small for the t threshold"
)
"""Why fine-tuning does not significantly beat frozen features at the largest label count."""
LABELS = {
    "finetuned": "BERT fine-tuned",
    "scratch": "same model from scratch",
    "frozen_cls": "frozen BERT [CLS] + logistic",
    "frozen_mean": "frozen BERT mean + logistic",
    "word2vec": "word2vec average + logistic",
    "elmo": "ELMo (biLM) mean + logistic",
}


@dataclass(frozen=True)
class PretrainingHelpsConfig:
    """Pretrain once, then learn sentence topics from n labels per class, n in ``sizes``."""

    documents: int = 3000
    """Unlabelled planted documents to pretrain on (and to train word2vec / the biLM on)."""
    pool_documents: int = 600
    """Documents whose sentences are the labelled pool."""
    test_documents: int = 400
    """Documents whose sentences are the test set."""
    words_per_category: int = 8
    corpus_seed: int = 0
    sizes: tuple[int, ...] = (2, 5, 10, 50)
    """Labelled examples per class."""
    small_max: int = 10
    """The label counts ``<= small_max`` are the "few labels" of the first two claims."""
    replicates: int = 8
    """Label draws per size (paired across methods)."""
    frozen_pool: str = "mean"
    """The frozen BERT features of the claims: "cls" or "mean"."""
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    dim_feedforward: int = 128
    dropout: float = 0.1
    max_len: int = 32
    pretrain_steps: int = 2000
    pretrain_batch: int = 64
    pretrain_lr: float = 1e-3
    content_mask_prob: float | None = 0.4
    """Salient-word masking: the content words' MLM rate (None: BERT's uniform 15%)."""
    finetune_steps: int = 150
    finetune_batch: int = 32
    finetune_lr: float = 5e-4
    finetune_pool: str = "mean"
    """The fine-tuned (and from-scratch) classifier's pooling: "mean" or "cls"."""
    probe_steps: int = 200
    probe_lr: float = 0.05
    word2vec: bool = True
    """Add the word2vec-average row."""
    elmo: bool = True
    """Add the ELMo row."""
    elmo_steps: int = 1500

    def __post_init__(self) -> None:
        require(
            min(self.documents, self.pool_documents, self.test_documents) >= 2,
            "documents, pool_documents and test_documents must be >= 2",
        )
        require(self.words_per_category >= 1, "words_per_category must be >= 1")
        require(
            len(self.sizes) >= 1 and all(n >= 1 for n in self.sizes),
            f"sizes must be label counts >= 1, got {self.sizes}",
        )
        require(list(self.sizes) == sorted(set(self.sizes)), "sizes must increase strictly")
        require(
            any(n <= self.small_max for n in self.sizes),
            f"at least one size must be <= small_max = {self.small_max}",
        )
        require(self.replicates >= 2, f"replicates must be >= 2, got {self.replicates}")
        require(self.frozen_pool in ("cls", "mean"), "frozen_pool must be 'cls' or 'mean'")
        require(self.finetune_pool in ("cls", "mean"), "finetune_pool must be 'cls' or 'mean'")
        require(self.elmo_steps >= 1, f"elmo_steps must be >= 1, got {self.elmo_steps}")
        self.bert_settings  # noqa: B018 -- validates the model and schedule fields
        self.downstream_settings  # noqa: B018

    @property
    def bert_settings(self) -> BertSettings:
        return BertSettings(
            d_model=self.d_model,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            dim_feedforward=self.dim_feedforward,
            dropout=self.dropout,
            max_len=self.max_len,
            steps=self.pretrain_steps,
            batch=self.pretrain_batch,
            lr=self.pretrain_lr,
            content_mask_prob=self.content_mask_prob,
            every=min(100, self.pretrain_steps),
        )

    @property
    def downstream_settings(self) -> DownstreamSettings:
        return DownstreamSettings(
            steps=self.finetune_steps,
            batch=self.finetune_batch,
            lr=self.finetune_lr,
            pool=self.finetune_pool,
            probe_steps=self.probe_steps,
            probe_lr=self.probe_lr,
        )

    @property
    def small_sizes(self) -> tuple[int, ...]:
        return tuple(n for n in self.sizes if n <= self.small_max)

    @classmethod
    def quick(cls) -> PretrainingHelpsConfig:
        """800 documents, D = 48 without dropout, 1,200 pretraining steps; sizes 2, 5, 50 with
        4 replicates; 60 fine-tuning steps; no ELMo row (its biLM does not fit the budget)."""
        return cls(
            documents=800, pool_documents=300, test_documents=200, sizes=(2, 5, 50),
            replicates=4, d_model=48, dim_feedforward=96, dropout=0.0, pretrain_steps=1200,
            pretrain_batch=32, finetune_steps=60, probe_steps=100, elmo=False, elmo_steps=300,
        )  # fmt: skip


@dataclass(frozen=True)
class PretrainingHelpsMeasurements:
    """Test accuracy per method, (len(sizes), replicates), and the pretraining's numbers."""

    sizes: np.ndarray
    accuracy: dict[str, np.ndarray]
    test_size: int
    pool_size: int
    pretrain_order_acc: float
    """Pretraining's last training record of sentence-order accuracy."""
    pretrain_seconds: float

    def metrics(self) -> dict[str, Any]:
        return {
            "sizes": self.sizes.tolist(),
            "mean_accuracy": {k: v.mean(1).round(4).tolist() for k, v in self.accuracy.items()},
            "test_size": self.test_size,
            "pool_size": self.pool_size,
            "pretrain_order_acc": self.pretrain_order_acc,
            "pretrain_seconds": self.pretrain_seconds,
        }


def _word2vec_features(
    table: torch.Tensor, vocab: Vocabulary, sentences: Sequence[Sequence[str]]
) -> torch.Tensor:
    """The mean skip-gram embedding of each sentence's words, (N, D)."""
    return torch.stack([table[vocab.encode(s)].mean(0) for s in sentences])


def _elmo_features(
    bilm: BiLM, vocab: Vocabulary, sentences: Sequence[Sequence[str]]
) -> torch.Tensor:
    """The mean contextual state (both directions) over each sentence's words, (N, 2 dim)."""
    ids, mask = pad_ids([vocab.encode(s, add_sos=True, add_eos=True) for s in sentences])
    states = contextual(bilm, ids, mask)  # (N, T, 2 dim), zero at padding
    words = mask.clone()
    words[:, 0] = False  # <sos>
    words[torch.arange(len(sentences)), mask.sum(1) - 1] = False  # <eos>
    w = words.to(states.dtype)[..., None]  # (N, T, 1)
    return (states * w).sum(1) / w.sum(1).clamp_min(1.0)


def measure(cfg: PretrainingHelpsConfig, ctx: RunContext) -> PretrainingHelpsMeasurements:
    """Pretrain (cached), compute the frozen features once, then every (size, replicate)
    group of fits (each group cached)."""
    kw = {"words_per_category": cfg.words_per_category}
    corpus = planted_corpus(cfg.documents, seed=cfg.corpus_seed, **kw)
    pool = planted_corpus(cfg.pool_documents, seed=cfg.corpus_seed + 1, **kw)
    test = planted_corpus(cfg.test_documents, seed=cfg.corpus_seed + 2, **kw)
    vocab = corpus.vocabulary()
    bert_settings = cfg.bert_settings
    base_key = {"documents": cfg.documents, "corpus_seed": cfg.corpus_seed, **kw}
    bert_key = {
        **base_key,
        **{f.name: getattr(bert_settings, f.name) for f in fields(BertSettings)},
    }
    fit = ctx.cached(
        "bert", bert_key, lambda: train_bert(corpus, vocab, bert_settings, ctx, tag="bert")
    )
    pretrained = bert_from_state(fit["state"], len(vocab), bert_settings)

    pool_sentences, pool_y = pool.sentences(), torch.tensor(pool.topics())
    test_sentences, test_y = test.sentences(), torch.tensor(test.topics())
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, how in zip(FROZEN, ("cls", "mean"), strict=True):
        features[name] = (
            sentence_features(pretrained, pool_sentences, vocab, how),
            sentence_features(pretrained, test_sentences, vocab, how),
        )
    corpus_ids = [vocab.encode(s) for s in corpus.sentences()]
    if cfg.word2vec:
        w2v = Word2VecSettings(dim=cfg.d_model, epochs=5)
        table = ctx.cached(
            "word2vec",
            {**base_key, **w2v.key()},
            lambda: train_word2vec(corpus_ids, len(vocab), None, w2v, ctx, tag="word2vec")[0],
        )
        features["word2vec"] = (
            _word2vec_features(table, vocab, pool_sentences),
            _word2vec_features(table, vocab, test_sentences),
        )
    if cfg.elmo:
        bilm_settings = BiLMSettings(
            dim=cfg.d_model // 2, hidden=cfg.d_model, layers=2, dropout=cfg.dropout,
            steps=cfg.elmo_steps, every=min(100, cfg.elmo_steps),
        )  # fmt: skip
        framed = [vocab.encode(s, add_sos=True, add_eos=True) for s in corpus.sentences()]

        def bilm_state() -> dict[str, torch.Tensor]:
            return train_bilm(framed, vocab, bilm_settings, ctx, tag="elmo").state_dict()

        state = ctx.cached("elmo", {**base_key, **bilm_settings.__dict__}, bilm_state)
        bilm = BiLM(len(vocab), bilm_settings)
        bilm.load_state_dict(state)
        features["elmo"] = (
            _elmo_features(bilm, vocab, pool_sentences),
            _elmo_features(bilm, vocab, test_sentences),
        )

    down = cfg.downstream_settings
    methods = [FINETUNED, SCRATCH, *features]
    acc = {m: np.zeros((len(cfg.sizes), cfg.replicates)) for m in methods}

    def group(n: int, r: int) -> dict[str, float]:
        index = sample_budget(pool_y.tolist(), n, ctx.numpy_rng("labels", n, r))
        train_sentences = [pool_sentences[i] for i in index]
        train_y = pool_y[index]
        out = {}
        tag = f"n{n}-r{r}"
        out[FINETUNED] = fine_tune(
            bert_from_state(fit["state"], len(vocab), bert_settings).train(),
            train_sentences, train_y, test_sentences, test_y, vocab, ctx,
            tag=f"{FINETUNED}-{tag}", settings=down,
        )  # fmt: skip
        with ctx.seeded("scratch", n, r):
            fresh = Bert(len(vocab), bert_settings)
        out[SCRATCH] = fine_tune(
            fresh, train_sentences, train_y, test_sentences, test_y, vocab, ctx,
            tag=f"{SCRATCH}-{tag}", settings=down,
        )  # fmt: skip
        for name, (pool_x, test_x) in features.items():
            out[name] = fit_probe(
                pool_x[index], train_y, test_x, test_y, ctx, tag=f"{name}-{tag}", settings=down
            )
        return out

    key = {
        **bert_key,
        "pool_documents": cfg.pool_documents,
        "test_documents": cfg.test_documents,
        "finetune": down.__dict__,
        "methods": methods,
        "elmo_steps": cfg.elmo_steps,
    }
    with ctx.progress(len(cfg.sizes) * cfg.replicates, "label draws") as bar:
        for i, n in enumerate(cfg.sizes):
            for r in range(cfg.replicates):
                got = ctx.cached("draw", {**key, "n": n, "r": r}, lambda n=n, r=r: group(n, r))
                for m in methods:
                    acc[m][i, r] = got[m]
                bar.advance()
    return PretrainingHelpsMeasurements(
        sizes=np.array(cfg.sizes),
        accuracy=acc,
        test_size=len(test_sentences),
        pool_size=len(pool_sentences),
        pretrain_order_acc=float(fit["order_acc"][-1]),
        pretrain_seconds=float(fit["seconds"]),
    )


def draw(
    m: PretrainingHelpsMeasurements, cfg: PretrainingHelpsConfig, ctx: RunContext
) -> list[Path]:
    fig, ax = figure(size=(6.4, 4.4))
    styles = {"finetuned": "-o", "scratch": "-s", "frozen_cls": "--^", "frozen_mean": "--v",
              "word2vec": ":d", "elmo": ":x"}  # fmt: skip
    for k, (name, acc) in enumerate(m.accuracy.items()):
        mean, se = stats.mean_and_se(acc, axis=1)
        ax.errorbar(m.sizes, mean, yerr=se, fmt=styles[name], color=f"C{k}", capsize=3,
                    label=LABELS[name], ms=4)  # fmt: skip
    ax.axhline(0.25, color="grey", ls=":", lw=1, label="chance (4 topics)")
    ax.axvspan(0, cfg.small_max + 0.5, color="grey", alpha=0.08, label="few labels (claims)")
    ax.set_xscale("log")
    ax.set_xticks(m.sizes, [str(n) for n in m.sizes])
    ax.minorticks_off()
    ax.set_xlim(m.sizes[0] * 0.8, m.sizes[-1] * 1.25)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("labelled sentences per class")
    ax.set_ylabel(f"test accuracy ({m.test_size} sentences)")
    ax.set_title(f"topic classification: mean +- SE over {cfg.replicates} label draws")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return [ctx.savefig(fig, "label_curve")]


def _weakest(tests: list[TestResult]) -> int:
    return min(range(len(tests)), key=lambda i: tests[i].statistic)


def _means(m: PretrainingHelpsMeasurements, a: str, b: str, rows: list[int]) -> str:
    return "; ".join(
        f"n={m.sizes[i]}: {m.accuracy[a][i].mean():.3f} vs {m.accuracy[b][i].mean():.3f}"
        for i in rows
    )


def claims(m: PretrainingHelpsMeasurements, cfg: PretrainingHelpsConfig) -> list[Claim]:
    small = [i for i, n in enumerate(m.sizes) if n <= cfg.small_max]
    frozen = f"frozen_{cfg.frozen_pool}"
    out = []
    for key, better, what in (
        ("finetune_beats_scratch", FINETUNED, "fine-tuning the pretrained BERT"),
        ("frozen_beats_scratch", frozen, f"logistic regression on frozen BERT {cfg.frozen_pool} "
         "features"),
    ):  # fmt: skip
        tests = [
            stats.paired(m.accuracy[better][i], m.accuracy[SCRATCH][i], family=len(small))
            for i in small
        ]
        w = _weakest(tests)
        out.append(
            Claim.from_test(
                f"with <= {cfg.small_max} labels per class, {what} beats the same model "
                "trained from scratch (every small label count)",
                tests[w],
                f"weakest at n = {m.sizes[small[w]]}; mean accuracy "
                f"{_means(m, better, SCRATCH, small)}",
                known_failure=FEW_LABELS_FAIL,
                key=key,
            )
        )
    last = len(m.sizes) - 1
    test = stats.paired(m.accuracy[FINETUNED][last], m.accuracy[frozen][last])
    out.append(
        Claim.from_test(
            f"at {m.sizes[last]} labels per class, fine-tuning beats frozen BERT "
            f"{cfg.frozen_pool} features",
            test,
            f"mean accuracy {_means(m, FINETUNED, frozen, [last])}",
            known_failure=CEILING_FAIL,
            key="finetune_beats_frozen",
        )
    )
    return out


@experiment(
    "language.pretraining_helps",
    topic="language",
    config=PretrainingHelpsConfig,
    claims=("finetune_beats_scratch", "frozen_beats_scratch", "finetune_beats_frozen"),
)
def pretraining_helps(cfg: PretrainingHelpsConfig, ctx: RunContext) -> Outcome:
    """With only a few labelled sentences per class, a BERT pretrained on unlabelled text (fine-
    tuned, or as frozen features) classifies topics better than the same model from scratch."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
