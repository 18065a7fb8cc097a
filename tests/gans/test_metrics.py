"""gans.metrics: the VEEGAN / PacGAN mode-coverage protocol against a per-point loop (the
reference code's form), its 3-sigma boundary and its covered-mode rule."""

from __future__ import annotations

import math

import pytest
import torch

from deepnotes.core.errors import UsageError
from deepnotes.data import toy2d
from deepnotes.gans.metrics import SAMPLES, mode_coverage


def loop_reference(x: torch.Tensor, means: torch.Tensor, std: float) -> list[int]:
    """High-quality counts per mode, one point at a time (PacGAN's MetricLogger loop)."""
    counts = [0] * len(means)
    for point in x.tolist():
        distances = [math.dist(point, mu) / std for mu in means.tolist()]
        j = min(range(len(distances)), key=distances.__getitem__)
        if distances[j] < 3:
            counts[j] += 1
    return counts


def test_protocol_constants() -> None:
    assert SAMPLES == 2500


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_vectorised_counts_equal_the_per_point_loop(name: str) -> None:
    mixture = toy2d.ring() if name == "ring" else toy2d.grid()
    g = torch.Generator().manual_seed(0)
    # data with a wider spread: some points are within 3 std of a mode, many are not
    x = mixture.sample(400, g) + 3 * mixture.std * torch.randn(400, 2, generator=g)
    got = mode_coverage(x, mixture.means, mixture.std)
    want = loop_reference(x, mixture.means, mixture.std)
    assert got.counts.tolist() == want
    assert got.high_quality == pytest.approx(sum(want) / 400, abs=1e-12)
    assert got.modes == sum(c > 0 for c in want)


def test_the_data_itself_covers_every_mode_with_about_99_percent() -> None:
    # a 2-D isotropic Gaussian puts 1 - exp(-9/2) = 98.89% of its mass within 3 std
    ring = toy2d.ring()
    m = mode_coverage(ring.sample(20_000, 1), ring.means, ring.std)
    assert m.modes == 8
    assert m.high_quality == pytest.approx(1 - math.exp(-4.5), abs=0.003)


def test_the_three_sigma_boundary_and_a_collapsed_generator() -> None:
    ring = toy2d.ring()
    inside = ring.means[0] + torch.tensor([2.99 * ring.std, 0.0])
    outside = ring.means[1] + torch.tensor([0.0, 3.01 * ring.std])
    m = mode_coverage(torch.stack([inside, outside]), ring.means, ring.std)
    assert m.counts.tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert m.modes == 1 and m.high_quality == 0.5
    collapsed = ring.means[3].expand(SAMPLES, 2)
    m = mode_coverage(collapsed, ring.means, ring.std)
    assert m.modes == 1 and m.high_quality == 1.0


def test_a_mode_needs_min_count_high_quality_samples() -> None:
    grid = toy2d.grid()
    x = torch.cat([grid.means[:1].expand(3, 2), grid.means[1:2]])  # 3 at mode 0, 1 at mode 1
    assert mode_coverage(x, grid.means, grid.std).modes == 2
    assert mode_coverage(x, grid.means, grid.std, min_count=2).modes == 1


def test_bad_input_is_refused() -> None:
    ring = toy2d.ring()
    with pytest.raises(UsageError, match=r"\(n, D\)"):
        mode_coverage(torch.zeros(5, 3), ring.means, ring.std)
    with pytest.raises(UsageError, match="std > 0"):
        mode_coverage(torch.zeros(5, 2), ring.means, 0.0)
    with pytest.raises(UsageError, match="NaN"):
        mode_coverage(torch.full((5, 2), math.nan), ring.means, ring.std)
