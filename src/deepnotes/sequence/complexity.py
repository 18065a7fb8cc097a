r"""What attention costs: FLOP counts of the three attention kinds of a Transformer, measured with
``torch.utils.flop_counter`` and written in closed form, and the power-law fit that reads an
exponent off a sweep. Notes: discussion 7, "Problem: Machine Translation" Q3/Q4 and section 2.4
"Why Transformers" ("attention computations take O(n^2) time").

For a source of length ``M``, a target of length ``N``, model width ``k = D`` and batch ``B``,
one attention sublayer with queries of length ``Lq`` and keys of length ``Lk`` does (a
multiply-add counted as 2 FLOPs, as :class:`~torch.utils.flop_counter.FlopCounterMode` does):

.. math::
    \underbrace{4 B L_q L_k D}_{QK^\top \text{ and } AV}
    \; + \; \underbrace{4 B D^2 (L_q + L_k)}_{W_Q, W_O \text{ on } L_q \text{ rows}; \;
    W_K, W_V \text{ on } L_k \text{ rows}}

so encoder self-attention (``Lq = Lk = M``) is :math:`O(M^2 k + M k^2)`, decoder self-attention
:math:`O(N^2 k + N k^2)` and decoder-encoder attention (``Lq = N``, ``Lk = M``)
:math:`O(M N k + (M + N) k^2)`. The heads split ``D`` into ``H`` parts of ``D/H``: the sum over
heads is the same count. The feed-forward block adds ``4 B L D F`` (``F`` its width) and the
output projection ``2 B N D V`` (``V`` the target vocabulary). FlopCounterMode counts matrix
products only: softmax, masking, LayerNorm and the embedding lookup are not in these numbers.

The score and weighted-sum products are what grow quadratically; the projections grow
linearly. :func:`sublayer_flops` counts the two apart: the whole sublayer call, and the
hand-written :func:`~deepnotes.sequence.attention.scaled_dot_product_attention` alone on the
same projected queries, keys and values.

Deviation: the count goes through the hand-written attention (``use_sdpa=False``). PyTorch's
FlopCounterMode (2.x) has no formula for the fused CPU kernel behind
``F.scaled_dot_product_attention`` and counts it as 0 FLOPs (measured with torch 2.13 on CPU),
so a module with ``use_sdpa=True`` is refused. The causal mask does not halve the count: the
hand-written attention computes every score and masks the future afterwards (kernels that skip
the masked half, like FlashAttention's, would do half the score work).

Example:
    >>> with torch.device("meta"):
    ...     mha = MultiHeadAttention(32, 4)
    >>> x = torch.empty(2, 50, 32, device="meta")
    >>> counted = sublayer_flops(mha, x)
    >>> counted.attention == attention_matmul_flops(2, 50, 50, 32)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from deepnotes.sequence.attention import MultiHeadAttention, scaled_dot_product_attention

__all__ = [
    "SublayerFlops",
    "attention_matmul_flops",
    "count_flops",
    "decoder_flops",
    "encoder_flops",
    "feedforward_flops",
    "power_law_exponent",
    "projection_flops",
    "sublayer_flops",
]


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int; received {value!r}")


# --------------------------------------------------------------------------------------------
# closed forms


def attention_matmul_flops(batch: int, query_len: int, key_len: int, d_model: int) -> int:
    """FLOPs of ``Q K^T`` and ``A V`` over all heads: ``2 B Lq Lk D`` each, ``4 B Lq Lk D``."""
    _check_sizes(batch=batch, query_len=query_len, key_len=key_len, d_model=d_model)
    return 4 * batch * query_len * key_len * d_model


def projection_flops(batch: int, query_len: int, key_len: int, d_model: int) -> int:
    """FLOPs of the four projections: ``W_Q``, ``W_O`` on ``Lq`` rows and ``W_K``, ``W_V`` on
    ``Lk`` rows, ``2 B D^2`` per row each: ``4 B D^2 (Lq + Lk)``."""
    _check_sizes(batch=batch, query_len=query_len, key_len=key_len, d_model=d_model)
    return 4 * batch * d_model**2 * (query_len + key_len)


def feedforward_flops(batch: int, length: int, d_model: int, dim_feedforward: int) -> int:
    """FLOPs of the position-wise feed-forward block, two products of ``2 B L D F``."""
    _check_sizes(batch=batch, length=length, d_model=d_model, dim_feedforward=dim_feedforward)
    return 4 * batch * length * d_model * dim_feedforward


def encoder_flops(
    batch: int, source_len: int, d_model: int, dim_feedforward: int, num_layers: int
) -> int:
    """FLOPs of a Transformer encoder stack on ``(B, M)`` sources: per layer self-attention
    ``4 B M^2 D + 8 B M D^2`` plus the feed-forward block."""
    _check_sizes(num_layers=num_layers)
    m = source_len
    per_layer = (
        attention_matmul_flops(batch, m, m, d_model)
        + projection_flops(batch, m, m, d_model)
        + feedforward_flops(batch, m, d_model, dim_feedforward)
    )
    return num_layers * per_layer


def decoder_flops(
    batch: int,
    target_len: int,
    source_len: int,
    d_model: int,
    dim_feedforward: int,
    num_layers: int,
    vocab_size: int,
) -> int:
    """FLOPs of a decoder stack and its output projection on ``(B, N)`` targets over a memory
    of length ``M``: per layer masked self-attention (``N`` by ``N``), decoder-encoder
    attention (``N`` by ``M``, with ``W_K``, ``W_V`` applied to the ``M`` memory rows) and the
    feed-forward block, then ``2 B N D V`` for the logits."""
    _check_sizes(num_layers=num_layers, vocab_size=vocab_size)
    n, m = target_len, source_len
    per_layer = (
        attention_matmul_flops(batch, n, n, d_model)
        + projection_flops(batch, n, n, d_model)
        + attention_matmul_flops(batch, n, m, d_model)
        + projection_flops(batch, n, m, d_model)
        + feedforward_flops(batch, n, d_model, dim_feedforward)
    )
    return num_layers * per_layer + 2 * batch * n * d_model * vocab_size


# --------------------------------------------------------------------------------------------
# measurement


def flop_counts(fn: Callable[[], object]) -> dict[str, int]:
    """The FLOPs :class:`~torch.utils.flop_counter.FlopCounterMode` counts while ``fn()`` runs,
    by operator: ``{"bmm": ..., "addmm": ...}`` (aten names without the ``aten.`` prefix)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    counts = counter.get_flop_counts().get("Global", {})
    return {str(op).removeprefix("aten."): int(n) for op, n in counts.items()}


