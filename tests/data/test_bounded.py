"""Tests for deepnotes.data.bounded: the size limit, bounded (streaming) reads of raw and gzip
files, whole-file reads under the limit, and the class-label range check."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.errors import ConfigError, DataFormatError
from deepnotes.data.bounded import (
    DEFAULT_MAX_BYTES,
    MAX_BYTES_ENV,
    BoundedReader,
    check_class_labels,
    max_bytes,
    read_file,
)


def write_gzip_zeros(path: Path, prefix: bytes, n_zeros: int) -> Path:
    """A gzip file of ``prefix`` then ``n_zeros`` zero bytes, compressed chunk by chunk (the
    test never holds the decompressed content in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    chunk = bytes(1 << 20)
    with open(path, "wb") as handle:
        handle.write(compressor.compress(prefix))
        left = n_zeros
        while left > 0:
            handle.write(compressor.compress(chunk[: min(left, len(chunk))]))
            left -= min(left, len(chunk))
        handle.write(compressor.flush())
    return path


# --------------------------------------------------------------------------------------------
# the limit
# --------------------------------------------------------------------------------------------


def test_max_bytes_default_env_and_argument(monkeypatch) -> None:
    monkeypatch.delenv(MAX_BYTES_ENV, raising=False)
    assert max_bytes() == DEFAULT_MAX_BYTES == 4 * 2**30
    monkeypatch.setenv(MAX_BYTES_ENV, " 12345 ")
    assert max_bytes() == 12345
    assert max_bytes(99) == 99  # the argument wins over the environment
    monkeypatch.setenv(MAX_BYTES_ENV, "")
    assert max_bytes() == DEFAULT_MAX_BYTES


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "x" * 100_000])
def test_max_bytes_bad_env_is_a_config_error_with_the_value_shortened(monkeypatch, value) -> None:
    monkeypatch.setenv(MAX_BYTES_ENV, value)
    with pytest.raises(ConfigError) as info:
        max_bytes()
    message = str(info.value)
    assert MAX_BYTES_ENV in message and "positive whole number of bytes" in message
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "10"])
def test_max_bytes_bad_argument(value) -> None:
    with pytest.raises(ConfigError, match="max_bytes must be a positive whole number"):
        max_bytes(value)


# --------------------------------------------------------------------------------------------
# BoundedReader
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_read_declared_exact_content(tmp_path, compressed) -> None:
    payload = b"HEAD" + bytes(range(200))
    path = tmp_path / "f"
    path.write_bytes(gzip.compress(payload) if compressed else payload)
    with BoundedReader(path, "test file") as reader:
        assert reader.compressed is compressed
        assert reader.read_exact(4, "a 4-byte header") == b"HEAD"
        buffer = reader.read_declared(200, "header declares 200 bytes")
        assert bytes(buffer) == bytes(range(200)) and isinstance(buffer, bytearray)
        assert reader.bytes_read == 204


@pytest.mark.parametrize("compressed", [False, True])
def test_read_declared_above_limit_reads_nothing(tmp_path, compressed) -> None:
    path = tmp_path / "f"
    payload = b"HEAD" + bytes(50)
    path.write_bytes(gzip.compress(payload) if compressed else payload)
    with BoundedReader(path, "test file", limit=49) as reader:
        reader.read_exact(4, "a header")
        with pytest.raises(DataFormatError) as info:
            reader.read_declared(50, "header declares 50 bytes")
        assert reader.bytes_read == 4
    message = str(info.value)
    for phrase in (
        str(path),
        "test file too large",
        "50 bytes",
        "limit of 49 bytes",
        MAX_BYTES_ENV,
    ):
        assert phrase in message, message


def test_read_declared_uses_the_environment_limit(tmp_path, monkeypatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(100))
    monkeypatch.setenv(MAX_BYTES_ENV, "99")
    with BoundedReader(path, "test file") as reader, pytest.raises(DataFormatError, match="99"):
        reader.read_declared(100, "100 bytes")
    monkeypatch.setenv(MAX_BYTES_ENV, "100")
    with BoundedReader(path, "test file") as reader:
        assert len(reader.read_declared(100, "100 bytes")) == 100


