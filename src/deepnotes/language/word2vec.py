r"""Skip-gram word2vec: the full softmax, negative sampling, and the notes' degenerate
"positives only" objective. Notes: discussion 8, part 1, sections 1.1.1 "Naive Word2Vec" and
1.1.2 "Making Word2Vec Tractable"; Mikolov, Sutskever, Chen, Corrado & Dean (2013),
"Distributed Representations of Words and Phrases and their Compositionality"
(https://arxiv.org/abs/1310.4546).

Every word ``w`` has a centre vector ``v_w`` and a context vector ``u_w`` (both ``(V, D)``
tables); the final embedding is their average ``(u + v) / 2``, as the notes say. A training
pair is a centre word ``c`` and a context word ``o`` within ``window`` positions of it in the
same sentence (:func:`skipgram_pairs`; with ``dynamic_window`` the window of each centre is drawn
uniformly from ``1..window``, as word2vec does). Three objectives, per pair:

- ``"softmax"``: :math:`-\log p(o|c)`, :math:`p(o|c) = \exp(u_o^\top v_c) / \sum_{w \in V}
  \exp(u_w^\top v_c)`: the sum runs over the whole vocabulary, so a step costs :math:`O(|V| D)`.
- ``"negative"``: :math:`-\log\sigma(u_o^\top v_c) - \sum_{j=1}^{k} \log\sigma(-u_{w_j}^\top
  v_c)` with ``k`` negatives :math:`w_j` drawn from the unigram distribution to the power 3/4
  (:func:`noise_distribution`): a step costs :math:`O(k D)` whatever :math:`|V|`.
- ``"positive"``: :math:`-\log\sigma(u_o^\top v_c)` alone, the notes' binary classifier
  without negatives, whose trivial solution is one large vector shared by every word.

Frequent words are subsampled: each occurrence of ``w`` is discarded with probability
:math:`\max(0, 1 - \sqrt{t / f(w)})`, ``f(w)`` its share of the tokens and ``t`` the threshold
(:func:`discard_probability`; the formula of Mikolov et al.'s paper).

Training is plain SGD on minibatches of pairs, each touched row moving by the learning rate
times the mean of its gradients in the minibatch (rows untouched are not read), the rate falling
linearly from ``lr`` to ``lr * min_lr_fraction`` over training (word2vec's schedule), with the
closed-form gradients of :func:`softmax_gradients` / :func:`negative_sampling_gradients`
(checked against autograd in :mod:`deepnotes.language.derivations`) applied to the touched rows
only (``index_add_``), so that a negative-sampling step never touches the other rows of the
tables. Initialisation as in word2vec: ``v ~ U(-0.5/D, 0.5/D)``, ``u = 0``.

Deviations: the per-row mean (word2vec adds each pair's gradient in turn at rate 0.025;
summing a minibatch's gradients diverged on the planted corpus's small vocabulary, where a row
recurs dozens of times per minibatch); the full softmax's ``U``, touched by every pair, moves
by the minibatch mean. Pairs are shuffled across the whole corpus and updated in minibatches of
``batch``
pairs (word2vec walks the text and updates after every pair); a negative equal to the pair's
context word is skipped (masked), as word2vec does, but not redrawn. Negatives are drawn from a
table of ``table_size`` entries, word ``w`` filling a share ``P_n(w)`` of it (word2vec's unigram
table), so drawing costs the same for every vocabulary size.

Example:
    >>> settings = Word2VecSettings(objective="negative", dim=16, epochs=3)
    >>> emb, history = train_word2vec(ids, len(vocab), None, settings, ctx, tag="w2v")
    >>> nearest(emb, vocab, "cat", k=3)
    [('dog', 0.93), ('horse', 0.91), ('cow', 0.90)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop, LoopResult
from deepnotes.core.errors import ConfigError, UsageError
from deepnotes.data.parallel import SPECIAL_TOKENS, Vocabulary

__all__ = [
    "OBJECTIVES",
    "SkipGram",
    "Word2VecSettings",
    "analogy",
    "category_purity",
    "discard_probability",
    "draw_negatives",
    "fit_skipgram",
    "flatten",
    "nearest",
    "negative_sampling_gradients",
    "negative_sampling_loss",
    "noise_distribution",
    "noise_table",
    "random_pair_probability",
    "skipgram_pairs",
    "softmax_gradients",
    "softmax_loss",
    "train_word2vec",
]

OBJECTIVES = ("softmax", "negative", "positive")


@dataclass(frozen=True)
class Word2VecSettings:
    """Hyperparameters of one skip-gram fit (defaults: word2vec's, scaled to a small corpus)."""

    objective: str = "negative"
    """One of :data:`OBJECTIVES`."""
    dim: int = 32
    """Embedding width D."""
    window: int = 2
    """Largest distance between a centre and a context word."""
    dynamic_window: bool = False
    """Draw each centre's window uniformly from 1..window (word2vec's default)."""
    negatives: int = 5
    """k, negatives per pair (objective "negative" only)."""
    noise_power: float = 0.75
    """Power of the unigram counts in the noise distribution."""
    subsample: float = 1e-3
    """Threshold t of the subsampling of frequent words; 0 turns it off."""
    epochs: int = 5
    batch: int = 1024
    """Pairs per SGD step."""
    lr: float = 1.0
    """Initial learning rate: a touched row moves by lr times the mean of its gradients in
    the minibatch (see :meth:`SkipGram.step`)."""
    min_lr_fraction: float = 1e-4
    """The rate falls linearly to lr * this at the end of training."""
    table_size: int = 1_000_000
    """Entries of the unigram table negatives are drawn from."""

    def __post_init__(self) -> None:
        _require(self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}")
        _require(self.dim >= 1 and self.window >= 1, "dim and window must be >= 1")
        _require(self.negatives >= 1, f"negatives must be >= 1, got {self.negatives}")
        _require(self.noise_power >= 0, f"noise_power must be >= 0, got {self.noise_power}")
        _require(self.subsample >= 0, f"subsample must be >= 0 (0: off), got {self.subsample}")
        _require(self.epochs >= 1 and self.batch >= 1, "epochs and batch must be >= 1")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(0 < self.min_lr_fraction <= 1, "min_lr_fraction must be in (0, 1]")
        _require(self.table_size >= 1000, f"table_size must be >= 1000, got {self.table_size}")

    def key(self) -> dict[str, Any]:
        """Every field, for :meth:`RunContext.cached` keys."""
        return dict(self.__dict__)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(f"Word2VecSettings: {message}")


# --------------------------------------------------------------------------------------------
# data: counts, noise, subsampling, pairs


def _counts_tensor(
    counts: Sequence[int] | torch.Tensor | Mapping[int, int] | None,
    sentences_ids: Sequence[Sequence[int]],
    vocab_size: int,
) -> torch.Tensor:
    """Per-id counts ``(V,)`` float64 from a sequence, a tensor, an ``{id: count}`` mapping or
    (None) the sentences themselves."""
    if counts is None:
        out = torch.bincount(torch.from_numpy(flatten(sentences_ids)[0]), minlength=vocab_size)
    elif isinstance(counts, Mapping):
        out = torch.zeros(vocab_size, dtype=torch.float64)
        for index, n in counts.items():
            if not (isinstance(index, int) and 0 <= index < vocab_size):
                raise UsageError(f"counts keys must be ids in 0..{vocab_size - 1}, got {index!r}")
            out[index] = float(n)
    else:
        out = torch.as_tensor(counts)
    out = out.to(torch.float64)
    if out.shape != (vocab_size,):
        raise UsageError(
            f"counts must have one entry per id, ({vocab_size},); got {tuple(out.shape)}"
        )
    if bool((out < 0).any()) or float(out.sum()) <= 0:
        raise UsageError("counts must be >= 0 with a positive total")
    return out


def noise_distribution(counts: torch.Tensor, power: float = 0.75) -> torch.Tensor:
    """``P_n(w) = count(w)^power / sum_w' count(w')^power``, ``(V,)``; unseen words get 0."""
    weights = torch.where(counts > 0, counts.to(torch.float64) ** power, 0.0)
    return weights / weights.sum()


def noise_table(probabilities: torch.Tensor, size: int) -> torch.Tensor:
    """word2vec's unigram table: ``size`` ids, word ``w`` filling about ``size * P(w)`` slots
    (cumulative rounding, so every slot is used). Uniform draws from it sample ``P``."""
    edges = torch.round(torch.cumsum(probabilities, 0) * size).to(torch.long)  # (V,)
    edges[-1] = size
    repeats = torch.diff(edges, prepend=torch.zeros(1, dtype=torch.long))
    return torch.repeat_interleave(torch.arange(len(probabilities)), repeats)  # (size,)


def draw_negatives(
    table: torch.Tensor, batch: int, k: int, generator: torch.Generator
) -> torch.Tensor:
    """``(batch, k)`` ids drawn from the noise distribution of ``table`` (:func:`noise_table`):
    uniform slots of the table, so the cost does not depend on the vocabulary size."""
    return table[torch.randint(len(table), (batch, k), generator=generator)]


def discard_probability(counts: torch.Tensor, threshold: float) -> torch.Tensor:
    """``max(0, 1 - sqrt(t / f(w)))`` per id, ``f(w) = count(w) / total``; 0 when ``t = 0``."""
    counts = counts.to(torch.float64)
    if threshold <= 0:
        return torch.zeros_like(counts)
    freq = counts / counts.sum()
    keep = torch.sqrt(threshold / freq.clamp_min(1e-300))
    return (1.0 - keep).clamp_min(0.0)


def skipgram_pairs(
    sentences_ids: Sequence[Sequence[int]],
    window: int,
    *,
    rng: np.random.Generator | None = None,
    discard: np.ndarray | None = None,
    dynamic_window: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Every (centre, context) pair within ``window`` positions in the same sentence.

    Arguments:
        sentences_ids: the corpus, as lists of ids.
        window: the largest distance between centre and context.
        rng: the generator of the subsampling and the dynamic windows (needed with them).
        discard: per-id discard probabilities (:func:`discard_probability`); discarded tokens
            are removed before the windows are taken (as in word2vec), so a window reaches past
            them.
        dynamic_window: each centre's window drawn uniformly from ``1..window``.

    Returns:
        ``centres, contexts``, int64 ``(P,)`` each, ordered by offset then position.
    """
    tokens, sentence = flatten(sentences_ids)
    return _pairs(tokens, sentence, window, rng, discard, dynamic_window)


def flatten(sentences_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The corpus as one int64 array of ids ``(N,)`` and the sentence index of each ``(N,)``."""
    lengths = np.fromiter((len(s) for s in sentences_ids), dtype=np.int64, count=len(sentences_ids))
    tokens = np.fromiter((i for s in sentences_ids for i in s), dtype=np.int64, count=lengths.sum())
    return tokens, np.repeat(np.arange(len(lengths)), lengths)


def _pairs(
    tokens: np.ndarray,
    sentence: np.ndarray,
    window: int,
    rng: np.random.Generator | None,
    discard: np.ndarray | None,
    dynamic_window: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`skipgram_pairs` on a flattened corpus (:func:`flatten`)."""
    if (discard is not None or dynamic_window) and rng is None:
        raise ValueError("subsampling and dynamic windows need rng")
    if discard is not None:
        kept = rng.random(len(tokens)) >= discard[tokens]
        tokens, sentence = tokens[kept], sentence[kept]
    reach = (
        rng.integers(1, window + 1, size=len(tokens))
        if dynamic_window
        else np.full(len(tokens), window)
    )
    centres, contexts = [], []
    for offset in range(1, window + 1):
        same = sentence[offset:] == sentence[:-offset]  # token i and i + offset, (N - offset,)
        left = same & (reach[:-offset] >= offset)  # centre i, context i + offset
        right = same & (reach[offset:] >= offset)  # centre i + offset, context i
        centres += [tokens[:-offset][left], tokens[offset:][right]]
        contexts += [tokens[offset:][left], tokens[:-offset][right]]
    return np.concatenate(centres), np.concatenate(contexts)


# --------------------------------------------------------------------------------------------
# losses and their closed-form gradients


def softmax_loss(
    u: torch.Tensor, v: torch.Tensor, centres: torch.Tensor, contexts: torch.Tensor
) -> torch.Tensor:
    """Summed ``-log p(o|c)`` over the pairs; ``u, v (V, D)``, ``centres, contexts (B,)``."""
    logits = v[centres] @ u.T  # u_w . v_c for every w, (B, V)
    return -(logits.log_softmax(dim=1).gather(1, contexts[:, None])).sum()


def softmax_gradients(
    u: torch.Tensor, v: torch.Tensor, centres: torch.Tensor, contexts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Closed-form gradients of :func:`softmax_loss`: ``(loss, dU (V, D), dv_c (B, D))``.

    With :math:`p = \mathrm{softmax}(U v_c)` and :math:`e_o` the one-hot of the context,
    :math:`\partial L / \partial u_w = (p_w - [w = o]) v_c` summed over the pairs and
    :math:`\partial L / \partial v_c = U^\top (p - e_o) = \sum_w p_w u_w - u_o`. Row ``b`` of
    ``dv_c`` belongs to ``v[centres[b]]`` (repeated centres add up).
    """
    vc = v[centres]  # (B, D)
    logits = vc @ u.T  # (B, V)
    p = logits.softmax(dim=1)
    loss = -(logits.log_softmax(dim=1).gather(1, contexts[:, None])).sum()
    g = p.scatter_add(1, contexts[:, None], -torch.ones_like(p[:, :1]))  # p - e_o, (B, V)
    return loss, g.T @ vc, g @ u  # (V, D), (B, D)


def negative_sampling_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    centres: torch.Tensor,
    contexts: torch.Tensor,
    negatives: torch.Tensor | None,
) -> torch.Tensor:
    """Summed ``-log s(u_o.v_c) - sum_j log s(-u_wj.v_c)`` (``s`` the sigmoid); ``negatives
    (B, k)`` or None for the positives-only objective. Negatives equal to ``o`` are skipped."""
    vc = v[centres]  # (B, D)
    ids = contexts[:, None] if negatives is None else torch.cat([contexts[:, None], negatives], 1)
    x = (u[ids] @ vc[:, :, None])[..., 0]  # u_o . v_c, then u_wj . v_c: (B, 1 + k)
    loss = -torch.nn.functional.logsigmoid(x[:, 0]).sum()
    if negatives is not None:
        keep = negatives != contexts[:, None]
        loss = loss - (torch.nn.functional.logsigmoid(-x[:, 1:]) * keep).sum()
    return loss


def negative_sampling_gradients(
    u: torch.Tensor,
    v: torch.Tensor,
    centres: torch.Tensor,
    contexts: torch.Tensor,
    negatives: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Closed-form gradients of :func:`negative_sampling_loss`.

    With :math:`x_0 = u_o^\top v_c` and :math:`x_j = u_{w_j}^\top v_c`, the coefficients are
    :math:`g_0 = \sigma(x_0) - 1` and :math:`g_j = \sigma(x_j)` (0 for a skipped negative), and

    .. math::
        \frac{\partial L}{\partial u_o} = g_0 v_c, \qquad
        \frac{\partial L}{\partial u_{w_j}} = g_j v_c, \qquad
        \frac{\partial L}{\partial v_c} = g_0 u_o + \sum_j g_j u_{w_j}.

    Returns:
        ``loss``, ``ids (B, 1 + k)`` (the context then the negatives), ``du (B, 1 + k, D)``
        (the gradient for ``u[ids]``, repeated ids adding up) and ``dv_c (B, D)``.
    """
    vc = v[centres]  # (B, D)
    ids = contexts[:, None] if negatives is None else torch.cat([contexts[:, None], negatives], 1)
    rows = u[ids]  # (B, 1 + k, D)
    x = (rows * vc[:, None, :]).sum(-1)  # u_i . v_c, (B, 1 + k)
    sign = torch.ones_like(x)
    sign[:, 1:] = -1.0  # the positive is labelled 1, the negatives 0
    keep = torch.ones_like(x)
    keep[:, 1:] = (ids[:, 1:] != contexts[:, None]).to(x.dtype)
    loss = -(torch.nn.functional.logsigmoid(sign * x) * keep).sum()
    g = (torch.sigmoid(x) - (sign > 0).to(x.dtype)) * keep  # dL/dx, (B, 1 + k)
    dv = (g[:, :, None] * rows).sum(1)  # sum_i g_i u_i, (B, D)
    du = g[:, :, None] * vc[:, None, :]  # g_i v_c, (B, 1 + k, D)
    return loss, ids, du, dv


# --------------------------------------------------------------------------------------------
# the model and its SGD step


class SkipGram(nn.Module):
    """The two tables of skip-gram: ``v`` (centre vectors) and ``u`` (context vectors), ``(V, D)``.

    Arguments:
        vocab_size: V.
        dim: D.
        generator: draws ``v``'s uniform initialisation (``u`` starts at zero).
    """

    def __init__(self, vocab_size: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        scale = 0.5 / dim
        v = (torch.rand(vocab_size, dim, generator=generator) * 2 - 1) * scale
        self.v = nn.Parameter(v, requires_grad=False)
        self.u = nn.Parameter(torch.zeros(vocab_size, dim), requires_grad=False)

    def embeddings(self) -> torch.Tensor:
        """The notes' final embedding ``(u + v) / 2``, ``(V, D)``."""
        return (self.u.detach() + self.v.detach()) / 2

    @torch.no_grad()
    def step(
        self,
        objective: str,
        centres: torch.Tensor,
        contexts: torch.Tensor,
        lr: float,
        negatives: torch.Tensor | None = None,
    ) -> float:
        """One SGD step on a minibatch of pairs ``(B,)``; returns the summed loss before it.

        ``negatives (B, k)`` for objective "negative"; ignored for the others.
        """
        if objective == "softmax":
            loss, du_all, dv = softmax_gradients(self.u, self.v, centres, contexts)
            # every row of U is in every pair's normaliser: the O(|V| D) part
            self.u.add_(du_all, alpha=-lr / len(centres))
        else:
            neg = negatives if objective == "negative" else None
            loss, ids, du, dv = negative_sampling_gradients(self.u, self.v, centres, contexts, neg)
            _row_mean_update(self.u, ids.reshape(-1), du.reshape(-1, du.shape[-1]), lr)
        _row_mean_update(self.v, centres, dv, lr)
        return float(loss)


def _row_mean_update(
    table: torch.Tensor, rows: torch.Tensor, grads: torch.Tensor, lr: float
) -> None:
    """``table[r] -= lr * mean of the gradients of row r`` in this minibatch, for the rows
    touched (``rows (n,)``, ``grads (n, D)``); the others are not read."""
    times = torch.bincount(rows, minlength=table.shape[0])[rows]  # occurrences of each row, (n,)
    table.index_add_(0, rows, grads / times[:, None], alpha=-lr)


def _batches(
    centres: np.ndarray, contexts: np.ndarray, batch: int, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """Shuffled minibatches ``(centres, contexts, fraction of the epoch done after it)``."""
    order = rng.permutation(len(centres))
    c, o = torch.from_numpy(centres[order]), torch.from_numpy(contexts[order])
    n = len(order)
    for start in range(0, n, batch):
        end = min(start + batch, n)
        yield c[start:end], o[start:end], end / n


def fit_skipgram(
    sentences_ids: Sequence[Sequence[int]],
    vocab_size: int,
    counts: Sequence[int] | torch.Tensor | Mapping[int, int] | None,
    settings: Word2VecSettings,
    ctx: RunContext,
    *,
    tag: str,
    evaluate: Callable[[SkipGram, int], Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> tuple[SkipGram, LoopResult]:
    """Train skip-gram through the engine's :class:`~deepnotes.core.engine.Loop` (epoch mode).

    Arguments:
        sentences_ids: the corpus as lists of ids in ``0..vocab_size - 1``.
        vocab_size: V.
        counts: per-id counts for the noise distribution and the subsampling (a ``(V,)``
            sequence or tensor, an ``{id: count}`` mapping, or None to count ``sentences_ids``).
        settings: the hyperparameters.
        ctx: the run context; the streams ``("word2vec", tag, ...)`` draw the initialisation,
            the subsampling, windows and shuffles of each epoch, and the negatives.
        tag: names the loop (its checkpoint and records).
        evaluate: ``evaluate(model, epoch)`` -> scalars added to each epoch's record.
        progress: show the loop's progress bar.

    Returns:
        the trained :class:`SkipGram` and the loop's result (one record per epoch: ``loss``,
        the mean per-pair loss, ``lr`` and ``pairs``).
    """
    if not sentences_ids or not any(len(s) > 1 for s in sentences_ids):
        raise UsageError("word2vec needs a corpus with at least one sentence of >= 2 tokens")
    tokens, sentence = flatten(sentences_ids)
    if int(tokens.max()) >= vocab_size or int(tokens.min()) < 0:
        raise UsageError(
            f"token ids must be in 0..{vocab_size - 1}, got {tokens.min()}..{tokens.max()}"
        )
    s = settings
    count = _counts_tensor(counts, sentences_ids, vocab_size)
    table = noise_table(noise_distribution(count, s.noise_power), s.table_size)
    discard = discard_probability(count, s.subsample).numpy() if s.subsample > 0 else None
    model = SkipGram(vocab_size, s.dim, ctx.stream("word2vec", tag, "init"))
    negatives_stream = ctx.stream("word2vec", tag, "negatives")
    k = s.negatives

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, float, int]]:
        rng = ctx.numpy_rng("word2vec", tag, "pairs", epoch)
        centres, contexts = _pairs(tokens, sentence, s.window, rng, discard, s.dynamic_window)
        for c, o, done in _batches(centres, contexts, s.batch, rng):
            yield c, o, done, epoch

    def step(item: tuple[torch.Tensor, torch.Tensor, float, int]) -> dict[str, float]:
        centres, contexts, done, epoch = item
        progress_made = (epoch - 1 + done) / s.epochs
        lr = s.lr * max(s.min_lr_fraction, 1.0 - progress_made)
        negatives = None
        if s.objective == "negative":
            negatives = draw_negatives(table, len(centres), k, negatives_stream)
        loss = model.step(s.objective, centres, contexts, lr, negatives)
        n = len(centres)
        return {"loss": loss / n, "lr": lr, "n": n}

    loop = Loop(
        ctx, tag=tag, track={"model": model, "negatives": negatives_stream}, progress=progress
    )
    result = loop.run(
        step,
        epochs=s.epochs,
        batches=batches,
        evaluate=None if evaluate is None else (lambda r: evaluate(model, r)),
    )
    return model, result


def train_word2vec(
    sentences_ids: Sequence[Sequence[int]],
    vocab_size: int,
    counts: Sequence[int] | torch.Tensor | Mapping[int, int] | None,
    settings: Word2VecSettings,
    ctx: RunContext,
    *,
    tag: str,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Train skip-gram (:func:`fit_skipgram`) and return the embeddings ``(u + v) / 2``
    ``(V, D)`` and the loop's history (one record per epoch). Cache it in the caller with
    ``ctx.cached("word2vec", {..., **settings.key()}, ...)``."""
    model, result = fit_skipgram(sentences_ids, vocab_size, counts, settings, ctx, tag=tag)
    return model.embeddings(), result.history


# --------------------------------------------------------------------------------------------
# using the embeddings


def _index(vocab: Vocabulary, word: str, what: str) -> int:
    if word not in vocab or word in SPECIAL_TOKENS:
        raise UsageError(
            f"{what}: {word!r} is not in the vocabulary ({len(vocab) - len(SPECIAL_TOKENS)} "
            f"words, e.g. {list(vocab.tokens[len(SPECIAL_TOKENS) :][:5])})"
        )
    return vocab.id_of(word)


def _unit(embeddings: torch.Tensor) -> torch.Tensor:
    e = embeddings.to(torch.float64)
    return e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _check_table(embeddings: torch.Tensor, vocab: Vocabulary) -> None:
    if embeddings.ndim != 2 or embeddings.shape[0] != len(vocab):
        raise UsageError(
            f"embeddings must be (V, D) with V = len(vocab) = {len(vocab)}; "
            f"got {tuple(embeddings.shape)}"
        )


def _ranked(
    scores: torch.Tensor, vocab: Vocabulary, exclude: Sequence[int], k: int
) -> list[tuple[str, float]]:
    scores = scores.clone()
    scores[: len(SPECIAL_TOKENS)] = -math.inf  # <pad> <sos> <eos> <unk> are never answers
    scores[list(exclude)] = -math.inf
    k = min(k, int(torch.isfinite(scores).sum()))
    top = torch.topk(scores, k)
    return [
        (vocab.token_of(int(i)), float(s)) for s, i in zip(top.values, top.indices, strict=True)
    ]


def nearest(
    embeddings: torch.Tensor, vocab: Vocabulary, word: str, k: int = 5
) -> list[tuple[str, float]]:
    """The ``k`` words of highest cosine similarity to ``word`` (itself and the four special
    tokens excluded), as ``(word, cosine)``, most similar first."""
    _check_table(embeddings, vocab)
    i = _index(vocab, word, "nearest")
    unit = _unit(embeddings)
    return _ranked(unit @ unit[i], vocab, [i], k)


def analogy(
    embeddings: torch.Tensor, vocab: Vocabulary, a: str, b: str, c: str, k: int = 1
) -> list[tuple[str, float]]:
    """ "``a`` is to ``b`` as ``c`` is to ?": the ``k`` words nearest (cosine) to
    ``b - a + c`` on unit vectors, ``a``, ``b``, ``c`` excluded (Mikolov et al.'s 3CosAdd).

    Raises:
        UsageError: a word not in the vocabulary, named.
    """
    _check_table(embeddings, vocab)
    ia, ib, ic = (_index(vocab, w, "analogy") for w in (a, b, c))
    unit = _unit(embeddings)
    target = unit[ib] - unit[ia] + unit[ic]
    return _ranked(unit @ (target / target.norm().clamp_min(1e-12)), vocab, [ia, ib, ic], k)


def category_purity(
    embeddings: torch.Tensor, vocab: Vocabulary, category_of: Mapping[str, str], k: int = 5
) -> tuple[float, float]:
    """Mean share of each categorised word's ``k`` nearest neighbours (cosine, among the
    categorised words of the vocabulary, itself excluded) that share its category.

    Returns:
        ``(purity, chance)``: chance is the expected share for random neighbours,
        the mean over words of ``(n_cat(w) - 1) / (N - 1)`` (about 1 / #categories).
    """
    _check_table(embeddings, vocab)
    words = sorted(w for w in category_of if w in vocab)
    if len(words) < k + 1:
        raise UsageError(
            f"category_purity needs more than k = {k} categorised words in the "
            f"vocabulary, got {len(words)}"
        )
    labels = np.array([category_of[w] for w in words])
    unit = _unit(embeddings[[vocab.id_of(w) for w in words]])  # (N, D)
    sim = unit @ unit.T
    sim.fill_diagonal_(-math.inf)
    top = torch.topk(sim, k, dim=1).indices.numpy()  # (N, k)
    purity = float((labels[top] == labels[:, None]).mean())
    names, sizes = np.unique(labels, return_counts=True)
    per_word = {lab: (n - 1) / (len(words) - 1) for lab, n in zip(names, sizes, strict=True)}
    chance = float(np.mean([per_word[lab] for lab in labels]))
    return purity, chance


def random_pair_probability(
    model: SkipGram, ids: torch.Tensor, pairs: int, generator: torch.Generator
) -> float:
    """Mean ``sigma(u_a . v_b)`` over ``pairs`` random pairs ``(a, b)`` drawn uniformly and
    independently from ``ids``: how often the binary classifier calls a random pair
    "neighbours"."""
    a = ids[torch.randint(len(ids), (pairs,), generator=generator)]
    b = ids[torch.randint(len(ids), (pairs,), generator=generator)]
    x = (model.u.detach()[a].double() * model.v.detach()[b].double()).sum(-1)
    return float(torch.sigmoid(x).mean())
