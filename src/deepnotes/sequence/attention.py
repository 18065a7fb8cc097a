r"""Scaled dot-product and multi-head attention in PyTorch, written out (Vaswani et al., 2017).

Method: the Transformer's attention, A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones,
A. N. Gomez, L. Kaiser, I. Polosukhin, "Attention Is All You Need", NeurIPS 2017
(https://arxiv.org/abs/1706.03762), eq. (1) and section 3.2.2. Notes: discussion 7, section 1.2
"Self-Attention in Transformer Networks" and section 2.2 "Transformer Encoders" (encoder
attention, the multi-head reshape, padding), section 2.3 (masked decoder self-attention,
encoder-decoder attention).

.. math::

    \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\Big(\frac{Q K^\top}{\sqrt{d}} + M\Big) V,
    \qquad M_{ij} = \begin{cases} 0 & \text{mask}_{ij} \text{ (attend)} \\
    -\infty & \text{otherwise} \end{cases}

Multi-head attention projects ``Q = X_q W_Q``, ``K = X_{kv} W_K``, ``V = X_{kv} W_V`` (each
``(B, L, D)``), reshapes them to ``(B, H, L, D/H)`` (the notes' reshape), attends per head with
``d = D/H``, merges the heads back to ``(B, L, D)`` and applies ``W_O``.

**Masks are boolean with True = attend** (keep), the convention of
``F.scaled_dot_product_attention`` and of :mod:`deepnotes.mechanics.attention`.
``nn.MultiheadAttention`` uses the opposite (True = masked) for ``attn_mask`` and
``key_padding_mask``; pass ``~mask`` to it. A key-padding mask is ``(B, Lk)``; an attention mask
is ``(Lq, Lk)``, ``(B, Lq, Lk)`` or ``(B, H, Lq, Lk)``.

The hand-written path is the default (and the one the tests compare with torch); the modules
take ``use_sdpa=True`` to call ``F.scaled_dot_product_attention`` instead, for speed in trained
models (it then returns no weights).

Deviation: a query whose every key is masked has an empty softmax. We return zero weights and a
zero output for it (and finite gradients), as ``F.scaled_dot_product_attention`` does, where
``nn.MultiheadAttention`` returns NaN; ``test_fully_masked_row_is_zero`` pins it.

Erratum (notes, 2.3): the causal score is kept "if :math:`i \le j`" in the notes, which would let
query ``i`` see only the future; the prose means :math:`j \le i`, which :func:`causal_mask`
implements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MultiHeadAttention",
    "causal_mask",
    "combine_masks",
    "merge_heads",
    "padding_mask",
    "padding_mask_from_ids",
    "scaled_dot_product_attention",
    "split_heads",
]


# --------------------------------------------------------------------------------------------
# masks (True = attend)


def padding_mask(
    lengths: torch.Tensor | Sequence[int],
    max_len: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Key-padding mask from sequence lengths, True = a real token: ``mask[b, j] = j < len[b]``.

    Arguments:
        lengths: the true length of each sequence, ``(B,)`` integers in ``[0, max_len]``.
        max_len: the padded length ``L`` (default: ``max(lengths)``).
        device: where to build the mask (default: that of ``lengths``, or the CPU).

    Returns:
        bool ``(B, L)``.

    Example:
        >>> padding_mask([2, 3]).tolist()
        [[True, True, False], [True, True, True]]
    """
    lengths = torch.as_tensor(lengths, device=device)
    if lengths.ndim != 1 or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(
            f"lengths must be a 1-D integer tensor (B,); received shape {tuple(lengths.shape)}, "
            f"dtype {lengths.dtype}"
        )
    longest = int(lengths.max()) if lengths.numel() else 0
    max_len = longest if max_len is None else int(max_len)
    if lengths.numel() and (int(lengths.min()) < 0 or longest > max_len):
        raise ValueError(
            f"lengths must lie in [0, max_len] = [0, {max_len}]; received {lengths.tolist()}"
        )
    positions = torch.arange(max_len, device=lengths.device)  # (L,)
    return positions[None, :] < lengths[:, None]  # (B, L)


