"""Progress reporting: a rich bar on a terminal, plain throttled lines otherwise (CI logs).

Only the main process reports; other ranks get a silent reporter.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """A progress reporter used as a context manager.

    Arguments:
        total: number of units (epochs, repetitions...).
        description: what is being counted, printed in front of every line.
        enabled: False silences it (non-main ranks, tests).
        stream: where to write; defaults to ``sys.stdout``.
        min_interval: plain mode prints at most one line per ``min_interval`` seconds, plus the
            last one.

    Example:
        >>> with Progress(10, "epochs") as bar:
        ...     for epoch in range(10):
        ...         bar.advance(loss=0.1)
    """

    def __init__(
        self,
        total: int,
        description: str,
        enabled: bool = True,
        stream: TextIO | None = None,
        min_interval: float = 2.0,
    ) -> None:
        self.total = total
        self.description = description
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.min_interval = min_interval
        self.done = 0
        self._rich: Any = None
        self._task: Any = None
        self._last_print = 0.0
        self._start = 0.0

    def __enter__(self) -> Progress:
        self._start = time.perf_counter()
        if self.enabled and self.stream.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[postfix]}"),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.description, total=self.total, postfix="")
        return self

    def advance(self, n: int = 1, **postfix: Any) -> None:
        """Count ``n`` more units done and show ``postfix`` values (e.g. the current loss)."""
        self.done += n
        if not self.enabled:
            return
        text = "  ".join(f"{k}={_fmt(v)}" for k, v in postfix.items())
        if self._rich is not None:
            self._rich.update(self._task, advance=n, postfix=text)
            return
        now = time.perf_counter()
        if now - self._last_print >= self.min_interval or self.done >= self.total:
            self._last_print = now
            elapsed = now - self._start
            line = f"{self.description}: {self.done}/{self.total} [{elapsed:.1f}s] {text}"
            print(line.rstrip(), file=self.stream, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
