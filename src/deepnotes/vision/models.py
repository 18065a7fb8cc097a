"""The CNN architectures the notes survey: LeNet-5, AlexNet, VGG, GoogLeNet and ResNet.

Notes: discussion 4, section 1 ("Convolutional Neural Networks Architectures"). LeNet stacks
convolutions and pooling and ends in fully connected layers; AlexNet is "bigger (more neurons)
and deeper (more layers)" with ReLU and dropout; VGG stacks only 3x3 convolutions and "has
roughly 138 million parameters"; GoogLeNet (the ILSVRC 2014 winner) concatenates parallel
branches in inception blocks; ResNet adds skip connections and has "substantially fewer
parameters than VGG" ("ResNet-152 should have about 60 million").

Conventions shared by every model here:

- Batch-first NCHW: ``(B, C, H, W)`` in, logits ``(B, num_classes)`` out (no softmax; train
  with cross-entropy).
- Each model has a full-size ImageNet configuration (3x224x224 input, 1000 classes) and a small
  one for 8x8..32x32 images such as the digits (``small_input=True`` and/or a width argument).
- Full-size models are meant to be built on the meta device, which allocates no memory, just
  to count their parameters::

      with torch.device("meta"):
          net = resnet(152)
      count_parameters(net)  # 60_192_808

- Deviation: weights use PyTorch's default initialisation (Kaiming-uniform for convolutions
  and linear layers, BatchNorm scale 1 and shift 0), not each paper's own scheme; parameter
  counts and shapes do not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

__all__ = [
    "ALEXNET_CHANNELS",
    "GOOGLENET_BLOCKS",
    "RESNET_CONFIGS",
    "VGG",
    "VGG_CONFIGS",
    "AlexNet",
    "BasicBlock",
    "Bottleneck",
    "GoogLeNet",
    "Inception",
    "InceptionSpec",
    "LeNet5",
    "ResNet",
    "alexnet",
    "count_parameters",
    "googlenet",
    "meta_parameter_count",
    "resnet",
    "vgg",
]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (BatchNorm running statistics are buffers, not
    parameters, and are not counted); works on the meta device."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def meta_parameter_count(build: Callable[[], nn.Module]) -> int:
    """Build a model on the meta device (no memory is allocated) and count its parameters.

    Example:
        >>> meta_parameter_count(lambda: vgg(16))
        138357544
    """
    with torch.device("meta"):
        return count_parameters(build())


def _scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1 (to shrink a paper's layer for small inputs)."""
    return max(1, round(channels * width))


# ---------------------------------------------------------------------------------------------
# LeNet-5


