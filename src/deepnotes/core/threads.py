"""CPU thread limits for torch and NumPy's BLAS, set for a block and restored after it.

Used by the runner (``--threads``) and by measurements whose meaning depends on the thread count:
the time of an operation on one core measures its cost (work), while on several cores it also
measures how well the operation parallelises, which grows with its size.

Example:
    >>> with limit_threads(1):
    ...     seconds = time_one_step()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def limit_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch and BLAS threads (None: leave them as they are);
    the previous torch thread count is restored on exit, also after an exception."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    # NumPy's BLAS too: a small matmul on a busy CPU is 100x slower with every core's thread
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)
