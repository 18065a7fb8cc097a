"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent

ONE_THREAD_FOLDERS = frozenset(
    {"gans", "generative", "language", "meta", "rl", "robustness", "sequence", "vision"}
)
"""Test folders whose tests run on one torch thread: their many tiny ops on a shared 2-core CPU
are many times faster on one thread than on two contended ones. The other folders keep torch's
default, which the thread-limit tests (core, the runner's --threads) need to see change."""


@pytest.fixture(autouse=True)
def _one_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """One torch thread during each test of :data:`ONE_THREAD_FOLDERS`, restored after it."""
    parts = request.path.relative_to(TESTS).parts
    if len(parts) < 2 or parts[0] not in ONE_THREAD_FOLDERS:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
