"""Learning-rate schedules, stepped once per optimiser step.

All are ``torch.optim.lr_scheduler.LambdaLR`` multipliers of the optimiser's base learning rate,
with an optional linear warm-up from ``1/warmup_steps`` to 1:

- ``constant``: 1.
- ``cosine``: ``0.5 (1 + cos(pi t / T))`` over the steps after warm-up (ends at 0).
- ``linear``: ``1 - t / T`` (ends at 0).
- ``step``: ``0.1 ** floor(3 t / T)``, i.e. divide by 10 at one and two thirds of training.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("constant", "cosine", "linear", "step")


def schedule_factor(name: str, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """The multiplier of the base learning rate after ``step`` optimiser steps."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    if total_steps < 1 or not 0 <= warmup_steps < max(total_steps, 1) + 1:
        raise ValueError(
            f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps, got {total_steps}, "
            f"{warmup_steps}"
        )
    decay_steps = max(1, total_steps - warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = min(step - warmup_steps, decay_steps) / decay_steps
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if name == "linear":
            return 1.0 - t
        if name == "step":
            return 0.1 ** min(2, math.floor(3 * t))
        return 1.0

    return factor


def make_scheduler(
    name: str, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0
) -> LambdaLR | None:
    """A per-step scheduler for ``optimizer``; None for a constant rate without warm-up."""
    factor = schedule_factor(name, total_steps, warmup_steps)
    if name == "constant" and warmup_steps == 0:
        return None
    return LambdaLR(optimizer, factor)
