r"""The GAN room's networks (notes, discussion 11, part 1): a DCGAN-style image generator built
from transposed convolutions, a convolutional discriminator/critic, and MLP generator/critic
pairs for the 2-D toy data.

Radford, Metz & Chintala (2016), "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", https://arxiv.org/abs/1511.06434 (DCGAN): the generator
projects :math:`z \sim \mathcal N(0, I)` to a small feature map and doubles its side with
strided transposed convolutions (batch normalisation and ReLU between them); the
discriminator halves the side with strided convolutions and leaky ReLUs.

- :class:`ConvGenerator`: ``z (N, latent)`` -> images ``(N, C, H, W)`` in [0, 1] (a sigmoid;
  the data of :func:`deepnotes.data.images.image_splits` live there), ``H = W`` divisible
  by 4: a linear projection to ``(2 width, H/4, W/4)``, then two transposed convolutions
  (kernel 4, stride 2, padding 1), each doubling the side:
  ``out = (in - 1) * 2 - 2 + 4 = 2 in``.
- :class:`ConvCritic`: images ``(N, C, H, W)`` -> one raw score per image ``(N,)``: a logit
  for the minimax / non-saturating losses, a critic value :math:`f(x)` for WGAN(-GP), an output
  for LSGAN (:mod:`deepnotes.gans.losses` decides). Two strided convolutions (kernel 4,
  stride 2, padding 1) and a linear read-out; no batch normalisation, since the gradient
  penalty is taken per sample (Gulrajani et al. 2017, section 4) and spectral normalisation
  (``spectral=True``, :func:`deepnotes.gans.spectral.spectral_norm` on every layer) bounds
  each layer's Lipschitz constant by 1 and leaky ReLU's by 1.
- :class:`MLPGenerator` / :class:`MLPCritic`: the same roles for points in :math:`\mathbb R^d`
  (the ring and the grid of :mod:`deepnotes.data.toy2d`).

:func:`check_generator` is the one validation of a generator against the data it must
imitate: a :class:`~deepnotes.core.errors.ConfigError` naming both shapes when they differ.

Example:
    >>> g, d = ConvGenerator(latent=16, width=32), ConvCritic(width=32, spectral=True)
    >>> x = g(torch.randn(5, 16))        # (5, 1, 8, 8) in [0, 1]
    >>> d(x).shape                       # torch.Size([5])
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from deepnotes.core.errors import ConfigError
from deepnotes.gans.spectral import spectral_norm

LEAK = 0.2
"""Negative slope of the critics' leaky ReLUs (DCGAN's)."""


def _check_image_shape(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ConfigError(f"image_shape must be (C, H, W) of positive sizes, got {image_shape}")
    c, h, w = (int(s) for s in image_shape)
    if h % 4 or w % 4:
        raise ConfigError(f"image sides must be divisible by 4 (two stride-2 stages), got {h}x{w}")
    return c, h, w


class ConvGenerator(nn.Module):
    """DCGAN-style generator (module docstring): ``z (N, latent)`` -> ``(N, C, H, W)`` in [0, 1].

    Arguments:
        latent: dimension of ``z``.
        width: channels of the ``H/2`` stage; the ``H/4`` stage has ``2 width``.
        image_shape: ``(C, H, W)`` of the images, sides divisible by 4.
        batchnorm: batch normalisation after the projection and the first transposed
            convolution (DCGAN's); sample in eval mode to use its running statistics.
    """

    def __init__(
        self,
        latent: int = 16,
        width: int = 32,
        image_shape: tuple[int, ...] = (1, 8, 8),
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        if latent < 1 or width < 1:
            raise ConfigError(f"latent and width must be >= 1, got {latent}, {width}")
        c, h, w = _check_image_shape(tuple(image_shape))
        self.latent = latent
        self.output_shape = (c, h, w)
        self.start = (2 * width, h // 4, w // 4)

        def norm(kind: type[nn.Module], channels: int) -> nn.Module:
            return kind(channels) if batchnorm else nn.Identity()

        self.project = nn.Sequential(
            nn.Linear(latent, math.prod(self.start)),
            norm(nn.BatchNorm1d, math.prod(self.start)),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # (N, w, H/2, W/2)
            norm(nn.BatchNorm2d, width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, stride=2, padding=1),  # (N, C, H, W)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] for codes ``z (N, latent)``."""
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise ValueError(f"z must be (N, {self.latent}), got {tuple(z.shape)}")
        x = self.project(z).view(-1, *self.start)  # (N, 2w, H/4, W/4)
        return torch.sigmoid(self.upsample(x))


class ConvCritic(nn.Module):
    """Convolutional discriminator/critic (module docstring): ``(N, C, H, W)`` -> ``(N,)``.

    Arguments:
        width: channels of the first convolution; the second has ``2 width``.
        image_shape: ``(C, H, W)`` of the images, sides divisible by 4.
        spectral: spectral normalisation of every layer (weights divided by their largest
            singular value, estimated by power iteration).
    """

    def __init__(
        self, width: int = 32, image_shape: tuple[int, ...] = (1, 8, 8), spectral: bool = False
    ) -> None:
        super().__init__()
        if width < 1:
            raise ConfigError(f"width must be >= 1, got {width}")
        c, h, w = _check_image_shape(tuple(image_shape))
        self.input_shape = (c, h, w)
        layers: list[nn.Module] = [
            nn.Conv2d(c, width, 4, stride=2, padding=1),  # (N, w, H/2, W/2)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),  # (N, 2w, H/4, W/4)
            nn.Linear(2 * width * (h // 4) * (w // 4), 1),
        ]
        if spectral:
            layers = [spectral_norm(layer) for layer in layers]
        self.features = nn.Sequential(
            layers[0], nn.LeakyReLU(LEAK), layers[1], nn.LeakyReLU(LEAK), nn.Flatten()
        )
        self.head = layers[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One raw score per image, ``(N,)``."""
        if tuple(x.shape[1:]) != self.input_shape or x.ndim != 4:
            raise ValueError(
                f"the critic expects images (N, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return self.head(self.features(x)).squeeze(-1)


def _mlp(sizes: list[int], activation: type[nn.Module], spectral: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(a, b)
        layers.append(spectral_norm(linear) if spectral else linear)
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """``z (N, latent)`` -> points ``(N, out_features)``: ``depth`` hidden ReLU layers of
    ``hidden`` units and a linear output (no squashing: the toy data are unbounded)."""

    def __init__(
        self, latent: int = 2, hidden: int = 128, depth: int = 3, out_features: int = 2
    ) -> None:
        super().__init__()
        if min(latent, hidden, depth, out_features) < 1:
            raise ConfigError(
                "latent, hidden, depth and out_features must be >= 1, got "
                f"{latent}, {hidden}, {depth}, {out_features}"
            )
        self.latent = latent
        self.output_shape = (out_features,)
        self.net = _mlp([latent, *[hidden] * depth, out_features], nn.ReLU, spectral=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Points ``(N, out_features)`` for codes ``z (N, latent)``."""
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise ValueError(f"z must be (N, {self.latent}), got {tuple(z.shape)}")
        return self.net(z)


class MLPCritic(nn.Module):
    """Points ``(N, in_features)`` -> one raw score each ``(N,)``: ``depth`` hidden leaky-ReLU
    layers of ``hidden`` units (``spectral=True``: every layer spectrally normalised)."""

    def __init__(
        self, in_features: int = 2, hidden: int = 128, depth: int = 3, spectral: bool = False
    ) -> None:
        super().__init__()
        if min(in_features, hidden, depth) < 1:
            raise ConfigError(
                f"in_features, hidden and depth must be >= 1, got {in_features}, {hidden}, {depth}"
            )
        self.input_shape = (in_features,)
        self.net = _mlp(
            [in_features, *[hidden] * depth, 1], lambda: nn.LeakyReLU(LEAK), spectral=spectral
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One raw score per point, ``(N,)``."""
        if x.ndim != 2 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"the critic expects points (N, {self.input_shape[0]}), got {tuple(x.shape)}"
            )
        return self.net(x).squeeze(-1)


def check_generator(generator: nn.Module, data_shape: tuple[int, ...]) -> None:
    """Raise :class:`~deepnotes.core.errors.ConfigError` unless ``generator`` (with a
    ``latent`` attribute) maps one code to a sample of shape ``data_shape`` (no batch axis).

    The generator is run once on a zero code of batch 2 in eval mode (its mode is restored), so
    any ``nn.Module`` with ``latent`` can be checked, not only this module's.
    """
    latent = getattr(generator, "latent", None)
    if not isinstance(latent, int) or latent < 1:
        raise ConfigError("a generator must have an int attribute latent >= 1 (size of z)")
    ref = next(generator.parameters(), None)
    z = torch.zeros(2, latent, device=ref.device if ref is not None else "cpu")
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            shape = tuple(generator(z).shape[1:])
    finally:
        generator.train(was_training)
    if shape != tuple(data_shape):
        raise ConfigError(
            f"the generator makes samples of shape {shape} but the data have shape "
            f"{tuple(data_shape)}; match the generator's output to the data"
        )


class StackedLinear(nn.Module):
    r"""``E`` independent linear layers evaluated at once: ``(E, B, in) -> (E, B, out)``,
    :math:`y_k = x_k W_k^\top + b_k` for member :math:`k` (one batched matrix product).

    Training ``E`` small networks of one architecture (seeds, data sets) as one stacked network
    costs about as much per step as training one of them, because a step of a small MLP is
    dominated by per-operation overhead. Members never mix: the output of member ``k`` depends
    on its own weights and inputs only, so the gradient of a sum of per-member losses is each
    member's own gradient, and element-wise optimisers (Adam, SGD), weight clipping and
    spectral normalisation (per member) act on each member as on a separate network
    (tests/gans/test_models.py pins all of it).

    ``weight`` is ``(E, out, in)`` (each member in ``nn.Linear``'s layout), ``bias`` ``(E, out)``;
    :attr:`batch_dims` = 1 tells :func:`deepnotes.gans.spectral.spectral_norm` that the leading
    axis indexes members.
    """

    batch_dims = 1

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        if min(members, in_features, out_features) < 1:
            raise ConfigError(
                "members, in_features and out_features must be >= 1, got "
                f"{members}, {in_features}, {out_features}"
            )
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members, out_features))
        with torch.no_grad():
            for k in range(members):  # each member initialised as nn.Linear initialises itself
                layer = nn.Linear(in_features, out_features)
                self.weight[k].copy_(layer.weight)
                self.bias[k].copy_(layer.bias)

    @classmethod
    def stack(cls, layers: Sequence[nn.Linear]) -> StackedLinear:
        """The layers' copies stacked as members, in order (all of one shape, with biases)."""
        shapes = {(lay.in_features, lay.out_features, lay.bias is not None) for lay in layers}
        if len(layers) < 1 or len(shapes) != 1 or not next(iter(shapes))[2]:
            raise ConfigError(
                f"stack needs >= 1 linear layers of one shape, all with biases, got {shapes}"
            )
        first = layers[0]
        out = cls.__new__(cls)
        nn.Module.__init__(out)
        out.members, out.in_features, out.out_features = (
            len(layers),
            first.in_features,
            first.out_features,
        )
        out.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        out.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(E, B, in)`` -> ``(E, B, out)``."""
        if x.ndim != 3 or x.shape[0] != self.members or x.shape[2] != self.in_features:
            raise ValueError(
                f"expected inputs (E={self.members}, B, {self.in_features}), got {tuple(x.shape)}"
            )
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def member(self, k: int) -> nn.Linear:
        """A detached ``nn.Linear`` copy of member ``k`` (its effective, normalised weight
        when a parametrization such as spectral norm is registered)."""
        weight = self.weight  # the effective weight (a parametrization computes it)
        layer = nn.Linear(
            self.in_features, self.out_features, dtype=weight.dtype, device=weight.device
        )
        with torch.no_grad():
            layer.weight.copy_(weight[k])
            layer.bias.copy_(self.bias[k])
        return layer

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}"


def stack_mlps(networks: Sequence[nn.Sequential]) -> nn.Sequential:
    """Networks of one architecture (``nn.Linear`` layers and parameter-free activations) as
    one ``nn.Sequential`` of :class:`StackedLinear` members: ``(E, B, in) -> (E, B, out)``.
    Member ``k`` starts with exactly the weights of ``networks[k]``."""
    if not networks:
        raise ConfigError("stack_mlps needs at least one network")
    layers: list[nn.Module] = []
    for parts in zip(*networks, strict=True):
        if isinstance(parts[0], nn.Linear):
            layers.append(StackedLinear.stack(list(parts)))
        elif any(True for _ in parts[0].parameters()):
            kind = type(parts[0]).__name__
            raise ConfigError(f"stack_mlps stacks linear layers only, got {kind}")
        else:
            layers.append(copy.deepcopy(parts[0]))
    return nn.Sequential(*layers)


def unstack_mlp(stacked: nn.Sequential, k: int) -> nn.Sequential:
    """Member ``k`` of a :func:`stack_mlps` network as a plain ``(B, in) -> (B, out)`` network
    (a detached copy with the effective weights; read in eval mode, so that a spectral norm's
    power iteration does not advance)."""
    was_training = stacked.training
    stacked.eval()
    try:
        return nn.Sequential(
            *(
                layer.member(k) if isinstance(layer, StackedLinear) else copy.deepcopy(layer)
                for layer in stacked
            )
        )
    finally:
        stacked.train(was_training)
