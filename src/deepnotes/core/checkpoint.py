"""Checkpoints that cannot run code: written atomically, read with ``weights_only=True``.

``torch.load`` with ``weights_only=False`` unpickles arbitrary objects, so a crafted file in a
run folder would run commands on ``--resume``. Every checkpoint deepnotes reads goes through
:func:`load_checkpoint`, which allows only tensors, numbers, strings, ``None`` and plain
containers of those; whatever deepnotes writes (module and optimiser state, RNG states,
histories, replay buffers, cached sub-results) is kept to those types by :func:`to_safe`.

A file that is missing, truncated, not a torch archive, holds a forbidden object, or was not
written by deepnotes raises :class:`CheckpointError` naming the file, never a traceback from
the unpickler.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.errors import UsageError
from deepnotes.core.io import atomic_save

FORMAT = "deepnotes-checkpoint/1"
"""The ``format`` entry of every checkpoint deepnotes writes; anything else is foreign."""

_NDARRAY = "__ndarray__"


class CheckpointError(UsageError):
    """A checkpoint that cannot be read safely: corrupt, foreign, or holding code."""


def to_safe(obj: Any) -> Any:
    """``obj`` with NumPy arrays and scalars turned into tensors and Python numbers, tuples kept,
    so that ``torch.load(weights_only=True)`` reads it back (see :func:`from_safe`).

    Raises:
        TypeError: an object that is not a tensor, number, string, None, NumPy value or a
            list/tuple/dict of those (a model object, a lambda): store its state instead.
    """
    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str | bytes | torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return {_NDARRAY: torch.from_numpy(np.ascontiguousarray(obj)).clone()}
    if isinstance(obj, torch.dtype | torch.device | torch.Size):
        return obj
    if isinstance(obj, Mapping):
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(to_safe(v) for v in obj)
    if isinstance(obj, list):
        return [to_safe(v) for v in obj]
    raise TypeError(
        f"cannot store an object of type {type(obj).__name__} in a checkpoint; store tensors, "
        "numbers, strings and lists/tuples/dicts of them (a module's state_dict, not the module)"
    )


def from_safe(obj: Any) -> Any:
    """Undo :func:`to_safe`: the marked tensors become NumPy arrays again."""
    if isinstance(obj, dict):
        if set(obj) == {_NDARRAY}:
            return obj[_NDARRAY].numpy()
        return {k: from_safe(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(from_safe(v) for v in obj)
    if isinstance(obj, list):
        return [from_safe(v) for v in obj]
    return obj


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (made safe, with ``format`` added) to ``path`` atomically."""
    body = {"format": FORMAT, **to_safe(dict(payload))}
    return atomic_save(path, lambda handle: torch.save(body, handle))


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, safely.

    Raises:
        CheckpointError: the file is missing, unreadable, corrupt, holds anything but tensors,
            numbers, strings and plain containers, or was not written by deepnotes.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        named = re.search(r"GLOBAL ([\w.]+)", str(err))
        reason = f"it asks for {named.group(1)}" if named else "a forbidden pickle instruction"
        raise CheckpointError(
            f"checkpoint {path} holds objects deepnotes does not write (refused, nothing was "
            f"executed): {reason[:200]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"checkpoint {path} is not a readable torch checkpoint (truncated or corrupt?): "
            f"{type(err).__name__}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"checkpoint {path} was not written by deepnotes (expected format {FORMAT!r}, "
            f"found {found!r})"
        )
    return from_safe(payload)
