r"""The encoder-decoder Transformer from its parts (Vaswani et al., 2017).

Method: A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones, A. N. Gomez, L. Kaiser,
I. Polosukhin, "Attention Is All You Need", NeurIPS 2017 (https://arxiv.org/abs/1706.03762),
section 3. Notes: discussion 7, section 2 "Transformers" (2.1 notation ``B, L, D, H``; 2.2 the
encoder: embedding, positional encoding, self-attention with padding, feed-forward; 2.3 the
decoder: masked self-attention and encoder-decoder attention).

Positional encoding (section 3.5), added to the embeddings scaled by :math:`\sqrt{D}`:

.. math:: PE_{(pos, 2i)} = \sin(pos / 10000^{2i/D}), \qquad
    PE_{(pos, 2i+1)} = \cos(pos / 10000^{2i/D})

or a learned table of the same shape. Each layer wraps its sublayers (self-attention,
cross-attention in the decoder, the feed-forward ``max(0, x W_1 + b_1) W_2 + b_2``) in a residual
connection with dropout and layer normalisation, post-LN as in the paper,
``x = LayerNorm(x + Dropout(Sublayer(x)))``, or pre-LN (``norm_first=True``, Xiong et al. 2020),
``x = x + Dropout(Sublayer(LayerNorm(x)))`` with a final LayerNorm after the stack.

Incremental decoding keeps, for every decoder layer, the keys and values of the tokens decoded
so far (self-attention) and those of the encoder output (cross-attention), so each new token
costs one row of attention instead of recomputing the prefix (:class:`DecoderCache`).

Deviation: cached decoding equals full recomputation to 1e-12 in float64, not bitwise. The
arithmetic is the same, but the matrix products have different shapes (one query row against
``t`` keys instead of ``L`` rows against ``L`` keys with the future masked), and the BLAS kernels
may sum the same terms in a different order for different shapes: even one ``nn.Linear`` applied
to 3 rows differs in the last bit from the same rows inside a 36-row batch (float64, measured on
CPU), and the observed gap after two layers is about 1e-15. ``test_kv_cache_equals_full`` pins
the 1e-12; ``test_greedy_decoding_with_and_without_cache_agree`` pins identical greedy tokens.

Masks follow :mod:`deepnotes.sequence.attention`: bool, True = attend. With ``pad_id`` set, the
model builds the source key-padding mask from the token ids itself. Target padding needs no
mask: padding sits after the real tokens, and the causal mask already keeps every real target
position from seeing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from deepnotes.sequence.attention import MultiHeadAttention, causal_mask, padding_mask_from_ids

__all__ = [
    "DecoderCache",
    "FeedForward",
    "LayerCache",
    "LearnedPositionalEncoding",
    "SinusoidalPositionalEncoding",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "sinusoidal_table",
]


# --------------------------------------------------------------------------------------------
# positional encodings (section 3.5; notes 2.2 "Input & Positional Embedding")


def sinusoidal_table(max_len: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The paper's table ``PE (max_len, d_model)``: sin on even, cos on odd columns."""
    if max_len < 1 or d_model < 1:
        raise ValueError(
            f"max_len and d_model must be >= 1; received max_len={max_len}, d_model={d_model}"
        )
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(D/2),): the 2i
    angle = position / base ** (two_i / d_model)  # (max_len, ceil(D/2)): pos / 10000^(2i/D)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table


class _PositionalEncoding(nn.Module):
    max_len: int

    def _rows(self, x: torch.Tensor, offset: int) -> slice:
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"x must be (B, L, D) with D = {self.d_model}; received {tuple(x.shape)}"
            )
        end = offset + x.shape[1]
        if offset < 0 or end > self.max_len:
            raise ValueError(
                f"sequence of length {end} (positions {offset}..{end - 1}) is longer than the "
                f"positional table's max_len = {self.max_len}; build the model with a larger "
                "max_len"
            )
        return slice(offset, end)


class SinusoidalPositionalEncoding(_PositionalEncoding):
    """Adds the fixed sinusoidal table: ``x + PE[offset : offset + L]``.

    Arguments:
        d_model: ``D``. max_len: the longest sequence it can encode.

    Example:
        >>> pe = SinusoidalPositionalEncoding(16, max_len=32)
        >>> pe(torch.zeros(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    def __init__(self, d_model: int, max_len: int = 512) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``x (B, L, D)`` plus the encodings of positions ``offset .. offset + L - 1``."""
        rows = self._rows(x, offset)
        return x + self.table[rows].to(x.dtype)  # (B, L, D) + (L, D)