def count_flops(fn: Callable[[], object]) -> int:
    """The total FLOPs :class:`~torch.utils.flop_counter.FlopCounterMode` counts while ``fn()``
    runs (matrix products and convolutions; works on ``meta`` tensors, which cost no compute)."""
    return sum(flop_counts(fn).values())


@dataclass(frozen=True)
class SublayerFlops:
    """FLOPs of one attention sublayer call, counted by FlopCounterMode."""

    attention: int
    """The score and weighted-sum products ``Q K^T`` and ``A V`` (the SDPA call alone)."""
    total: int
    """The whole sublayer: projections, attention, output projection."""

    @property
    def projections(self) -> int:
        """``total - attention``: the ``W_Q``, ``W_K``, ``W_V``, ``W_O`` products."""
        return self.total - self.attention


@torch.no_grad()
def sublayer_flops(
    mha: MultiHeadAttention,
    query: torch.Tensor,
    memory: torch.Tensor | None = None,
    attn_mask: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
) -> SublayerFlops:
    """Count one attention sublayer: self-attention over ``query (B, Lq, D)`` (``memory=None``)
    or attention from ``query`` over ``memory (B, Lk, D)`` (decoder-encoder attention).

    Arguments:
        mha: the sublayer (e.g. ``model.decoder.layers[0].cross_attn``), with ``use_sdpa=False``.
        attn_mask: bool ``(Lq, Lk)``, True = attend (the causal mask of decoder self-attention).
        key_padding_mask: bool ``(B, Lk)``, True = a real token.

    Returns:
        The FLOPs of the attention products alone and of the whole call.
    """
    if not isinstance(mha, MultiHeadAttention):
        raise TypeError(f"mha must be a MultiHeadAttention; received {type(mha).__name__}")
    if mha.use_sdpa:
        raise ValueError(
            "mha.use_sdpa must be False: FlopCounterMode has no formula for the fused CPU "
            "attention kernel and counts it as 0 FLOPs (see the module docstring)"
        )
    kv = query if memory is None else memory
    total = count_flops(lambda: mha(query, kv, kv, key_padding_mask, attn_mask))
    q = mha.project_query(query)  # (B, H, Lq, D/H)
    k, v = mha.project_key_value(kv)  # (B, H, Lk, D/H) each
    mask = mha.build_mask(query.shape[0], query.shape[1], kv.shape[1], key_padding_mask, attn_mask)
    attention = count_flops(lambda: scaled_dot_product_attention(q, k, v, mask))
    return SublayerFlops(attention=attention, total=total)


def power_law_exponent(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """The exponent ``p`` of ``y ~ c x^p``: the least-squares slope of ``log y`` on ``log x``.

    A quantity that does not grow with ``x`` gives 0, ``a x^2`` gives 2 exactly; a sum of
    powers gives a slope between them that depends on the range of ``x``.
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 2:
        raise ValueError(
            f"x and y must be 1-D of the same length >= 2; received shapes {xs.shape}, {ys.shape}"
        )
    if not (np.all(xs > 0) and np.all(ys > 0)):
        raise ValueError("x and y must be positive (their logarithms are fitted)")
    if np.unique(xs).size < 2:
        raise ValueError(f"x needs at least two distinct values; received {xs.tolist()}")
    slope, _ = np.polyfit(np.log(xs), np.log(ys), 1)
    return float(slope)
