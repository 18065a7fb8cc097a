r"""Inverted dropout in PyTorch, as the notes write it, and an MLP that uses it.

Notes, discussion 4, section 4 ("Dropout"). During training every hidden unit is kept with
probability :math:`p` (the notes' ``p``, "probability of keeping a unit active") and the kept
ones are divided by :math:`p`:

.. math::

    U = \frac{\mathbb{1}[u < p]}{p},\quad u \sim \mathcal{U}[0, 1) \text{ entrywise},
    \qquad H \leftarrow H \odot U,

which is the notes' ``U1 = (np.random.rand(*H1.shape) < p) / p; H1 *= U1``. Since
:math:`E[U] = p \cdot 1/p = 1`, the expected activation is unchanged, so at test time the
network is used as it is (the notes' ``predict``: no mask, no rescaling).

The NumPy version with its backward pass is
:func:`deepnotes.mechanics.normalization.dropout_forward`; this module is the one the trained
vision networks use (:class:`InvertedDropout` in :class:`DropoutMLP`), so that the experiments
measure this code, not ``torch.nn.Dropout``.

Deviation: the notes (and this module) speak of the keep probability ``p_keep``, PyTorch's
``nn.Dropout(p)`` of the drop probability ``1 - p_keep``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DropoutMLP", "InvertedDropout", "dropout_mask", "inverted_dropout"]


def _check_keep(p_keep: float) -> float:
    p_keep = float(p_keep)
    if not 0.0 < p_keep <= 1.0:
        raise ValueError(f"p_keep (the keep probability) must be in (0, 1], got {p_keep}")
    return p_keep


def dropout_mask(
    like: torch.Tensor, p_keep: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The notes' mask ``U = (rand < p) / p`` with the shape, dtype and device of ``like``.

    Arguments:
        like: the activations ``H`` the mask will multiply (any shape).
        p_keep: probability ``p`` of keeping a unit, in (0, 1].
        generator: the torch generator the uniforms come from (None: the global one). It must
            live on ``like``'s device.

    Returns:
        A tensor of 0s and ``1/p`` shaped like ``like``.

    Example:
        >>> U = dropout_mask(h, 0.5, torch.Generator().manual_seed(0))   # entries 0 or 2
    """
    p_keep = _check_keep(p_keep)
    u = torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    return (u < p_keep).to(like.dtype) / p_keep  # U, entries in {0, 1/p}


def inverted_dropout(
    h: torch.Tensor,
    p_keep: float,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``H * U`` with a fresh :func:`dropout_mask` in training; ``H`` itself at test time.

    The gradient flows through the same mask (``dL/dH = dL/dout * U``) by autograd.
    """
    if not training or _check_keep(p_keep) == 1.0:
        return h
    return h * dropout_mask(h, p_keep, generator)  # H *= U


class InvertedDropout(nn.Module):
    """Inverted dropout as a layer: :func:`inverted_dropout` in train mode, identity in eval mode.

    Masks come from the global torch generator (seed it, e.g. with ``ctx.seeded``, for
    reproducible training).

    Arguments:
        p_keep: probability of keeping a unit, in (0, 1] (1: the layer does nothing).

    Example:
        >>> layer = InvertedDropout(p_keep=0.5)
        >>> layer.eval()(h) is h
        True
    """

    def __init__(self, p_keep: float) -> None:
        super().__init__()
        self.p_keep = _check_keep(p_keep)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return inverted_dropout(h, self.p_keep, self.training)

    def extra_repr(self) -> str:
        return f"p_keep={self.p_keep:g}"


class DropoutMLP(nn.Module):
    """The notes' network: ``[Linear -> ReLU -> InvertedDropout] * len(hidden) -> Linear``,
    optionally with dropout on the input as well (Srivastava et al. 2014 keep inputs with
    probability 0.8 and hidden units with 0.5).

    With ``p_keep=1`` (and ``p_keep_input=1``) it has no dropout layers and, built from the same
    seed, the same weights as with any other keep probabilities (dropout has no parameters): the
    pair differs only by the masks.

    Arguments:
        in_features: input size D (images are flattened).
        hidden: widths of the hidden layers.
        out_features: number of classes.
        p_keep: keep probability of the dropout after every hidden ReLU (1: no dropout).
        p_keep_input: keep probability of the dropout on the input (1: none).

    Example:
        >>> net = DropoutMLP(64, (256, 256), 10, p_keep=0.5)
        >>> net(torch.randn(32, 64)).shape
        torch.Size([32, 10])
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        p_keep: float = 1.0,
        p_keep_input: float = 1.0,
    ) -> None:
        super().__init__()
        p_keep = _check_keep(p_keep)
        p_keep_input = _check_keep(p_keep_input)
        if min((in_features, out_features, *hidden)) < 1:
            raise ValueError(
                f"sizes must be >= 1, got in_features={in_features}, hidden={tuple(hidden)}, "
                f"out_features={out_features}"
            )
        layers: list[nn.Module] = []
        self.input_dropout = InvertedDropout(p_keep_input) if p_keep_input < 1.0 else None
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]  # H = max(0, W x + b)
            if p_keep < 1.0:
                layers.append(InvertedDropout(p_keep))  # H *= U
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)
        self.p_keep = p_keep
        self.p_keep_input = p_keep_input

    @property
    def dropout_layers(self) -> list[InvertedDropout]:
        """The hidden layers' dropout (the input's, if any, is :attr:`input_dropout`)."""
        return [m for m in self.net if isinstance(m, InvertedDropout)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, D)
        if self.input_dropout is not None:
            x = self.input_dropout(x)  # X *= U_0
        return self.net(x)  # (B, D) -> (B, out_features)
