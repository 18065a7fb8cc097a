"""Seeding and device selection.

A CPU run is bitwise reproducible: :func:`seed_everything` seeds Python's, NumPy's and torch's
global generators and asks torch for deterministic kernels. Data order never depends on the
global generator: samplers derive their permutation from ``(seed, epoch)``, so a resumed run
sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from deepnotes.core.errors import ConfigError

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
        raise ConfigError(f"unknown device {spec!r}; expected one of {', '.join(DEVICES)}")
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


def rng_state() -> dict:
    """Every global generator's state, for checkpoints."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
