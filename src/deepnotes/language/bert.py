r"""A BERT-style encoder: masked-language modelling and sentence-order prediction.

Method: J. Devlin, M.-W. Chang, K. Lee, K. Toutanova, "BERT: Pre-training of Deep
Bidirectional Transformers for Language Understanding", NAACL 2019
(https://arxiv.org/abs/1810.04805), section 3.1; the sentence-level task is the notes' "given
two sentences in random order, predict which came first", the sentence-order prediction of
Z. Lan et al., "ALBERT", ICLR 2020 (https://arxiv.org/abs/1909.11942), section 3.1 (BERT's own
next-sentence prediction asks whether the second sentence follows the first). Notes: discussion
8, part 1, section 1.2 "Pretrained Language Models" (BERT).

The input is ``[CLS] a_1 .. a_n [SEP] b_1 .. b_m [SEP]``; its embedding is the sum of a token,
a learned position and a segment embedding (segment 0 up to the first ``[SEP]``, 1 after it),
normalised and fed to the sequence room's :class:`~deepnotes.sequence.transformer.
TransformerEncoder` **without a causal mask** (every token sees the whole input; only padding is
masked), the notes' "digest the entire context of a word".

Masked-language modelling (:func:`mask_tokens`): each real, non-special token is chosen with
probability ``p = 0.15``; a chosen token is replaced by ``[MASK]`` with probability 0.8, by a
random word with probability 0.1, and left unchanged with probability 0.1; the loss is the
cross-entropy of the original token at the chosen positions only,

.. math:: \mathcal{L}_{MLM} = -\frac{1}{|C|} \sum_{i \in C} \log p_\theta(x_i \mid \tilde x),

with the output projection tied to the token embedding (BERT's ``cls/predictions``). The
sentence-order head reads the ``[CLS]`` state through a ``tanh`` pooler; its loss is the binary
cross-entropy of "which segment came first", and the pretraining loss is the sum of both.

Deviation: tokens are chosen independently (Bernoulli ``p``, as in the reference data collator
of Hugging Face) rather than exactly ``round(0.15 n)`` per sequence; a random replacement is
drawn uniformly from the ordinary words (never a special token or ``[CLS]``/``[SEP]``/
``[MASK]``); ``<unk>`` is never chosen. ``tests/language/test_bert.py`` pins the proportions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.data.language import BERT_TOKENS, PlantedCorpus
from deepnotes.data.parallel import SPECIAL_TOKENS, Vocabulary
from deepnotes.sequence.transformer import LearnedPositionalEncoding, TransformerEncoder

__all__ = [
    "IGNORE_INDEX",
    "Bert",
    "BertSettings",
    "bert_from_state",
    "cls_features",
    "encode_single",
    "evaluate_pretraining",
    "make_pair_batch",
    "mask_tokens",
    "mean_features",
    "sentence_features",
    "special_ids",
    "train_bert",
]

IGNORE_INDEX = -100
"""The MLM target at positions that were not chosen (``F.cross_entropy``'s ``ignore_index``)."""


def special_ids(vocab: Vocabulary) -> dict[str, int]:
    """The ids of ``[CLS]``, ``[SEP]``, ``[MASK]`` in ``vocab`` (keys ``cls``, ``sep``,
    ``mask``); ValueError when the vocabulary does not hold them (build it with
    :meth:`PlantedCorpus.vocabulary` or put :data:`BERT_TOKENS` first)."""
    missing = [t for t in BERT_TOKENS if t not in vocab]
    if missing:
        raise ValueError(
            f"the vocabulary must hold the BERT tokens {BERT_TOKENS}; missing {missing}"
        )
    cls_token, sep_token, mask_token = BERT_TOKENS
    return {
        "cls": vocab.id_of(cls_token),
        "sep": vocab.id_of(sep_token),
        "mask": vocab.id_of(mask_token),
    }


def _word_ids(vocab: Vocabulary) -> torch.Tensor:
    """Ids of the ordinary words: not one of the four specials nor a BERT token, (W,)."""
    excluded = set(SPECIAL_TOKENS) | set(BERT_TOKENS)
    ids = [i for i, t in enumerate(vocab.tokens) if t not in excluded]
    if not ids:
        raise ValueError("the vocabulary holds no ordinary word")
    return torch.tensor(ids, dtype=torch.long)


# --------------------------------------------------------------------------------------------
# inputs


def mask_tokens(
    ids: torch.Tensor,
    mask: torch.Tensor,
    vocab: Vocabulary,
    generator: torch.Generator,
    p: float = 0.15,
    *,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
    content_ids: torch.Tensor | None = None,
    content_p: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose tokens for masked-language modelling and corrupt them (BERT's 80/10/10).

    Arguments:
        ids: ``(B, L)`` token ids. mask: ``(B, L)`` bool, True at real tokens.
        vocab: the vocabulary (for ``[MASK]`` and the ordinary words).
        generator: the only source of randomness.
        p: the probability that a real, non-special token is chosen.
        mask_frac, random_frac: of the chosen, the fractions replaced by ``[MASK]`` and by a
            random word (the rest is kept unchanged); evaluation uses ``mask_frac=1``.
        content_ids, content_p: salient-word masking (optional, both or neither): the tokens
            whose id is in ``content_ids (K,)`` are chosen with probability ``content_p``
            instead of ``p``.

    Returns:
        ``(inputs (B, L), targets (B, L))``: the corrupted ids, and the original id at the
        chosen positions, :data:`IGNORE_INDEX` elsewhere. Padding, ``<unk>``, the other
        special tokens and ``[CLS]``/``[SEP]``/``[MASK]`` are never chosen.
    """
    if ids.shape != mask.shape or ids.ndim != 2:
        raise ValueError(
            f"ids and mask must both be (B, L); received {tuple(ids.shape)}, {tuple(mask.shape)}"
        )
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1]; received {p}")
    if mask_frac < 0 or random_frac < 0 or mask_frac + random_frac > 1:
        raise ValueError(
            f"mask_frac and random_frac must be >= 0 with a sum <= 1; received {mask_frac}, "
            f"{random_frac}"
        )
    if (content_ids is None) != (content_p is None):
        raise ValueError("content_ids and content_p must be given together")
    if content_p is not None and not 0.0 < content_p <= 1.0:
        raise ValueError(f"content_p must be in (0, 1]; received {content_p}")
    words = _word_ids(vocab)
    mask_id = special_ids(vocab)["mask"]
    candidate = mask & torch.isin(ids, words)  # (B, L): real, ordinary words
    draw = torch.rand(ids.shape, generator=generator)  # (B, L): who is chosen
    if content_ids is None:
        chosen = candidate & (draw < p)
    else:
        prob = torch.where(torch.isin(ids, content_ids), content_p, p)  # (B, L)
        chosen = candidate & (draw < prob)
    how = torch.rand(ids.shape, generator=generator)  # (B, L): what happens to the chosen
    random_words = words[torch.randint(len(words), ids.shape, generator=generator)]
    inputs = ids.clone()
    to_mask = chosen & (how < mask_frac)
    to_random = chosen & (how >= mask_frac) & (how < mask_frac + random_frac)
    inputs[to_mask] = mask_id
    inputs[to_random] = random_words[to_random]
    targets = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    return inputs, targets


def _check_length(length: int, max_len: int, what: str) -> None:
    if length > max_len:
        raise ValueError(
            f"{what} has {length} tokens with [CLS] and [SEP], more than the model's "
            f"max_len = {max_len}; shorten it or build the model with a larger max_len"
        )


def _pad(rows: list[list[int]], segs: list[list[int]]) -> tuple[torch.Tensor, ...]:
    longest = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), longest, dtype=torch.long)  # <pad> = 0
    segments = torch.zeros(len(rows), longest, dtype=torch.long)
    for i, (row, seg) in enumerate(zip(rows, segs, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        segments[i, : len(seg)] = torch.tensor(seg)
    return ids, segments, ids != Vocabulary.pad_id


def make_pair_batch(
    pairs: Sequence[tuple[Sequence[str], Sequence[str]]],
    vocab: Vocabulary,
    generator: torch.Generator,
    max_len: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sentence-order batch: each (first, second) pair shown in random order.

    Each pair becomes ``[CLS] a [SEP] b [SEP]`` where ``(a, b)`` is ``(first, second)`` (label
    0) or, with probability 1/2, ``(second, first)`` (label 1: the second segment came first).

    Returns:
        ``ids (B, L)``, ``segments (B, L)`` (0 up to the first ``[SEP]``, 1 after it; 0 at
        padding), ``mask (B, L)`` (True at real tokens), ``labels (B,)``.

    Raises:
        ValueError: a pair longer than ``max_len`` tokens (with its three special tokens).
    """
    if not pairs:
        raise ValueError("need at least one sentence pair")
    sp = special_ids(vocab)
    swap = torch.rand(len(pairs), generator=generator) < 0.5  # (B,)
    rows, segs = [], []
    for i, (first, second) in enumerate(pairs):
        a, b = (second, first) if swap[i] else (first, second)
        row = [sp["cls"], *vocab.encode(a), sp["sep"], *vocab.encode(b), sp["sep"]]
        _check_length(len(row), max_len, f"sentence pair {i}")
        rows.append(row)
        segs.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    ids, segments, mask = _pad(rows, segs)
    return ids, segments, mask, swap.long()


def encode_single(
    sentences: Sequence[Sequence[str]], vocab: Vocabulary, max_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One sentence per row, ``[CLS] s [SEP]`` (segment 0): ``ids, segments, mask (B, L)``.

    Raises:
        ValueError: a sentence longer than ``max_len`` tokens with ``[CLS]`` and ``[SEP]``.
    """
    if not sentences:
        raise ValueError("need at least one sentence")
    sp = special_ids(vocab)
    rows = []
    for i, sentence in enumerate(sentences):
        row = [sp["cls"], *vocab.encode(sentence), sp["sep"]]
        _check_length(len(row), max_len, f"sentence {i}")
        rows.append(row)
    return _pad(rows, [[0] * len(r) for r in rows])


# --------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class BertSettings:
    """The encoder's shape and its pretraining schedule."""

    d_model: int = 64
    """``D``, the width of every token state."""
    num_heads: int = 4
    num_layers: int = 2
    dim_feedforward: int = 128
    dropout: float = 0.1
    max_len: int = 64
    """The longest input (with ``[CLS]`` and two ``[SEP]``); longer ones raise ValueError."""
    norm_first: bool = True
    """Pre-LN layers (stable at a high learning rate without warm-up); BERT is post-LN."""
    steps: int = 2000
    """Pretraining updates."""
    batch: int = 64
    """Sentence pairs per update."""
    lr: float = 1e-3
    """Adam's learning rate (linear warm-up over ``warmup`` steps, then constant)."""
    warmup: int = 100
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay."""
    mask_prob: float = 0.15
    """The MLM ``p``."""
    content_mask_prob: float | None = None
    """Salient-word masking (off when None): the content words (those of the corpus's planted
    categories, :attr:`PlantedCorpus.category_of`) are chosen with this probability instead of
    ``mask_prob``; the salient-span masking of Guu et al. (2020), REALM, section 3.4."""
    every: int = 100
    """Steps per record of the training curves."""
    clip_norm: float = 1.0

    def __post_init__(self) -> None:
        require(
            self.d_model >= 1 and self.num_heads >= 1 and self.d_model % self.num_heads == 0,
            f"d_model must be a positive multiple of num_heads; got {self.d_model}, "
            f"{self.num_heads}",
        )
        require(self.num_layers >= 1, f"num_layers must be >= 1, got {self.num_layers}")
        require(self.dim_feedforward >= 1, "dim_feedforward must be >= 1")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.max_len >= 3, f"max_len must be >= 3, got {self.max_len}")
        require(self.steps >= 1 and self.batch >= 1, "steps and batch must be >= 1")
        require(1 <= self.every <= self.steps, f"need 1 <= every <= steps, got {self.every}")
        require(self.lr > 0 and self.weight_decay >= 0, "lr must be > 0, weight_decay >= 0")
        require(self.warmup >= 0, f"warmup must be >= 0, got {self.warmup}")
        require(0 < self.mask_prob <= 1, f"mask_prob must be in (0, 1], got {self.mask_prob}")
        require(
            self.content_mask_prob is None or 0 < self.content_mask_prob <= 1,
            f"content_mask_prob must be None or in (0, 1], got {self.content_mask_prob}",
        )
        require(self.clip_norm > 0, f"clip_norm must be > 0, got {self.clip_norm}")


class Bert(nn.Module):
    """Embeddings, a bidirectional transformer encoder, an MLM head and a sentence-order head.

    Arguments:
        vocab_size: ``V``. settings: the shape (``d_model``, heads, layers, ``max_len``...).
        pad_id: the padding id (masked out of attention).

    Example:
        >>> model = Bert(50, BertSettings(d_model=16, num_heads=2, num_layers=1))
        >>> ids = torch.randint(7, 50, (3, 9))
        >>> hidden = model(ids)                      # (3, 9, 16)
        >>> model.mlm_logits(hidden).shape, model.order_logits(hidden).shape
        (torch.Size([3, 9, 50]), torch.Size([3, 2]))
    """

    def __init__(self, vocab_size: int, settings: BertSettings, pad_id: int = 0) -> None:
        super().__init__()
        d = settings.d_model
        self.settings, self.pad_id, self.vocab_size = settings, pad_id, vocab_size
        self.max_len = settings.max_len
        self.token_embed = nn.Embedding(vocab_size, d)
        self.position = LearnedPositionalEncoding(d, settings.max_len)
        self.segment_embed = nn.Embedding(2, d)
        self.embed_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(settings.dropout)
        self.encoder = TransformerEncoder(
            settings.num_layers,
            settings.norm_first,
            d_model=d,
            num_heads=settings.num_heads,
            dim_feedforward=settings.dim_feedforward,
            dropout=settings.dropout,
        )
        # MLM head: transform, then the tied output projection E^T plus a bias
        self.mlm_transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))
        self.mlm_bias = nn.Parameter(torch.zeros(vocab_size))
        # sentence-order head on [CLS]: tanh pooler, then 2 logits
        self.pooler = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        self.order_head = nn.Linear(d, 2)
        nn.init.normal_(self.token_embed.weight, std=0.02)
        nn.init.normal_(self.segment_embed.weight, std=0.02)

    def _inputs(
        self, ids: torch.Tensor, segments: torch.Tensor | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if ids.ndim != 2 or ids.dtype.is_floating_point:
            raise ValueError(
                f"ids must be a 2-D integer tensor (B, L); received shape {tuple(ids.shape)}, "
                f"dtype {ids.dtype}"
            )
        if ids.shape[1] > self.max_len:
            raise ValueError(
                f"input of {ids.shape[1]} tokens is longer than the model's max_len = "
                f"{self.max_len}; shorten it or build the model with a larger max_len"
            )
        segments = torch.zeros_like(ids) if segments is None else segments
        mask = ids != self.pad_id if mask is None else mask
        if segments.shape != ids.shape or mask.shape != ids.shape:
            raise ValueError(
                f"segments and mask must have the shape of ids {tuple(ids.shape)}; received "
                f"{tuple(segments.shape)}, {tuple(mask.shape)}"
            )
        return ids, segments, mask

    def encode(
        self,
        ids: torch.Tensor,
        segments: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """``ids (B, L)`` -> ``(hidden (B, L, D), attention weights (B, H, L, L) per layer)``.

        ``segments`` default to 0, ``mask`` (True at real tokens) to ``ids != pad_id``.
        """
        ids, segments, mask = self._inputs(ids, segments, mask)
        x = self.position(self.token_embed(ids)) + self.segment_embed(segments)  # (B, L, D)
        x = self.dropout(self.embed_norm(x))
        return self.encoder(x, mask)  # no causal mask: padding only

    def forward(
        self,
        ids: torch.Tensor,
        segments: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The final token states ``(B, L, D)``."""
        return self.encode(ids, segments, mask)[0]

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, L, D)`` (or ``(N, D)``) states -> vocabulary logits ``(..., V)``:
        ``transform(h) E^T + b`` with the token embedding ``E`` tied."""
        return self.mlm_transform(hidden) @ self.token_embed.weight.T + self.mlm_bias

    def order_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, L, D)`` -> ``(B, 2)``: "the first segment came first" vs "the second did"."""
        return self.order_head(self.pooler(hidden[:, 0]))  # [CLS] is position 0


def bert_from_state(
    state: dict[str, torch.Tensor], vocab_size: int, settings: BertSettings
) -> Bert:
    """Rebuild a :class:`Bert` from a ``state_dict`` (e.g. :func:`train_bert`'s cached one)."""
    model = Bert(vocab_size, settings)
    model.load_state_dict(state)
    return model.eval()


# --------------------------------------------------------------------------------------------
# features


def cls_features(
    model: Bert, ids: torch.Tensor, segments: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The final ``[CLS]`` state of each row, ``(B, D)``."""
    return model(ids, segments, mask)[:, 0]


def mean_features(
    model: Bert, ids: torch.Tensor, segments: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The mean final state over each row's real tokens (``[CLS]``/``[SEP]`` included),
    ``(B, D)``."""
    hidden = model(ids, segments, mask)  # (B, L, D)
    weights = mask.to(hidden.dtype)[..., None]  # (B, L, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


@torch.no_grad()
def sentence_features(
    model: Bert,
    sentences: Sequence[Sequence[str]],
    vocab: Vocabulary,
    pool: str = "mean",
    batch: int = 512,
) -> torch.Tensor:
    """Frozen features of single sentences (``[CLS] s [SEP]``), ``(N, D)``, in eval mode.

    ``pool`` is ``"cls"`` (:func:`cls_features`) or ``"mean"`` (:func:`mean_features`).
    """
    pools = {"cls": cls_features, "mean": mean_features}
    if pool not in pools:
        raise ValueError(f"pool must be one of {sorted(pools)}; received {pool!r}")
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(sentences), batch):
        ids, segments, mask = encode_single(sentences[start : start + batch], vocab, model.max_len)
        out.append(pools[pool](model, ids, segments, mask))
    model.train(was_training)
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# pretraining


def _losses(
    model: Bert,
    ids: torch.Tensor,
    segments: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> dict[str, torch.Tensor]:
    hidden = model(inputs, segments, mask)  # (B, L, D)
    chosen = targets != IGNORE_INDEX  # (B, L)
    mlm = model.mlm_logits(hidden[chosen])  # (C, V): only the chosen positions
    target = targets[chosen]  # (C,)
    order = model.order_logits(hidden)  # (B, 2)
    mlm_loss = F.cross_entropy(mlm, target) if len(target) else hidden.sum() * 0.0
    return {
        "mlm_loss": mlm_loss,
        "order_loss": F.cross_entropy(order, labels),
        "mlm_correct": (mlm.argmax(-1) == target).sum(),
        "mlm_count": torch.tensor(len(target)),
        "order_correct": (order.argmax(-1) == labels).sum(),
    }


def train_bert(
    corpus: PlantedCorpus,
    vocab: Vocabulary,
    settings: BertSettings,
    ctx: RunContext,
    *,
    tag: str,
) -> dict[str, Any]:
    """Pretrain a :class:`Bert` on the corpus's consecutive sentence pairs (MLM + order).

    Every step draws ``settings.batch`` pairs (with replacement) from
    ``corpus.sentence_pairs()``, shows each in random order (:func:`make_pair_batch`), masks
    them (:func:`mask_tokens`; with ``settings.content_mask_prob``, the words of
    ``corpus.category_of`` at that rate) and takes one AdamW step on ``mlm_loss +
    order_loss``, through the engine's :class:`~deepnotes.core.engine.Loop` (tag ``tag``;
    randomness from ``ctx.stream(tag, ...)`` and ``ctx.seeded(tag, "init")``).

    Returns:
        A cacheable dict: ``state`` (the ``state_dict``), ``steps`` and per record the training
        averages ``mlm_loss``, ``order_loss``, ``mlm_acc``, ``order_acc`` (lists), and
        ``seconds``. Rebuild the model with :func:`bert_from_state`.
    """
    pairs = corpus.sentence_pairs()
    if not pairs:
        raise ValueError("the corpus holds no sentence pair (every document needs 2 sentences)")
    with ctx.seeded(tag, "init"):
        model = Bert(len(vocab), settings).to(ctx.device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": rest}],
        lr=settings.lr,
        weight_decay=0.0,
    )
    warm = max(settings.warmup, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    data = ctx.stream(tag, "data")
    salient: dict[str, Any] = {}
    if settings.content_mask_prob is not None:
        content = [vocab.id_of(w) for w in corpus.category_of if w in vocab]
        salient = {"content_ids": torch.tensor(content, dtype=torch.long)}
        salient["content_p"] = settings.content_mask_prob
    loop = Loop(ctx, tag=tag, track={"model": model, "opt": opt, "sched": sched, "data": data})

    def step(_: int) -> dict[str, float]:
        model.train()
        index = torch.randint(len(pairs), (settings.batch,), generator=data).tolist()
        ids, segments, mask, labels = make_pair_batch(
            [pairs[i] for i in index], vocab, data, settings.max_len
        )
        inputs, targets = mask_tokens(ids, mask, vocab, data, settings.mask_prob, **salient)
        dev = ctx.device
        out = _losses(
            model,
            ids.to(dev),
            segments.to(dev),
            mask.to(dev),
            labels.to(dev),
            inputs.to(dev),
            targets.to(dev),
        )
        loss = out["mlm_loss"] + out["order_loss"]  # L = L_MLM + L_order
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm)
        opt.step()
        sched.step()
        count = max(int(out["mlm_count"]), 1)
        return {
            "mlm_loss": out["mlm_loss"].item(),
            "order_loss": out["order_loss"].item(),
            "mlm_acc": float(out["mlm_correct"]) / count,
            "order_acc": float(out["order_correct"]) / settings.batch,
        }

    result = loop.run(step, steps=settings.steps, every=settings.every)
    keys = ("mlm_loss", "order_loss", "mlm_acc", "order_acc")
    return {
        "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "steps": [int(r["step"]) for r in result.history],
        **{k: [float(r[k]) for r in result.history] for k in keys},
        "seconds": float(result.seconds),
        "settings": asdict(settings),
    }


@torch.no_grad()
def evaluate_pretraining(
    model: Bert,
    pairs: Sequence[tuple[Sequence[str], Sequence[str]]],
    vocab: Vocabulary,
    generator: torch.Generator,
    *,
    p: float = 0.15,
    batch: int = 256,
) -> dict[str, torch.Tensor]:
    """Score held-out pairs: every chosen token replaced by ``[MASK]`` (``mask_frac=1``).

    Returns per-position tensors ``mlm_correct (C,)`` (bool), ``mlm_target (C,)`` (the true
    ids), per-pair ``order_correct (N,)`` (bool), in order (accuracies are their means), and
    ``candidates`` (a 0-d tensor): how many real ordinary words could have been chosen.
    """
    model.eval()
    words = _word_ids(vocab)
    candidates = 0
    correct, target_ids, order = [], [], []
    for start in range(0, len(pairs), batch):
        ids, segments, mask, labels = make_pair_batch(
            pairs[start : start + batch], vocab, generator, model.max_len
        )
        inputs, targets = mask_tokens(
            ids, mask, vocab, generator, p, mask_frac=1.0, random_frac=0.0
        )
        candidates += int((mask & torch.isin(ids, words)).sum())
        hidden = model(inputs, segments, mask)  # (B, L, D)
        chosen = targets != IGNORE_INDEX
        correct.append(model.mlm_logits(hidden[chosen]).argmax(-1) == targets[chosen])
        target_ids.append(targets[chosen])
        order.append(model.order_logits(hidden).argmax(-1) == labels)
    return {
        "mlm_correct": torch.cat(correct),
        "mlm_target": torch.cat(target_ids),
        "order_correct": torch.cat(order),
        "candidates": torch.tensor(candidates),
    }
