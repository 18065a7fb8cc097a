r"""Two-dimensional toy densities: two moons, circles, the 8-Gaussian ring, the 25-Gaussian grid
and the checkerboard, for flows (discussion 10, section 4.3) and GANs (discussion 11).

Each density samples ``(n, 2)`` float32 tensors from an int seed or a CPU ``torch.Generator``
(which is advanced), and the ones with a closed-form density (the Gaussian mixtures and the
checkerboard) give their exact log-density, in nats, for tests and for reading a model's NLL
against the data's entropy.

- **moons**: sklearn's ``make_moons`` (Pedregosa et al., 2011): the outer moon
  :math:`(\cos t, \sin t)` and the inner one :math:`(1 - \cos t, 1/2 - \sin t)`,
  :math:`t \in [0, \pi]`, each point a fair coin between the two, plus isotropic Gaussian
  noise of standard deviation ``noise``. Deviation: sklearn spaces ``t`` evenly
  (``linspace``) and splits the points exactly in half; here ``t ~ U[0, pi]`` and the moon is a
  coin flip, so that every sample is i.i.d. from the same density (the evenly spaced grid is
  that density's quantiles; tests/data/test_toy2d.py compares the moments with sklearn's).
- **circles**: sklearn's ``make_circles``: the unit circle and one of radius ``factor``
  (0.5), angle uniform, a fair coin between them, Gaussian noise ``noise``; same deviation.
- **ring**: eight Gaussians of standard deviation 0.02 on a circle of radius 2, equal weights,
  the first at angle 0 measured from the y-axis (means :math:`2(\sin\theta_k, \cos\theta_k)`,
  :math:`\theta_k = 2\pi k/8`). Source: the ``sample_mog(n_mixture=8, std=0.02, radius=2.0)``
  of the unrolled-GAN code (Metz et al., 2017) that VEEGAN (Srivastava et al., 2017) compares
  on; PacGAN's code (Lin et al., 2018, ``synthetic_data_experiments/2DRing_GAN&PacGAN``) uses
  the same ring at radius 1 and std 0.01 (the same shape scaled by 1/2).
- **grid**: 25 Gaussians of standard deviation 0.05 with means at
  :math:`\{-4, -2, 0, 2, 4\}^2`, equal weights. Source: PacGAN's code
  (``synthetic_data_experiments/2DGrid_GAN&PacGAN/config.py``: means
  ``product(range(-4, 5, 2), range(-4, 5, 2))``, variances ``0.05 ** 2``), the VEEGAN protocol.
- **checkerboard**: uniform on the 8 black unit squares of a 4 x 4 board on
  :math:`[-2, 2]^2` (a square is black when the integer parts of its corner sum to an even
  number), the checkerboard of the FFJORD paper (Grathwohl et al., 2019); density 1/8 on them.

Example:
    >>> x = sample("ring", 512, seed=0)          # (512, 2)
    >>> log_density("ring", x).mean()            # nats, the ring's negative entropy
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepnotes.core.errors import UsageError

Seed = int | torch.Generator

MOONS_NOISE = 0.05
"""Default noise of the two moons (the value of the flows experiment)."""
CIRCLES_NOISE = 0.05
CIRCLES_FACTOR = 0.5
RING_MODES, RING_RADIUS, RING_STD = 8, 2.0, 0.02
GRID_SIDE, GRID_SPACING, GRID_STD = 5, 2.0, 0.05
CHECKERBOARD_DENSITY = 1.0 / 8.0


def _generator(seed: Seed) -> torch.Generator:
    """``seed`` itself, or a new CPU generator seeded with it."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"n must be an integer >= 1, got {n!r}")
    return n


