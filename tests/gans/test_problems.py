"""The GAN problems (discussion 11, part 1) and the 1-D density tools, against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import deepnotes.gans.divergences as dv
import deepnotes.gans.problems as gp
from deepnotes.core.catalog import Problem, problems
from deepnotes.core.errors import UsageError


def entries() -> dict[str, Problem]:
    return {p.name: p for p in problems(["gans"]) if p.fn.__module__ == gp.__name__}


def answer(fragment: str) -> dict:
    (entry,) = [p for name, p in entries().items() if fragment in name]
    return dict(entry.fn().quantities)


def test_mixture_density_integrates_to_one_and_samples_match() -> None:
    p, _ = dv.PAIRS["overlapping"]
    x = dv.grid_1d()
    assert abs(dv.integrate(p.pdf(x), x) - 1) < 1e-10
    mean = dv.integrate(x * p.pdf(x), x)
    torch.testing.assert_close(mean, 0.5 * -1.0 + 0.5 * 1.2, rtol=0, atol=1e-10)
    draws = p.sample(200_000, torch.Generator().manual_seed(0))
    assert draws.shape == (200_000, 1) and abs(draws.mean().item() - mean) < 0.01


def test_mixture_rejects_bad_parameters() -> None:
    with pytest.raises(UsageError, match="as many"):
        dv.Mixture1D((1.0,), (0.0, 1.0), (1.0,))
    with pytest.raises(UsageError, match="summing to 1"):
        dv.Mixture1D((0.5,), (0.0,), (1.0,))


def test_jsd_limits_identical_and_disjoint() -> None:
    x = dv.grid_1d()
    same = dv.Mixture1D((1.0,), (0.0,), (1.0,)).pdf(x)
    far_a = dv.Mixture1D((1.0,), (-4.0,), (0.3,)).pdf(x)
    far_b = dv.Mixture1D((1.0,), (4.0,), (0.3,)).pdf(x)
    assert abs(dv.jensen_shannon(same, same, x)) < 1e-12
    assert abs(dv.jensen_shannon(far_a, far_b, x) - math.log(2)) < 1e-9


def test_registered_with_their_sources() -> None:
    sources = sorted(p.source for p in entries().values())
    assert len(sources) == 4
    assert any("problem 1" in s for s in sources) and any("problem 2" in s for s in sources)


def test_problem_1_numerical_maximiser_is_d_star() -> None:
    got = answer("Optimal discriminator")
    assert got["max |numerical maximiser - p / (p + p_G)|"] < 1e-6
    assert all(v < got["V(D*)"] for v in got["V at logit(D*) -+ 0.2 (both smaller)"])


def test_jsd_identity_for_every_pair() -> None:
    (rows,) = answer("2 JSD").values()
    for name, value, _jsd, target, diff in rows:
        assert diff < 1e-9 and abs(value - target) < 1e-9, name
    by_name = {r[0]: r for r in rows}
    assert abs(by_name["identical"][1] + math.log(4)) < 1e-9
    assert abs(by_name["nearly disjoint"][2] - math.log(2)) < 1e-6


def test_problem_2_composition_bound_holds() -> None:
    got = answer("Composition")
    bound, slope = got["f o g: L1 L2 and the largest measured slope"]
    assert slope <= bound and slope > 0.95 * bound  # tight: both maxima at t = 0
    product, grad = got["product bound and the largest gradient norm"]
    assert grad <= product
    assert math.isclose(product, math.prod(got["ReLU net 4-32-32-1: layers' spectral norms"]))


def test_lsgan_pearson_identity() -> None:
    (rows,) = answer("Pearson").values()
    for _, two_c, chi2, diff, two_c_01 in rows:
        assert diff < 1e-9 and two_c > 0 and abs(two_c_01 - chi2) > 0.1


def test_lsgan_optimum_is_the_pointwise_minimiser() -> None:
    x = dv.grid_1d(-4, 4, 801)
    p, p_g = (m.pdf(x) for m in dv.PAIRS["overlapping"])
    d_star, _ = dv.lsgan_optimum(p, p_g, x, a=-1.0, b=1.0, c=0.0)
    candidates = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    loss = p[:, None] * (candidates - 1) ** 2 + p_g[:, None] * (candidates + 1) ** 2  # (G, C)
    best = candidates[loss.argmin(1)]
    assert np.max(np.abs((best - d_star).numpy())) <= 1e-3
