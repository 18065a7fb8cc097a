r"""Downstream classification with few labels: frozen features, fine-tuning, training from scratch.

Notes: discussion 8, part 1, section 1.2 (BERT): "We can use BERT for downstream tasks both by
simply finetuning the entire model on the downstream tasks, or taking combinations of the hidden
states as fixed representations." The three ways to learn a classifier from ``n`` labelled
examples per class (:func:`sample_budget`):

(a) :func:`fit_probe`: a linear classifier (multinomial logistic regression,
    ``softmax(W z + b)``) on **frozen** features ``z`` of any feature function (BERT's ``[CLS]`` or
    mean state, word2vec averages, ELMo states), standardised with the training examples' mean
    and standard deviation;
(b) :func:`fine_tune` on a pretrained :class:`~deepnotes.language.bert.Bert`: a linear head on
    the ``[CLS]`` (or mean) state and **every** weight updated;
(c) :func:`fine_tune` on a freshly initialised :class:`~deepnotes.language.bert.Bert` of the same
    shape: the same architecture and schedule from scratch.

Every fit runs through the core :class:`~deepnotes.core.trainer.Trainer` for a fixed number of
updates (``epochs = ceil(steps / batches per epoch)``) and keeps the last weights: with a label
budget of two examples per class there is no labelled validation set to select on, so the
Trainer's validation pass reads the training examples (a training-fit record, not a selection)
and the test set is scored once, at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.trainer import INNER_FIT, Trainer
from deepnotes.data.parallel import Vocabulary
from deepnotes.language.bert import Bert, encode_single

__all__ = [
    "POOLS",
    "BertClassifier",
    "DownstreamSettings",
    "FeatureFn",
    "fine_tune",
    "fit_probe",
    "sample_budget",
]

POOLS = ("cls", "mean")
"""How a sentence's states become one vector: the ``[CLS]`` state, or the mean over tokens."""

FeatureFn = Callable[[Sequence[Sequence[str]]], torch.Tensor]
"""Maps N tokenised sentences to frozen features ``(N, F)``."""


@dataclass(frozen=True)
class DownstreamSettings:
    """The schedules of the downstream fits (the same for every label budget and method)."""

    steps: int = 150
    """Updates of a fine-tuning (or from-scratch) fit."""
    batch: int = 32
    lr: float = 5e-4
    """Adam's learning rate for fine-tuning and from scratch."""
    weight_decay: float = 0.01
    """AdamW's weight decay for fine-tuning and from scratch."""
    pool: str = "cls"
    """The fine-tuned classifier's pooling: "cls" or "mean"."""
    probe_steps: int = 200
    """Full-batch updates of a linear probe."""
    probe_lr: float = 0.05
    probe_weight_decay: float = 1e-3
    """L2 penalty of the probe (AdamW's decoupled decay)."""

    def __post_init__(self) -> None:
        require(self.steps >= 1 and self.batch >= 1, "steps and batch must be >= 1")
        require(self.probe_steps >= 1, f"probe_steps must be >= 1, got {self.probe_steps}")
        require(self.lr > 0 and self.probe_lr > 0, "lr and probe_lr must be > 0")
        require(
            self.weight_decay >= 0 and self.probe_weight_decay >= 0,
            "weight decays must be >= 0",
        )
        require(self.pool in POOLS, f"pool must be one of {POOLS}, got {self.pool!r}")