class LeNet5(nn.Module):
    """LeNet-5: LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
    recognition", Proceedings of the IEEE, 1998.

    Two convolution-subsampling stages, then three fully connected layers. On a 32x32 image:
    C1 convolves with 6 kernels 5x5 (-> 6x28x28), S2 subsamples 2x2 (-> 6x14x14), C3 convolves
    with 16 kernels 5x5 (-> 16x10x10), S4 subsamples (-> 16x5x5), C5 maps the 16x5x5 maps to
    120 units (a 5x5 convolution over a 5x5 input, i.e. fully connected), F6 has 84 units and
    the output layer one unit per class; squashing (tanh) nonlinearities follow C1, C3, C5 and
    F6. With the defaults the network has 61,706 parameters.

    Deviation: S2 and S4 are plain 2x2 average (or max) pooling; the paper's subsampling also
    multiplies by a trainable coefficient and adds a trainable bias per map.
    Deviation: C3 connects every S2 map to every C3 map; the paper uses a fixed sparse table
    (60 of the 96 map pairs), which gives 1,516 instead of 2,416 parameters for C3.
    Deviation: the output layer is linear (logits for cross-entropy) instead of the paper's
    Euclidean RBF units with fixed codes, and the nonlinearity is ``tanh`` (or ReLU) instead of
    the paper's scaled ``1.7159 tanh(2a/3)``.
    Deviation: C5 is a linear layer on the flattened S4 output, which equals the paper's 5x5
    convolution for 32x32 inputs and keeps the network usable for other input sizes.

    Arguments:
        num_classes: number of outputs.
        in_channels: input channels (1 for grey-scale digits).
        input_size: side H = W of the input image (32 in the paper).
        channels: maps of C1 and C3.
        hidden: widths of C5 and F6.
        kernel_size: kernel side of C1 and C3 (5 in the paper).
        padding: zero padding of C1 and C3 (0 in the paper; use ``kernel_size // 2`` for images
            too small for valid convolutions, e.g. 8x8 with ``kernel_size=3, padding=1``).
        activation: "tanh" (the paper's squashing function) or "relu".
        pool: "avg" (the paper's subsampling averages) or "max".

    Example:
        >>> net = LeNet5()  # the paper's 32x32 -> 10 network
        >>> net(torch.randn(4, 1, 32, 32)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 32,
        channels: tuple[int, int] = (6, 16),
        hidden: tuple[int, int] = (120, 84),
        kernel_size: int = 5,
        padding: int = 0,
        activation: Literal["tanh", "relu"] = "tanh",
        pool: Literal["avg", "max"] = "avg",
    ) -> None:
        super().__init__()
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        side = input_size
        for _ in range(2):  # conv (n + 2p - k + 1), then 2x2 pooling (floor(n / 2))
            side = (side + 2 * padding - kernel_size + 1) // 2
        if side < 1:
            raise ValueError(
                f"input_size {input_size} is too small for two {kernel_size}x{kernel_size} "
                f"convolutions with padding {padding} and 2x2 pooling; pad, upsample, or use "
                "a smaller kernel"
            )
        self.input_size = input_size
        self.feature_side = side
        act = nn.Tanh if activation == "tanh" else nn.ReLU
        subsample = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d
        c1, c3 = channels
        c5, f6 = hidden
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size, padding=padding),  # C1: (B, 6, 28, 28)
            act(),
            subsample(2),  # S2: (B, 6, 14, 14)
            nn.Conv2d(c1, c3, kernel_size, padding=padding),  # C3: (B, 16, 10, 10)
            act(),
            subsample(2),  # S4: (B, 16, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 16 * 5 * 5)
            nn.Linear(c3 * side * side, c5),  # C5: (B, 120)
            act(),
            nn.Linear(c5, f6),  # F6: (B, 84)
            act(),
            nn.Linear(f6, num_classes),  # output: (B, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, c3, side, side) -> (B, num_classes)
        return self.classifier(self.features(x))


# ---------------------------------------------------------------------------------------------
# AlexNet

ALEXNET_CHANNELS = (96, 256, 384, 384, 256)
"""Kernels of AlexNet's five convolutional layers (both GPUs together)."""


