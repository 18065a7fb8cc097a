"""The metrics log: ``metrics.jsonl``, one JSON object per line, rewritten atomically.

Records are kept in memory and the whole file is rewritten (temp file + rename) at most once per
``flush_interval`` seconds and on :meth:`MetricsLogger.flush`; a killed run therefore leaves a
valid file holding a prefix of its records. On ``--resume`` the log starts empty and the Trainer
replays the records of the epochs it restores, so a resumed run's log equals an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from deepnotes.core.io import _jsonable, atomic_write_text


class MetricsLogger:
    """Append-only list of metric records persisted to ``path`` (no-op when ``path`` is None)."""

    def __init__(self, path: Path | None, flush_interval: float = 1.0) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self.records: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._dirty = False

    def log(self, record: dict[str, Any]) -> None:
        """Add one record (a flat dict of JSON-friendly values)."""
        self.records.append({k: _clean(v) for k, v in record.items()})
        self._dirty = True
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        """Write every record so far to disk (atomically)."""
        self._last_flush = time.monotonic()
        if self.path is None or not self._dirty:
            return
        lines = (json.dumps(r, default=_jsonable) for r in self.records)
        atomic_write_text(self.path, "".join(line + "\n" for line in lines))
        self._dirty = False


def _clean(value: Any) -> Any:
    """Numbers from torch/NumPy as Python numbers; NaN/inf as strings JSON can hold."""
    if hasattr(value, "tolist") and callable(value.tolist):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``metrics.jsonl`` file back into a list of records."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
