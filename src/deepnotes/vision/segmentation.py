r"""U-Net semantic segmentation, and its scores: per-class IoU and mIoU from a confusion matrix.

Notes: discussion 5, section 3 "Segmentation: Transposed Convolution & U-Net". The model is the
U-Net of Ronneberger, Fischer & Brox (2015, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", https://arxiv.org/abs/1505.04597): an encoder of blocks of two 3x3 convolutions
with ReLU, each followed by a 2x2 max-pool (the downward arrows of the paper's figure); a
decoder whose levels start with a 2x2 transposed convolution of stride 2 (the "up-conv", the
upward arrows: doubles the resolution, halves the channels), concatenate the encoder's feature
map of the same resolution (the long rightward "copy" arrows, the skip connections) and apply
two 3x3 convolutions (the short rightward arrows); a final 1x1 convolution gives the class
scores of every pixel.

With ``skips=False`` the decoder concatenates zeros instead of the encoder's map: the same
widths, the same modules and the same parameter count (so a fixed seed gives the same initial
weights in both variants), and the weights that read the zero channels get zero gradient. The
comparison then isolates the information the skip carries, not the capacity of the decoder.

Scores (Everingham et al. 2010, PASCAL VOC segmentation): with the confusion matrix
:math:`N_{ij}` (pixels of true class :math:`i` predicted :math:`j`),

.. math::
    \mathrm{IoU}_c = \frac{N_{cc}}{\sum_j N_{cj} + \sum_i N_{ic} - N_{cc}},\qquad
    \mathrm{mIoU} = \frac{1}{|\mathcal{C}|} \sum_{c \in \mathcal{C}} \mathrm{IoU}_c,

where :math:`\mathcal{C}` are the classes present in the truth or in the prediction: a class
absent from both has an undefined IoU (0/0, NaN) and is left out of the mean.

Deviations: the convolutions are padded ("same"), so the encoder's map needs no cropping before
the concatenation (the paper's valid convolutions shrink each map and crop the copy); the widths
are parameters (the paper's are 64, 128, 256, 512, 1024).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deepnotes.core.errors import UsageError


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions (padding 1), each followed by ReLU: ``(B, C_in, H, W) -> (B, C_out,
    H, W)``: the paper's pair of blue rightward arrows. With ``batch_norm``, a BatchNorm
    between each convolution and its ReLU (the convolution then has no bias)."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = False) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SkipConcat(nn.Module):
    """The skip connection: concatenate the encoder's map to the decoder's along channels,
    ``(B, C_dec, H, W), (B, C_enc, H, W) -> (B, C_dec + C_enc, H, W)``. No parameters.

    With ``enabled=False`` the encoder's map is replaced by zeros of the same shape.
    """

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled

    def forward(self, decoder: Tensor, encoder: Tensor) -> Tensor:
        copy = encoder if self.enabled else torch.zeros_like(encoder)
        return torch.cat([decoder, copy], dim=1)  # (B, C_dec + C_enc, H, W)


class UNet(nn.Module):
    """U-Net with ``len(widths) - 1`` pooling steps.

    Arguments:
        in_channels: channels of the input image.
        num_classes: classes scored per pixel (background included).
        widths: channels per level, top to bottom; the last is the bottleneck's.
        skips: concatenate the encoder's maps in the decoder (False: zeros instead, see the
            module docstring).
        batch_norm: BatchNorm after every 3x3 convolution (not in the paper, which predates
            it; it lets the small CPU nets train in a few hundred steps).

    Input ``(B, in_channels, H, W)`` with ``H`` and ``W`` divisible by ``2 ** (len(widths) -
    1)``; output: class scores ``(B, num_classes, H, W)``.

    Example:
        >>> net = UNet(1, 11, widths=(8, 16, 32))
        >>> net(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 11, 32, 32])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        widths: Sequence[int] = (64, 128, 256, 512, 1024),
        skips: bool = True,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 1:
            raise UsageError(f"widths must be >= 2 positive channel counts, got {widths}")
        if in_channels < 1 or num_classes < 2:
            raise UsageError(
                f"need in_channels >= 1 and num_classes >= 2, got {in_channels}, {num_classes}"
            )
        self.widths, self.skips = widths, skips
        self.down = nn.ModuleList()
        channels = in_channels
        for w in widths[:-1]:
            self.down.append(DoubleConv(channels, w, batch_norm))
            channels = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[-2], widths[-1], batch_norm)
        self.up = nn.ModuleList()
        self.concat = nn.ModuleList()
        self.decode = nn.ModuleList()
        for deep, w in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(deep, w, kernel_size=2, stride=2))
            self.concat.append(SkipConcat(skips))
            self.decode.append(DoubleConv(2 * w, w, batch_norm))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    @property
    def factor(self) -> int:
        """The input's side must be a multiple of this: 2 per pooling step."""
        return 2 ** (len(self.widths) - 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise UsageError(
                f"expected images (B, C, H, W) with H and W multiples of {self.factor}, "
                f"got shape {tuple(x.shape)}"
            )
        copies = []
        for block in self.down:
            x = block(x)  # (B, w_l, H / 2^l, W / 2^l)
            copies.append(x)
            x = self.pool(x)  # (B, w_l, H / 2^(l+1), W / 2^(l+1))
        x = self.bottleneck(x)  # (B, w_L, H / 2^L, W / 2^L)
        for up, concat, block, copy in zip(
            self.up, self.concat, self.decode, reversed(copies), strict=True
        ):
            x = up(x)  # (B, w_l, H / 2^l, W / 2^l): twice the side, the level's width
            x = block(concat(x, copy))  # (B, 2 w_l, ...) -> (B, w_l, ...)
        return self.head(x)  # (B, num_classes, H, W)


def check_masks(scores: Tensor, masks: Tensor) -> None:
    """Raise :class:`UsageError` unless ``masks`` is ``(B, H, W)`` for scores ``(B, C, H, W)``."""
    expected = (scores.shape[0], *scores.shape[2:])
    if scores.ndim != 4 or tuple(masks.shape) != tuple(expected):
        raise UsageError(
            f"masks must have shape {tuple(expected)} (batch, height, width of the scores "
            f"{tuple(scores.shape)}), got {tuple(masks.shape)}"
        )


def pixel_loss(scores: Tensor, masks: Tensor) -> Tensor:
    """Mean per-pixel cross-entropy of scores ``(B, C, H, W)`` against masks ``(B, H, W)``."""
    check_masks(scores, masks)
    return F.cross_entropy(scores, masks)


def pixel_accuracy(scores: Tensor, masks: Tensor) -> Tensor:
    """Fraction of correctly classified pixels per image, ``(B,)`` (a Trainer metric)."""
    check_masks(scores, masks)
    return (scores.argmax(1) == masks).to(torch.float64).flatten(1).mean(1)


def confusion_matrix(predicted: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``(C, C)`` int64 counts: entry ``[i, j]`` is the number of pixels of true class ``i``
    predicted as ``j``. ``predicted`` and ``target``: class indices of the same shape."""
    if predicted.shape != target.shape:
        raise UsageError(
            f"target masks must have the predicted shape {tuple(predicted.shape)}, "
            f"got {tuple(target.shape)}"
        )
    for name, t in (("predicted", predicted), ("target", target)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise UsageError(f"{name} classes must lie in [0, {num_classes}), got {t.unique()}")
    index = target.reshape(-1).long() * num_classes + predicted.reshape(-1).long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(confusion: Tensor) -> Tensor:
    """``(C,)`` float64 IoU per class from a confusion matrix; NaN for a class absent from both
    the truth and the prediction (0/0)."""
    confusion = confusion.to(torch.float64)
    hits = confusion.diagonal()  # N_cc
    union = confusion.sum(1) + confusion.sum(0) - hits  # truth + predicted - both
    return torch.where(union > 0, hits / union.clamp_min(1), torch.nan)


def mean_iou(confusion: Tensor) -> float:
    """mIoU: the mean IoU over the classes present in the truth or the prediction."""
    iou = iou_per_class(confusion)
    present = ~iou.isnan()
    return float(iou[present].mean()) if present.any() else float("nan")


def boundary_band(masks: Tensor, radius: int = 1) -> Tensor:
    """``(B, H, W)`` bool: pixels with a different class within ``radius`` pixels (Chebyshev
    distance), i.e. where the ``(2 radius + 1)``-square window holds two classes. The canvas
    edge is not a boundary (the window is clipped to the image)."""
    if masks.ndim != 3:
        raise UsageError(f"masks must be (B, H, W), got shape {tuple(masks.shape)}")
    if radius < 1:
        raise UsageError(f"radius must be >= 1, got {radius}")
    m = masks.to(torch.float32).unsqueeze(1)  # (B, 1, H, W)
    k = 2 * radius + 1
    high = F.max_pool2d(m, k, stride=1, padding=radius)  # padding is -inf: clipped window
    low = -F.max_pool2d(-m, k, stride=1, padding=radius)
    return (high != low).squeeze(1)


def parameters_by_operation(model: nn.Module) -> dict[str, int]:
    """Learned parameters per operation type, over the model's leaf modules, e.g.
    ``{"conv 3x3": ..., "up-conv 2x2": ..., "max-pool 2x2": 0, ...}``: every operation that
    appears is listed, with 0 for one without parameters."""
    counts: dict[str, int] = {}
    for module in model.modules():
        if list(module.children()):
            continue  # containers: their leaves are counted
        name = _operation_name(module)
        counts[name] = counts.get(name, 0) + sum(p.numel() for p in module.parameters())
    return counts


def _operation_name(module: nn.Module) -> str:
    if isinstance(module, nn.ConvTranspose2d):
        return "up-conv {}x{}".format(*module.kernel_size)
    if isinstance(module, nn.Conv2d):
        return "conv {}x{}".format(*module.kernel_size)
    if isinstance(module, nn.MaxPool2d):
        return f"max-pool {module.kernel_size}x{module.kernel_size}"
    if isinstance(module, nn.BatchNorm2d):
        return "batch norm"
    if isinstance(module, SkipConcat):
        return "copy and concatenate"
    return type(module).__name__
