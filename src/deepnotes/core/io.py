"""Atomic file writes: a temporary file in the same folder, flushed, fsynced, then renamed.

A run killed at any moment therefore leaves either the previous version of a file or the new
one, never a half-written artefact. Every artefact deepnotes writes goes through this module.
Files get the permissions the umask allows (``0o666 & ~umask``, e.g. 0644), like any file a
program creates, so a run folder or a report can be shared. A killed write can leave its
temporary file (``.NAME.XXXXXXXX.tmp``) behind: :func:`remove_temp_files` removes those, and the
runner calls it before it continues a run in its folder. :func:`check_folder` tells whether a
path given by the user can hold a folder of artefacts, before anything is written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from deepnotes.core.errors import UsageError
from deepnotes.core.text import shorten

TEMP_SUFFIX = ".tmp"
"""Suffix of the temporary files of :func:`atomic_open` (their names also start with a dot)."""


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    try:
        # mkstemp creates the file 0600; an artefact gets what the umask allows, as open() would
        os.fchmod(fd, 0o666 & ~current_umask())
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically and return the path."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable))


def atomic_save(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> Path:
    """Call ``writer(handle)`` on a binary temporary file and rename it over ``path``.

    Used for ``torch.save`` and matplotlib figures:
    ``atomic_save(p, lambda f: torch.save(obj, f))``.
    """
    with atomic_open(path, "wb") as handle:
        writer(handle)
    return Path(path)


def atomic_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy the file ``src`` to ``dst`` atomically and return ``dst``."""
    with open(src, "rb") as source, atomic_open(dst, "wb") as target:
        shutil.copyfileobj(source, target)
    return Path(dst)


def current_umask() -> int:
    """The process's umask (read without changing it where the system allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def remove_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed :func:`atomic_open` writes left under ``folder``
    (``.NAME.XXXXXXXX.tmp``, at any depth) and return their paths.

    Only call this while no other process writes to ``folder`` (the runner holds the run's lock).
    """
    removed = []
    for path in sorted(Path(folder).rglob(f".*{TEMP_SUFFIX}")):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def check_folder(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check, before anything is written, that ``path`` is a folder deepnotes can write into, or
    one it can create; return it.

    Raises:
        UsageError: ``path`` (or the nearest part of it that exists) is a file, a device or
            another non-folder, is not writable, or has a name too long for the file system.
    """
    path = Path(path)
    shown = shorten(str(path))
    existing = path
    while not _exists(existing):
        if existing.name:
            limit = name_max(existing.parent)
            if len(os.fsencode(existing.name)) > limit:
                raise UsageError(
                    f"{option} {shown}: expected folder names of at most {limit} bytes, got one "
                    f"of {len(os.fsencode(existing.name))} bytes"
                )
        if existing.parent == existing:
            break
        existing = existing.parent
    if _exists(existing) and not existing.is_dir():
        kind = "a file" if existing.is_file() else "a device or other non-folder"
        got = kind if existing == path else f"{shorten(str(existing))}, {kind}, in the path"
        raise UsageError(f"{option} {shown}: expected a folder, got {got}")
    if _exists(existing) and not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(
            f"{option} {shown}: expected a folder this user can write to, got "
            f"{shorten(str(existing))} without write permission"
        )
    return path


def make_folder(
    path: str | os.PathLike[str], option: str = "--out", *, exclusive: bool = False
) -> list[Path]:
    """Create the folder ``path`` and its missing parents; return the folders created, outermost
    first (so that a caller can remove them again).

    Arguments:
        exclusive: ``path`` itself must not exist yet; creating it is atomic, so of two processes
            that try at once, exactly one succeeds (the other gets ``FileExistsError``).

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists.
        UsageError: the folder cannot be created (see :func:`check_folder`), nothing left behind.
    """
    path = check_folder(path, option)
    missing = []
    parent = path.parent
    while not _exists(parent) and parent.parent != parent:
        missing.append(parent)
        parent = parent.parent
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                folder.mkdir()
                created.append(folder)
        try:
            path.mkdir()
            created.append(path)
        except FileExistsError:
            if exclusive or not path.is_dir():
                raise
    except OSError as err:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(err, FileExistsError) and exclusive:
            raise
        reason = os.strerror(err.errno) if err.errno else str(err)
        if err.errno == errno.ENAMETOOLONG:
            reason = "a name too long for the file system"
        raise UsageError(
            f"{option} {shorten(str(path))}: cannot create the folder: {reason}"
        ) from None
    return created


def _exists(path: Path) -> bool:
    try:
        os.lstat(path)
    except OSError:
        return False
    return True


def name_max(folder: str | os.PathLike[str]) -> int:
    """The longest file name, in bytes, the file system of ``folder`` (or of its nearest existing
    parent) allows; 255 where the system does not say."""
    folder = Path(folder)
    while not (_exists(folder) and os.path.isdir(folder)) and folder.parent != folder:
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _jsonable(obj: Any) -> Any:
    """Fallback for ``json.dumps``: numbers from NumPy/torch, paths, tuples of those."""
    if hasattr(obj, "tolist") and callable(obj.tolist):  # NumPy/torch arrays and scalars
        return obj.tolist()
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")
