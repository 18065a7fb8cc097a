"""Sinusoid regression tasks in the setup of Finn et al. 2017 (MAML, section 5.1).

A task is ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5]`` and phase ``phi ~ U[0, pi]``;
its ``K`` support and ``Q`` query inputs are ``x ~ U[-5, 5]``. The loss is the mean squared error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from deepnotes.core.errors import ConfigError

__all__ = ["AMPLITUDE", "INPUT_RANGE", "PHASE", "SinusoidTask", "sample_sinusoids"]

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)


@dataclass
class SinusoidTask:
    """One regression task ``y = amplitude * sin(x - phase)``."""

    amplitude: float
    phase: float

    def __call__(self, x: Tensor) -> Tensor:
        """Targets for inputs ``x`` (any shape)."""
        return self.amplitude * torch.sin(x - self.phase)


def sample_sinusoids(
    tasks: int, K: int, generator: torch.Generator, *, queries: int | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """A batch of sinusoid tasks with their support and query sets.

    Args:
        tasks: number of tasks ``T`` (>= 1).
        K: support points per task (>= 1).
        generator: the only source of randomness.
        queries: query points per task ``Q`` (default ``K``; >= 1).

    Returns:
        ``(x_s, y_s, x_q, y_q, amplitude, phase)``: support ``(T, K, 1)``, query ``(T, Q, 1)``
        and the task parameters ``(T,)``, all float32.

    Raises:
        ConfigError: a count below 1.
    """
    q = K if queries is None else queries
    if tasks < 1 or K < 1 or q < 1:
        raise ConfigError(
            f"sample_sinusoids needs tasks, K and queries >= 1, got {tasks}, {K}, {q}"
        )
    amplitude = AMPLITUDE[0] + (AMPLITUDE[1] - AMPLITUDE[0]) * torch.rand(
        tasks, generator=generator
    )
    phase = PHASE[0] + (PHASE[1] - PHASE[0]) * torch.rand(tasks, generator=generator)
    lo, hi = INPUT_RANGE
    x_s = lo + (hi - lo) * torch.rand(tasks, K, 1, generator=generator)
    x_q = lo + (hi - lo) * torch.rand(tasks, q, 1, generator=generator)
    a, p = amplitude[:, None, None], phase[:, None, None]
    return x_s, a * torch.sin(x_s - p), x_q, a * torch.sin(x_q - p), amplitude, phase