class LearnedPositionalEncoding(_PositionalEncoding):
    """Adds a learned table ``P (max_len, D)`` (initialised N(0, 0.02^2)): ``x + P[offset:]``."""

    def __init__(self, d_model: int, max_len: int = 512) -> None:
        super().__init__()
        if max_len < 1 or d_model < 1:
            raise ValueError(
                f"max_len and d_model must be >= 1; received max_len={max_len}, d_model={d_model}"
            )
        self.d_model, self.max_len = d_model, max_len
        self.table = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``x (B, L, D)`` plus the learned rows ``offset .. offset + L - 1``."""
        return x + self.table[self._rows(x, offset)]  # (B, L, D) + (L, D)


def _positional(kind: str, d_model: int, max_len: int) -> nn.Module | None:
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(d_model, max_len)
    if kind == "learned":
        return LearnedPositionalEncoding(d_model, max_len)
    if kind == "none":
        return None
    raise ValueError(f"positional must be 'sinusoidal', 'learned' or 'none'; received {kind!r}")


# --------------------------------------------------------------------------------------------
# layers (section 3.1, 3.3)


class FeedForward(nn.Module):
    """Position-wise feed-forward ``max(0, x W_1 + b_1) W_2 + b_2`` with dropout inside."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(torch.relu(self.linear1(x))))  # (B, L, D)


class _Residual(nn.Module):
    """One sublayer's residual wrapper: post-LN ``LN(x + drop(f(x)))`` or pre-LN
    ``x + drop(f(LN(x)))``."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def inner(self, x: torch.Tensor) -> torch.Tensor:
        """What the sublayer reads: ``LN(x)`` in pre-LN, ``x`` in post-LN."""
        return self.norm(x) if self.norm_first else x

    def outer(self, x: torch.Tensor, sublayer_out: torch.Tensor) -> torch.Tensor:
        """The residual sum after the sublayer."""
        summed = x + self.dropout(sublayer_out)
        return summed if self.norm_first else self.norm(summed)


class TransformerEncoderLayer(nn.Module):
    """Self-attention then feed-forward, each in a residual block (post-LN by default).

    Arguments:
        d_model: ``D``. num_heads: ``H``. dim_feedforward: the hidden width of the FFN.
        dropout: on the attention weights, the sublayer outputs and inside the FFN.
        norm_first: pre-LN instead of the paper's post-LN.
        use_sdpa, fused_projection: passed to :class:`MultiHeadAttention`.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        dropout: float = 0.1,
        norm_first: bool = False,
        use_sdpa: bool = False,
        fused_projection: bool = True,
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(
            d_model, num_heads, dropout, fused_projection=fused_projection, use_sdpa=use_sdpa
        )
        self.ff = FeedForward(d_model, dim_feedforward, dropout)
        self.attn_block = _Residual(d_model, dropout, norm_first)
        self.ff_block = _Residual(d_model, dropout, norm_first)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x (B, L, D)`` -> ``(x (B, L, D), attention weights (B, H, L, L) or None)``."""
        h = self.attn_block.inner(x)
        attended, weights = self.self_attn(h, h, h, key_padding_mask, attn_mask)
        x = self.attn_block.outer(x, attended)
        x = self.ff_block.outer(x, self.ff(self.ff_block.inner(x)))
        return x, weights


@dataclass
class LayerCache:
    """One decoder layer's keys and values, each ``(B, H, t, D/H)``; ``None`` until filled."""

    self_k: torch.Tensor | None = None
    self_v: torch.Tensor | None = None
    cross_k: torch.Tensor | None = None
    cross_v: torch.Tensor | None = None


@dataclass
class DecoderCache:
    """The key/value cache of a decoder stack for incremental decoding.

    ``length`` is the number of target positions already decoded (the offset of the next one).
    The cross-attention keys and values are computed from the encoder output once, on the first
    step, and reused: the encoder's activations do not depend on the decoder (notes 2.3, Q4).
    """

    layers: list[LayerCache] = field(default_factory=list)
    length: int = 0


