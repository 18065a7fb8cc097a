r"""Autoencoders: bottleneck, overcomplete, denoising and sparse (notes, discussion 10, section 3
"Autoencoders").

An autoencoder is an encoder :math:`h = g_\phi(x)` and a decoder :math:`\hat x = f_\theta(h)`
trained to reconstruct their input; what forces a useful code is one of the notes' mechanisms:

- **dimensionality** (bottleneck): the code is smaller than the input. An *overcomplete* code
  (larger than the input) with nothing else may learn the identity;
- **sparsity**: the loss adds :math:`\lambda \sum_{j=1}^{D} |h_j|` (the notes' penalty) to the
  reconstruction loss;
- **denoising** (Vincent et al. 2008, "Extracting and composing robust features with denoising
  autoencoders"): the input is corrupted, the target is the clean image. The corruption here is
  the binary images' salt-and-pepper noise: every pixel flipped independently with probability
  ``noise`` (:func:`flip_noise`).

The images are binary, so the decoder outputs one logit per pixel and the reconstruction loss is
the Bernoulli negative log-likelihood (:func:`~deepnotes.generative.likelihood.bernoulli_nll`,
nats per image); :func:`pixel_error` is the share of pixels that the reconstruction thresholded at
0.5 gets wrong. Models are MLPs on the flattened pixels (:class:`Autoencoder`);
:func:`fit_autoencoder` trains one through the engine's Loop.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.engine import Loop
from deepnotes.data.binary import check_binary
from deepnotes.generative.likelihood import bernoulli_nll

CODE_ACTIVATIONS = ("linear", "relu")
KINDS = ("plain", "denoising", "sparse")
"""How a fit regularises: none (bottleneck or overcomplete by its size), input noise, L1."""


def flip_noise(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Salt-and-pepper noise on binary images: each pixel flipped (0 <-> 1) with probability
    ``p``, independently; same shape as ``x``."""
    if not 0 <= p <= 1:
        raise ValueError(f"flip probability must be in [0, 1], got {p}")
    flips = (torch.rand(x.shape, generator=generator) < p).to(x.device, x.dtype)
    return (x - flips).abs()  # x XOR flip


def sparsity_penalty(codes: torch.Tensor) -> torch.Tensor:
    r"""The notes' :math:`\sum_{j=1}^D |h_j|` per code, ``(N,)`` for ``(N, D)``."""
    return codes.abs().sum(-1)


