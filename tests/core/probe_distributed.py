"""Probe experiment for the collective timeout, registered through DEEPNOTES_EXPERIMENTS.

Not part of the curriculum: tests/core/test_distributed_timeout.py runs it under a real
``torchrun --nproc_per_node=2`` with ``DEEPNOTES_DIST_TIMEOUT`` set to a few seconds. One rank
stops before a collective that the other ranks wait on, as a crashed or stuck rank would.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Literal

import torch

from deepnotes.core import distributed
from deepnotes.core.context import RunContext
from deepnotes.core.registry import Claim, Outcome, experiment


@dataclass(frozen=True)
class StalledRankConfig:
    stalled: int = 1
    """The rank that stops before the collective."""
    how: Literal["sleep", "exit"] = "sleep"
    """sleep: it stays alive but never arrives (stuck); exit: its process ends (crashed)."""
    stall: float = 600.0
    """Seconds the stalled rank sleeps: far past any collective timeout a test sets."""
    operation: Literal["all_reduce_sum", "broadcast_object", "barrier", "all_gather_object"] = (
        "all_reduce_sum"
    )
    """The collective helper every other rank waits in."""


@experiment(
    "probe.stalled_rank", topic="probe", config=StalledRankConfig, checks=("every_rank_joined",)
)
def stalled_rank(cfg: StalledRankConfig, ctx: RunContext) -> Outcome:
    """One rank stops before a collective; the others must fail within the collective timeout."""
    if ctx.distributed.rank == cfg.stalled:
        if cfg.how == "exit":
            os._exit(0)  # no cleanup, no goodbye: the way a killed rank leaves its peers
        time.sleep(cfg.stall)
    joined = torch.ones(1)
    if cfg.operation == "all_reduce_sum":
        joined = distributed.all_reduce_sum(joined)
    elif cfg.operation == "broadcast_object":
        joined = torch.tensor([float(distributed.broadcast_object(ctx.distributed.world_size))])
    elif cfg.operation == "barrier":
        distributed.barrier()
        joined = torch.tensor([float(ctx.distributed.world_size)])
    else:
        joined = torch.tensor([float(sum(distributed.all_gather_object(1)))])
    return Outcome(
        metrics={"joined": float(joined.item())},
        claims=[
            Claim.at_least(
                "every rank took part in the collective",
                float(joined.item()),
                float(ctx.distributed.world_size),
                key="every_rank_joined",
                kind="check",
            )
        ],
    )
