"""Toy 2-D densities: shapes, seeding, moments against sklearn, exact log-densities against
Monte Carlo and quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_circles, make_moons

from deepnotes.core import stats
from deepnotes.core.errors import UsageError
from deepnotes.data import toy2d


@pytest.mark.parametrize("name", sorted(toy2d.SAMPLERS))
def test_every_density_samples_seeded_float_points(name: str) -> None:
    a = toy2d.sample(name, 500, seed=3)
    assert a.shape == (500, 2) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, toy2d.sample(name, 500, seed=3))
    g = torch.Generator().manual_seed(3)
    first, second = toy2d.sample(name, 10, g), toy2d.sample(name, 10, g)
    assert not torch.equal(first, second)  # the generator is advanced


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            lambda n: toy2d.moons(n, 0, noise=0.05),
            lambda n: make_moons(n, noise=0.05, random_state=0),
        ),
        (
            lambda n: toy2d.circles(n, 0, noise=0.05, factor=0.5),
            lambda n: make_circles(n, noise=0.05, factor=0.5, random_state=0),
        ),
    ],
)
def test_moons_and_circles_match_sklearn_in_distribution(ours, theirs) -> None:  # type: ignore[no-untyped-def]
    n = 20_000
    x = ours(n).double().numpy()
    y = theirs(n)[0]
    # first and second moments agree within a few standard errors
    for f in (lambda v: v[:, 0], lambda v: v[:, 1], lambda v: v[:, 0] ** 2, lambda v: v[:, 1] ** 2):
        mean, se = stats.mean_se(f(x))
        assert abs(mean - f(y).mean()) < 5 * se * math.sqrt(2)
    # and the distributions of |x| agree: quantiles (away from the circles' gap at the median)
    levels = [0.05, 0.25, 0.75, 0.95]
    qx = np.quantile(np.hypot(x[:, 0], x[:, 1]), levels)
    qy = np.quantile(np.hypot(y[:, 0], y[:, 1]), levels)
    assert np.abs(qx - qy).max() < 0.02


def test_ring_and_grid_follow_the_veegan_pacgan_protocol() -> None:
    ring, grid = toy2d.ring(), toy2d.grid()
    assert ring.means.shape == (8, 2) and ring.std == 0.02
    assert torch.allclose(ring.means.norm(dim=1), torch.full((8,), 2.0))
    assert torch.allclose(ring.means[0], torch.tensor([0.0, 2.0]))  # first mode on the y-axis
    assert grid.means.shape == (25, 2) and grid.std == 0.05
    assert sorted(set(grid.means[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    x = ring.sample(8000, 0)
    nearest = torch.cdist(x, ring.means).argmin(dim=1)
    counts = torch.bincount(nearest, minlength=8)
    assert counts.min() > 800  # every mode visited, about 1000 each
    residual = x - ring.means[nearest]
    assert abs(residual.std().item() - 0.02) < 0.001


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_mixture_log_density_integrates_to_one_and_matches_scipy(name: str) -> None:
    from scipy.stats import multivariate_normal

    mixture = toy2d.ring() if name == "ring" else toy2d.grid()
    x = mixture.sample(200, 1).double()
    ours = toy2d.log_density(name, x).numpy()
    dens = np.mean(
        [
            multivariate_normal(m.double().numpy(), mixture.std**2).pdf(x.numpy())
            for m in mixture.means
        ],
        axis=0,
    )
    np.testing.assert_allclose(ours, np.log(dens), rtol=1e-9, atol=1e-9)
    # quadrature around one mode: each holds 1/K of the mass
    mean = mixture.means[0].double()
    step = 4 * mixture.std / 100  # +-4 std in 201 points per axis
    ticks = torch.arange(-100, 101, dtype=torch.float64) * step
    pts = mean + torch.cartesian_prod(ticks, ticks)
    mass = float(mixture.log_prob(pts).exp().sum() * step**2)
    assert abs(mass - 1 / len(mixture.means)) < 1e-4


def test_checkerboard_is_uniform_on_the_black_squares() -> None:
    x = toy2d.checkerboard(40_000, 0)
    logp = toy2d.log_density("checkerboard", x)
    assert torch.equal(logp, torch.full_like(logp, math.log(1 / 8)))  # all samples on black
    cells = (torch.floor(x[:, 0]) + 2) * 4 + torch.floor(x[:, 1]) + 2
    counts = torch.bincount(cells.long(), minlength=16).double()
    black = counts > 0
    assert int(black.sum()) == 8
    assert (counts[black] / len(x) - 1 / 8).abs().max() < 0.01
    # quadrature: the density integrates to 1 over [-3, 3]^2
    ticks = torch.linspace(-3, 3, 601, dtype=torch.float64)[:-1] + 0.005
    grid = torch.cartesian_prod(ticks, ticks)
    assert abs(float(toy2d.checkerboard_log_prob(grid).exp().sum() * 0.01**2) - 1) < 1e-9


def test_bad_input_names_what_was_expected() -> None:
    with pytest.raises(UsageError, match="choose one of"):
        toy2d.sample("spiral", 10)
    with pytest.raises(UsageError, match="closed-form"):
        toy2d.log_density("moons", torch.zeros(3, 2))
    with pytest.raises(UsageError, match=r"shape \(n, 2\)"):
        toy2d.log_density("ring", torch.zeros(3, 3))
    with pytest.raises(UsageError, match="n must be"):
        toy2d.moons(0)
    with pytest.raises(UsageError, match="noise"):
        toy2d.moons(5, noise=-1.0)
    with pytest.raises(TypeError, match="seed"):
        toy2d.moons(5, seed=1.5)  # type: ignore[arg-type]
