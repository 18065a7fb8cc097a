r"""Likelihood bookkeeping shared by every model of the generative room.

A model of binary images reports its negative log-likelihood in **nats per image** (the sum
over pixels of :math:`-\log p`), and :func:`bits_per_dim` converts it to **bits per
dimension** (:math:`\text{nats} / (D \ln 2)`, ``D`` pixels), the two units of the literature.
:func:`bernoulli_nll` is the per-image NLL of Bernoulli pixels given logits;
:class:`IndependentBernoulli` is the baseline every model must beat: each pixel its own
Bernoulli with the training frequency (add-one smoothed so that no test pixel has
probability 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deepnotes.data.binary import check_binary


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """:math:`-\\sum_i [x_i \\log \\sigma(l_i) + (1 - x_i) \\log(1 - \\sigma(l_i))]` per image,
    shape ``(N,)``, for logits and 0/1 targets of the same shape ``(N, ...)``."""
    if logits.shape != x.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and x {tuple(x.shape)} must match")
    per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.flatten(1).sum(1)


def bits_per_dim(nats_per_image: float | torch.Tensor, dims: int) -> float | torch.Tensor:
    """Nats per image to bits per dimension: ``nats / (dims ln 2)``."""
    return nats_per_image / (dims * math.log(2.0))


class IndependentBernoulli:
    """Each pixel an independent Bernoulli with its (add-one smoothed) training frequency.

    Example:
        >>> base = IndependentBernoulli(train_images)        # (N, 1, 8, 8) of 0/1
        >>> base.nll(test_images).mean()                    # nats per image
    """

    def __init__(self, train: torch.Tensor) -> None:
        check_binary(train, tuple(train.shape[1:]), "IndependentBernoulli")
        self.shape = tuple(train.shape[1:])
        self.p = (train.sum(0) + 1.0) / (train.shape[0] + 2.0)  # (C, H, W), add-one smoothing

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Nats per image, ``(N,)``."""
        check_binary(x, self.shape, "IndependentBernoulli")
        logits = torch.logit(self.p.to(x.dtype)).expand_as(x)
        return bernoulli_nll(logits, x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images ``(n, C, H, W)`` of 0/1."""
        return torch.bernoulli(self.p.expand(n, *self.shape), generator=generator)
