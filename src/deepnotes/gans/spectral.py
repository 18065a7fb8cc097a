r"""Spectral normalisation: every linear layer divided by its largest singular value.

Notes: discussion 11, section 1.3.1 "Techniques for Lipschitz Continuity". The Lipschitz constant
of :math:`g(x) = W x` is :math:`\sup_{\|x\|_2 = 1} \|W x\|_2 = \sigma(W)`, the spectral norm
(largest singular value); the bias does not change it and ReLU is 1-Lipschitz, so a network whose
every layer is :math:`W / \sigma(W)` is 1-Lipschitz by the composition rule (problem 2).
:math:`\sigma(W)` is estimated by power iteration (Miyato et al., 2018,
https://arxiv.org/abs/1802.05957): with unit vectors :math:`u, v`,

.. math:: u \leftarrow \frac{W v}{\|W v\|_2}, \qquad v \leftarrow \frac{W^\top u}{\|W^\top u\|_2},
          \qquad \sigma(W) \approx u^\top W v .

A weight of more than two dimensions (a convolution's ``(out, in, k, k)``) is reshaped to a matrix
``(out, -1)`` (for a transposed convolution, whose output channels are dimension 1, that dimension
is moved to the front first, as torch does).

Deviation: the notes renormalise the stored weight after each gradient update
(:math:`W \leftarrow W / \sigma(W)`); here, as in Miyato et al. and torch, the layer keeps the raw
weight and uses :math:`W / \sigma(W)` in its forward pass (a parametrization), so the gradient
flows through :math:`\sigma` and one power-iteration step per training forward suffices (``u``,
``v`` persist as buffers and are updated in training mode only). The computation matches
``torch.nn.utils.parametrizations.spectral_norm`` given the same ``u, v``
(tests/gans/test_spectral.py pins it).

Example:
    >>> critic = nn.Sequential(spectral_norm(nn.Linear(2, 64)), nn.ReLU(),
    ...                        spectral_norm(nn.Linear(64, 1)))
    >>> largest_singular_value(critic[0].weight)       # ~1 after a few training forwards
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from deepnotes.core.errors import UsageError


def weight_matrix(weight: torch.Tensor, dim: int = 0, batch_dims: int = 0) -> torch.Tensor:
    """``weight`` as a matrix ``(weight.shape[dim], -1)``: dimension ``dim`` moved to the front,
    the rest flattened; with ``batch_dims`` leading axes kept (stacked layers, one matrix per
    member), ``dim`` counts after them and the result is ``(*batch, H, W)``."""
    if weight.dim() < 2 + batch_dims:
        shape = tuple(weight.shape)
        raise UsageError(
            f"spectral norm needs a weight of >= {2 + batch_dims} dimensions, got {shape}"
        )
    if dim != 0:
        weight = weight.movedim(batch_dims + dim, batch_dims)
    return weight.flatten(batch_dims + 1)


@torch.no_grad()
def power_iteration(
    matrix: torch.Tensor, u: torch.Tensor, v: torch.Tensor, iters: int, eps: float = 1e-12
) -> None:
    """``iters`` steps of power iteration on ``matrix`` ``(..., H, W)``, updating the unit
    vectors ``u`` ``(..., H)`` and ``v`` ``(..., W)`` in place (left and right singular-vector
    estimates; leading axes index independent matrices)."""
    for _ in range(iters):
        u.copy_(F.normalize((matrix @ v.unsqueeze(-1)).squeeze(-1), dim=-1, eps=eps))  # W v
        v.copy_(F.normalize((matrix.mT @ u.unsqueeze(-1)).squeeze(-1), dim=-1, eps=eps))  # W^T u


def _sigma(matrix: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``u^T W v`` per matrix: ``(..., H, W)``, ``(..., H)`` and ``(..., W)`` -> ``(...)``."""
    return (u.unsqueeze(-2) @ matrix @ v.unsqueeze(-1)).squeeze(-1).squeeze(-1)