class TransformerDecoderLayer(nn.Module):
    """Masked self-attention, cross-attention over the encoder output, feed-forward.

    With ``cross_attention=False`` the layer is a decoder-only (GPT-style) block. Arguments as
    in :class:`TransformerEncoderLayer`.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        dropout: float = 0.1,
        norm_first: bool = False,
        cross_attention: bool = True,
        use_sdpa: bool = False,
        fused_projection: bool = True,
    ) -> None:
        super().__init__()
        kwargs = {"fused_projection": fused_projection, "use_sdpa": use_sdpa}
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout, **kwargs)
        self.self_block = _Residual(d_model, dropout, norm_first)
        self.cross_attn = (
            MultiHeadAttention(d_model, num_heads, dropout, **kwargs) if cross_attention else None
        )
        self.cross_block = _Residual(d_model, dropout, norm_first) if cross_attention else None
        self.ff = FeedForward(d_model, dim_feedforward, dropout)
        self.ff_block = _Residual(d_model, dropout, norm_first)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        self_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Decode ``x (B, Lq, D)`` (the new positions only when ``cache`` is given).

        Arguments:
            memory: the encoder output ``(B, Ls, D)`` (unused once ``cache`` holds its keys).
            self_mask: bool ``(Lq, Lk)``, True = attend, for the self-attention over the cached
                plus new positions (``Lk = t + Lq``); the caller passes the causal mask.
            memory_key_padding_mask: bool ``(B, Ls)``, True = a real source token.
            cache: filled in place with this layer's keys and values.

        Returns:
            ``(x (B, Lq, D), self weights (B, H, Lq, Lk), cross weights (B, H, Lq, Ls))``.
        """
        # masked self-attention: keys and values of every position so far
        h = self.self_block.inner(x)
        q = self.self_attn.project_query(h)  # (B, H, Lq, D/H)
        k, v = self.self_attn.project_key_value(h)  # (B, H, Lq, D/H)
        if cache is not None:
            if cache.self_k is not None:
                k = torch.cat([cache.self_k, k], dim=2)  # (B, H, t + Lq, D/H)
                v = torch.cat([cache.self_v, v], dim=2)  # (B, H, t + Lq, D/H)
            cache.self_k, cache.self_v = k, v
        mask = self.self_attn.build_mask(x.shape[0], x.shape[1], k.shape[2], None, self_mask)
        attended, self_weights = self.self_attn.attend(q, k, v, mask)
        x = self.self_block.outer(x, attended)

        # encoder-decoder attention: Q from the target, K and V from the encoder output
        cross_weights = None
        if self.cross_attn is not None and self.cross_block is not None:
            h = self.cross_block.inner(x)
            q = self.cross_attn.project_query(h)  # (B, H, Lq, D/H)
            if cache is not None and cache.cross_k is not None:
                k, v = cache.cross_k, cache.cross_v  # (B, H, Ls, D/H)
            else:
                if memory is None:
                    raise ValueError("a decoder layer with cross-attention needs memory (B, Ls, D)")
                k, v = self.cross_attn.project_key_value(memory)  # (B, H, Ls, D/H)
                if cache is not None:
                    cache.cross_k, cache.cross_v = k, v
            mask = self.cross_attn.build_mask(
                x.shape[0], x.shape[1], k.shape[2], memory_key_padding_mask
            )
            attended, cross_weights = self.cross_attn.attend(q, k, v, mask)
            x = self.cross_block.outer(x, attended)

        x = self.ff_block.outer(x, self.ff(self.ff_block.inner(x)))
        return x, self_weights, cross_weights


# --------------------------------------------------------------------------------------------
# stacks


class TransformerEncoder(nn.Module):
    """``num_layers`` encoder layers (plus a final LayerNorm when pre-LN).

    Works on embedded inputs ``(B, L, D)``: with no positional encoding added beforehand it is
    permutation-equivariant (the tests check it). ``forward`` returns ``(x, weights per layer)``.
    """

    def __init__(self, num_layers: int, norm_first: bool = False, **layer_kwargs) -> None:
        super().__init__()
        d_model = layer_kwargs["d_model"]
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(norm_first=norm_first, **layer_kwargs)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model) if norm_first else None

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        weights = []
        for layer in self.layers:
            x, w = layer(x, key_padding_mask, attn_mask)
            weights.append(w)
        return (x if self.norm is None else self.norm(x)), weights


