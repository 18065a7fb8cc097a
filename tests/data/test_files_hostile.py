"""Hostile and careless MNIST / CIFAR-10 files (issue 11): small files that declare huge sizes,
gzip bombs, zero-stride arrays in pickles, labels outside 0..9, empty or absurd image files.

Each is refused at load time with a DataFormatError naming the file, what was expected and what
was found, before anything large is allocated.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.errors import DataFormatError
from deepnotes.data.bounded import MAX_BYTES_ENV
from deepnotes.data.files import (
    MNIST_MAX_SIDE,
    load_cifar10,
    load_mnist,
    read_idx,
    write_cifar_batch,
    write_idx,
)

_MiB = 2**20


def idx_header(code: int, shape: tuple[int, ...]) -> bytes:
    return struct.pack(f">BBBB{len(shape)}I", 0, 0, code, len(shape), *shape)


def write_gzip(path: Path, prefix: bytes, n_zeros: int = 0) -> Path:
    """``prefix`` then ``n_zeros`` zero bytes, gzip-compressed chunk by chunk."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(_MiB)
    with open(path, "wb") as handle:
        handle.write(compressor.compress(prefix))
        left = n_zeros
        while left > 0:
            handle.write(compressor.compress(chunk[: min(left, _MiB)]))
            left -= min(left, _MiB)
        handle.write(compressor.flush())
    return path


def message_of(info: pytest.ExceptionInfo[DataFormatError], path: Path, *phrases: str) -> str:
    message = str(info.value)
    assert str(path) in message, message
    assert "\n" not in message, message
    for phrase in phrases:
        assert phrase in message, message
    return message


def write_mnist_pair(root: Path, images: np.ndarray, labels: np.ndarray, prefix: str = "train"):
    write_idx(root / f"{prefix}-images-idx3-ubyte", images)
    write_idx(root / f"{prefix}-labels-idx1-ubyte", labels)


# --------------------------------------------------------------------------------------------
# gzip bombs and declared sizes (section 2, first finding)
# --------------------------------------------------------------------------------------------


def test_gzip_bomb_refused_without_decompressing_it(tmp_path: Path, monkeypatch) -> None:
    """50 MB of zeros (~50 kB compressed) after a header declaring 1000 bytes: refused after
    taking at most header + 1000 + 1 bytes from the stream, with little memory."""
    path = write_gzip(tmp_path / "bomb-idx1-ubyte.gz", idx_header(0x08, (1000,)), 50 * _MiB)
    assert path.stat().st_size < 200_000
    delivered = []
    original_read = gzip.GzipFile.read

    def counting_read(self, size=-1):
        data = original_read(self, size)
        delivered.append(len(data))
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", counting_read)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError) as info:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message_of(info, path, "IDX file has extra bytes", "1000 bytes of data, found more than 1000")
    assert peak < 4 * _MiB, f"peak {peak} bytes while refusing a 50 MB bomb"
    assert sum(delivered) <= 8 + 1000 + 1


def test_tiny_gzip_declaring_a_huge_size_is_refused_by_the_limit(tmp_path: Path) -> None:
    path = write_gzip(tmp_path / "huge.gz", idx_header(0x0E, (65535, 65535, 65535)) + b"\x00" * 8)
    with pytest.raises(DataFormatError) as info:
        read_idx(path)
    message_of(
        info,
        path,
        "IDX file too large",
        "shape (65535, 65535, 65535) of float64",
        "limit of 4294967296 bytes",
        MAX_BYTES_ENV,
    )


