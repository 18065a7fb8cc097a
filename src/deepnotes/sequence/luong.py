r"""Luong attention and an attentional LSTM encoder-decoder, with greedy and beam-search decoding.

Paper: Minh-Thang Luong, Hieu Pham, Christopher D. Manning, "Effective Approaches to
Attention-based Neural Machine Translation", EMNLP 2015 (https://arxiv.org/abs/1508.04025).
Notes: discussion 7 ("Attention Mechanisms"), section 1.1 "Luong Attention" and its footnote on
the alignment scores.

Notation (the notes'): :math:`h_t` is the decoder's hidden state at target step ``t``,
:math:`h_l` the encoder's hidden state at source position ``l`` (Luong's :math:`\bar h_s`).
Alignment scores, one per source position:

.. math::
    \mathrm{score}(h_t, h_l) = \begin{cases}
        h_l^\top W_a h_t & \text{general} \\
        h_l^\top h_t & \text{dot} \\
        [W_a h_t]_l & \text{location ($W_a$ is (max\_source\_len, H))}
    \end{cases}

then :math:`a_{tl} = \mathrm{softmax}_l(\mathrm{score})` over the real (unpadded) source
positions, the context :math:`c_t = \sum_l a_{tl} h_l`, the attentional state
:math:`\tilde h_t = \tanh(W_f [h_t; c_t])` and the output distribution
:math:`p(y_t \mid y_{<t}, x) = \mathrm{softmax}(W_s \tilde h_t)`.

Deviation: the notes' footnote writes the location score as ":math:`W_a h_l`" but describes it as
"computed using the decoding hidden state at time t"; we follow the paper (and that sentence):
:math:`a_t = \mathrm{softmax}(W_a h_t)`, which needs a fixed maximum source length (the rows of
:math:`W_a`); longer sources raise ``ValueError`` (tested).

Deviation: no input feeding (Luong's section 3.3, feeding :math:`\tilde h_{t-1}` into the next
decoder step), so teacher forcing runs the decoder LSTM over the whole target at once; the
decoder is initialised with the encoder's final state, as in the paper.

``attention=False`` gives the plain encoder-decoder of the notes' motivation (Sutskever et al.
2014; Cho et al. 2014): the same embeddings and LSTMs, the decoder initialised with the encoder's
final state, and the output read from :math:`h_t` alone (:math:`W_s h_t`, no context).

The encoder and decoder are ``torch.nn.LSTM`` (with packed sequences, so padding never reaches
the encoder's final state), for speed: our own :class:`deepnotes.sequence.recurrent.LSTM` is
tested equal to ``nn.LSTM`` (float64, 1e-10, values and gradients) in ``test_recurrent.py``.

Decoding (:func:`greedy_search`, :func:`beam_search`) is written against a generic step
function, so any autoregressive model with a batch-first state can use it. Beam search keeps
``beam_size`` hypotheses ranked by their summed log-probability; a hypothesis that emits the end
token is finished (it keeps its score and is extended only by padding at zero cost); the search
stops when every beam is finished or after ``max_len`` tokens, and the returned hypothesis
maximises ``score / length ** length_penalty`` (``length_penalty = 0``: the raw log-probability).
With ``beam_size = 1`` it is greedy decoding (tested).

Masks follow :mod:`deepnotes.mechanics.attention`: boolean, True = a real token (attend).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "SCORES",
    "Decoded",
    "Encoded",
    "LuongAttention",
    "LuongSeq2Seq",
    "beam_search",
    "greedy_search",
]

SCORES = ("general", "dot", "location")
"""Luong's alignment scores implemented here."""

State = tuple[torch.Tensor, ...]
StepFn = Callable[[torch.Tensor, State], tuple[torch.Tensor, State, "torch.Tensor | None"]]


def _uniform(*shape: int) -> nn.Parameter:
    """``nn.Linear``'s default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for a weight."""
    bound = 1.0 / math.sqrt(shape[-1])
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


# --------------------------------------------------------------------------------------------
# the attention layer