def _check_points(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UsageError(f"expected points of shape (n, 2), got {shape}")
    return x


# ------------------------------------------------------------------------------ Gaussian mixtures
@dataclass(frozen=True)
class GaussianMixture2D:
    """Equal-weight mixture of isotropic Gaussians in the plane: ``means`` (K, 2), one ``std``."""

    means: torch.Tensor
    std: float

    def sample(self, n: int, seed: Seed = 0) -> torch.Tensor:
        """``n`` points ``(n, 2)``: a uniform component, then its Gaussian."""
        g = _generator(seed)
        k = torch.randint(len(self.means), (_check_n(n),), generator=g)  # (n,)
        return self.means[k] + self.std * torch.randn(n, 2, generator=g)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log \frac1K \sum_k \mathcal N(x; \mu_k, \sigma^2 I)` per point, ``(n,)``."""
        x = _check_points(x)
        means = self.means.to(x)
        d2 = (x[:, None, :] - means[None]).pow(2).sum(-1)  # (n, K): squared distances
        log_normal = -d2 / (2 * self.std**2) - math.log(2 * math.pi * self.std**2)  # (n, K)
        return torch.logsumexp(log_normal, dim=1) - math.log(len(self.means))


def ring(modes: int = RING_MODES, radius: float = RING_RADIUS, std: float = RING_STD):
    """The ring of ``modes`` Gaussians (see the module docstring)."""
    theta = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    means = radius * torch.stack([torch.sin(theta), torch.cos(theta)], dim=1)
    return GaussianMixture2D(means.float(), std)


def grid(side: int = GRID_SIDE, spacing: float = GRID_SPACING, std: float = GRID_STD):
    """The ``side x side`` grid of Gaussians centred on the origin (see the module docstring)."""
    ticks = spacing * (torch.arange(side, dtype=torch.float32) - (side - 1) / 2)
    means = torch.cartesian_prod(ticks, ticks)  # (side^2, 2)
    return GaussianMixture2D(means, std)


# ------------------------------------------------------------------------------ the other shapes
def moons(n: int, seed: Seed = 0, noise: float = MOONS_NOISE) -> torch.Tensor:
    """Two interleaving half circles, ``(n, 2)`` (see the module docstring)."""
    g = _generator(seed)
    n = _check_n(n)
    if not noise >= 0:
        raise UsageError(f"noise must be >= 0, got {noise}")
    t = math.pi * torch.rand(n, generator=g)  # angle along the moon
    inner = torch.rand(n, generator=g) < 0.5  # which moon
    outer_xy = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    inner_xy = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    x = torch.where(inner[:, None], inner_xy, outer_xy)
    return x + noise * torch.randn(n, 2, generator=g)


def circles(
    n: int, seed: Seed = 0, noise: float = CIRCLES_NOISE, factor: float = CIRCLES_FACTOR
) -> torch.Tensor:
    """Two concentric circles of radius 1 and ``factor``, ``(n, 2)``."""
    g = _generator(seed)
    n = _check_n(n)
    if not noise >= 0 or not 0 < factor < 1:
        raise UsageError(f"need noise >= 0 and 0 < factor < 1, got {noise}, {factor}")
    t = 2 * math.pi * torch.rand(n, generator=g)
    radius = torch.where(torch.rand(n, generator=g) < 0.5, factor, 1.0)
    x = radius[:, None] * torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    return x + noise * torch.randn(n, 2, generator=g)


def checkerboard(n: int, seed: Seed = 0) -> torch.Tensor:
    """Uniform on the 8 black unit squares of the 4 x 4 board on [-2, 2]^2, ``(n, 2)``."""
    g = _generator(seed)
    n = _check_n(n)
    u = 4 * torch.rand(n, generator=g) - 2  # x in [-2, 2): its column
    column = torch.floor(u)
    # the black rows of a column: floor(y) + floor(x) even; pick one of the two, then a point
    parity = torch.remainder(column, 2)  # 0 or 1
    row = 2 * torch.randint(2, (n,), generator=g) - 2 + parity  # in {-2, 0} or {-1, 1}
    v = row + torch.rand(n, generator=g)
    return torch.stack([u, v], dim=1)


def checkerboard_log_prob(x: torch.Tensor) -> torch.Tensor:
    """``log(1/8)`` on the black squares, ``-inf`` elsewhere, ``(n,)``."""
    x = _check_points(x)
    inside = (x.abs() <= 2).all(dim=1)
    black = torch.remainder(torch.floor(x).sum(dim=1), 2) == 0
    value = torch.full_like(x[:, 0], math.log(CHECKERBOARD_DENSITY))
    return torch.where(inside & black, value, torch.full_like(value, -math.inf))


# ------------------------------------------------------------------------------ by name
SAMPLERS: dict[str, Callable[[int, Seed], torch.Tensor]] = {
    "moons": lambda n, seed: moons(n, seed),
    "circles": lambda n, seed: circles(n, seed),
    "ring": lambda n, seed: ring().sample(n, seed),
    "grid": lambda n, seed: grid().sample(n, seed),
    "checkerboard": lambda n, seed: checkerboard(n, seed),
}
"""Every toy density by name, at its default parameters."""
LOG_DENSITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ring": lambda x: ring().log_prob(x),
    "grid": lambda x: grid().log_prob(x),
    "checkerboard": checkerboard_log_prob,
}
"""The toy densities with a closed-form log-density (moons and circles have none: their noise
is convolved with a curve)."""


def sample(name: str, n: int, seed: Seed = 0) -> torch.Tensor:
    """``n`` points ``(n, 2)`` of the toy density ``name`` (one of :data:`SAMPLERS`)."""
    if name not in SAMPLERS:
        raise UsageError(f"unknown toy density {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name](n, seed)


def log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    """The exact log-density ``(n,)`` in nats of ``name`` (one of :data:`LOG_DENSITIES`)."""
    if name not in LOG_DENSITIES:
        raise UsageError(
            f"no closed-form density for {name!r}; those with one: {sorted(LOG_DENSITIES)}"
        )
    return LOG_DENSITIES[name](x)
