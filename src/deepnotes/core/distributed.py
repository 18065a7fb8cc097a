"""Process-group plumbing for ``torchrun``: who am I, reduce, broadcast, barrier.

Under ``torchrun --nproc_per_node=N -m deepnotes run NAME`` every process runs the same
experiment; gradients are averaged by DistributedDataParallel, evaluation metrics are summed
across ranks with :func:`all_reduce_sum`, and only rank 0 writes files. Outside torchrun all of
these functions are cheap no-ops, so experiments are written once for both cases.

No silent hangs: a collective waits at most :func:`collective_timeout` (5 minutes unless the
environment variable ``DEEPNOTES_DIST_TIMEOUT`` gives another number of seconds) for the other
ranks, instead of the backend's default of 30 minutes. When a rank stops (it crashed, was killed,
or is stuck in a long computation of its own) the others' collective helpers raise
:class:`~deepnotes.core.errors.CollectiveTimeoutError` with one line naming the rank, the
operation and the timeout. With gloo (CPU) the expiry surfaces as an exception in the waiting
rank, which the helpers translate; with nccl (CUDA) the backend's watchdog enforces the same
timeout by ending the process with its own report (the helpers translate what it raises, when it
raises). A collective issued elsewhere (DistributedDataParallel's gradient all-reduce) obeys the
same timeout but reports it in the backend's words; wrap it in :func:`collective` to get the
one-line message.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from deepnotes.core.errors import CollectiveTimeoutError, ConfigError
from deepnotes.core.text import shorten

TIMEOUT_ENV = "DEEPNOTES_DIST_TIMEOUT"
"""Environment variable: seconds a collective waits for the other ranks before it fails."""

DEFAULT_TIMEOUT_S = 300.0
"""Collective timeout without :data:`TIMEOUT_ENV`: 5 minutes, far above the waits of a healthy
run here (rank 0 writing a checkpoint or a figure while the others wait at a barrier); a job whose
ranks legitimately wait longer for each other sets a larger value."""

MAX_TIMEOUT_S = 86_400.0
"""Largest accepted :data:`TIMEOUT_ENV` (one day): a longer wait is a hang, not a setting."""

# how gloo words the two ways a collective ends without the other rank (backend messages)
_TIMEOUT_WORDS = ("timed out", "timeout")
_PEER_GONE_WORDS = (
    "connection reset",
    "connection closed",
    "connection refused",
    "broken pipe",
    "end of file",
    "socket closed",
)
_DIST_ERRORS: tuple[type[Exception], ...] = (dist.DistError,) if hasattr(dist, "DistError") else ()
"""torch's base class of backend and network failures (absent from builds without distributed)."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True for the one process that writes artefacts and prints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Rank and world size from the environment variables torchrun sets."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def collective_timeout() -> timedelta:
    """How long a collective waits for the other ranks: :data:`TIMEOUT_ENV` seconds, or 5 minutes.

    Raises:
        ConfigError: :data:`TIMEOUT_ENV` is not a number of seconds in (0, 86400].

    Example:
        >>> collective_timeout()  # DEEPNOTES_DIST_TIMEOUT unset
        datetime.timedelta(seconds=300)
        >>> # DEEPNOTES_DIST_TIMEOUT=90 torchrun ...  gives timedelta(seconds=90)
    """
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return timedelta(seconds=DEFAULT_TIMEOUT_S)
    expected = f"{TIMEOUT_ENV} must be a number of seconds in (0, {MAX_TIMEOUT_S:.0f}]"
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"{expected}, got {shorten(repr(text))}") from None
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT_S):
        raise ConfigError(f"{expected}, got {shorten(repr(text))}")
    return timedelta(seconds=seconds)


def init(device: torch.device) -> DistInfo:
    """Join the process group torchrun prepared (gloo on CPU, nccl on CUDA); no-op otherwise.

    Every collective of the group, joining it included, waits at most
    :func:`collective_timeout` for the other ranks.

    Raises:
        ConfigError: a bad :data:`TIMEOUT_ENV` (checked with or without torchrun).
        CollectiveTimeoutError: another rank never joined within the timeout.
    """
    timeout = collective_timeout()
    info = env_info()
    if info.world_size <= 1:
        return info
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        with collective("init_process_group"):
            dist.init_process_group(backend=backend, timeout=timeout)
    return DistInfo(info.rank, info.world_size, info.local_rank, backend)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextmanager
def collective(operation: str) -> Iterator[None]:
    """Turn a collective that ended without the other ranks into one line.

    The backend's timeout (or a peer's closed connection, the same event seen sooner when the
    other rank died) becomes :class:`CollectiveTimeoutError` naming this rank, ``operation`` and
    the timeout; any other error passes through unchanged.

    Example:
        >>> def backward(loss: torch.Tensor) -> None:
        ...     with collective("gradient all-reduce"):
        ...         loss.backward()  # DistributedDataParallel all-reduces here
    """
    try:
        yield
    except CollectiveTimeoutError:
        raise
    except RuntimeError as err:
        message = _stopped_peer_message(err, operation)
        if message is None:
            raise
        raise CollectiveTimeoutError(message) from err


def _stopped_peer_message(err: RuntimeError, operation: str) -> str | None:
    """The one-line message for ``err`` if it says another rank did not take part, else None."""
    detail = " ".join(str(err).split())  # one line
    if detail.startswith("["):  # gloo prefixes its source file: [.../unbound_buffer.cc:78]
        detail = detail.partition("] ")[2] or detail
    words = detail.lower()
    timed_out = any(w in words for w in _TIMEOUT_WORDS)
    peer_gone = any(w in words for w in _PEER_GONE_WORDS)
    if not (timed_out or peer_gone or isinstance(err, _DIST_ERRORS)):
        return None
    info = env_info()
    seconds = collective_timeout().total_seconds()
    limit = f"the collective timeout of {seconds:g} s ({TIMEOUT_ENV})"
    if timed_out:
        what = f"did not complete within {limit}"
    elif peer_gone:
        what = f"lost its connection to another rank before {limit}"
    else:
        what = f"failed in the backend before {limit}"
    return (
        f"rank {info.rank} of {info.world_size}: {operation} {what}; another rank stopped or is "
        f"stuck before this point (see its own output); backend said: {shorten(detail)}"
    )


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (identity in a single process).

    Raises:
        CollectiveTimeoutError: another rank did not join within :func:`collective_timeout`.
    """
    if active():
        with collective("all_reduce_sum"):
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (identity in a single process).

    Raises:
        CollectiveTimeoutError: another rank did not join within :func:`collective_timeout`.
    """
    if not active():
        return obj
    box = [obj]
    with collective("broadcast_object"):
        dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Wait until every rank arrives (no-op in a single process).

    Raises:
        CollectiveTimeoutError: another rank did not arrive within :func:`collective_timeout`.
    """
    if active():
        with collective("barrier"):
            dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process).

    Raises:
        CollectiveTimeoutError: another rank did not join within :func:`collective_timeout`.
    """
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    with collective("all_gather_object"):
        dist.all_gather_object(out, obj)
    return out
