"""Seeding and device selection.

A CPU run is bitwise reproducible: :func:`seed_everything` seeds Python's, NumPy's and torch's
global generators and asks torch for deterministic kernels. Data order never depends on the
global generator: samplers derive their permutation from ``(seed, epoch)``, so a resumed run
sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from deepnotes.core.errors import ConfigError
from deepnotes.core.text import shorten

DEVICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed ``random``, NumPy and torch (all devices); optionally request deterministic kernels."""
    if not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """Map ``auto|cpu|cuda|mps`` to a ``torch.device``; ``auto`` prefers cuda, then mps, then cpu.

    Raises:
        ConfigError: an unknown name, or a device that this machine does not have.
    """
    spec = spec.lower()
    if spec not in DEVICES:
        raise ConfigError(
            f"unknown device {shorten(repr(spec))}; expected one of {', '.join(DEVICES)}"
        )
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if spec == "auto":
        spec = "cuda" if cuda else "mps" if mps else "cpu"
    if spec == "cuda":
        if not cuda:
            raise ConfigError("device 'cuda' requested but torch.cuda.is_available() is False")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if spec == "mps" and not mps:
        raise ConfigError("device 'mps' requested but torch.backends.mps.is_available() is False")
    return torch.device(spec)


def derive_seed(seed: int, *keys: int | str) -> int:
    """A seed for the independent stream ``keys`` of the run seeded ``seed``.

    Hashes ``(seed, *keys)`` (BLAKE2b), so streams of different keys are unrelated, the same
    keys always give the same seed, and no hand-made arithmetic like ``seed * 1_000_003 + k``
    can make two streams collide. The result is in ``[0, 2**63)``.
    """
    for key in keys:
        if not isinstance(key, int | str) or isinstance(key, bool):
            raise TypeError(f"stream keys must be ints or strings, got {key!r}")
    text = json.dumps([int(seed), *keys], separators=(",", ":"))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global generators with ``seed`` inside the block and
    restore their previous states afterwards (e.g. to initialise a model from a stream without
    disturbing anything else)."""
    saved = rng_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        set_rng_state(saved)


def rng_state() -> dict:
    """Every global generator's state, as tensors, numbers and tuples (a checkpoint reads it
    back with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators saved by :func:`rng_state` (tensors may be on any device)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    if isinstance(keys, torch.Tensor):
        keys = keys.cpu().numpy()
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