def sample_budget(labels: Sequence[int], per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` examples of every class, drawn without replacement (sorted).

    Raises:
        ValueError: a class with fewer than ``per_class`` examples, or ``per_class < 1``.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    labels = np.asarray(labels)
    chosen = []
    for c in np.unique(labels):
        pool = np.flatnonzero(labels == c)
        if len(pool) < per_class:
            raise ValueError(
                f"class {int(c)} has {len(pool)} examples, fewer than the {per_class} per class "
                "asked for"
            )
        chosen.append(rng.choice(pool, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def _epochs(n: int, batch: int, steps: int) -> int:
    return max(1, math.ceil(steps / math.ceil(n / batch)))


def _fit(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    train: TensorDataset,
    test: TensorDataset,
    ctx: RunContext,
    *,
    tag: str,
    batch: int,
    epochs: int,
) -> float:
    trainer = Trainer(
        model,
        opt,
        ctx.child(tag),
        epochs=epochs,
        batch_size=batch,
        eval_batch_size=4096,
        keep="last",
        tag=tag,
        **INNER_FIT,
    )
    result = trainer.fit(train, train, test)  # no labelled validation set: see the docstring
    assert result.test is not None
    return float(result.test["acc"])


def fit_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    ctx: RunContext,
    *,
    tag: str,
    settings: DownstreamSettings,
) -> float:
    """Multinomial logistic regression on frozen features; returns the test accuracy.

    Arguments:
        train_x: ``(n, F)`` features of the labelled examples, train_y: ``(n,)`` classes.
        test_x, test_y: the test set, ``(m, F)`` and ``(m,)``.
        tag: names the fit (and its init stream ``ctx.seeded(tag, "init")``).
    """
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"features must be (n, F) and (m, F); received {tuple(train_x.shape)}, "
            f"{tuple(test_x.shape)}"
        )
    mu = train_x.mean(0)
    sigma = train_x.std(0, unbiased=False).clamp_min(1e-6)  # from the training examples only
    classes = int(max(train_y.max(), test_y.max())) + 1
    with ctx.seeded(tag, "init"):
        model = nn.Linear(train_x.shape[1], classes)
    opt = torch.optim.AdamW(
        model.parameters(), lr=settings.probe_lr, weight_decay=settings.probe_weight_decay
    )
    train = TensorDataset(((train_x - mu) / sigma).float(), train_y.long())
    test = TensorDataset(((test_x - mu) / sigma).float(), test_y.long())
    return _fit(
        model, opt, train, test, ctx, tag=tag, batch=len(train), epochs=settings.probe_steps
    )


class BertClassifier(nn.Module):
    """A :class:`Bert` encoder with a linear head on its pooled state: ``ids (B, L)`` ->
    logits ``(B, K)``; single sentences (segment 0), padding read from the ids."""

    def __init__(self, encoder: Bert, num_classes: int, pool: str = "cls") -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}; received {pool!r}")
        self.encoder, self.pool = encoder, pool
        self.head = nn.Linear(encoder.settings.d_model, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != self.encoder.pad_id  # (B, L)
        hidden = self.encoder(ids, None, mask)  # (B, L, D)
        if self.pool == "cls":
            pooled = hidden[:, 0]  # (B, D)
        else:
            w = mask.to(hidden.dtype)[..., None]  # (B, L, 1)
            pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
        return self.head(pooled)  # (B, K)


def fine_tune(
    encoder: Bert,
    train_sentences: Sequence[Sequence[str]],
    train_y: torch.Tensor,
    test_sentences: Sequence[Sequence[str]],
    test_y: torch.Tensor,
    vocab: Vocabulary,
    ctx: RunContext,
    *,
    tag: str,
    settings: DownstreamSettings,
) -> float:
    """Train ``encoder`` plus a linear head (every weight) on the labelled sentences; returns the
    test accuracy. Pass a pretrained encoder to fine-tune, a fresh one to train from scratch.

    The encoder is updated in place (pass a copy to keep the pretrained weights); the head is
    initialised in ``ctx.seeded(tag, "head")``.
    """
    classes = int(max(train_y.max(), test_y.max())) + 1
    with ctx.seeded(tag, "head"):
        model = BertClassifier(encoder, classes, settings.pool)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    train_ids = encode_single(train_sentences, vocab, encoder.max_len)[0]
    test_ids = encode_single(test_sentences, vocab, encoder.max_len)[0]
    train = TensorDataset(train_ids, train_y.long())
    test = TensorDataset(test_ids, test_y.long())
    epochs = _epochs(len(train), settings.batch, settings.steps)
    return _fit(model, opt, train, test, ctx, tag=tag, batch=settings.batch, epochs=epochs)