def test_idx_limit_from_argument_and_environment(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "x.gz"
    write_idx(path, np.zeros(2000, np.uint8))
    with pytest.raises(DataFormatError, match="limit of 1999 bytes"):
        read_idx(path, max_bytes=1999)
    assert read_idx(path, max_bytes=2000).shape == (2000,)
    monkeypatch.setenv(MAX_BYTES_ENV, "1000")
    with pytest.raises(DataFormatError, match="limit of 1000 bytes"):
        read_idx(path)
    root = tmp_path / "mnist"
    write_mnist_pair(root, np.zeros((2, 30, 30), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(DataFormatError, match="limit of 1000 bytes"):
        load_mnist(root)
    assert load_mnist(root, max_bytes=1800)[0].shape == (2, 30, 30)


def test_gzip_content_longer_than_declared(tmp_path: Path) -> None:
    path = tmp_path / "long.gz"
    path.write_bytes(gzip.compress(idx_header(0x08, (2, 2)) + b"\x01" * 5))
    with pytest.raises(DataFormatError) as info:
        read_idx(path)
    message_of(info, path, "extra bytes", "= 4 bytes of data, found more than 4", "gzip")


# --------------------------------------------------------------------------------------------
# MNIST: empty, zero or absurd sizes, counts, label range (sections 2 and 5)
# --------------------------------------------------------------------------------------------


def test_mnist_empty_image_file(tmp_path: Path) -> None:
    write_mnist_pair(tmp_path, np.zeros((2, 4, 4), np.uint8), np.zeros(2, np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError) as info:
        load_mnist(tmp_path)
    message_of(info, path, "truncated IDX file", "expected a 4-byte header", "found 0 bytes")


def test_mnist_without_test_images(tmp_path: Path) -> None:
    write_mnist_pair(tmp_path, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), "t10k")
    path = tmp_path / "t10k-images-idx3-ubyte"
    with pytest.raises(DataFormatError) as info:
        load_mnist(tmp_path, "test")
    message_of(info, path, "expected at least one image", "declares 0 images of 28x28")


@pytest.mark.parametrize(
    ("shape", "found"),
    [((5, 0, 28), "0x28"), ((5, 28, 0), "28x0"), ((1, 100_000, 100_000), "100000x100000")],
)
def test_mnist_zero_or_absurd_image_sizes(tmp_path, shape, found) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    # only the header: the side check comes before any image is read
    path.write_bytes(gzip.compress(idx_header(0x08, shape)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(shape[0], np.uint8))
    with pytest.raises(DataFormatError) as info:
        load_mnist(tmp_path)
    message_of(
        info,
        path,
        f"expected MNIST image height and width between 1 and {MNIST_MAX_SIDE} pixels",
        f"header declares {found}",
    )


def test_mnist_count_mismatch_found_from_the_headers(tmp_path: Path) -> None:
    """The counts are compared before the (here missing) image data is read."""
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(idx_header(0x08, (60000, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(59999, np.uint8))
    with pytest.raises(DataFormatError) as info:
        load_mnist(tmp_path)
    message_of(
        info, images, "count mismatch", "60000 images", "59999 labels", "one label per image"
    )


@pytest.mark.parametrize(
    ("labels", "phrase"),
    [
        (np.array([1, 2, 3, 2**31 - 1, 4], np.int32), "found 2147483647 at index 3"),
        (np.array([0, 10, 0, 0, 0], np.uint8), "found 10 at index 1"),
        (np.array([0, 1, 2, 3, -1], np.int8), "found -1 at index 4"),
    ],
)
def test_mnist_labels_outside_0_to_9(tmp_path, labels, phrase) -> None:
    write_mnist_pair(tmp_path, np.zeros((5, 4, 4), np.uint8), labels)
    with pytest.raises(DataFormatError) as info:
        load_mnist(tmp_path)
    message_of(
        info,
        tmp_path / "train-labels-idx1-ubyte",
        "MNIST labels must be class indices 0..9",
        phrase,
    )


def test_mnist_labels_are_int64_in_range(tmp_path: Path) -> None:
    write_mnist_pair(tmp_path, np.zeros((3, 4, 4), np.uint8), np.array([9, 0, 5], np.int32))
    _, labels = load_mnist(tmp_path)
    assert labels.dtype == np.int64 and labels.tolist() == [9, 0, 5]


# --------------------------------------------------------------------------------------------
# CIFAR-10: arrays larger than their bytes, label range, size limit (section 2)
# --------------------------------------------------------------------------------------------


class _ZeroStride:
    """Pickles as ``numpy.ndarray(shape, uint8, b"\\0", 0, zero strides)``: a few bytes that
    would stand for ``prod(shape)`` bytes."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __reduce__(self):
        return (np.ndarray, (self.shape, np.dtype(np.uint8), b"\x00", 0, (0,) * len(self.shape)))


def test_cifar_zero_stride_array_is_refused(tmp_path: Path) -> None:
    # 20,000 images = 61 MB declared by a file of a few hundred bytes (kept modest so that the
    # code before the fix, which accepted it, did not exhaust memory while this test failed)
    n = 20_000
    path = tmp_path / "test_batch"
    path.write_bytes(
        pickle.dumps({b"data": _ZeroStride((n, 3072)), b"labels": _ZeroStride((n,))}, protocol=2)
    )
    assert path.stat().st_size < 1000
    with pytest.raises(DataFormatError) as info:
        load_cifar10(tmp_path, "test")
    message_of(info, path, "refusing the call numpy.ndarray", "rebuilt only from their own bytes")


def _reconstructed(shape: tuple[int, ...], raw: bytes):
    from numpy._core.multiarray import _reconstruct

    class Fake:
        def __reduce__(self):
            state = (1, shape, np.dtype(np.uint8), False, raw)
            return (_reconstruct, (np.ndarray, (0,), b"b"), state)

    return Fake()


def _frombuffer(shape: tuple[int, ...], raw: bytes):
    from numpy._core.numeric import _frombuffer

    class Fake:
        def __reduce__(self):
            return (_frombuffer, (raw, np.dtype(np.uint8), shape, "C"))

    return Fake()


@pytest.mark.parametrize("make", [_reconstructed, _frombuffer])
def test_cifar_array_declaring_more_than_its_bytes(tmp_path, make) -> None:
    path = tmp_path / "test_batch"
    fake = make((5, 3072), b"\x00" * 10)
    path.write_bytes(pickle.dumps({b"data": fake, b"labels": [0] * 5}, protocol=2))
    with pytest.raises(DataFormatError) as info:
        load_cifar10(tmp_path, "test")
    message_of(info, path, "declares shape (5, 3072) of uint8 = 15360 bytes but holds 10 bytes")


def test_cifar_reconstruct_with_huge_placeholder_shape_allocates_nothing(tmp_path: Path) -> None:
    """``_reconstruct(ndarray, shape, ...)`` would allocate ``shape``: the stand-in does not."""
    from numpy._core.multiarray import _reconstruct

    raw = bytes(2 * 3072)

    class Fake:
        def __reduce__(self):
            state = (1, (2, 3072), np.dtype(np.uint8), False, raw)
            return (_reconstruct, (np.ndarray, (2**40,), b"b"), state)

    (tmp_path / "test_batch").write_bytes(
        pickle.dumps({b"data": Fake(), b"labels": [1, 2]}, protocol=2)
    )
    images, labels = load_cifar10(tmp_path, "test")
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("labels", "phrase"),
    [
        ([0, 2**31 - 1], "class indices 0..9, found 2147483647 at index 1"),
        ([0, 2**70], "found 1180591620717411303424 at index 1"),
        ([3, True], "found bool True at index 1"),
        ([3, "4"], "found str '4' at index 1"),
    ],
)
def test_cifar_labels_checked_with_index(tmp_path, labels, phrase) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, protocol=2)
    )
    with pytest.raises(DataFormatError) as info:
        load_cifar10(tmp_path, "test")
    message_of(info, path, phrase)


def test_cifar_numpy_scalar_labels_are_read(tmp_path: Path) -> None:
    labels = [np.int64(3), np.uint8(9)]
    (tmp_path / "test_batch").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, protocol=2)
    )
    assert load_cifar10(tmp_path, "test")[1].tolist() == [3, 9]


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_refuses_object_arrays(tmp_path, protocol) -> None:
    path = tmp_path / "test_batch"
    data = np.empty((1, 3072), dtype=object)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [0]}, protocol=protocol))
    with pytest.raises(DataFormatError) as info:
        load_cifar10(tmp_path, "test")
    message_of(info, path, "refusing numpy.dtype", "simple numeric types")


def test_cifar_batch_above_limit_refused_before_reading(tmp_path: Path) -> None:
    write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 3072), np.uint8), [0, 1])
    size = (tmp_path / "test_batch").stat().st_size
    with pytest.raises(DataFormatError) as info:
        load_cifar10(tmp_path, "test", max_bytes=size - 1)
    message_of(info, tmp_path / "test_batch", "CIFAR-10 batch too large", f"holds {size} bytes")
    assert len(load_cifar10(tmp_path, "test", max_bytes=size)[0]) == 2


def test_cifar_split_without_images(tmp_path: Path) -> None:
    write_cifar_batch(tmp_path / "test_batch", np.zeros((0, 3072), np.uint8), [])
    with pytest.raises(DataFormatError) as info:
        load_cifar10(tmp_path, "test")
    message_of(info, tmp_path, "hold 0 images", "expected at least one")


def test_cifar_fortran_and_big_endian_arrays_rebuilt_from_their_bytes(tmp_path: Path) -> None:
    data = np.asfortranarray(np.arange(2 * 3072).reshape(2, 3072) % 256).astype(np.uint8)
    data = np.asfortranarray(data)
    labels = np.array([7, 2], dtype=">i4")
    for protocol in (2, 5):
        (tmp_path / "test_batch").write_bytes(
            pickle.dumps({b"data": data, b"labels": labels}, protocol=protocol)
        )
        images, got = load_cifar10(tmp_path, "test")
        np.testing.assert_array_equal(images.reshape(2, 3072), data)
        assert got.tolist() == [7, 2] and got.dtype == np.int64
        assert images.flags.writeable and images.flags.c_contiguous


def test_cifar_refuses_bytes_with_a_size(tmp_path: Path) -> None:
    """Protocol 2 stores an empty bytes object as ``bytes()``; ``bytes(n)`` would make n bytes."""

    class Fake:
        def __reduce__(self):
            return (bytes, (10**6,))

    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": Fake(), b"labels": []}, protocol=2))
    with pytest.raises(DataFormatError) as info:
        load_cifar10(tmp_path, "test")
    message_of(info, path, "refusing the call bytes(1000000,)")


def test_cifar_arrays_are_writable_copies(tmp_path: Path) -> None:
    write_cifar_batch(tmp_path / "test_batch", np.ones((1, 3072), np.uint8), [4])
    images, labels = load_cifar10(tmp_path, "test")
    images[0, 0, 0, 0] = 7  # raises on a read-only view of the pickle's bytes
    labels[0] = 1
    assert images.flags.writeable and images.flags.c_contiguous and images[0, 0, 0, 1] == 1