class TransformerDecoder(nn.Module):
    """``num_layers`` decoder layers with causal self-attention (plus a final LayerNorm when
    pre-LN); ``cross_attention=False`` makes it a decoder-only stack.

    ``forward(x, memory, memory_key_padding_mask, cache)`` builds the causal mask itself (for
    ``cache``: the new positions against the cached plus new ones) and returns
    ``(x, self weights per layer, cross weights per layer)``.
    """

    def __init__(self, num_layers: int, norm_first: bool = False, **layer_kwargs) -> None:
        super().__init__()
        d_model = layer_kwargs["d_model"]
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(norm_first=norm_first, **layer_kwargs)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model) if norm_first else None

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor | None], list[torch.Tensor | None]]:
        past = 0 if cache is None else cache.length
        if cache is not None and not cache.layers:
            cache.layers = [LayerCache() for _ in self.layers]
        mask = causal_mask(x.shape[1], past + x.shape[1], device=x.device)  # (Lq, t + Lq)
        self_weights, cross_weights = [], []
        for i, layer in enumerate(self.layers):
            layer_cache = None if cache is None else cache.layers[i]
            x, sw, cw = layer(x, memory, mask, memory_key_padding_mask, layer_cache)
            self_weights.append(sw)
            cross_weights.append(cw)
        if cache is not None:
            cache.length = past + x.shape[1]
        return (x if self.norm is None else self.norm(x)), self_weights, cross_weights


# --------------------------------------------------------------------------------------------
# the encoder-decoder model (figure 1 of the paper; notes figure 5)