def largest_singular_value(
    weight: torch.Tensor,
    iters: int = 100,
    generator: torch.Generator | None = None,
    dim: int = 0,
) -> torch.Tensor:
    r"""Power-iteration estimate of :math:`\sigma(W)`, a 0-d tensor (no graph).

    Arguments:
        weight: a matrix ``(out, in)`` or a convolution weight (reshaped to ``(out, -1)``).
        iters: power-iteration steps; the error shrinks like
            :math:`(\sigma_2 / \sigma_1)^{2\,\text{iters}}`.
        generator: the source of the random start vector (default: a generator seeded 0).
        dim: the output dimension of ``weight`` (1 for a transposed convolution).
    """
    if iters < 1:
        raise UsageError(f"power iteration needs iters >= 1, got {iters}")
    matrix = weight_matrix(weight.detach(), dim)  # (H, W)
    if generator is None:
        generator = torch.Generator(device=matrix.device).manual_seed(0)
    h, w = matrix.shape
    u = torch.empty(h, device=matrix.device, dtype=matrix.dtype)
    v = F.normalize(
        torch.randn(w, generator=generator, device=matrix.device, dtype=matrix.dtype), dim=0
    )
    power_iteration(matrix, u, v, iters)
    return _sigma(matrix, u, v)


class SpectralNorm(nn.Module):
    r"""The parametrization :math:`W \mapsto W / \sigma(W)` with a persistent power iteration.

    Buffers ``_u`` ``(H,)`` and ``_v`` ``(W,)`` (named as torch's, so that a test can copy
    them; ``(E, H)`` and ``(E, W)`` for a weight with ``batch_dims=1`` leading member axis,
    one power iteration per member) start random (draw them under ``ctx.seeded``) and are
    refined by 15 steps at construction; each forward in training mode runs
    ``n_power_iterations`` more. :math:`\sigma` is computed with detached copies of ``u, v``,
    so the gradient flows through :math:`u^\top W v` only.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        n_power_iterations: int = 1,
        dim: int = 0,
        eps: float = 1e-12,
        batch_dims: int = 0,
    ) -> None:
        super().__init__()
        if n_power_iterations < 1:
            raise UsageError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        self.n_power_iterations, self.dim, self.eps = n_power_iterations, dim, eps
        self.batch_dims = batch_dims
        matrix = weight_matrix(weight.detach(), dim, batch_dims)  # (*batch, H, W)
        *batch, h, w = matrix.shape
        u, v = matrix.new_empty(*batch, h).normal_(), matrix.new_empty(*batch, w).normal_()
        self.register_buffer("_u", F.normalize(u, dim=-1, eps=eps))
        self.register_buffer("_v", F.normalize(v, dim=-1, eps=eps))
        power_iteration(matrix, self._u, self._v, 15, eps)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight_matrix(weight, self.dim, self.batch_dims)  # (*batch, H, W)
        if self.training:
            power_iteration(matrix.detach(), self._u, self._v, self.n_power_iterations, self.eps)
        # clones: a later forward's in-place update must not change this graph's u, v
        u, v = self._u.clone(), self._v.clone()
        sigma = _sigma(matrix, u, v)  # u^T W v, (*batch,)
        return weight / sigma.reshape(sigma.shape + (1,) * (weight.dim() - self.batch_dims))


def spectral_norm(
    module: nn.Module, n_power_iterations: int = 1, name: str = "weight", eps: float = 1e-12
) -> nn.Module:
    """Register :class:`SpectralNorm` on ``module.<name>`` and return ``module``.

    The output dimension is 1 for transposed convolutions, 0 otherwise. A module with a
    ``batch_dims`` attribute (:class:`deepnotes.gans.models.StackedLinear`) holds one weight
    per member along its leading axes, and each member is normalised by its own sigma.
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, torch.Tensor):
        raise UsageError(f"{type(module).__name__} has no tensor parameter {name!r}")
    transposed = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    dim = 1 if isinstance(module, transposed) else 0
    parametrize.register_parametrization(
        module,
        name,
        SpectralNorm(weight, n_power_iterations, dim, eps, getattr(module, "batch_dims", 0)),
    )
    return module