def padding_mask_from_ids(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Key-padding mask from token ids, True = a real token: ``ids != pad_id``, ``(B, L)``."""
    if ids.ndim != 2 or ids.dtype.is_floating_point:
        raise ValueError(
            f"ids must be a 2-D integer tensor (B, L); received shape {tuple(ids.shape)}, "
            f"dtype {ids.dtype}"
        )
    return ids != pad_id  # (B, L)


def causal_mask(
    query_len: int, key_len: int | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Causal mask, True = attend: query ``i`` sees keys ``j <= i + (key_len - query_len)``.

    With ``key_len = query_len`` (the default) this is the lower triangle, ``j <= i``. With
    ``key_len > query_len`` the queries are the *last* ``query_len`` positions of the sequence,
    which is what incremental decoding needs (a new token attends to every cached one).

    Returns:
        bool ``(Lq, Lk)``.

    Example:
        >>> causal_mask(3).int().tolist()
        [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    key_len = query_len if key_len is None else key_len
    if query_len < 1 or key_len < query_len:
        raise ValueError(
            f"causal_mask needs 1 <= query_len <= key_len; received query_len={query_len}, "
            f"key_len={key_len}"
        )
    ones = torch.ones(query_len, key_len, dtype=torch.bool, device=device)
    return torch.tril(ones, diagonal=key_len - query_len)  # (Lq, Lk)


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Attend only where every mask allows it: the broadcast logical AND (``None`` is skipped)."""
    result: torch.Tensor | None = None
    for mask in masks:
        if mask is None:
            continue
        if mask.dtype != torch.bool:
            raise TypeError(f"masks must be boolean (True = attend); received dtype {mask.dtype}")
        if result is None:
            result = mask
            continue
        try:
            result = result & mask
        except RuntimeError as err:
            raise ValueError(
                f"masks of shapes {tuple(result.shape)} and {tuple(mask.shape)} do not "
                "broadcast together"
            ) from err
    return result


def _check_mask(mask: torch.Tensor, target: tuple[int, ...], layout: str) -> torch.Tensor:
    """``mask`` (bool, True = attend) checked to broadcast to the scores' shape ``target``."""
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be boolean (True = attend); received dtype {mask.dtype}")
    if mask.ndim > len(target):
        raise ValueError(
            f"mask must broadcast to the scores' shape {layout} = {target}; "
            f"received shape {tuple(mask.shape)}"
        )
    try:
        broadcast = torch.broadcast_shapes(mask.shape, target) == torch.Size(target)
    except RuntimeError:
        broadcast = False
    if not broadcast:
        raise ValueError(
            f"mask must broadcast to the scores' shape {layout} = {target}; "
            f"received shape {tuple(mask.shape)}"
        )
    return mask


# --------------------------------------------------------------------------------------------
# scaled dot-product attention (eq. 1; notes 2.2)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``softmax(Q K^T / sqrt(d) + M) V``, written out, returning the output and the weights.

    Arguments:
        q: queries ``(..., Lq, d)``. k: keys ``(..., Lk, d)``. v: values ``(..., Lk, dv)``.
        mask: bool, True = attend, broadcastable to the scores ``(..., Lq, Lk)``.
        dropout_p: dropout on the weights (pass 0 at evaluation; the returned weights are the
            ones before dropout).
        scale: the factor on the dot products (default ``1/sqrt(d)``).

    Returns:
        ``(out (..., Lq, dv), weights (..., Lq, Lk))``; a fully masked query row gets zero
        weights and a zero output (module docstring, Deviation).

    Example:
        >>> q = torch.randn(2, 5, 8)
        >>> out, w = scaled_dot_product_attention(q, q, q, causal_mask(5))
        >>> out.shape, w.shape
        (torch.Size([2, 5, 8]), torch.Size([2, 5, 5]))
    """
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            "q, k, v must have the same number (>= 2) of axes (..., L, d); received shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if k.shape[-1] != q.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"expected k (..., Lk, {q.shape[-1]}) and v (..., Lk, dv) with the same Lk; received "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., Lq, Lk): q_i . k_j / sqrt(d)
    if mask is None:
        weights = torch.softmax(scores, dim=-1)  # (..., Lq, Lk)
    else:
        target = tuple(scores.shape)
        mask = _check_mask(mask, target, "(..., Lq, Lk)")
        # A row with no key to attend to is left unmasked for the softmax (finite, no NaN) and
        # zeroed afterwards.
        has_key = mask.any(dim=-1, keepdim=True)  # (..., Lq, 1)
        scores = scores.masked_fill(~(mask | ~has_key), float("-inf"))  # + M
        weights = torch.softmax(scores, dim=-1) * has_key  # (..., Lq, Lk)
    attended = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return attended @ v, weights  # (..., Lq, dv)


# --------------------------------------------------------------------------------------------
# multi-head attention (section 3.2.2; notes 2.2)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The notes' reshape ``(B, L, D) -> (B, H, L, D/H)``."""
    b, length, d = x.shape
    return x.view(b, length, num_heads, d // num_heads).transpose(1, 2)  # (B, H, L, D/H)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """The inverse reshape ``(B, H, L, D/H) -> (B, L, D)``."""
    b, h, length, dh = x.shape
    return x.transpose(1, 2).reshape(b, length, h * dh)  # (B, L, D)


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention, ``concat(head_1..head_H) W_O`` with
    ``head_h = Attention(X_q W_Q^h, X_kv W_K^h, X_kv W_V^h)``.

    Arguments:
        embed_dim: ``D``, the model width (queries, keys and values all have width ``D``).
        num_heads: ``H``, dividing ``D``; each head works in ``D/H`` dimensions.
        dropout: dropout on the attention weights (training only).
        bias: whether the four projections have biases.
        fused_projection: one ``(3D, D)`` input projection (``in_proj``, the layout of
            ``nn.MultiheadAttention``) instead of three ``(D, D)`` ones (``q_proj``,
            ``k_proj``, ``v_proj``). Self-attention with the fused projection does one matmul.
        use_sdpa: attend with ``F.scaled_dot_product_attention`` (faster; no weights returned)
            instead of the hand-written :func:`scaled_dot_product_attention`.

    Example:
        >>> mha = MultiHeadAttention(16, 4)
        >>> x = torch.randn(2, 5, 16)
        >>> out, w = mha(x, x, x, key_padding_mask=padding_mask([5, 3]))
        >>> out.shape, w.shape
        (torch.Size([2, 5, 16]), torch.Size([2, 4, 5, 5]))
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        fused_projection: bool = True,
        use_sdpa: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be a positive multiple of num_heads; received "
                f"embed_dim={embed_dim}, num_heads={num_heads}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); received {dropout}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.fused_projection, self.use_sdpa = fused_projection, use_sdpa
        if fused_projection:
            self.in_proj = nn.Linear(embed_dim, 3 * embed_dim, bias=bias)  # [W_Q; W_K; W_V]
        else:
            self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
            self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
            self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for lin in self._projections():
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def _projections(self) -> list[nn.Linear]:
        if self.fused_projection:
            return [self.in_proj, self.out_proj]
        return [self.q_proj, self.k_proj, self.v_proj, self.out_proj]

    def _linear(self, x: torch.Tensor, which: int, count: int = 1) -> torch.Tensor:
        """Rows ``which .. which+count`` (in units of D) of the input projection applied to x."""
        if not self.fused_projection:
            lins = [self.q_proj, self.k_proj, self.v_proj][which : which + count]
            if count == 1:
                return lins[0](x)
            return torch.cat([lin(x) for lin in lins], dim=-1)
        d = self.embed_dim
        w = self.in_proj.weight[which * d : (which + count) * d]  # (count*D, D)
        b = (
            None
            if self.in_proj.bias is None
            else self.in_proj.bias[which * d : (which + count) * d]
        )
        return F.linear(x, w, b)  # (B, L, count*D)

    def _check_input(self, x: torch.Tensor, name: str) -> None:
        if x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"{name} must be (B, L, D) with D = {self.embed_dim}; received {tuple(x.shape)}"
            )

    def project_query(self, query: torch.Tensor) -> torch.Tensor:
        """``Q = X_q W_Q`` split into heads: ``(B, Lq, D) -> (B, H, Lq, D/H)``."""
        self._check_input(query, "query")
        return split_heads(self._linear(query, 0), self.num_heads)  # (B, H, Lq, D/H)

    def project_key_value(
        self, key: torch.Tensor, value: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``K = X_k W_K``, ``V = X_v W_V`` split into heads, each ``(B, H, Lk, D/H)``.

        ``value=None`` means ``value = key`` (one matmul with the fused projection).
        """
        self._check_input(key, "key")
        if value is None or value is key:
            k, v = self._linear(key, 1, 2).chunk(2, dim=-1)  # (B, Lk, D) each
        else:
            self._check_input(value, "value")
            if value.shape[:2] != key.shape[:2]:
                raise ValueError(
                    f"value must be (B, Lk, D) = {tuple(key.shape)} like key; received "
                    f"{tuple(value.shape)}"
                )
            k, v = self._linear(key, 1), self._linear(value, 2)  # (B, Lk, D) each
        return split_heads(k, self.num_heads), split_heads(v, self.num_heads)  # (B, H, Lk, D/H)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention on head-split ``q (B, H, Lq, D/H)``, ``k, v (B, H, Lk, D/H)``, then merge
        and ``W_O``. ``mask`` (True = attend) broadcasts to ``(B, H, Lq, Lk)``.

        Returns ``(out (B, Lq, D), weights (B, H, Lq, Lk) or None with use_sdpa)``.
        """
        dropout_p = self.dropout if self.training else 0.0
        if self.use_sdpa:
            if mask is not None:
                _check_mask(mask, (*q.shape[:3], k.shape[2]), "(B, H, Lq, Lk)")
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            weights = None
        else:
            heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        return self.out_proj(merge_heads(heads)), weights  # (B, H, Lq, D/H) -> (B, Lq, D)

    def build_mask(
        self,
        batch: int,
        query_len: int,
        key_len: int,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Combine a key-padding mask ``(B, Lk)`` and an attention mask ``(Lq, Lk)``,
        ``(B, Lq, Lk)`` or ``(B, H, Lq, Lk)`` (both True = attend) into one mask that
        broadcasts to ``(B, H, Lq, Lk)``; wrong shapes raise ``ValueError`` naming both."""
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool:
                raise TypeError(
                    "key_padding_mask must be boolean (True = real token); received dtype "
                    f"{key_padding_mask.dtype}"
                )
            if tuple(key_padding_mask.shape) != (batch, key_len):
                raise ValueError(
                    f"key_padding_mask must have shape (B, Lk) = ({batch}, {key_len}); "
                    f"received {tuple(key_padding_mask.shape)}"
                )
            key_padding_mask = key_padding_mask[:, None, None, :]  # (B, 1, 1, Lk)
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool:
                raise TypeError(
                    f"attn_mask must be boolean (True = attend); received dtype {attn_mask.dtype}"
                )
            expected = {
                2: (query_len, key_len),
                3: (batch, query_len, key_len),
                4: (batch, self.num_heads, query_len, key_len),
            }.get(attn_mask.ndim)
            if expected is None or tuple(attn_mask.shape) != expected:
                raise ValueError(
                    f"attn_mask must have shape (Lq, Lk) = ({query_len}, {key_len}), (B, Lq, Lk) "
                    f"= ({batch}, {query_len}, {key_len}) or (B, H, Lq, Lk) = ({batch}, "
                    f"{self.num_heads}, {query_len}, {key_len}); received "
                    f"{tuple(attn_mask.shape)}"
                )
            if attn_mask.ndim == 3:
                attn_mask = attn_mask[:, None]  # (B, 1, Lq, Lk)
        return combine_masks(attn_mask, key_padding_mask)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend ``query (B, Lq, D)`` over ``key, value (B, Lk, D)``.

        Arguments:
            key_padding_mask: bool ``(B, Lk)``, True = a real token (attend).
            attn_mask: bool ``(Lq, Lk)``, ``(B, Lq, Lk)`` or ``(B, H, Lq, Lk)``, True = attend.

        Returns:
            ``(out (B, Lq, D), weights (B, H, Lq, Lk))`` (weights ``None`` with ``use_sdpa``).
        """
        self._check_input(query, "query")
        if query is key and key is value and self.fused_projection:
            qkv = self.in_proj(query)  # (B, L, 3D): one matmul for self-attention
            q, k, v = (split_heads(t, self.num_heads) for t in qkv.chunk(3, dim=-1))
        else:
            if key.ndim != 3 or key.shape[0] != query.shape[0]:
                raise ValueError(
                    f"key must be (B, Lk, D) with B = {query.shape[0]}; received {tuple(key.shape)}"
                )
            q = self.project_query(query)  # (B, H, Lq, D/H)
            k, v = self.project_key_value(key, value)  # (B, H, Lk, D/H)
        mask = self.build_mask(
            query.shape[0], query.shape[1], key.shape[1], key_padding_mask, attn_mask
        )
        return self.attend(q, k, v, mask)