class Transformer(nn.Module):
    """Embeddings, encoder stack, decoder stack, output projection to target-vocabulary logits.

    Arguments:
        src_vocab_size, tgt_vocab_size: vocabulary sizes.
        d_model: ``D``. num_heads: ``H``. num_encoder_layers, num_decoder_layers: depths.
        dim_feedforward: FFN width (default ``4 D``). dropout: everywhere the paper has it.
        max_len: the positional table's length (longer inputs raise ``ValueError``).
        positional: ``"sinusoidal"``, ``"learned"`` or ``"none"``.
        norm_first: pre-LN instead of the paper's post-LN.
        pad_id: the padding token; source positions holding it are masked out of attention.
        use_sdpa: attention through ``F.scaled_dot_product_attention`` (faster, no weights).

    Example:
        >>> model = Transformer(10, 10, d_model=32, num_heads=4).eval()
        >>> src = torch.randint(1, 10, (2, 7))
        >>> logits = model(src, torch.randint(1, 10, (2, 5)))   # (2, 5, 10)
        >>> tokens = model.greedy_decode(src, bos_id=1, max_new_tokens=6)   # (2, 7)
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        max_len: int = 512,
        positional: str = "sinusoidal",
        norm_first: bool = False,
        pad_id: int | None = 0,
        use_sdpa: bool = False,
    ) -> None:
        super().__init__()
        self.d_model, self.pad_id = d_model, pad_id
        layer_kwargs = {
            "d_model": d_model,
            "num_heads": num_heads,
            "dim_feedforward": 4 * d_model if dim_feedforward is None else dim_feedforward,
            "dropout": dropout,
            "use_sdpa": use_sdpa,
        }
        self.src_embed = nn.Embedding(src_vocab_size, d_model)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, d_model)
        self.src_pos = _positional(positional, d_model, max_len)
        self.tgt_pos = _positional(positional, d_model, max_len)
        self.dropout = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(num_encoder_layers, norm_first, **layer_kwargs)
        self.decoder = TransformerDecoder(num_decoder_layers, norm_first, **layer_kwargs)
        self.generator = nn.Linear(d_model, tgt_vocab_size)

    def _embed(
        self, ids: torch.Tensor, embed: nn.Embedding, pos: nn.Module | None, offset: int = 0
    ) -> torch.Tensor:
        if ids.ndim != 2 or ids.dtype.is_floating_point:
            raise ValueError(
                f"token ids must be a 2-D integer tensor (B, L); received shape "
                f"{tuple(ids.shape)}, dtype {ids.dtype}"
            )
        x = embed(ids) * math.sqrt(self.d_model)  # (B, L, D): embeddings scaled by sqrt(D)
        if pos is not None:
            x = pos(x, offset)  # (B, L, D): + PE[offset : offset + L]
        return self.dropout(x)

    def source_mask(self, src: torch.Tensor) -> torch.Tensor | None:
        """The source key-padding mask ``(B, Ls)`` (True = real token), or None without pad."""
        return None if self.pad_id is None else padding_mask_from_ids(src, self.pad_id)

    def encode(
        self, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``src (B, Ls)`` token ids -> the encoder output ``memory (B, Ls, D)``.

        ``src_key_padding_mask`` (bool ``(B, Ls)``, True = real token) defaults to
        :meth:`source_mask`; pass the same mask to :meth:`decode`.
        """
        if src_key_padding_mask is None:
            src_key_padding_mask = self.source_mask(src)
        x = self._embed(src, self.src_embed, self.src_pos)  # (B, Ls, D)
        memory, _ = self.encoder(x, src_key_padding_mask)
        return memory

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_key_padding_mask: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
    ) -> torch.Tensor:
        """Target ids ``(B, Lt)`` -> logits ``(B, Lt, V_tgt)``.

        With ``cache``, ``tgt`` holds only the new positions (their positional encodings start
        at ``cache.length``) and the cache is extended in place.
        """
        offset = 0 if cache is None else cache.length
        x = self._embed(tgt, self.tgt_embed, self.tgt_pos, offset)  # (B, Lt, D)
        x, _, _ = self.decoder(x, memory, memory_key_padding_mask, cache)
        return self.generator(x)  # (B, Lt, V_tgt)

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        src_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher forcing: ``src (B, Ls)``, ``tgt (B, Lt)`` (shifted right) -> logits
        ``(B, Lt, V_tgt)``; the source mask defaults to :meth:`source_mask`."""
        if src_key_padding_mask is None:
            src_key_padding_mask = self.source_mask(src)
        return self.decode(tgt, self.encode(src, src_key_padding_mask), src_key_padding_mask)

    def attention_maps(
        self, src: torch.Tensor, tgt: torch.Tensor
    ) -> dict[str, list[torch.Tensor | None]]:
        """Every layer's attention weights ``(B, H, Lq, Lk)`` for plotting: keys ``encoder``,
        ``decoder_self`` and ``decoder_cross`` (None entries with ``use_sdpa``)."""
        src_mask = self.source_mask(src)
        memory, enc = self.encoder(self._embed(src, self.src_embed, self.src_pos), src_mask)
        x = self._embed(tgt, self.tgt_embed, self.tgt_pos)
        _, dec_self, dec_cross = self.decoder(x, memory, src_mask)
        return {"encoder": enc, "decoder_self": dec_self, "decoder_cross": dec_cross}

    @torch.no_grad()
    def greedy_decode(
        self,
        src: torch.Tensor,
        bos_id: int,
        max_new_tokens: int,
        eos_id: int | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Greedy decoding: append ``argmax`` of the last position's logits, one token a step.

        Arguments:
            src: ``(B, Ls)`` source ids. bos_id: the first target token.
            max_new_tokens: how many tokens to generate after ``bos_id``.
            eos_id: once a sequence emits it, its later tokens are ``pad_id`` (or ``eos_id``
                without a pad) and decoding stops when every sequence has ended.
            use_cache: decode incrementally with a :class:`DecoderCache` (one new position a
                step) instead of re-running the decoder on the whole prefix.

        Returns:
            ``(B, 1 + n)`` ids starting with ``bos_id``, ``n <= max_new_tokens``.
        """
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0; received {max_new_tokens}")
        src_mask = self.source_mask(src)
        memory = self.encode(src)  # (B, Ls, D): computed once
        tokens = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        filler = self.pad_id if self.pad_id is not None else eos_id
        cache = DecoderCache() if use_cache else None
        for _ in range(max_new_tokens):
            step_input = tokens[:, -1:] if use_cache else tokens  # (B, 1) or (B, t)
            logits = self.decode(step_input, memory, src_mask, cache)  # (B, ., V)
            nxt = logits[:, -1].argmax(dim=-1)  # (B,)
            if eos_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, filler), nxt)
                done = done | (nxt == eos_id)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)  # (B, t + 1)
            if eos_id is not None and bool(done.all()):
                break
        return tokens