def test_gzip_bomb_is_refused_after_declared_plus_one_bytes(tmp_path: Path) -> None:
    """50 MB of zeros in ~50 kB of gzip, declared as 1000 bytes: the reader takes 1001 bytes."""
    path = write_gzip_zeros(tmp_path / "bomb.gz", b"", 50 * 2**20)
    assert path.stat().st_size < 200_000
    with BoundedReader(path, "test file") as reader:
        with pytest.raises(DataFormatError) as info:
            reader.read_declared(1000, "header declares 1000 bytes")
        assert reader.bytes_read == 1001
    message = str(info.value)
    assert "test file has extra bytes" in message and "found more than 1000" in message
    assert "after gzip decompression" in message


@pytest.mark.parametrize("compressed", [False, True])
def test_read_declared_shorter_content(tmp_path, compressed) -> None:
    path = tmp_path / "f"
    path.write_bytes(gzip.compress(bytes(7)) if compressed else bytes(7))
    with BoundedReader(path, "test file") as reader, pytest.raises(DataFormatError) as info:
        reader.read_declared(8, "header declares 8 bytes")
    message = str(info.value)
    assert "truncated test file: header declares 8 bytes, found 7" in message
    assert ("gzip" in message) is compressed


def test_raw_file_size_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(30))
    with BoundedReader(path, "test file") as reader:
        with pytest.raises(DataFormatError, match="extra bytes: 20 declared, found 30"):
            reader.read_declared(20, "20 declared")
        assert reader.bytes_read == 0


def test_read_exact_truncated(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"ab")
    with BoundedReader(path, "test file") as reader, pytest.raises(DataFormatError) as info:
        reader.read_exact(4, "a 4-byte header")
    assert "truncated test file: expected a 4-byte header, found 2 bytes" in str(info.value)


def test_corrupt_gzip(tmp_path: Path) -> None:
    blob = gzip.compress(bytes(range(100)))
    path = tmp_path / "f.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with BoundedReader(path, "test file") as reader, pytest.raises(DataFormatError) as info:
        reader.read_declared(100, "100 bytes")
    assert "corrupt or truncated gzip file (expected a gzip-compressed test file)" in str(
        info.value
    )


def test_missing_folder_and_device_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="test file not found"):
        BoundedReader(tmp_path / "nope", "test file")
    with pytest.raises(DataFormatError, match="is a folder, expected a test file"):
        BoundedReader(tmp_path, "test file")
    # an endless device would otherwise be read until memory runs out
    if os.path.exists("/dev/zero"):
        with pytest.raises(DataFormatError, match="not a regular file"):
            BoundedReader("/dev/zero", "test file")
        with pytest.raises(DataFormatError, match="not a regular file"):
            read_file("/dev/zero", "test file")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DataFormatError, match="not a regular file"):
        BoundedReader(fifo, "test file")


# --------------------------------------------------------------------------------------------
# read_file
# --------------------------------------------------------------------------------------------


def test_read_file_within_and_above_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    assert read_file(path, "test file", limit=10) == b"0123456789"
    with pytest.raises(DataFormatError) as info:
        read_file(path, "test file", limit=9)
    message = str(info.value)
    assert str(path) in message and "holds 10 bytes" in message and "limit of 9 bytes" in message


# --------------------------------------------------------------------------------------------
# check_class_labels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "phrase"),
    [
        (np.array([0, 3, 2**31 - 1, 12], np.int32), "found 2147483647 at index 2 (2 out of range"),
        (np.array([1, -1], np.int64), "found -1 at index 1 (1 out of range"),
        (np.array([10], np.uint8), "found 10 at index 0"),
    ],
)
def test_check_class_labels_names_the_first_bad_index(labels, phrase) -> None:
    with pytest.raises(DataFormatError) as info:
        check_class_labels("lab.idx", labels, 10)
    message = str(info.value)
    assert message.startswith("lab.idx: labels must be class indices 0..9") and phrase in message


def test_check_class_labels_returns_int64() -> None:
    out = check_class_labels("x", np.array([0, 9, 4], np.uint8), 10)
    assert out.dtype == np.int64 and out.tolist() == [0, 9, 4]
    assert check_class_labels("x", np.zeros(0, np.uint8), 10).shape == (0,)