class LuongAttention(nn.Module):
    r"""Luong's global attention: scores, softmax over source positions, context, ``h~_t``.

    Arguments:
        hidden_size: ``H`` (decoder and encoder states have the same size).
        score: ``"general"`` (``h_l^T W_a h_t``), ``"dot"`` (``h_l^T h_t``) or ``"location"``
            (``[W_a h_t]_l``).
        max_source_len: rows of the location score's ``W_a``; required for ``"location"`` only.

    ``forward(h_t (B, T, H), h_l (B, S, H), src_mask (B, S) | None)`` returns
    ``(h_tilde (B, T, H), context (B, T, H), weights (B, T, S))``.

    Example:
        >>> attn = LuongAttention(16, "general")
        >>> h_tilde, c, a = attn(torch.randn(2, 5, 16), torch.randn(2, 7, 16))
        >>> a.sum(-1)   # ones, (2, 5)
    """

    def __init__(self, hidden_size: int, score: str = "general", max_source_len: int | None = None):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}; received {score!r}")
        if score == "location" and (max_source_len is None or max_source_len < 1):
            raise ValueError(
                f"the location score needs max_source_len >= 1; received {max_source_len}"
            )
        self.hidden_size, self.score, self.max_source_len = hidden_size, score, max_source_len
        if score == "general":
            self.W_a = _uniform(hidden_size, hidden_size)  # (H, H)
        elif score == "location":
            self.W_a = _uniform(max_source_len, hidden_size)  # (S_max, H)
        else:
            self.register_parameter("W_a", None)
        self.W_f = _uniform(hidden_size, 2 * hidden_size)  # (H, 2H)

    def scores(self, h_t: torch.Tensor, h_l: torch.Tensor) -> torch.Tensor:
        """Alignment scores ``(B, T, S)`` of decoder states ``(B, T, H)`` on encoder states."""
        if self.score == "dot":
            return torch.einsum("bth,bsh->bts", h_t, h_l)  # h_l^T h_t
        if self.score == "general":
            keys = h_l @ self.W_a  # (B, S, H): rows h_l^T W_a
            return torch.einsum("bth,bsh->bts", h_t, keys)  # h_l^T W_a h_t
        s = h_l.shape[1]
        if s > self.max_source_len:
            raise ValueError(
                f"the location score was built for sources of at most max_source_len = "
                f"{self.max_source_len} positions; received {s}"
            )
        return (h_t @ self.W_a.T)[..., :s]  # (B, T, S): [W_a h_t]_l for l < S

    def forward(
        self, h_t: torch.Tensor, h_l: torch.Tensor, src_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if h_t.dim() != 3 or h_l.dim() != 3 or h_t.shape[0] != h_l.shape[0]:
            raise ValueError(
                f"h_t must be (B, T, H) and h_l (B, S, H) with the same B; received "
                f"{tuple(h_t.shape)} and {tuple(h_l.shape)}"
            )
        if h_t.shape[2] != self.hidden_size or h_l.shape[2] != self.hidden_size:
            raise ValueError(
                f"states must have H = {self.hidden_size}; received {h_t.shape[2]}, {h_l.shape[2]}"
            )
        scores = self.scores(h_t, h_l)  # (B, T, S)
        if src_mask is not None:
            if src_mask.dtype != torch.bool or tuple(src_mask.shape) != tuple(h_l.shape[:2]):
                raise ValueError(
                    f"src_mask must be a bool (B, S) = {tuple(h_l.shape[:2])} tensor (True = "
                    f"real token); received {src_mask.dtype} {tuple(src_mask.shape)}"
                )
            # padded positions: -inf, so exp gives exactly 0 weight
            scores = scores.masked_fill(~src_mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, S): a_tl
        context = weights @ h_l  # (B, T, H): c_t = sum_l a_tl h_l
        h_tilde = torch.tanh(torch.cat([h_t, context], dim=-1) @ self.W_f.T)  # tanh(W_f [h_t; c_t])
        return h_tilde, context, weights


# --------------------------------------------------------------------------------------------
# decoding, for any step function


@dataclass(frozen=True)
class Decoded:
    """The result of a decoder.

    Arguments:
        tokens: ``(B, T)`` long; each row ends with the end token (if emitted) then padding.
        scores: ``(B,)`` summed log-probabilities of the tokens up to and including the end token.
        lengths: ``(B,)`` number of tokens counted in ``scores`` (the end token included).
        weights: ``(B, T, S)`` attention weights of each emitted token (zeros after the end), or
            None for a model without attention.
    """

    tokens: torch.Tensor
    scores: torch.Tensor
    lengths: torch.Tensor
    weights: torch.Tensor | None


def _check_decoding(max_len: int, batch_size: int) -> None:
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1; received {max_len}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; received {batch_size}")


def greedy_search(
    step: StepFn,
    state: State,
    batch_size: int,
    max_len: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
) -> Decoded:
    """Pick the most probable token at every step until the end token or ``max_len``.

    Arguments:
        step: ``step(prev (N,), state) -> (log_probs (N, V), state, weights (N, S) | None)``;
            every tensor of ``state`` has the batch on dim 0.
        state: the initial state for ``N = batch_size`` rows.
        batch_size: ``B``; max_len: the most tokens to emit (the end token included).
        bos_id, eos_id, pad_id: the start, end and padding token ids.

    Returns:
        :class:`Decoded`.
    """
    _check_decoding(max_len, batch_size)
    prev = torch.full((batch_size,), bos_id, dtype=torch.long, device=state[0].device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=prev.device)
    scores = torch.zeros(batch_size, dtype=torch.float64, device=prev.device)
    lengths = torch.zeros(batch_size, dtype=torch.long, device=prev.device)
    tokens, weights = [], []
    for _ in range(max_len):
        log_probs, state, w = step(prev, state)  # (B, V)
        tok = log_probs.argmax(-1)  # (B,)
        live = ~finished
        tok = torch.where(live, tok, torch.full_like(tok, pad_id))
        scores = scores + torch.where(
            live, log_probs.gather(1, tok[:, None])[:, 0].double(), scores.new_zeros(())
        )
        lengths = lengths + live.long()
        tokens.append(tok)
        if w is not None:
            weights.append(w * live[:, None])
        finished = finished | (tok == eos_id)
        prev = tok
        if bool(finished.all()):
            break
    return Decoded(
        tokens=torch.stack(tokens, dim=1),  # (B, T)
        scores=scores,
        lengths=lengths,
        weights=torch.stack(weights, dim=1) if weights else None,  # (B, T, S)
    )


def beam_search(
    step: StepFn,
    state: State,
    batch_size: int,
    beam_size: int,
    max_len: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    length_penalty: float = 0.0,
) -> Decoded:
    """Keep the ``beam_size`` best partial hypotheses per example (by summed log-probability).

    Arguments:
        step, state, batch_size, max_len, bos_id, eos_id, pad_id: as in :func:`greedy_search`
            (``state`` for ``batch_size`` rows; it is repeated for the beams).
        beam_size: ``K >= 1`` (1 = greedy).
        length_penalty: ``alpha``; the returned hypothesis maximises ``score / length**alpha``
            (0: the raw log-probability; larger values favour longer outputs).

    Returns:
        :class:`Decoded` with the best hypothesis of each example.

    Example:
        >>> out = beam_search(model_step, state, B, beam_size=4, max_len=20, bos_id=1,
        ...                   eos_id=2, pad_id=0)
        >>> out.tokens.shape    # (B, T)
    """
    _check_decoding(max_len, batch_size)
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1; received {beam_size}")
    B, K = batch_size, beam_size
    device = state[0].device
    state = tuple(s.repeat_interleave(K, dim=0) for s in state)  # (B*K, ...): beams of row b
    prev = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    scores = torch.full((B, K), float("-inf"), dtype=torch.float64, device=device)
    scores[:, 0] = 0.0  # one live hypothesis to start with, so the beams do not repeat it
    finished = torch.zeros(B, K, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, K, dtype=torch.long, device=device)
    seqs = torch.empty(B, K, 0, dtype=torch.long, device=device)  # (B, K, t)
    attn: torch.Tensor | None = None  # (B, K, t, S)
    offsets = (torch.arange(B, device=device) * K)[:, None]  # (B, 1): row of beam 0
    for _ in range(max_len):
        log_probs, state, w = step(prev, state)  # (B*K, V)
        V = log_probs.shape[-1]
        log_probs = log_probs.double().view(B, K, V)
        # a finished hypothesis is extended by padding only, at zero cost
        done = torch.full_like(log_probs, float("-inf"))
        done[..., pad_id] = 0.0
        log_probs = torch.where(finished[..., None], done, log_probs)
        cand = (scores[..., None] + log_probs).view(B, K * V)  # (B, K*V)
        scores, idx = cand.topk(K, dim=1)  # (B, K)
        beam, tok = idx // V, idx % V  # which hypothesis each survivor extends, and with what
        rows = (offsets + beam).view(-1)  # (B*K,): flat rows of the parents
        state = tuple(s.index_select(0, rows) for s in state)
        was_done = finished.gather(1, beam)
        seqs = torch.cat([seqs.gather(1, beam[..., None].expand_as(seqs)), tok[..., None]], dim=2)
        lengths = lengths.gather(1, beam) + (~was_done).long()
        if w is not None:
            w = w.reshape(B, K, 1, -1).gather(
                1, beam[:, :, None, None].expand(B, K, 1, w.shape[-1])
            )
            w = w * (~was_done)[..., None, None]  # (B, K, 1, S): zero after the end
            if attn is None:
                attn = w
            else:
                attn = attn.gather(1, beam[:, :, None, None].expand_as(attn))
                attn = torch.cat([attn, w], dim=2)  # (B, K, t, S)
        finished = was_done | (tok == eos_id)
        prev = tok.view(-1)
        if bool(finished.all()):
            break
    ranked = scores / lengths.clamp(min=1).double() ** length_penalty  # (B, K)
    best = ranked.argmax(dim=1)  # (B,)
    pick = torch.arange(B, device=device)
    return Decoded(
        tokens=seqs[pick, best],  # (B, T)
        scores=scores[pick, best],
        lengths=lengths[pick, best],
        weights=None if attn is None else attn[pick, best],  # (B, T, S)
    )


# --------------------------------------------------------------------------------------------
# the encoder-decoder


@dataclass(frozen=True)
class Encoded:
    """The encoder's output: the memory the decoder attends to and its initial state.

    Arguments:
        states: ``(B, S, H)`` top-layer hidden states (zeros at padded positions).
        mask: ``(B, S)`` bool, True = real token.
        h, c: ``(num_layers, B, H)`` final states at each sequence's last real token.
    """

    states: torch.Tensor
    mask: torch.Tensor
    h: torch.Tensor
    c: torch.Tensor


class LuongSeq2Seq(nn.Module):
    """Embedding -> LSTM encoder -> LSTM decoder with Luong attention -> vocabulary logits.

    Arguments:
        src_vocab_size, tgt_vocab_size: vocabulary sizes.
        embed_dim: token embedding size; hidden_size: ``H`` of both LSTMs.
        num_layers: LSTM layers (attention reads the top layer).
        attention: False gives the plain encoder-decoder (no context, output from ``h_t``).
        score: ``"general"``, ``"dot"`` or ``"location"``; max_source_len: for ``"location"``.
        pad_id, bos_id, eos_id: special token ids (sources and targets share them).

    Sources are right-padded with ``pad_id`` and have at least one real token.

    Example:
        >>> model = LuongSeq2Seq(20, 15, embed_dim=32, hidden_size=64)
        >>> logits, weights = model(src, tgt_in)      # (B, T, 15), (B, T, S)
        >>> out = model.beam_search(src, beam_size=4, max_len=12)
        >>> out.tokens, out.weights                   # (B, T'), (B, T', S) for plotting
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embed_dim: int = 32,
        hidden_size: int = 64,
        num_layers: int = 1,
        attention: bool = True,
        score: str = "general",
        max_source_len: int | None = None,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ) -> None:
        super().__init__()
        for name, vocab in (("src_vocab_size", src_vocab_size), ("tgt_vocab_size", tgt_vocab_size)):
            specials = max(pad_id, bos_id, eos_id)
            if vocab <= specials:
                raise ValueError(
                    f"{name} must exceed the special token ids (max {specials}); received {vocab}"
                )
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.src_embed = nn.Embedding(src_vocab_size, embed_dim, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=pad_id)
        self.encoder = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True)
        self.decoder = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True)
        self.attention = LuongAttention(hidden_size, score, max_source_len) if attention else None
        self.W_s = nn.Linear(hidden_size, tgt_vocab_size)  # logits = W_s h~_t

    # -- encoder ---------------------------------------------------------------------------

    def encode(self, src: torch.Tensor) -> Encoded:
        """Run the encoder over right-padded sources ``(B, S)``."""
        if src.dim() != 2 or src.dtype != torch.long:
            raise ValueError(
                f"src must be a long tensor (B, S); received {src.dtype} {tuple(src.shape)}"
            )
        mask = src != self.pad_id  # (B, S)
        lengths = mask.sum(1)  # (B,)
        positions = torch.arange(src.shape[1], device=src.device)
        if bool((lengths < 1).any()) or not torch.equal(mask, positions < lengths[:, None]):
            raise ValueError(
                f"src must be right-padded with pad_id = {self.pad_id} and hold at least one "
                f"real token per row; received row lengths {lengths.tolist()} with padding inside"
            )
        packed = pack_padded_sequence(
            self.src_embed(src), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, (h, c) = self.encoder(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return Encoded(states=states, mask=mask, h=h, c=c)  # states (B, S, H)

    # -- decoder ---------------------------------------------------------------------------

    def _decode(
        self, tgt_in: torch.Tensor, enc: Encoded, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, torch.Tensor]]:
        h_t, state = self.decoder(self.tgt_embed(tgt_in), state)  # (B, T, H)
        if self.attention is None:
            return self.W_s(h_t), None, state  # plain: logits from h_t
        h_tilde, _, weights = self.attention(h_t, enc.states, enc.mask)  # (B, T, H), (B, T, S)
        return self.W_s(h_tilde), weights, state

    def forward(
        self, src: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: ``src (B, S)``, ``tgt_in (B, T)`` (starts with bos) -> logits
        ``(B, T, V)`` and attention weights ``(B, T, S)`` (None without attention)."""
        if tgt_in.dim() != 2 or tgt_in.shape[0] != src.shape[0]:
            raise ValueError(
                f"tgt_in must be (B, T) with B = {src.shape[0]}; received {tuple(tgt_in.shape)}"
            )
        enc = self.encode(src)
        logits, weights, _ = self._decode(tgt_in, enc, (enc.h, enc.c))
        return logits, weights

    def initial_state(self, enc: Encoded) -> State:
        """The decoding state for :meth:`step`, batch on dim 0: ``(h, c)`` as ``(B, L, H)``,
        the memory ``(B, S, H)`` and its mask ``(B, S)``."""
        return (enc.h.transpose(0, 1), enc.c.transpose(0, 1), enc.states, enc.mask)

    def step(
        self, prev: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """One decoder step: previous tokens ``(N,)`` -> log-probs ``(N, V)``, the new state and
        the attention weights ``(N, S)`` (None without attention); the ``step`` of
        :func:`greedy_search` and :func:`beam_search`."""
        h, c, memory, mask = state
        enc = Encoded(states=memory, mask=mask, h=h, c=c)
        hc = (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous())  # (L, N, H)
        logits, weights, (h, c) = self._decode(prev[:, None], enc, hc)  # (N, 1, V)
        log_probs = F.log_softmax(logits[:, 0], dim=-1)  # (N, V)
        new_state = (h.transpose(0, 1), c.transpose(0, 1), memory, mask)
        return log_probs, new_state, None if weights is None else weights[:, 0]

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_len: int) -> Decoded:
        """Greedy decoding of ``src (B, S)`` for at most ``max_len`` tokens."""
        enc = self.encode(src)
        return greedy_search(
            self.step, self.initial_state(enc), src.shape[0], max_len,
            self.bos_id, self.eos_id, self.pad_id,
        )  # fmt: skip

    @torch.no_grad()
    def beam_search(
        self, src: torch.Tensor, beam_size: int, max_len: int, length_penalty: float = 0.0
    ) -> Decoded:
        """Beam search over ``src (B, S)`` (see :func:`beam_search`)."""
        enc = self.encode(src)
        return beam_search(
            self.step, self.initial_state(enc), src.shape[0], beam_size, max_len,
            self.bos_id, self.eos_id, self.pad_id, length_penalty,
        )  # fmt: skip
