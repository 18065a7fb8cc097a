r"""An ELMo-style bidirectional LSTM language model (biLM) and its contextual embeddings.

Notes: discussion 8, part 1, section 1.2 "Pretrained Language Models" (ELMo: "a bi-directional
LSTM (both trained to predict the next/previous word), and concatenating hidden states of both
directions together to form an embedding"). Paper: Peters, Neumann, Iyyer, Gardner, Clark, Lee &
Zettlemoyer (2018), "Deep contextualized word representations", NAACL,
https://arxiv.org/abs/1802.05365.

**The two language models.** A sentence :math:`w_1 \dots w_N` (framed by ``<sos>`` and
``<eos>``) is embedded token by token, :math:`x_t = E[w_t]`. A forward stack of ``layers``
LSTMs reads it left to right, a backward stack (its own weights) right to left; the top states
feed one softmax shared by both directions (as in ELMo, which also shares the token
representation):

.. math::
    \mathcal{L} = -\frac{1}{|P|}\sum_{t \in P} \log p(w_{t+1} \mid w_{1..t})
                  -\frac{1}{|P|}\sum_{t \in P} \log p(w_{t} \mid w_{t+1..N}),
    \qquad p(\cdot \mid \cdot) = \mathrm{softmax}(W \vec h^{L}_t + b), \
           \mathrm{softmax}(W \overleftarrow h^{L}_{t+1} + b)

where :math:`P` are the positions whose next token is real (padding masked): the forward state
at :math:`t` predicts the token at :math:`t+1`, the backward state at :math:`t+1` predicts the
token at :math:`t`. The loss is the sum of the two directions' mean cross-entropies.

**Contextual embeddings.** Layer :math:`j` of token :math:`t` is
:math:`h_{t,j} = [\vec h^{j}_t ; \overleftarrow h^{j}_t]` (width ``2 * dim``); layer 0 is the
token embedding duplicated, :math:`[x_t; x_t]`. A downstream task combines them with ELMo's
scalar mix :math:`\gamma \sum_{j=0}^{L} \mathrm{softmax}(s)_j h_{t,j}` (:class:`ScalarMix`,
learnable ``s`` and ``gamma``; at its initial values it is the mean of the layers).

Deviations: tokens, not ELMo's character CNN (the corpora here are word-level); no residual
connections between LSTM layers; when ``hidden > dim`` each LSTM projects its state to ``dim``
(``nn.LSTM(proj_size=dim)``, ELMo's LSTMP), when ``hidden == dim`` there is no projection. The
LSTMs are ``torch.nn.LSTM`` (fused, fast on a CPU), one module per layer so that every layer's
states are returned. An LSTM has no maximum length, so none is enforced; ids outside the
vocabulary are refused with a :class:`~deepnotes.core.errors.UsageError`.

Padding: sequences are right-padded, ``mask`` is ``True`` at real tokens and must be a prefix
per row. The forward stack reads padding only after the real tokens; the backward stack reads
each row reversed within its length (:func:`reverse_padded`), so neither ever sees padding
before a real token and padding cannot change a real token's state (tested).

Example:
    >>> settings = BiLMSettings(dim=32, hidden=64, layers=2, steps=500)
    >>> ids = [vocab.encode(s, add_sos=True, add_eos=True) for s in corpus.sentences()]
    >>> bilm = train_bilm(ids, vocab, settings, ctx, tag="bilm")
    >>> batch, mask = pad_ids(ids[:4])
    >>> features = bilm.contextual(batch, mask, direction="both")  # (4, T, 64)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.core.errors import UsageError
from deepnotes.data.parallel import PAD_ID, Vocabulary

__all__ = [
    "BiLM",
    "BiLMSettings",
    "Direction",
    "ScalarMix",
    "contextual",
    "pad_ids",
    "reverse_padded",
    "train_bilm",
]

Direction = Literal["both", "forward", "backward"]
DIRECTIONS = ("both", "forward", "backward")


@dataclass(frozen=True)
class BiLMSettings:
    """The biLM's size and its training (Adam, gradient norm clipping, random sentence batches)."""

    dim: int = 64
    """Width of the token embedding and of each LSTM's output (per direction)."""
    hidden: int = 128
    """Width of each LSTM's cell; ``hidden > dim`` projects the state to ``dim`` (LSTMP)."""
    layers: int = 2
    """LSTM layers per direction (ELMo: 2)."""
    dropout: float = 0.1
    """Dropout on the embedding and on every LSTM layer's output, in training only."""
    lr: float = 3e-3
    batch: int = 32
    """Sentences per step, drawn at random from the corpus."""
    steps: int = 2000
    every: int = 100
    """Steps per record (and per checkpoint) of the engine's Loop."""
    clip_norm: float = 1.0

    def __post_init__(self) -> None:
        require(self.dim >= 1 and self.layers >= 1, "dim and layers must be >= 1")
        require(self.hidden >= self.dim, f"hidden must be >= dim ({self.dim}), got {self.hidden}")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.lr > 0 and self.clip_norm > 0, "lr and clip_norm must be > 0")
        require(self.batch >= 1, f"batch must be >= 1, got {self.batch}")
        require(self.steps >= 1 and 1 <= self.every <= self.steps, "need 1 <= every <= steps")


