"""Sinusoid tasks in Finn et al.'s setup."""

from __future__ import annotations

import math

import pytest
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.data.tasks import SinusoidTask, sample_sinusoids


def test_shapes_ranges_and_targets() -> None:
    xs, ys, xq, yq, amp, phase = sample_sinusoids(500, 10, torch.Generator(), queries=7)
    assert xs.shape == ys.shape == (500, 10, 1) and xq.shape == yq.shape == (500, 7, 1)
    assert amp.shape == phase.shape == (500,)
    assert float(amp.min()) >= 0.1 and float(amp.max()) <= 5.0
    assert float(phase.min()) >= 0.0 and float(phase.max()) <= math.pi
    x = torch.cat([xs, xq], dim=1)
    assert float(x.min()) >= -5.0 and float(x.max()) <= 5.0
    task = SinusoidTask(float(amp[3]), float(phase[3]))
    torch.testing.assert_close(task(xs[3]), ys[3])
    torch.testing.assert_close(task(xq[3]), yq[3])


def test_queries_default_to_k_and_the_generator_decides() -> None:
    a = sample_sinusoids(3, 5, torch.Generator().manual_seed(2))
    b = sample_sinusoids(3, 5, torch.Generator().manual_seed(2))
    assert a[2].shape == (3, 5, 1)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_counts_below_one_raise() -> None:
    with pytest.raises(ConfigError, match="tasks, K and queries >= 1"):
        sample_sinusoids(2, 0, torch.Generator())
