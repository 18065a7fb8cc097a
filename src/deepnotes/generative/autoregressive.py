r"""Autoregressive models of binary images: PixelCNN, PixelRNN (Row LSTM), a pixel transformer.

Notes: discussion 10, section 2 "Autoregressive Generative Models". An image of ``D = H W``
binary pixels in raster order (row by row, left to right: pixel ``i = r W + c``) is modelled by
the chain rule,

.. math:: p_\theta(x_1, \dots, x_D) = \prod_{i=1}^{D} p_\theta(x_i \mid x_1, \dots, x_{i-1}),
    \qquad p_\theta(x_i = 1 \mid x_{<i}) = \sigma(\ell_i(x_{<i})),

where one network computes all ``D`` logits ``l_i`` in a single pass and is built so that
``l_i`` depends on the pixels before ``i`` only. The exact log-likelihood is then one pass
(:meth:`PixelModel.nll`, nats per image); sampling is ``D`` sequential draws, each conditioned on
the pixels drawn so far (:meth:`PixelModel.sample`).

Three ways to make ``l_i`` depend on ``x_{<i}`` only:

- **PixelCNN** (van den Oord, Kalchbrenner, Kavukcuoglu, "Pixel Recurrent Neural Networks",
  ICML 2016, https://arxiv.org/abs/1601.06759, section 3.4; van den Oord et al., "Conditional
  Image Generation with PixelCNN Decoders", NeurIPS 2016): convolutions whose kernels are
  multiplied by a fixed 0/1 mask (:func:`raster_mask`). Mask **A** (first layer) keeps the
  kernel positions strictly before the centre in raster order; mask **B** (every later layer)
  keeps the centre too, since the features at the centre already depend on earlier pixels only.
  With one channel (binary images) there is no colour-channel ordering (the paper's R < G < B
  split of the channels inside the masks): the masks are purely spatial. The stack has a blind
  spot (pixels to the upper right that its receptive field never reaches), which the gated
  PixelCNN removes; it does not break causality, only limits the context.
- **PixelRNN, Row LSTM** (van den Oord et al. 2016, section 3.1): a mask-A convolution, then
  LSTM layers that process the image one row at a time, top to bottom. The input-to-state part
  is a ``1 x k`` convolution along the row with mask B, computed for the whole image at once;
  the state-to-state part is a 1-D convolution of width ``k`` over the previous row's hidden
  state. The hidden state of a row depends on the rows above and, through the masked input
  convolution, on the pixels to the left: its receptive field above the pixel is a triangle
  widening by ``k // 2`` per row (it misses the far upper corners; the diagonal BiLSTM covers
  the whole context, at more cost). Causality holds exactly for the raster order.
- **Pixel transformer**: the pixels as a sequence of ``D`` tokens, shifted right by one behind
  a learned start token, with a learned positional embedding, through a decoder-only stack with
  causal self-attention (:class:`~deepnotes.sequence.transformer.TransformerDecoder`,
  ``cross_attention=False``): position ``t`` reads ``start, x_1, ..., x_{t-1}`` and predicts
  ``x_t``. Sampling keeps the keys and values of the pixels drawn so far
  (:class:`~deepnotes.sequence.transformer.DecoderCache`), one new position per pixel. Its
  learned positional table starts at N(0, 1), the scale of the pixel embedding, not the
  sequence room's N(0, 0.02^2): with the small table the positions barely steer the attention
  at first, and in a pilot on the digits (lr 1e-2, 12 epochs) the transformer stayed near the
  independent-pixel NLL for most of the run (validation 23.6 nats against 19.5 with N(0, 1)).

Deviation: a pixel is embedded by ``nn.Linear(1, d)`` of its value, ``e_0 + x (e_1 - e_0)``,
which for ``x`` in {0, 1} is exactly an embedding table of two rows, but is differentiable in
``x``: the causality check differentiates every model's logits with respect to its input pixels
(``tests/generative/test_autoregressive.py`` pins the equality with a two-row table).

Every model takes images ``(N, 1, H, W)`` of exact 0/1 values in :meth:`PixelModel.nll`
(:func:`~deepnotes.data.binary.check_binary`: a wrong shape, NaN or a non-binary value is a
:class:`~deepnotes.core.errors.DataFormatError`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.data.binary import check_binary
from deepnotes.generative.likelihood import bernoulli_nll
from deepnotes.sequence.transformer import (
    DecoderCache,
    LearnedPositionalEncoding,
    TransformerDecoder,
)

MASK_TYPES = ("A", "B")
"""Mask A excludes the centre of the kernel, mask B keeps it."""

__all__ = [
    "MASK_TYPES",
    "MaskedConv2d",
    "PixelCNN",
    "PixelModel",
    "PixelRNN",
    "PixelTransformer",
    "RowLSTM",
    "raster_mask",
]


def raster_mask(kernel_size: int | Sequence[int], mask_type: str) -> torch.Tensor:
    """The 0/1 mask ``(kh, kw)`` of a kernel centred on a pixel: 1 at the kernel positions
    strictly before the centre in raster order (rows above; same row, to the left), and at the
    centre itself for mask ``"B"``.

    Example:
        >>> raster_mask(3, "A").int().tolist()
        [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
    if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1 in both axes, got ({kh}, {kw})")
    cy, cx = kh // 2, kw // 2
    mask = torch.zeros(kh, kw)
    mask[:cy] = 1.0  # the rows above the centre
    mask[cy, :cx] = 1.0  # the centre row, left of the centre
    if mask_type == "B":
        mask[cy, cx] = 1.0
    return mask


class MaskedConv2d(nn.Conv2d):
    """A same-size 2-D convolution whose kernel is multiplied by :func:`raster_mask`.

    Arguments:
        in_channels, out_channels, kernel_size: as ``nn.Conv2d`` (odd sizes; padding is
            ``kernel_size // 2`` so the output has the input's height and width).
        mask_type: ``"A"`` (excludes the centre: the first layer) or ``"B"`` (keeps it).

    Example:
        >>> conv = MaskedConv2d(1, 16, 5, "A")
        >>> conv(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    mask: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: str,
        bias: bool = True,
    ) -> None:
        mask = raster_mask(kernel_size, mask_type)
        kh, kw = mask.shape
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.mask_type = mask_type
        self.register_buffer("mask", mask[None, None])  # (1, 1, kh, kw), broadcast over channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, C_in, H, W)`` -> ``(N, C_out, H, W)`` with the masked kernel ``W * M``."""
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelModel(nn.Module):
    """Base of the autoregressive models: ``forward(x) -> logits`` of the same shape
    ``(N, 1, H, W)``, logit ``i`` a function of the pixels before ``i`` in raster order.

    Arguments:
        shape: the image shape ``(1, H, W)`` (binary images have one channel).
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or shape[0] != 1 or shape[1] < 1 or shape[2] < 1:
            raise ValueError(f"shape must be (1, H, W) for binary images, got {shape}")
        self.shape: tuple[int, int, int] = shape  # type: ignore[assignment]

    @property
    def pixels(self) -> int:
        """``D = H W``, the number of conditionals of the chain rule."""
        return self.shape[1] * self.shape[2]

    def _reference(self) -> torch.Tensor:
        """A parameter: the device and dtype of the images the sampler builds."""
        return next(self.parameters())

    def sequential_depth(self) -> int:
        """Weight layers on the longest chain of one training pass (all pixels at once): the
        sequential work a parallel machine cannot spread over the pixels."""
        raise NotImplementedError

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`-\log p_\theta(x)` in nats per image, ``(N,)``, for ``x (N, 1, H, W)``
        of 0/1 values: one pass, the sum of the ``D`` conditionals' Bernoulli NLLs."""
        check_binary(x, self.shape, type(self).__name__)
        return bernoulli_nll(self(x), x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images ``(n, 1, H, W)`` drawn pixel by pixel in raster order: one full network
        pass per pixel (``D`` passes), pixel ``i`` set to 1 when a uniform draw of
        ``generator`` (CPU) is below :math:`\\sigma(l_i)`."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        width = self.shape[2]
        ref = self._reference()
        x = torch.zeros(n, *self.shape, device=ref.device, dtype=ref.dtype)
        for i in range(self.pixels):
            r, c = divmod(i, width)
            p = torch.sigmoid(self(x)[:, 0, r, c])  # (n,): p(x_i = 1 | x_<i)
            x[:, 0, r, c] = _bernoulli(p, generator)
        return x


def _bernoulli(p: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """0/1 draws with probabilities ``p (n,)``: a CPU uniform per draw, ``u < p``."""
    u = torch.rand(p.shape[0], generator=generator).to(p.device)
    return (u < p).to(p.dtype)


class PixelCNN(PixelModel):
    """A mask-A convolution, ``layers`` ReLU + mask-B convolutions (residual by default), and a
    1x1 ReLU head to one logit per pixel.

    Arguments:
        shape: ``(1, H, W)``.
        channels: feature maps per layer.
        layers: mask-B layers after the first.
        first_kernel: size of the mask-A kernel (odd). kernel_size: of the mask-B ones (odd).
        residual: ``h <- h + conv_B(relu(h))`` instead of ``h <- conv_B(relu(h))``.

    Example:
        >>> model = PixelCNN((1, 8, 8), channels=16, layers=2)
        >>> model.nll(torch.zeros(3, 1, 8, 8)).shape
        torch.Size([3])
    """

    def __init__(
        self,
        shape: Sequence[int] = (1, 8, 8),
        channels: int = 32,
        layers: int = 4,
        first_kernel: int = 5,
        kernel_size: int = 3,
        residual: bool = True,
    ) -> None:
        super().__init__(shape)
        if channels < 1 or layers < 0:
            raise ValueError(f"need channels >= 1 and layers >= 0, got {channels}, {layers}")
        self.residual = residual
        self.first = MaskedConv2d(1, channels, first_kernel, "A")
        self.convs = nn.ModuleList(
            MaskedConv2d(channels, channels, kernel_size, "B") for _ in range(layers)
        )
        self.head = _head(channels)

    def sequential_depth(self) -> int:
        """The mask-A convolution, the mask-B ones, the two 1x1 convolutions of the head."""
        return 1 + len(self.convs) + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, 1, H, W)`` -> logits ``(N, 1, H, W)``."""
        h = self.first(x)  # (N, C, H, W): depends on pixels strictly before each position
        for conv in self.convs:
            out = conv(F.relu(h))  # (N, C, H, W)
            h = h + out if self.residual else out
        return self.head(h)


def _head(channels: int) -> nn.Sequential:
    """ReLU, 1x1 conv, ReLU, 1x1 conv to one logit (1x1 kernels are mask-B: the centre only)."""
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1)
    )


class RowLSTM(nn.Module):
    r"""One Row LSTM layer (van den Oord et al. 2016, section 3.1): rows top to bottom,

    .. math:: [o, f, i, g]_r = K^{is} \circledast x_r + K^{ss} \circledast h_{r-1}, \quad
        c_r = \sigma(f) \odot c_{r-1} + \sigma(i) \odot \tanh(g), \quad
        h_r = \sigma(o) \odot \tanh(c_r),

    with :math:`K^{is}` a ``1 x k`` mask-B convolution along the row (for all rows at once)
    and :math:`K^{ss}` a width-``k`` 1-D convolution over the previous row's hidden state.

    Arguments:
        in_channels: channels of the input map. hidden: channels of ``h`` and ``c``.
        kernel_size: ``k`` (odd).
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.hidden = hidden
        self.input_to_state = MaskedConv2d(in_channels, 4 * hidden, (1, kernel_size), "B")
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, C, H, W)`` -> hidden states ``(N, hidden, H, W)``: ``H`` sequential steps."""
        n, _, height, width = x.shape
        gates_x = self.input_to_state(x)  # (N, 4h, H, W): every row's input part at once
        h = x.new_zeros(n, self.hidden, width)  # (N, h, W): h_0 = 0 above the first row
        c = x.new_zeros(n, self.hidden, width)
        rows = []
        for r in range(height):
            gates = gates_x[:, :, r] + self.state_to_state(h)  # (N, 4h, W)
            o, f, i, g = gates.chunk(4, dim=1)  # each (N, h, W)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            rows.append(h)
        return torch.stack(rows, dim=2)  # (N, h, H, W)


class PixelRNN(PixelModel):
    """PixelRNN with Row LSTM layers: a mask-A convolution to ``channels`` maps, ``layers`` Row
    LSTM layers of ``channels`` hidden units with residual connections, the 1x1 ReLU head.

    Arguments:
        shape: ``(1, H, W)``. channels: feature maps and LSTM width. layers: Row LSTM layers.
        first_kernel: size of the mask-A kernel. kernel_size: ``k`` of the Row LSTM.

    Example:
        >>> model = PixelRNN((1, 8, 8), channels=16, layers=1)
        >>> model(torch.zeros(3, 1, 8, 8)).shape
        torch.Size([3, 1, 8, 8])
    """

    def __init__(
        self,
        shape: Sequence[int] = (1, 8, 8),
        channels: int = 32,
        layers: int = 1,
        first_kernel: int = 5,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(shape)
        if channels < 1 or layers < 1:
            raise ValueError(f"need channels >= 1 and layers >= 1, got {channels}, {layers}")
        self.first = MaskedConv2d(1, channels, first_kernel, "A")
        self.rows = nn.ModuleList(RowLSTM(channels, channels, kernel_size) for _ in range(layers))
        self.head = _head(channels)

    def sequential_depth(self) -> int:
        """The mask-A convolution; per Row LSTM layer its input convolution and one step per
        row (``H``); the two 1x1 convolutions of the head."""
        return 1 + len(self.rows) * (1 + self.shape[1]) + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, 1, H, W)`` -> logits ``(N, 1, H, W)``."""
        h = self.first(x)  # (N, C, H, W)
        for layer in self.rows:
            h = h + layer(h)  # residual around each Row LSTM layer
        return self.head(h)


class PixelTransformer(PixelModel):
    """Causal self-attention over the ``D`` pixels in raster order (decoder-only, pre-LN).

    Arguments:
        shape: ``(1, H, W)``; the sequence length is ``D = H W``.
        d_model, num_heads, layers, dim_feedforward, dropout: of the decoder stack.
        use_sdpa: fused ``F.scaled_dot_product_attention`` in the attention layers.

    Example:
        >>> model = PixelTransformer((1, 4, 4), d_model=16, num_heads=2, layers=1)
        >>> model.sample(2, torch.Generator().manual_seed(0)).shape
        torch.Size([2, 1, 4, 4])
    """

    def __init__(
        self,
        shape: Sequence[int] = (1, 8, 8),
        d_model: int = 32,
        num_heads: int = 4,
        layers: int = 2,
        dim_feedforward: int = 64,
        dropout: float = 0.0,
        use_sdpa: bool = True,
    ) -> None:
        super().__init__(shape)
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.value = nn.Linear(1, d_model)  # e_0 + x (e_1 - e_0): the 0/1 pixel's embedding
        self.start = nn.Parameter(torch.randn(d_model) * 0.02)  # the start token before x_1
        self.position = LearnedPositionalEncoding(d_model, max_len=self.pixels)
        nn.init.normal_(self.position.table, std=1.0)  # the value embedding's scale (docstring)
        self.decoder = TransformerDecoder(
            layers,
            norm_first=True,
            d_model=d_model,
            num_heads=num_heads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            cross_attention=False,
            use_sdpa=use_sdpa,
        )
        self.out = nn.Linear(d_model, 1)

    def sequential_depth(self) -> int:
        """The embedding; per decoder layer its attention and feed-forward sublayers; the
        read-out."""
        return 1 + 2 * len(self.decoder.layers) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, 1, H, W)`` -> logits ``(N, 1, H, W)``: one causal pass over the sequence."""
        n = x.shape[0]
        tokens = self.value(x.reshape(n, self.pixels, 1))  # (N, D, d): x_1 .. x_D embedded
        start = self.start.expand(n, 1, -1)  # (N, 1, d)
        shifted = torch.cat([start, tokens[:, :-1]], dim=1)  # (N, D, d): position t holds x_{t-1}
        h, _, _ = self.decoder(self.position(shifted))  # (N, D, d), causal self-attention
        return self.out(h).reshape(n, *self.shape)  # (N, D, 1) -> (N, 1, H, W)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images drawn pixel by pixel with the key/value cache: one new position per
        pixel, attending to the cached ones (the same draws as the uncached loop of
        :meth:`PixelModel.sample`, up to round-off in the logits)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        cache = DecoderCache()
        step = self.start.expand(n, 1, -1)  # (n, 1, d): the start token at position 0
        pixels = []
        for t in range(self.pixels):
            h, _, _ = self.decoder(self.position(step, offset=t), cache=cache)  # (n, 1, d)
            p = torch.sigmoid(self.out(h[:, -1, :]).squeeze(-1))  # (n,): p(x_t = 1 | x_<t)
            x_t = _bernoulli(p, generator)
            pixels.append(x_t)
            step = self.value(x_t[:, None, None])  # (n, 1, d): x_t enters at position t + 1
        return torch.stack(pixels, dim=1).reshape(n, *self.shape)