class AlexNet(nn.Module):
    """AlexNet: Krizhevsky, Sutskever and Hinton, "ImageNet classification with deep
    convolutional neural networks", NeurIPS 2012.

    LeNet's design made bigger and deeper: five convolutional layers (96 kernels 11x11 stride 4,
    256 5x5, 384 3x3, 384 3x3, 256 3x3) with ReLU after each, overlapping 3x3 stride-2 max
    pooling after the first, second and fifth, local response normalisation after the first two,
    then three fully connected layers (4096, 4096, 1000) with ReLU and dropout 0.5 before the
    first two. The paper trains on two GPUs, each holding half of every layer; the second,
    fourth and fifth convolutions only see the maps on their own GPU (``two_tower=True``
    reproduces that connectivity with grouped convolutions: 60,965,224 parameters, the paper's
    "60 million"; one tower: 62,378,344). torchvision's ``alexnet`` is the later one-tower
    variant with 64, 192, 384, 256, 256 kernels: ``AlexNet(channels=(64, 192, 384, 256, 256))``
    has its 61,100,840 parameters.

    The small variant (``small_input=True``) for 8x8..32x32 images uses 3x3 kernels with
    stride 1 everywhere, 3x3 stride-2 max pooling with padding 1, no normalisation, and global
    average pooling before the classifier; shrink it with narrower ``channels`` and ``hidden``.

    Deviation: the first convolution pads by 2, so a 224x224 input gives the paper's 55x55 maps
    (the paper's 224 is inconsistent with 55; 227 without padding is the usual fix).
    Deviation: an adaptive average pooling to ``pool_size`` x ``pool_size`` (6x6 for ImageNet,
    the identity at 224x224) precedes the classifier so that other input sizes work.

    Arguments:
        num_classes: number of outputs.
        in_channels: input channels.
        channels: kernels of the five convolutional layers.
        hidden: width of the two hidden fully connected layers.
        dropout: dropout probability before each hidden fully connected layer.
        small_input: the small-image variant described above.
        two_tower: the paper's two-GPU connectivity (groups=2 in conv 2, 4 and 5).
        local_response_norm: the paper's LRN (size 5, alpha 1e-4, beta 0.75, k 2) after conv 1
            and 2.
        pool_size: side of the feature maps after adaptive pooling (default: 6, or 1 for small
            inputs).

    Example:
        >>> net = AlexNet(10, 1, channels=(32, 64, 96, 96, 64), hidden=256, small_input=True)
        >>> net(torch.randn(4, 1, 8, 8)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        channels: Sequence[int] = ALEXNET_CHANNELS,
        hidden: int = 4096,
        dropout: float = 0.5,
        small_input: bool = False,
        two_tower: bool = False,
        local_response_norm: bool = False,
        pool_size: int | None = None,
    ) -> None:
        super().__init__()
        if len(channels) != 5:
            raise ValueError(f"channels must list 5 convolutional widths, got {tuple(channels)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        c1, c2, c3, c4, c5 = channels
        groups = 2 if two_tower else 1
        if two_tower and any(c % 2 for c in channels):
            raise ValueError(f"two_tower needs even channel counts, got {tuple(channels)}")
        pool_size = pool_size if pool_size is not None else (1 if small_input else 6)

        def norm() -> list[nn.Module]:
            if not local_response_norm:
                return []
            return [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)]

        def pool() -> nn.Module:
            return nn.MaxPool2d(3, stride=2, padding=1 if small_input else 0)

        if small_input:  # (B, C, 8, 8): every convolution 3x3, stride 1
            conv1 = nn.Conv2d(in_channels, c1, 3, padding=1)  # (B, c1, 8, 8)
            conv2 = nn.Conv2d(c1, c2, 3, padding=1, groups=groups)  # (B, c2, 4, 4)
        else:  # (B, 3, 224, 224)
            conv1 = nn.Conv2d(in_channels, c1, 11, stride=4, padding=2)  # (B, 96, 55, 55)
            conv2 = nn.Conv2d(c1, c2, 5, padding=2, groups=groups)  # (B, 256, 27, 27)
        self.features = nn.Sequential(
            conv1,
            nn.ReLU(inplace=True),
            *norm(),
            pool(),  # (B, 96, 27, 27) [small: (B, c1, 4, 4)]
            conv2,
            nn.ReLU(inplace=True),
            *norm(),
            pool(),  # (B, 256, 13, 13) [small: (B, c2, 2, 2)]
            nn.Conv2d(c2, c3, 3, padding=1),  # (B, 384, 13, 13): sees both towers
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1, groups=groups),  # (B, 384, 13, 13)
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1, groups=groups),  # (B, 256, 13, 13)
            nn.ReLU(inplace=True),
            pool(),  # (B, 256, 6, 6) [small: (B, c5, 1, 1)]
        )
        self.pool = nn.AdaptiveAvgPool2d(pool_size)  # (B, c5, pool_size, pool_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 256 * 6 * 6)
            nn.Dropout(dropout),
            nn.Linear(c5 * pool_size * pool_size, hidden),  # FC6: (B, 4096)
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),  # FC7: (B, 4096)
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),  # FC8: (B, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def alexnet(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, width: float = 1.0
) -> AlexNet:
    """AlexNet as in the paper (two towers, LRN; 60,965,224 parameters at 1000 classes), or the
    small variant (one tower, no LRN, global pooling) with every width scaled by ``width``.

    Example:
        >>> net = alexnet(10, 1, small_input=True, width=0.25)  # 8x8 digits
    """
    return AlexNet(
        num_classes,
        in_channels,
        channels=tuple(_scaled(c, width) for c in ALEXNET_CHANNELS),
        hidden=_scaled(4096, width),
        small_input=small_input,
        two_tower=not small_input,
        local_response_norm=not small_input,
    )


# ---------------------------------------------------------------------------------------------
# VGG

VGG_CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),  # A
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),  # B
    16: (64, 64, "M", 128, 128, "M", *(256,) * 3, "M", *(512,) * 3, "M", *(512,) * 3, "M"),  # D
    19: (64, 64, "M", 128, 128, "M", *(256,) * 4, "M", *(512,) * 4, "M", *(512,) * 4, "M"),  # E
}
"""The paper's configurations by weight-layer depth (convolutions + 3 fully connected layers):
an integer is a 3x3 convolution with that many kernels, "M" a 2x2 stride-2 max pooling."""


class VGG(nn.Module):
    """VGG: Simonyan and Zisserman, "Very deep convolutional networks for large-scale image
    recognition", ICLR 2015.

    Depth from stacking only 3x3 convolutions (stride 1, padding 1, ReLU after each): a stack
    of two has the receptive field of a 5x5 and three of a 7x7, with fewer parameters and more
    nonlinearities. Five blocks of convolutions, each followed by 2x2 stride-2 max pooling
    (224 -> 7), with 64, 128, 256, 512, 512 kernels, then fully connected layers 4096, 4096,
    1000 with ReLU and dropout 0.5 after the two hidden ones. The configurations A, B, D and E
    (VGG-11/13/16/19) differ in the number of convolutions per block; VGG-16 has 138,357,544
    parameters (the notes' "roughly 138 million").

    Deviation: configuration C (1x1 convolutions in the last three blocks) and A-LRN are not
    provided: this class stacks only 3x3 convolutions, the notes' point about VGG.
    Deviation: an adaptive average pooling to ``pool_size`` x ``pool_size`` (the identity at
    224x224 with ``pool_size=7``) precedes the classifier so other input sizes work.
    Deviation: ``batch_norm=True`` inserts BatchNorm after every convolution; the paper (2014)
    predates BatchNorm. The convolutions then have no bias (BatchNorm's shift replaces it), so
    VGG-16-BN has 138,361,768 parameters here and 138,365,992 in torchvision's ``vgg16_bn``,
    which keeps the 4,224 redundant biases.

    Arguments:
        config: integers (3x3 convolution widths) and "M" (max pooling), e.g.
            ``VGG_CONFIGS[16]``.
        num_classes: number of outputs.
        in_channels: input channels.
        batch_norm: BatchNorm after every convolution.
        hidden: width of the two hidden fully connected layers.
        dropout: dropout probability after each hidden fully connected layer.
        pool_size: side of the feature maps fed to the classifier (7 for ImageNet; 1 for
            32x32 inputs, which five poolings reduce to 1x1).

    Example:
        >>> net = VGG(VGG_CONFIGS[11], 10, 1, hidden=128, pool_size=1)
        >>> net(torch.randn(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        config: Sequence[int | str],
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        hidden: int = 4096,
        dropout: float = 0.5,
        pool_size: int = 7,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, stride=2))  # (B, C, H/2, W/2)
            elif isinstance(item, int) and item > 0:
                layers.append(nn.Conv2d(channels, item, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(item))
                layers.append(nn.ReLU(inplace=True))  # (B, item, H, W)
                channels = item
            else:
                raise ValueError(f"config items must be positive ints or 'M', got {item!r}")
        if channels == in_channels:
            raise ValueError("config must contain at least one convolution")
        self.features = nn.Sequential(*layers)  # (B, 512, 7, 7) for 224x224 inputs
        self.pool = nn.AdaptiveAvgPool2d(pool_size)  # (B, 512, pool_size, pool_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 512 * 7 * 7)
            nn.Linear(channels * pool_size * pool_size, hidden),  # FC: (B, 4096)
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),  # FC: (B, 4096)
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),  # FC: (B, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def vgg(
    depth: int = 16,
    num_classes: int = 1000,
    in_channels: int = 3,
    batch_norm: bool = False,
    width: int = 64,
    hidden: int = 4096,
    pool_size: int = 7,
) -> VGG:
    """VGG-``depth`` (11, 13, 16 or 19) with the paper's configuration A, B, D or E.

    ``width`` is the number of kernels of the first block (64 in the paper); the other blocks
    scale with it (2x, 4x, 8x, 8x). Small-image example (32x32 input, 5 poolings to 1x1):
    ``vgg(11, 10, 1, width=16, hidden=128, pool_size=1)``.
    """
    if depth not in VGG_CONFIGS:
        raise ValueError(f"depth must be one of {sorted(VGG_CONFIGS)}, got {depth}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    config = [c if c == "M" else int(c) * width // 64 for c in VGG_CONFIGS[depth]]
    return VGG(config, num_classes, in_channels, batch_norm, hidden, pool_size=pool_size)


# ---------------------------------------------------------------------------------------------
# GoogLeNet

InceptionSpec = tuple[int, int, int, int, int, int]
"""Widths of an inception block: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection)."""


def _conv_relu(
    in_channels: int, out_channels: int, kernel_size: int, batch_norm: bool, **kwargs: int
) -> nn.Sequential:
    """Convolution (+ BatchNorm) + ReLU; 'same' padding for odd kernels unless given."""
    kwargs.setdefault("padding", kernel_size // 2)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, bias=not batch_norm, **kwargs)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Inception(nn.Module):
    """The inception block of GoogLeNet: Szegedy et al., "Going deeper with convolutions",
    CVPR 2015.

    Four parallel branches over the same input, concatenated along channels: a 1x1 convolution;
    a 1x1 reduction followed by a 3x3 convolution; a 1x1 reduction followed by a 5x5
    convolution; and a 3x3 stride-1 max pooling followed by a 1x1 projection. Every convolution
    is followed by ReLU and preserves the spatial size, so the output has
    ``ch1x1 + ch3x3 + ch5x5 + pool_proj`` channels. The 1x1 reductions are what keep the
    block cheap: they shrink the channels before the expensive 3x3 and 5x5 convolutions.

    Deviation: ``batch_norm=True`` adds BatchNorm after every convolution (as in
    Inception-v2); the paper's block has none.

    Arguments:
        in_channels: input channels.
        ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5, pool_proj: the branch widths, in the
            order of the paper's table 1.
        batch_norm: BatchNorm after every convolution.

    Example:
        >>> block = Inception(192, 64, 96, 128, 16, 32, 32)  # inception (3a)
        >>> block(torch.randn(1, 192, 28, 28)).shape
        torch.Size([1, 256, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3_reduce: int,
        ch3x3: int,
        ch5x5_reduce: int,
        ch5x5: int,
        pool_proj: int,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        bn = batch_norm
        self.branch1 = _conv_relu(in_channels, ch1x1, 1, bn)
        self.branch3 = nn.Sequential(
            _conv_relu(in_channels, ch3x3_reduce, 1, bn), _conv_relu(ch3x3_reduce, ch3x3, 3, bn)
        )
        self.branch5 = nn.Sequential(
            _conv_relu(in_channels, ch5x5_reduce, 1, bn), _conv_relu(ch5x5_reduce, ch5x5, 5, bn)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), _conv_relu(in_channels, pool_proj, 1, bn)
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C_in, H, W) -> four (B, C_branch, H, W) -> (B, sum of C_branch, H, W)
        branches = (self.branch1, self.branch3, self.branch5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)


GOOGLENET_BLOCKS: tuple[InceptionSpec | str, ...] = (
    (64, 96, 128, 16, 32, 32),  # 3a: 192 -> 256 channels, 28x28
    (128, 128, 192, 32, 96, 64),  # 3b: -> 480
    "M",  # 28x28 -> 14x14
    (192, 96, 208, 16, 48, 64),  # 4a: -> 512
    (160, 112, 224, 24, 64, 64),  # 4b: -> 512
    (128, 128, 256, 24, 64, 64),  # 4c: -> 512
    (112, 144, 288, 32, 64, 64),  # 4d: -> 528
    (256, 160, 320, 32, 128, 128),  # 4e: -> 832
    "M",  # 14x14 -> 7x7
    (256, 160, 320, 32, 128, 128),  # 5a: -> 832
    (384, 192, 384, 48, 128, 128),  # 5b: -> 1024
)
"""GoogLeNet's nine inception blocks (the paper's table 1); "M" is 3x3 stride-2 max pooling."""


class GoogLeNet(nn.Module):
    """GoogLeNet: Szegedy et al., "Going deeper with convolutions", CVPR 2015 (ILSVRC 2014).

    A stem of ordinary convolutions (7x7 stride 2, max pooling, 1x1 reduction, 3x3 with 192
    kernels, max pooling: 224 -> 28), nine inception blocks (:class:`Inception`) in three groups
    separated by 3x3 stride-2 max pooling (28 -> 14 -> 7), global average pooling, dropout 0.4
    and one linear classifier: 22 layers with parameters, yet about 12 times fewer parameters
    than AlexNet because the blocks reduce channels with 1x1 convolutions and the network has
    no large fully connected layers: 6,998,552 parameters with 1000 classes (torchvision's
    ``googlenet`` has 6,624,904: it adds BatchNorm, drops the biases and uses 3x3 kernels in
    the "5x5" branch).

    The small variant (``small_input=True``) replaces the stem by one 3x3 convolution with
    ``stem_channels[-1]`` kernels and no pooling, for 8x8..32x32 images; shrink it with
    narrower ``blocks`` (see :func:`googlenet`'s ``width``).

    Deviation: the two auxiliary classifiers (used only as extra training losses) are omitted.
    Deviation: the stem's local response normalisation is omitted, and its max pooling uses
    padding 1 so that 224 -> 112 -> 56 -> 28 as in the paper's table.

    Arguments:
        blocks: inception widths (:data:`InceptionSpec`) and "M" (3x3 stride-2 max pooling).
        num_classes: number of outputs.
        in_channels: input channels.
        small_input: the small-image stem described above.
        stem_channels: widths of the stem's 7x7 and 3x3 convolutions (the 1x1 reduction
            between them has the first width).
        dropout: dropout probability before the classifier.
        batch_norm: BatchNorm after every convolution (see :class:`Inception`).

    Example:
        >>> net = googlenet(10, 1, small_input=True, width=0.125)
        >>> net(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        blocks: Sequence[InceptionSpec | str] = GOOGLENET_BLOCKS,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        stem_channels: tuple[int, int] = (64, 192),
        dropout: float = 0.4,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        bn = batch_norm
        c_a, c_b = stem_channels
        if small_input:
            self.stem = _conv_relu(in_channels, c_b, 3, bn)  # (B, c_b, H, W)
        else:  # (B, 3, 224, 224)
            self.stem = nn.Sequential(
                _conv_relu(in_channels, c_a, 7, bn, stride=2, padding=3),  # (B, 64, 112, 112)
                nn.MaxPool2d(3, stride=2, padding=1),  # (B, 64, 56, 56)
                _conv_relu(c_a, c_a, 1, bn),  # 1x1 reduction: (B, 64, 56, 56)
                _conv_relu(c_a, c_b, 3, bn),  # (B, 192, 56, 56)
                nn.MaxPool2d(3, stride=2, padding=1),  # (B, 192, 28, 28)
            )
        layers: list[nn.Module] = []
        channels = c_b
        for spec in blocks:
            if spec == "M":
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))  # (B, C, H/2, W/2)
            elif isinstance(spec, tuple) and len(spec) == 6:
                block = Inception(channels, *spec, batch_norm=bn)
                layers.append(block)  # (B, sum of branch widths, H, W)
                channels = block.out_channels
            else:
                raise ValueError(f"blocks items must be 6-tuples of widths or 'M', got {spec!r}")
        self.blocks = nn.Sequential(*layers)  # (B, 1024, 7, 7) for 224x224 inputs
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),  # (B, 1024, 1, 1)
            nn.Flatten(),  # (B, 1024)
            nn.Dropout(dropout),
            nn.Linear(channels, num_classes),  # (B, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def googlenet(
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    width: float = 1.0,
    batch_norm: bool = False,
) -> GoogLeNet:
    """GoogLeNet with the paper's nine blocks, every width (stem and branches) scaled by
    ``width``; ``small_input`` selects the 3x3 stem for small images.

    Example:
        >>> net = googlenet(10, 1, small_input=True, width=0.25)  # a small GoogLeNet-style net
    """
    blocks = tuple(
        spec if spec == "M" else tuple(_scaled(c, width) for c in spec) for spec in GOOGLENET_BLOCKS
    )
    stem = (_scaled(64, width), _scaled(192, width))
    return GoogLeNet(blocks, num_classes, in_channels, small_input, stem, batch_norm=batch_norm)


