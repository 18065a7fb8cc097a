"""Bounded reading of files users bring: sizes are checked against the file before anything
large is allocated.

A small file must never make the program allocate a lot of memory. Every loader of a user file
in ``deepnotes.data`` (MNIST IDX and CIFAR-10 batches today; Omniglot, text corpora, parallel
text and weights files to come) follows one rule, implemented here once:

1. **Declare, then check, then read.** Read the format's header first (or, for formats without
   one, take the size of the file on disk) and compute from it how many bytes the payload must
   have: the declared dimensions times the item size.
2. **Refuse a declared size above the limit** before allocating anything: :func:`max_bytes`, by
   default :data:`DEFAULT_MAX_BYTES` (4 GiB) per file, raised or lowered with the environment
   variable :data:`MAX_BYTES_ENV` (``DEEPNOTES_MAX_DATA_BYTES``, a whole number of bytes) or a
   loader's ``max_bytes`` argument.
3. **Read no more than declared.** Compressed streams are decompressed incrementally, never all
   at once; the reader takes exactly the declared bytes plus one more to prove the content ends
   there. Content longer or shorter than declared is refused with the declared and the found
   size. A gzip bomb (megabytes that inflate to gigabytes) therefore costs at most the declared
   size, which the limit bounds.
4. **Never let a count in a file stand for memory the file does not hold.** Arrays are rebuilt
   from their own bytes, with the shape the format fixes, and their byte length is checked
   against that shape (see ``deepnotes.data.files`` for the CIFAR-10 unpickler); a value that
   sets a size downstream (a class label, a vocabulary index) is checked against the format's
   range at load time, with the offending index in the message.

:class:`BoundedReader` implements 1-3 for raw and gzip-compressed files (gzip is recognised by
its magic bytes ``1f 8b``, not by the file name), and :func:`read_file` reads a whole small file
(a pickle, a JSON index) under the limit. Every problem raises
:class:`~deepnotes.core.errors.DataFormatError` naming the file, what was expected and what was
found.

Example:
    >>> with BoundedReader("train-images-idx3-ubyte.gz", "IDX file") as reader:  # doctest: +SKIP
    ...     header = reader.read_exact(16, "header")
    ...     pixels = reader.read_declared(47_040_000, "60000 images of 28x28 uint8")
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

from deepnotes.core.errors import ConfigError, DataFormatError
from deepnotes.core.text import shorten

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_BYTES_ENV",
    "BoundedReader",
    "check_class_labels",
    "max_bytes",
    "read_file",
]

DEFAULT_MAX_BYTES = 4 * 2**30
"""Largest payload, in bytes, one user file may declare unless the limit is changed (4 GiB)."""

MAX_BYTES_ENV = "DEEPNOTES_MAX_DATA_BYTES"
"""Environment variable that replaces :data:`DEFAULT_MAX_BYTES` (a whole number of bytes)."""

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20  # bytes taken from a stream at a time: the most read beyond what is kept


def max_bytes(override: int | None = None) -> int:
    """The per-file size limit in bytes: ``override`` if given, else :data:`MAX_BYTES_ENV`, else
    :data:`DEFAULT_MAX_BYTES`.

    Raises:
        ConfigError: ``override`` or the environment variable is not a positive whole number.

    Example:
        >>> max_bytes(1000)
        1000
    """
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, int) or override < 1:
            raise ConfigError(
                f"max_bytes must be a positive whole number of bytes, got {shorten(repr(override))}"
            )
        return override
    text = os.environ.get(MAX_BYTES_ENV)
    if text is None or text.strip() == "":
        return DEFAULT_MAX_BYTES
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"{MAX_BYTES_ENV} must be a positive whole number of bytes (default "
            f"{DEFAULT_MAX_BYTES}), got {shorten(repr(text))}"
        )
    return value


def _limit_hint(limit: int) -> str:
    return f"the limit of {limit} bytes per file (set {MAX_BYTES_ENV} or max_bytes to change it)"


class BoundedReader:
    """A user file opened for reading, raw or gzip-compressed, that never reads past what is asked.

    Arguments:
        path: the file; it must be a regular file (not a folder, device or pipe).
        what: what the file should be, for messages (``"IDX file"``, ``"CIFAR-10 batch"``).
        limit: largest payload a read may declare, in bytes (default: :func:`max_bytes`).

    Attributes:
        compressed: whether the file is gzip-compressed (recognised by its first two bytes).
        bytes_read: how many (decompressed) bytes have been taken from the file so far.

    Raises:
        DataFormatError: the file is missing, not a regular file or unreadable.
    """

    def __init__(self, path: str | os.PathLike[str], what: str, *, limit: int | None = None):
        self.path = Path(path)
        self.what = what
        self.limit = max_bytes(limit)
        self.bytes_read = 0
        self._raw = _open_regular(self.path, what)
        try:
            self.compressed = self._raw.read(2) == _GZIP_MAGIC
            self._raw.seek(0)
            self._size = os.fstat(self._raw.fileno()).st_size
        except OSError as exc:
            self._raw.close()
            raise DataFormatError(f"{self.path}: cannot read {what}: {exc}") from None
        self._stream: BinaryIO = (
            gzip.GzipFile(fileobj=self._raw, mode="rb") if self.compressed else self._raw
        )

    @property
    def where(self) -> str:
        """``" after gzip decompression"`` for a compressed file, else ``""`` (for messages)."""
        return " after gzip decompression" if self.compressed else ""

    def __enter__(self) -> BoundedReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (and the decompressor)."""
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def _read(self, n: int) -> bytes:
        """Up to ``n`` bytes, fewer only at the end of the content."""
        try:
            data = self._stream.read(n)
        except (EOFError, OSError, zlib.error) as exc:
            if self.compressed:
                raise DataFormatError(
                    f"{self.path}: corrupt or truncated gzip file (expected a gzip-compressed "
                    f"{self.what}): {shorten(exc)}"
                ) from None
            raise DataFormatError(f"{self.path}: cannot read {self.what}: {exc}") from None
        self.bytes_read += len(data)
        return data

    def _read_up_to(self, n: int, into: bytearray) -> None:
        """Append up to ``n`` bytes to ``into``, in chunks, stopping early only at the end."""
        remaining = n
        while remaining > 0:
            chunk = self._read(min(remaining, _CHUNK))
            if not chunk:
                return
            into += chunk
            remaining -= len(chunk)

    def _fill(self, buffer: bytearray) -> int:
        """Read a raw file into ``buffer`` in chunks; return how many bytes were read."""
        view = memoryview(buffer)
        filled = 0
        try:
            while filled < len(buffer):
                got = self._raw.readinto(view[filled : filled + _CHUNK])
                if not got:
                    break
                filled += got
        except OSError as exc:
            raise DataFormatError(f"{self.path}: cannot read {self.what}: {exc}") from None
        finally:
            view.release()
        self.bytes_read += filled
        return filled

    def read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes, fewer only where the content ends (the caller words the message).

        Raises:
            DataFormatError: ``n`` is above the limit.
        """
        self._check_declared(n, f"a read of {n} bytes")
        buffer = bytearray()
        self._read_up_to(n, buffer)
        return bytes(buffer)

    def read_exact(self, n: int, part: str) -> bytes:
        """Exactly ``n`` bytes (a header or another small fixed-size part).

        Arguments:
            n: how many bytes; must be below the limit (headers are small).
            part: what the bytes are, for the message (``"a 4-byte header (...)"``).

        Raises:
            DataFormatError: the content ends before ``n`` bytes (``truncated <what>``).
        """
        self._check_declared(n, part)
        buffer = bytearray()
        self._read_up_to(n, buffer)
        if len(buffer) < n:
            raise DataFormatError(
                f"{self.path}: truncated {self.what}: expected {part}, found "
                f"{self.bytes_read} bytes{self.where}"
            )
        return bytes(buffer)

    def read_declared(self, n: int, declared: str) -> bytearray:
        """The rest of the content, which must be exactly ``n`` bytes, as a writable buffer.

        The size is checked against the limit before anything is read or allocated. A raw file's
        size is checked against ``n`` before reading; a compressed stream is read in chunks up to
        ``n + 1`` bytes, so content longer than declared is refused after reading at most one
        byte more than declared.

        Arguments:
            n: the size the header declares.
            declared: how the header declares it, for messages, e.g.
                ``"header declares shape (2, 2) of uint8 = 4 bytes of data"``.

        Raises:
            DataFormatError: ``n`` is above the limit, or the content is shorter or longer.
        """
        self._check_declared(n, declared)
        if self.compressed:
            buffer = bytearray()
            self._read_up_to(n, buffer)
            got = len(buffer)
        else:
            found = self._size - self._raw.tell()
            if found != n:
                self._refuse_length(declared, str(found), longer=found > n)
            buffer = bytearray(n)  # the file on disk holds these n bytes: allocate once
            got = self._fill(buffer)
        if got < n:
            self._refuse_length(declared, str(got), longer=False)
        if self._read(1):
            self._refuse_length(declared, f"more than {n}", longer=True)
        return buffer

    def _check_declared(self, n: int, declared: str) -> None:
        if n > self.limit:
            raise DataFormatError(
                f"{self.path}: {self.what} too large: {declared} ({n} bytes), more than "
                f"{_limit_hint(self.limit)}"
            )

    def _refuse_length(self, declared: str, found: str, *, longer: bool) -> None:
        problem = f"{self.what} has extra bytes" if longer else f"truncated {self.what}"
        raise DataFormatError(f"{self.path}: {problem}: {declared}, found {found}{self.where}")


def read_file(path: str | os.PathLike[str], what: str, *, limit: int | None = None) -> bytes:
    """The whole (raw, never decompressed) content of a file whose size is checked first.

    For formats without a size header (a pickle, a JSON index): the file's size on disk is the
    declared size, refused above the limit before anything is read.

    Arguments:
        path: the file.
        what: what the file should be, for messages.
        limit: largest file accepted, in bytes (default: :func:`max_bytes`).

    Raises:
        DataFormatError: the file is missing, not a regular file, unreadable, larger than the
            limit, or changes size while being read.

    Example:
        >>> raw = read_file("cifar-10-batches-py/test_batch", "CIFAR-10 batch")  # doctest: +SKIP
    """
    path = Path(path)
    bound = max_bytes(limit)
    with _open_regular(path, what) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            if size > bound:
                raise DataFormatError(
                    f"{path}: {what} too large: the file holds {size} bytes, more than "
                    f"{_limit_hint(bound)}"
                )
            data = handle.read(size + 1)
        except OSError as exc:
            raise DataFormatError(f"{path}: cannot read {what}: {exc}") from None
    if len(data) != size:
        raise DataFormatError(
            f"{path}: {what} changed while being read: expected {size} bytes (its size on disk), "
            f"read {'more' if len(data) > size else len(data)}"
        )
    return data


def check_class_labels(
    path: str | os.PathLike[str], labels: np.ndarray, num_classes: int, what: str = "labels"
) -> np.ndarray:
    """Check that every label is a class index in ``0..num_classes - 1``; return them as int64.

    A label sets the size of what is built from it (a model's output layer, a one-hot matrix),
    so a label outside the format's range is refused when the file is loaded, not after training.

    Arguments:
        path: the file the labels come from, for the message.
        labels: a 1-D integer array.
        num_classes: the number of classes the format has (10 for MNIST and CIFAR-10).
        what: what the labels are called in the message.

    Raises:
        DataFormatError: a label is negative or ``>= num_classes``; the message gives the first
            offending index and value, and how many are out of range.

    Example:
        >>> check_class_labels("labels", np.array([3, 0, 9], np.uint8), 10).tolist()
        [3, 0, 9]
    """
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: {what} must be class indices 0..{num_classes - 1}, found "
            f"{int(labels[index])} at index {index} ({int(bad.sum())} out of range in all)"
        )
    return labels.astype(np.int64)


def _open_regular(path: Path, what: str) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file; OS errors as DataFormatError."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataFormatError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read {what}: {exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataFormatError(f"{path}: is a folder, expected a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise DataFormatError(
            f"{path}: is not a regular file (a device, pipe or socket), expected a {what}"
        )
    try:
        return open(path, "rb")  # closed by the caller
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read {what}: {exc}") from None