class ScalarMix(nn.Module):
    r"""ELMo's learned combination of layers: :math:`\gamma \sum_j \mathrm{softmax}(s)_j h_j`.

    Arguments:
        num_layers: how many layers it mixes (``L + 1`` with the token layer).

    Starts at ``s = 0`` (equal weights) and ``gamma = 1``: the mean of the layers.
    """

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.s = nn.Parameter(torch.zeros(num_layers))
        self.gamma = nn.Parameter(torch.ones(()))

    @property
    def weights(self) -> torch.Tensor:
        """softmax(s), (num_layers,): non-negative, summing to 1."""
        return torch.softmax(self.s, dim=0)

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        """Mix ``layers`` (num_layers, ..., D) into (..., D)."""
        if layers.shape[0] != self.s.shape[0]:
            raise ValueError(f"expected {self.s.shape[0]} layers, got {layers.shape[0]}")
        w = self.weights.view(-1, *([1] * (layers.dim() - 1)))  # (L+1, 1, ..., 1)
        return self.gamma * (w * layers).sum(0)


def pad_ids(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences with ``<pad>``: ids (B, T) long and mask (B, T), True at tokens."""
    if not sequences:
        raise UsageError("expected at least one id sequence, got none")
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), PAD_ID, dtype=torch.long)
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for b, seq in enumerate(sequences):
        ids[b, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[b, : len(seq)] = True
    return ids, mask


def reverse_padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reverse each row of ``x`` (B, T, ...) within its real tokens, padding left in place.

    Row b of length ``L_b`` maps position t to ``L_b - 1 - t`` for ``t < L_b``: an involution,
    so the same call undoes it.
    """
    lengths = mask.sum(1, keepdim=True)  # (B, 1)
    t = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)  # (B, T)
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T)
    index = index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def _lstm(settings: BiLMSettings) -> nn.LSTM:
    proj = settings.dim if settings.hidden > settings.dim else 0
    return nn.LSTM(settings.dim, settings.hidden, batch_first=True, proj_size=proj)