# ---------------------------------------------------------------------------------------------
# ResNet


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when the shapes match, else a 1x1 stride-s projection with BatchNorm."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),  # (B, C_out, H/s, W/s)
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """The basic residual block of ResNet-18/34: He, Zhang, Ren and Sun, "Deep residual learning
    for image recognition", CVPR 2016.

    ``y = ReLU(F(x) + shortcut(x))`` with ``F = BN(conv3x3(ReLU(BN(conv3x3_stride(x)))))``. The
    shortcut is the identity when the shapes agree, else a 1x1 stride-s convolution with
    BatchNorm (the paper's option B). Because the block adds ``x`` back, the gradient of the
    loss reaches ``x`` through the identity term unattenuated (``dy/dx = dF/dx + I``).

    Arguments:
        in_channels: input channels.
        channels: output channels (``expansion = 1``).
        stride: stride of the first convolution (2 halves H and W and uses a projection).

    Example:
        >>> block = BasicBlock(64, 128, stride=2)
        >>> block(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 128, 4, 4])
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_channels, channels, stride)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, H, W)
        residual = self.relu(self.bn1(self.conv1(x)))  # (B, C, H/s, W/s)
        residual = self.bn2(self.conv2(residual))  # F(x): (B, C, H/s, W/s)
        return self.relu(residual + self.shortcut(x))  # ReLU(F(x) + shortcut(x))


class Bottleneck(nn.Module):
    """The bottleneck residual block of ResNet-50/101/152 (He et al., CVPR 2016).

    ``F`` is 1x1 (reduce to ``channels``) -> 3x3 (``channels``) -> 1x1 (expand to
    ``4 * channels``), each followed by BatchNorm and, except the last, ReLU; ``y = ReLU(F(x) +
    shortcut(x))`` with the shortcut of :class:`BasicBlock`. Two cheap 1x1 convolutions let the
    block be three layers deep for about the parameters of one 3x3 convolution at full width.

    Deviation: the stride sits on the 3x3 convolution (the variant known as ResNet v1.5); the
    paper strides the first 1x1 convolution, which skips 3 of 4 input positions. The parameter
    count is the same.

    Arguments:
        in_channels: input channels.
        channels: width of the bottleneck; the output has ``expansion * channels`` channels.
        stride: stride of the 3x3 convolution.

    Example:
        >>> block = Bottleneck(256, 128, stride=2)
        >>> block(torch.randn(1, 256, 8, 8)).shape
        torch.Size([1, 512, 4, 4])
    """

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, H, W)
        residual = self.relu(self.bn1(self.conv1(x)))  # reduce: (B, C, H, W)
        residual = self.relu(self.bn2(self.conv2(residual)))  # (B, C, H/s, W/s)
        residual = self.bn3(self.conv3(residual))  # expand, F(x): (B, 4C, H/s, W/s)
        return self.relu(residual + self.shortcut(x))  # ReLU(F(x) + shortcut(x))


RESNET_CONFIGS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
"""The paper's table 1: block type and blocks per stage, by depth (weight layers on the main
path: the stem convolution, 2 or 3 per block, and the classifier; projections not counted)."""


class ResNet(nn.Module):
    """ResNet: He, Zhang, Ren and Sun, "Deep residual learning for image recognition", CVPR 2016.

    A stem (7x7 stride-2 convolution with 64 kernels, BatchNorm, ReLU, 3x3 stride-2 max
    pooling: 224 -> 56), four stages of residual blocks with 64, 128, 256, 512 channels (times
    the block's expansion) where the first block of stages 2-4 halves the resolution
    (56 -> 28 -> 14 -> 7), global average pooling and one linear classifier. The skip
    connections let the signal and the gradient pass through many layers, so depth 152 trains;
    without large fully connected layers the network has far fewer parameters than VGG
    (ResNet-152: 60,192,808).

    The small-input stem (``small_input=True``) is a 3x3 stride-1 convolution without max
    pooling, so 8x8 or 32x32 images keep their resolution into the first stage.

    Deviation: see :class:`Bottleneck` (stride on the 3x3 convolution).

    Arguments:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in each of the four stages.
        num_classes: number of outputs.
        in_channels: input channels.
        small_input: 3x3 stem without max pooling, for small images.
        width: channels of the stem and the first stage (64 in the paper); stage i has
            ``width * 2**i`` (times the expansion).

    Example:
        >>> net = resnet(18, num_classes=10, in_channels=1, small_input=True, width=16)
        >>> net(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        width: int = 64,
    ) -> None:
        super().__init__()
        if width < 1 or any(n < 1 for n in layers):
            raise ValueError(f"width and blocks per stage must be >= 1, got {width}, {layers}")
        if small_input:
            stem_conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)  # (B, w, H, W)
            stem_pool: nn.Module = nn.Identity()
        else:
            stem_conv = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            stem_pool = nn.MaxPool2d(3, stride=2, padding=1)  # (B, 64, 56, 56)
        self.stem = nn.Sequential(  # (B, 64, 112, 112) before the pooling [small: (B, w, H, W)]
            stem_conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True), stem_pool
        )
        stages: list[nn.Module] = []
        channels = width
        for i, n_blocks in enumerate(layers):
            stride = 1 if i == 0 else 2
            blocks: list[nn.Module] = []
            for j in range(n_blocks):
                unit = block(channels, width * 2**i, stride if j == 0 else 1)
                blocks.append(unit)
                channels = unit.out_channels
            stages.append(nn.Sequential(*blocks))  # (B, w * 2**i * expansion, H / 2**i, ...)
        self.stages = nn.Sequential(*stages)  # (B, 512 * expansion, 7, 7) for 224x224 inputs
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),  # (B, 512 * expansion, 1, 1)
            nn.Flatten(),
            nn.Linear(channels, num_classes),  # (B, num_classes)
        )
        self.depth = 2 + sum(layers) * (3 if block is Bottleneck else 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def resnet(
    depth: int,
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    width: int = 64,
) -> ResNet:
    """ResNet-``depth`` for depth in 18, 34 (basic blocks), 50, 101, 152 (bottlenecks).

    Example:
        >>> meta_parameter_count(lambda: resnet(50))
        25557032
    """
    if depth not in RESNET_CONFIGS:
        raise ValueError(f"depth must be one of {sorted(RESNET_CONFIGS)}, got {depth}")
    block, layers = RESNET_CONFIGS[depth]
    return ResNet(block, layers, num_classes, in_channels, small_input, width)
