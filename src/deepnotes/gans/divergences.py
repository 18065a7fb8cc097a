r"""One-dimensional densities and the divergences of the GAN game, computed by integration.

The tools of ``gans.optimal_discriminator`` and of the problems of :mod:`deepnotes.gans.problems`:
:class:`Mixture1D` (a Gaussian mixture with its exact density), a fine integration grid,
:func:`optimal_logit` (the logit of :math:`D^* = p / (p + p_G)`), the game's value
:func:`game_value`, :func:`jensen_shannon`, and LSGAN's optimum and Pearson :math:`\chi^2`
(:func:`lsgan_optimum`, :func:`pearson_mao`). Integrals are trapezoid sums in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepnotes.core.errors import UsageError

GRID = (-8.0, 8.0, 32001)
"""Integration grid of the problems: from, to, points (spacing 5e-4)."""


@dataclass(frozen=True)
class Mixture1D:
    """A 1-D Gaussian mixture with a closed-form density: ``weights`` (sum 1), ``means``,
    ``stds`` (> 0), one entry per component."""

    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    def __post_init__(self) -> None:
        k = len(self.weights)
        if k < 1 or len(self.means) != k or len(self.stds) != k:
            raise UsageError(
                f"a mixture needs as many weights, means and stds (>= 1), got {k}, "
                f"{len(self.means)}, {len(self.stds)}"
            )
        if min(self.stds) <= 0 or min(self.weights) < 0 or abs(sum(self.weights) - 1) > 1e-9:
            raise UsageError(
                f"stds must be > 0 and weights >= 0 summing to 1, got {self.stds}, {self.weights}"
            )

    def _params(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(
            torch.tensor(v, dtype=like.dtype) for v in (self.weights, self.means, self.stds)
        )

    def log_pdf(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log \sum_k w_k \mathcal N(x; \mu_k, \sigma_k^2)`, same shape as ``x``."""
        w, mu, sigma = self._params(x)
        z = (x[..., None] - mu) / sigma  # (..., K)
        log_normal = -0.5 * z**2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(log_normal + torch.log(w), dim=-1)

    def pdf(self, x: torch.Tensor) -> torch.Tensor:
        """The density, same shape as ``x``."""
        return self.log_pdf(x).exp()

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws ``(n, 1)`` (float32): a component, then its Gaussian."""
        w, mu, sigma = self._params(torch.zeros((), dtype=torch.float32))
        k = torch.multinomial(w, n, replacement=True, generator=generator)  # (n,)
        return (mu[k] + sigma[k] * torch.randn(n, generator=generator))[:, None]


def grid_1d(lo: float = GRID[0], hi: float = GRID[1], n: int = GRID[2]) -> torch.Tensor:
    """``n`` equally spaced float64 points from ``lo`` to ``hi``, ``(n,)``."""
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def integrate(values: torch.Tensor, x: torch.Tensor) -> float:
    """Trapezoid rule of ``values`` ``(n,)`` over the grid ``x`` ``(n,)``."""
    return float(torch.trapezoid(values, x))


def optimal_logit(log_p: torch.Tensor, log_p_g: torch.Tensor) -> torch.Tensor:
    r"""The optimal discriminator as a logit, :math:`\log p - \log p_G`, from log-densities (so
    :math:`D^* = \sigma(\cdot) = p / (p + p_G)` never under- or overflows)."""
    return log_p - log_p_g


def game_value(logit: torch.Tensor, p: torch.Tensor, p_g: torch.Tensor, x: torch.Tensor) -> float:
    r"""The minimax game's value :math:`\int p \log D + p_G \log(1 - D)\,dx` of the
    discriminator :math:`D = \sigma(\text{logit})` on the grid ``x``."""
    log_d, log_not_d = F.logsigmoid(logit), F.logsigmoid(-logit)  # log D, log(1 - D)
    return integrate(p * log_d + p_g * log_not_d, x)


def jensen_shannon(p: torch.Tensor, p_g: torch.Tensor, x: torch.Tensor) -> float:
    r""":math:`\mathrm{JSD}(p \| p_G) = \tfrac12 KL(p \| m) + \tfrac12 KL(p_G \| m)`,
    :math:`m = (p + p_G)/2`, in nats."""
    m = 0.5 * (p + p_g)
    kl_p = torch.special.xlogy(p, p) - torch.special.xlogy(p, m)
    kl_g = torch.special.xlogy(p_g, p_g) - torch.special.xlogy(p_g, m)
    return 0.5 * integrate(kl_p, x) + 0.5 * integrate(kl_g, x)


def lsgan_optimum(
    p: torch.Tensor, p_g: torch.Tensor, x: torch.Tensor, a: float, b: float, c: float
) -> tuple[torch.Tensor, float]:
    r"""LSGAN's optimal discriminator :math:`D^* = (b p + a p_G)/(p + p_G)` and the generator's
    objective at it, :math:`C(G) = \tfrac12 \int (p + p_G)(D^* - c)^2 dx`."""
    total = p + p_g
    d_star = (b * p + a * p_g) / total.clamp_min(1e-300)
    return d_star, 0.5 * integrate(total * (d_star - c) ** 2, x)


def pearson_mao(p: torch.Tensor, p_g: torch.Tensor, x: torch.Tensor) -> float:
    r""":math:`\chi^2_{\text{Pearson}}(p + p_G \| 2 p_G) = \int (2 p_G - (p + p_G))^2 / (p + p_G)
    \,dx` (Mao et al.'s form)."""
    total = p + p_g
    return integrate((2 * p_g - total) ** 2 / total.clamp_min(1e-300), x)


PAIRS: dict[str, tuple[Mixture1D, Mixture1D]] = {
    "overlapping": (
        Mixture1D((0.5, 0.5), (-1.0, 1.2), (0.45, 0.6)),
        Mixture1D((1.0,), (0.3,), (1.1,)),
    ),
    "identical": (Mixture1D((1.0,), (0.0,), (1.0,)), Mixture1D((1.0,), (0.0,), (1.0,))),
    "nearly disjoint": (Mixture1D((1.0,), (-2.0,), (0.3,)), Mixture1D((1.0,), (2.0,), (0.3,))),
}
"""Density pairs ``(p, p_G)`` of the problems; "overlapping" is also experiment 1's."""
