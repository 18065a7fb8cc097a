"""core.threads: the thread limit holds inside the block and is restored after it."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from deepnotes.core.threads import limit_threads


def test_limit_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), limit_threads(1):
        raise RuntimeError("restored even so")
    assert torch.get_num_threads() == before
    with limit_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=">= 1"), limit_threads(0):
        pass