def pixel_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Share of pixels where ``sigmoid(logits) >= 0.5`` differs from the 0/1 ``target``,
    ``(N,)``."""
    return ((logits >= 0).to(target.dtype) != target).flatten(1).to(torch.float64).mean(1)


def near_zero_fraction(codes: torch.Tensor, tol: float) -> float:
    """Share of the code entries with ``|h_j| < tol`` (over every code and unit)."""
    return float((codes.abs() < tol).to(torch.float64).mean())


class Autoencoder(nn.Module):
    """An MLP autoencoder of binary images.

    Arguments:
        image_shape: ``(C, H, W)``.
        code_size: width of the code ``h``.
        hidden: widths of the encoder's hidden layers (ReLU); the decoder mirrors them.
        code_activation: ``"linear"`` or ``"relu"`` (non-negative codes, exact zeros).

    Example:
        >>> ae = Autoencoder((1, 8, 8), code_size=8, hidden=(128,))
        >>> loss = bernoulli_nll(ae(x), x).mean()   # x: (N, 1, 8, 8) of 0/1
    """

    def __init__(
        self,
        image_shape: tuple[int, ...] = (1, 8, 8),
        code_size: int = 8,
        hidden: tuple[int, ...] = (128,),
        code_activation: str = "linear",
    ) -> None:
        super().__init__()
        if code_activation not in CODE_ACTIVATIONS:
            raise ValueError(
                f"code_activation must be one of {CODE_ACTIVATIONS}, got {code_activation!r}"
            )
        if code_size < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"code_size and hidden widths must be >= 1, got {code_size}, {hidden}")
        self.image_shape = tuple(image_shape)
        pixels = math.prod(self.image_shape)
        enc: list[nn.Module] = []
        for a, b in zip([pixels, *hidden], [*hidden, code_size], strict=True):
            enc += [nn.Linear(a, b), nn.ReLU()]
        if code_activation == "linear":
            enc.pop()
        dec: list[nn.Module] = []
        widths = [code_size, *reversed(hidden), pixels]
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            dec.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                dec.append(nn.ReLU())
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``(N, code_size)`` of binary images ``(N, C, H, W)``."""
        check_binary(x, self.image_shape, "Autoencoder")
        return self.encoder(x.flatten(1))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """Pixel logits ``(N, C, H, W)`` of codes ``(N, code_size)``."""
        return self.decoder(h).unflatten(-1, self.image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@dataclass(frozen=True)
class AESettings:
    """What determines a fitted autoencoder."""

    code_size: int = 8
    hidden: tuple[int, ...] = (128,)
    code_activation: str = "linear"
    kind: str = "plain"
    """"plain", "denoising" (input noise) or "sparse" (L1 on the code)."""
    noise: float = 0.0
    """Flip probability of a pixel of the input (denoising)."""
    l1: float = 0.0
    """lambda of the sparsity penalty (sparse)."""
    lr: float = 1e-3
    batch: int = 64
    steps: int = 3000
    every: int = 500

    def __post_init__(self) -> None:
        require(self.kind in KINDS, f"kind must be one of {KINDS}, got {self.kind!r}")
        require(
            self.code_activation in CODE_ACTIVATIONS,
            f"code_activation must be one of {CODE_ACTIVATIONS}, got {self.code_activation!r}",
        )
        require(
            0 <= self.noise < 0.5, f"noise must be a flip probability in [0, 0.5), got {self.noise}"
        )
        require(self.l1 >= 0, f"l1 must be >= 0, got {self.l1}")
        require((self.kind == "denoising") == (self.noise > 0), "noise > 0 exactly for denoising")
        require((self.kind == "sparse") == (self.l1 > 0), "l1 > 0 exactly for sparse")
        require(self.lr > 0 and self.batch >= 1, "lr must be > 0 and batch >= 1")
        require(1 <= self.every <= self.steps, "need 1 <= every <= steps")


def fit_autoencoder(
    settings: AESettings, ctx: RunContext, train: torch.Tensor, tag: str
) -> tuple[Autoencoder, list[dict[str, Any]]]:
    """Train an :class:`Autoencoder` on binary images ``train (N, C, H, W)`` with Adam on

    ``bernoulli_nll(decode(encode(corrupt(x))), x) + l1 * sum_j |h_j|`` (mean over a minibatch
    drawn with replacement), through the engine's Loop (tag ``tag``). Returns the model (eval
    mode, on ``ctx.device``) and the loop's records. Not cached: the caller wraps it.
    """
    with ctx.seeded(tag, "init"):
        model = Autoencoder(
            tuple(train.shape[1:]), settings.code_size, settings.hidden, settings.code_activation
        ).to(ctx.device)
    train = train.to(ctx.device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    data, noise = ctx.stream(tag, "batches"), ctx.stream(tag, "noise")

    def step(_: int) -> dict[str, float]:
        x = train[torch.randint(train.shape[0], (settings.batch,), generator=data).to(ctx.device)]
        inputs = flip_noise(x, settings.noise, noise) if settings.kind == "denoising" else x
        h = model.encode(inputs)
        reconstruction = bernoulli_nll(model.decode(h), x).mean()
        loss = reconstruction + settings.l1 * sparsity_penalty(h).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), "reconstruction": float(reconstruction.detach())}

    loop = Loop(
        ctx,
        tag=tag,
        track={"model": model, "opt": opt, "data": data, "noise": noise},
        progress=False,
    )
    result = loop.run(step, steps=settings.steps, every=settings.every)
    model.eval()
    return model, result.history