class BiLM(nn.Module):
    """Token embedding, a forward and a backward LSTM stack, one softmax (module docstring).

    Arguments:
        vocab_size: number of ids (a :class:`~deepnotes.data.parallel.Vocabulary`'s length).
        settings: sizes (``dim``, ``hidden``, ``layers``, ``dropout``).
    """

    def __init__(self, vocab_size: int, settings: BiLMSettings) -> None:
        super().__init__()
        if vocab_size < 5:
            raise UsageError(f"vocab_size must be >= 5 (4 specials + a word), got {vocab_size}")
        self.vocab_size = vocab_size
        self.settings = settings
        self.embedding = nn.Embedding(vocab_size, settings.dim, padding_idx=PAD_ID)
        self.forward_lstms = nn.ModuleList(_lstm(settings) for _ in range(settings.layers))
        self.backward_lstms = nn.ModuleList(_lstm(settings) for _ in range(settings.layers))
        self.softmax = nn.Linear(settings.dim, vocab_size)  # shared by both directions
        self.mix = ScalarMix(settings.layers + 1)
        self.drop = nn.Dropout(settings.dropout)

    @property
    def width(self) -> int:
        """Width of a contextual vector with ``direction="both"``: ``2 * dim``."""
        return 2 * self.settings.dim

    def _check(self, ids: torch.Tensor, mask: torch.Tensor) -> None:
        if ids.dim() != 2 or mask.shape != ids.shape or mask.dtype != torch.bool:
            raise UsageError(
                f"expected ids (B, T) and a bool mask of the same shape, got ids "
                f"{tuple(ids.shape)} and mask {tuple(mask.shape)} {mask.dtype}"
            )
        real = ids[mask]
        if real.numel() and (int(real.min()) < 0 or int(real.max()) >= self.vocab_size):
            raise UsageError(
                f"token ids must be in 0..{self.vocab_size - 1} (the biLM's vocabulary), got "
                f"ids from {int(real.min())} to {int(real.max())}"
            )
        lengths = mask.sum(1, keepdim=True)
        prefix = torch.arange(mask.shape[1], device=mask.device) < lengths
        if not torch.equal(prefix, mask):
            raise UsageError("mask must be True on a prefix of each row (right padding)")

    def layer_states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Every layer's states, (L + 1, B, T, 2 * dim), with gradients; zero at padding.

        Layer 0 is ``[x_t; x_t]``; layer j is ``[forward h^j_t; backward h^j_t]``.
        """
        self._check(ids, mask)
        ids = ids.masked_fill(~mask, PAD_ID)
        x = self.drop(self.embedding(ids))  # (B, T, D)
        keep = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        layers = [torch.cat([x, x], -1) * keep]
        fwd, bwd = x, reverse_padded(x, mask)  # the backward stack reads each row reversed
        for f_lstm, b_lstm in zip(self.forward_lstms, self.backward_lstms, strict=True):
            fwd = self.drop(f_lstm(fwd)[0])  # (B, T, D)
            bwd = self.drop(b_lstm(bwd)[0])  # (B, T, D), in reversed order
            layers.append(torch.cat([fwd, reverse_padded(bwd, mask)], -1) * keep)
        return torch.stack(layers)  # (L+1, B, T, 2D)

    def logits(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-word logits of the forward LM and previous-word logits of the backward LM.

        Returns ``(forward, backward)``, each (B, T, V): ``forward[:, t]`` scores the token at
        ``t + 1`` from the forward state at t; ``backward[:, t]`` scores the token at ``t - 1``
        from the backward state at t.
        """
        top = self.layer_states(ids, mask)[-1]  # (B, T, 2D)
        d = self.settings.dim
        return self.softmax(top[..., :d]), self.softmax(top[..., d:])

    def lm_loss(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two directions' mean cross-entropies and their sum (key ``"loss"``).

        Forward: states at 0..T-2 predict ids at 1..T-1; backward: states at 1..T-1 predict ids
        at 0..T-2; a pair counts when its later position is a real token.
        """
        forward, backward = self.logits(ids, mask)
        pairs = mask[:, 1:]  # (B, T-1): position t+1 is real (so is t)
        if not bool(pairs.any()):
            raise UsageError("need at least one sequence of two or more tokens to predict")
        fwd_ce = F.cross_entropy(forward[:, :-1][pairs], ids[:, 1:][pairs])
        bwd_ce = F.cross_entropy(backward[:, 1:][pairs], ids[:, :-1][pairs])
        return {"loss": fwd_ce + bwd_ce, "forward_ce": fwd_ce, "backward_ce": bwd_ce}

    def contextual(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        direction: Direction = "both",
        layer: int | None = None,
    ) -> torch.Tensor:
        """Contextual embeddings (B, T, D) without gradients; zero at padding. In the module's
        current mode (:func:`train_bilm` returns it in eval mode; :func:`contextual` sets it).

        Arguments:
            ids, mask: (B, T) token ids and the mask (True at real tokens, right padding).
            direction: ``"both"`` (D = 2 * dim, the concatenation), ``"forward"`` or
                ``"backward"`` (D = dim, that direction's half).
            layer: ``None`` mixes all layers with :attr:`mix` (:class:`ScalarMix`); an int
                ``0..layers`` takes that layer alone (0: the token embedding).
        """
        if direction not in DIRECTIONS:
            raise UsageError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if layer is not None and not 0 <= layer <= self.settings.layers:
            raise UsageError(f"layer must be None or in 0..{self.settings.layers}, got {layer}")
        with torch.no_grad():
            states = self.layer_states(ids, mask)  # (L+1, B, T, 2D)
            h = self.mix(states) if layer is None else states[layer]  # (B, T, 2D)
        d = self.settings.dim
        if direction == "forward":
            return h[..., :d]
        if direction == "backward":
            return h[..., d:]
        return h


def contextual(
    bilm: BiLM,
    ids: torch.Tensor,
    mask: torch.Tensor,
    direction: Direction = "both",
    layer: int | None = None,
) -> torch.Tensor:
    """:meth:`BiLM.contextual` as a function, in eval mode (dropout off), restoring the mode."""
    was_training = bilm.training
    bilm.eval()
    try:
        return bilm.contextual(ids, mask, direction, layer)
    finally:
        bilm.train(was_training)


def _check_corpus(corpus_ids: Sequence[Sequence[int]], vocab_size: int) -> None:
    if not corpus_ids:
        raise UsageError("the biLM needs a non-empty corpus of id sequences, got none")
    if max(len(s) for s in corpus_ids) < 2:
        raise UsageError("every sequence has fewer than 2 tokens: nothing to predict")
    low = min(min(s) for s in corpus_ids if s)
    high = max(max(s) for s in corpus_ids if s)
    if low < 0 or high >= vocab_size:
        raise UsageError(
            f"corpus ids must be in 0..{vocab_size - 1} (the vocabulary), got {low}..{high}"
        )


def train_bilm(
    corpus_ids: Sequence[Sequence[int]],
    vocab: Vocabulary,
    settings: BiLMSettings,
    ctx: RunContext,
    *,
    tag: str,
    held_out: Sequence[Sequence[int]] | None = None,
) -> BiLM:
    """Train a :class:`BiLM` on ``corpus_ids`` through the engine's Loop; returned in eval mode.

    Arguments:
        corpus_ids: id sequences as the model will read them (frame sentences with ``<sos>``
            and ``<eos>``: ``vocab.encode(s, add_sos=True, add_eos=True)``).
        vocab: their vocabulary (its length is the softmax's width).
        settings: sizes and training knobs.
        ctx: the run context; the initialisation comes from ``ctx.seeded(tag, "init")``, the
            batches from ``ctx.stream(tag, "batches")``.
        tag: the Loop's tag (its checkpoint's name).
        held_out: sequences whose LM loss is recorded after every round (``held_out_loss``).

    The caller caches the result (``ctx.cached`` on ``state_dict()``).
    """
    _check_corpus(corpus_ids, len(vocab))
    with ctx.seeded(tag, "init"):
        model = BiLM(len(vocab), settings)
    model.to(ctx.device).train()
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    data = ctx.stream(tag, "batches")
    sequences = [list(s) for s in corpus_ids]
    test = pad_ids(held_out) if held_out else None

    def step(_: int) -> dict[str, float]:
        rows = torch.randint(len(sequences), (settings.batch,), generator=data).tolist()
        ids, mask = pad_ids([sequences[r] for r in rows])
        parts = model.lm_loss(ids.to(ctx.device), mask.to(ctx.device))
        opt.zero_grad()
        parts["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm)
        opt.step()
        return {k: float(v.detach()) for k, v in parts.items()}

    def evaluate(_: int) -> dict[str, float]:
        if test is None:
            return {}
        model.eval()
        with torch.no_grad():
            loss = float(model.lm_loss(test[0].to(ctx.device), test[1].to(ctx.device))["loss"])
        model.train()
        return {"held_out_loss": loss}

    loop = Loop(ctx, tag=tag, track={"model": model, "opt": opt, "data": data}, progress=False)
    loop.run(step, steps=settings.steps, every=settings.every, evaluate=evaluate)
    return model.eval()
