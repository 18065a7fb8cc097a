"""Tests for deepnotes.data.files: IDX and CIFAR-10 readers/writers and their error messages."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnotes.core.errors import DataFormatError
from deepnotes.data.files import (
    load_cifar10,
    load_mnist,
    read_idx,
    to_tensor_dataset,
    write_cifar_batch,
    write_idx,
)

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def idx_bytes(code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    """IDX file contents built by hand from the spec, independent of write_idx."""
    return struct.pack(f">BBBB{len(shape)}I", 0, 0, code, len(shape), *shape) + payload


def write_mnist(root: Path, split: str, n: int = 5, h: int = 4, w: int = 3, gz: bool = False):
    prefix = "train" if split == "train" else "t10k"
    rng = np.random.default_rng(0 if split == "train" else 1)
    images = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


def cifar_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


@contextmanager
def raises(path: Path | str, *phrases: str) -> Iterator[pytest.ExceptionInfo[DataFormatError]]:
    """Expect a DataFormatError whose message names ``path`` and contains every phrase."""
    with pytest.raises(DataFormatError) as info:
        yield info
    message = str(info.value)
    assert str(path) in message, message
    for phrase in phrases:
        assert phrase in message, message


# --------------------------------------------------------------------------------------------
# IDX: reading against the spec
# --------------------------------------------------------------------------------------------


def test_read_idx_hand_built_uint8_matches_spec(tmp_path: Path) -> None:
    values = bytes(range(24))
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(0x08, (2, 3, 4), values))
    arr = read_idx(path)
    assert arr.dtype == np.uint8
    assert arr.shape == (2, 3, 4)
    np.testing.assert_array_equal(arr, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    assert arr.flags.writeable


@pytest.mark.parametrize(
    ("code", "fmt", "dtype", "values"),
    [
        (0x09, "b", np.int8, [-128, -1, 0, 127]),
        (0x0B, "h", np.int16, [-32768, -2, 258, 32767]),
        (0x0C, "i", np.int32, [-(2**31), -3, 65536 + 7, 2**31 - 1]),
        (0x0D, "f", np.float32, [-1.5, 0.0, 3.25, 1e30]),
        (0x0E, "d", np.float64, [-2.5, 1e-300, 7.0, 1e300]),
    ],
)
def test_read_idx_hand_built_big_endian_types(tmp_path, code, fmt, dtype, values) -> None:
    payload = struct.pack(f">{len(values)}{fmt}", *values)
    path = tmp_path / "data.bin"
    path.write_bytes(idx_bytes(code, (2, 2), payload))
    arr = read_idx(path)
    assert arr.dtype == np.dtype(dtype)
    assert arr.dtype.isnative
    np.testing.assert_array_equal(arr, np.array(values, dtype=dtype).reshape(2, 2))


def test_read_idx_gzip_detected_by_magic_not_extension(tmp_path: Path) -> None:
    raw = idx_bytes(0x08, (3,), b"\x05\x00\x04")
    # gzip content under a name without .gz ...
    disguised = tmp_path / "labels-idx1-ubyte"
    disguised.write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(disguised), [5, 0, 4])
    # ... and raw content under a name ending in .gz.
    misnamed = tmp_path / "labels.gz"
    misnamed.write_bytes(raw)
    np.testing.assert_array_equal(read_idx(misnamed), [5, 0, 4])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (2, 3), (2, 1, 3, 2), (0, 4)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_roundtrip(tmp_path, dtype, shape, suffix) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / f"x{suffix}"
    write_idx(path, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, arr)


def test_write_idx_produces_spec_bytes(tmp_path: Path) -> None:
    arr = np.array([[1, -2], [300, 4]], dtype=np.int16)
    path = tmp_path / "x"
    write_idx(path, arr)
    assert path.read_bytes() == idx_bytes(0x0B, (2, 2), struct.pack(">4h", 1, -2, 300, 4))
    # a non-native (big-endian) or non-contiguous input is written the same way
    write_idx(path, arr.astype(">i2"))
    assert path.read_bytes() == idx_bytes(0x0B, (2, 2), struct.pack(">4h", 1, -2, 300, 4))
    write_idx(path, np.asfortranarray(arr))
    assert path.read_bytes() == idx_bytes(0x0B, (2, 2), struct.pack(">4h", 1, -2, 300, 4))


def test_write_idx_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_idx(tmp_path / "sub" / "a.gz", np.zeros(3, np.uint8))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.gz"]


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.bool_, np.complex64])
def test_write_idx_rejects_unsupported_dtype(tmp_path, dtype) -> None:
    path = tmp_path / "x"
    with raises(path, "cannot write dtype", "uint8"):
        write_idx(path, np.zeros(2, dtype=dtype))
    assert not path.exists()


# --------------------------------------------------------------------------------------------
# IDX: errors
# --------------------------------------------------------------------------------------------


def test_read_idx_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with raises(path, "not found"):
        read_idx(path)


def test_read_idx_folder_instead_of_file(tmp_path: Path) -> None:
    with raises(tmp_path, "folder"):
        read_idx(tmp_path)


@pytest.mark.parametrize(
    ("header", "got"),
    [
        (b"\x01\x00\x08\x01", "got 0x01 0x00 0x08"),
        (b"\x00\x00\x0a\x01", "got 0x00 0x00 0x0A"),
        (b"PK\x03\x04", "got 0x50 0x4B 0x03"),
    ],
)
def test_read_idx_wrong_magic(tmp_path, header, got) -> None:
    path = tmp_path / "foo"
    path.write_bytes(header + b"\x00\x00\x00\x01" + b"\x00")
    with raises(path, "not an IDX file", "0x00 0x00", "0x08", "0x0E", got):
        read_idx(path)


def test_read_idx_shorter_than_fixed_header(tmp_path: Path) -> None:
    path = tmp_path / "foo"
    path.write_bytes(b"\x00\x00")
    with raises(path, "truncated IDX file", "found 2 bytes"):
        read_idx(path)
    path.write_bytes(b"")
    with raises(path, "truncated IDX file", "found 0 bytes"):
        read_idx(path)


def test_read_idx_shorter_than_dimension_header(tmp_path: Path) -> None:
    path = tmp_path / "foo"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 60000) + b"\x00\x00")
    with raises(path, "truncated IDX file", "3 dimensions", "16 header bytes", "found only 10"):
        read_idx(path)


def test_read_idx_truncated_data(tmp_path: Path) -> None:
    path = tmp_path / "foo"
    path.write_bytes(idx_bytes(0x08, (60000, 28, 28), b"\x00" * 1234))
    with raises(
        path,
        "truncated IDX file",
        "header declares shape (60000, 28, 28) of uint8 = 47040000 bytes of data, found 1234",
    ):
        read_idx(path)


def test_read_idx_truncated_multibyte_data(tmp_path: Path) -> None:
    path = tmp_path / "foo"
    path.write_bytes(idx_bytes(0x0D, (3,), b"\x00" * 11))
    with raises(path, "truncated IDX file", "(3,) of float32 = 12 bytes of data, found 11"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "foo"
    path.write_bytes(idx_bytes(0x08, (2, 2), b"\x01" * 5))
    with raises(path, "extra bytes", "(2, 2) of uint8 = 4 bytes of data, found 5"):
        read_idx(path)


def test_read_idx_truncated_inside_gzip_mentions_decompression(tmp_path: Path) -> None:
    path = tmp_path / "foo.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (10,), b"\x01" * 4)))
    with raises(path, "truncated IDX file", "found 4", "gzip"):
        read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    blob = gzip.compress(idx_bytes(0x08, (100,), bytes(range(100))))
    path = tmp_path / "foo.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with raises(path, "corrupt or truncated gzip"):
        read_idx(path)


def test_read_idx_corrupt_gzip_stream(tmp_path: Path) -> None:
    blob = bytearray(gzip.compress(idx_bytes(0x08, (100,), bytes(range(100)))))
    blob[3] = 0xFF  # reserved flag bits set: invalid gzip header
    path = tmp_path / "hdr.gz"
    path.write_bytes(bytes(blob))
    with raises(path, "corrupt or truncated gzip"):
        read_idx(path)
    blob = bytearray(gzip.compress(idx_bytes(0x08, (100,), bytes(range(100)))))
    blob[-8] ^= 0xFF  # CRC mismatch
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(blob))
    with raises(path, "corrupt or truncated gzip"):
        read_idx(path)
    path = tmp_path / "deflate.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 20)
    with raises(path, "corrupt or truncated gzip"):
        read_idx(path)


def test_data_format_error_is_value_error() -> None:
    assert issubclass(DataFormatError, ValueError)


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_roundtrip(tmp_path, gz, split) -> None:
    images, labels = write_mnist(tmp_path, split, gz=gz)
    got_images, got_labels = load_mnist(tmp_path, split=split)
    assert got_images.dtype == np.uint8 and got_images.shape == (5, 4, 3)
    assert got_labels.dtype == np.int64 and got_labels.shape == (5,)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_load_mnist_hand_built_files(tmp_path: Path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(0x08, (2, 2, 2), bytes(range(8))))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(0x08, (2,), b"\x07\x02"))
    )
    images, labels = load_mnist(str(tmp_path), split="test")
    np.testing.assert_array_equal(images, np.arange(8).reshape(2, 2, 2))
    assert labels.tolist() == [7, 2]


def test_load_mnist_prefers_raw_over_gz(tmp_path: Path) -> None:
    _, labels = write_mnist(tmp_path, "train")
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    np.testing.assert_array_equal(load_mnist(tmp_path)[1], labels)


def test_load_mnist_bad_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'train', 'test'") as info:
        load_mnist(tmp_path, split="val")
    assert "'val'" in str(info.value)


def test_load_mnist_missing_file(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train")
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    expected = tmp_path / "train-labels-idx1-ubyte"
    with raises(
        expected,
        "MNIST file not found",
        "also looked for train-labels-idx1-ubyte.gz",
        f"expected the four standard MNIST files in {tmp_path}",
        "t10k-images-idx3-ubyte",
    ):
        load_mnist(tmp_path)


def test_load_mnist_missing_test_files_when_only_train_present(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train")
    load_mnist(tmp_path, "train")
    with raises(tmp_path / "t10k-images-idx3-ubyte", "MNIST file not found"):
        load_mnist(tmp_path, "test")


def test_load_mnist_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "no-such-folder"
    with raises(root, "MNIST folder not found", "train-images-idx3-ubyte"):
        load_mnist(root)


def test_load_mnist_root_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_text("x")
    with raises(root, "not a folder"):
        load_mnist(root)


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train", n=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with raises(tmp_path / "train-images-idx3-ubyte", "count mismatch", "5 images", "4 labels"):
        load_mnist(tmp_path)


def test_load_mnist_images_wrong_rank(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train")
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((5, 12), np.uint8))
    with raises(path, "(N, H, W)", "(5, 12)"):
        load_mnist(tmp_path)


def test_load_mnist_images_wrong_dtype(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train")
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((5, 4, 3), np.float32))
    with raises(path, "uint8", "float32"):
        load_mnist(tmp_path)


def test_load_mnist_labels_wrong_rank(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train")
    path = tmp_path / "train-labels-idx1-ubyte"
    write_idx(path, np.zeros((5, 1), np.uint8))
    with raises(path, "(N,)", "(5, 1)"):
        load_mnist(tmp_path)


def test_load_mnist_labels_not_integers(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train")
    path = tmp_path / "train-labels-idx1-ubyte"
    write_idx(path, np.zeros(5, np.float64))
    with raises(path, "integer", "float64"):
        load_mnist(tmp_path)


def test_load_mnist_propagates_truncation_with_file_name(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train")
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with raises(path, "truncated IDX file"):
        load_mnist(tmp_path)


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


def test_read_hand_built_cifar_batch(tmp_path: Path) -> None:
    """A batch made with plain pickle.dumps of a dict, as the official files are."""
    n = 3
    rows = np.arange(n * 3072, dtype=np.int64).reshape(n, 3072) % 251
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [3, 8, 0],
        b"data": rows.astype(np.uint8),
        b"filenames": [b"a.png", b"b.png", b"c.png"],
    }
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    images, labels = load_cifar10(tmp_path, split="test")
    assert images.shape == (3, 3, 32, 32) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [3, 8, 0]
    # channel-major: the first 1024 values are the red plane, row by row
    assert images[1, 0, 0, 0] == rows[1, 0]
    assert images[1, 0, 0, 5] == rows[1, 5]
    assert images[1, 0, 1, 0] == rows[1, 32]
    assert images[1, 1, 0, 0] == rows[1, 1024]
    assert images[1, 2, 31, 31] == rows[1, 3071]


def _py2_str(value: bytes) -> bytes:
    """A Python 2 ``str`` as pickled by Python 2: SHORT_BINSTRING or BINSTRING."""
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<I", len(value)) + value


def _py2_cifar_pickle(data: bytes, n: int, labels: list[int]) -> bytes:
    """Opcode by opcode, the pickle Python 2 + NumPy 1 wrote for the official CIFAR-10 files."""
    out = b"\x80\x02}(" + _py2_str(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
    out += _py2_str(b"b") + b"\x87R"
    out += b"(K\x01M" + struct.pack("<H", n) + b"M\x00\x0c\x86"  # version 1, shape (n, 3072)
    out += b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"K\x00K\x01\x87R"
    out += b"(K\x03" + _py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89" + _py2_str(data) + b"tb"
    out += _py2_str(b"labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    out += _py2_str(b"batch_label") + _py2_str(b"testing batch 1 of 1") + b"u."
    return out


def test_read_python2_era_cifar_pickle(tmp_path: Path) -> None:
    """The official files were written by Python 2 with NumPy 1 (numpy.core module names)."""
    data = bytes(i % 256 for i in range(2 * 3072))
    (tmp_path / "test_batch").write_bytes(_py2_cifar_pickle(data, 2, [6, 9]))
    images, labels = load_cifar10(tmp_path, "test")
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [6, 9]
    np.testing.assert_array_equal(images.reshape(-1), np.frombuffer(data, np.uint8))


def test_read_cifar_batch_other_pickle_protocols_and_str_keys(tmp_path: Path) -> None:
    data = cifar_images(2).reshape(2, 3072)
    for protocol in (0, 4, 5):
        batch = {"data": data, "labels": np.array([1, 9])}
        (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
        images, labels = load_cifar10(tmp_path, "test")
        np.testing.assert_array_equal(images.reshape(2, 3072), data)
        assert labels.tolist() == [1, 9]


def test_write_cifar_batch_format(tmp_path: Path) -> None:
    images = cifar_images(4)
    path = tmp_path / "data_batch_1"
    write_cifar_batch(path, images, [0, 1, 2, 9])
    raw = path.read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2
    batch = pickle.loads(raw, encoding="bytes")
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"labels"] == [0, 1, 2, 9]
    assert all(type(label) is int for label in batch[b"labels"])
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (4, 3072)
    np.testing.assert_array_equal(batch[b"data"], images.reshape(4, 3072))
    assert len(batch[b"filenames"]) == 4 and isinstance(batch[b"filenames"][0], bytes)
    assert isinstance(batch[b"batch_label"], bytes)


@pytest.mark.parametrize("subdir", [False, True])
def test_load_cifar10_train_concatenates_five_batches(tmp_path, subdir) -> None:
    folder = tmp_path / "cifar-10-batches-py" if subdir else tmp_path
    all_images, all_labels = [], []
    for i in range(1, 6):
        images = cifar_images(i, seed=i)
        labels = [(i + j) % 10 for j in range(i)]
        write_cifar_batch(folder / f"data_batch_{i}", images, labels)
        all_images.append(images)
        all_labels.extend(labels)
    write_cifar_batch(folder / "test_batch", cifar_images(2, seed=9).reshape(2, 3072), [4, 5])
    images, labels = load_cifar10(tmp_path)
    assert images.shape == (15, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.concatenate(all_images))
    assert labels.dtype == np.int64 and labels.tolist() == all_labels
    test_images, test_labels = load_cifar10(tmp_path, split="test")
    np.testing.assert_array_equal(test_images, cifar_images(2, seed=9))
    assert test_labels.tolist() == [4, 5]


def test_load_cifar10_bad_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'train', 'test'"):
        load_cifar10(tmp_path, split="validation")


def test_load_cifar10_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    with raises(root, "CIFAR-10 folder not found", "data_batch_1", "test_batch"):
        load_cifar10(root)


def test_load_cifar10_missing_batch_lists_expected_names(tmp_path: Path) -> None:
    for i in (1, 2, 4, 5):
        write_cifar_batch(tmp_path / f"data_batch_{i}", cifar_images(1), [0])
    with raises(
        tmp_path / "data_batch_3",
        "CIFAR-10 batch not found",
        "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5",
        "cifar-10-batches-py",
    ):
        load_cifar10(tmp_path)
    with raises(tmp_path / "test_batch", "CIFAR-10 batch not found"):
        load_cifar10(tmp_path, "test")


def _write_test_batch(tmp_path: Path, obj: object) -> Path:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def test_cifar_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(b"this is not a pickle at all")
    with raises(path, "not a CIFAR-10 batch", "could not be unpickled"):
        load_cifar10(tmp_path, "test")
    path.write_bytes(b"")
    with raises(path, "not a CIFAR-10 batch"):
        load_cifar10(tmp_path, "test")
    good = pickle.dumps({b"data": cifar_images(1).reshape(1, 3072), b"labels": [1]}, protocol=2)
    path.write_bytes(good[: len(good) // 2])
    with raises(path, "not a CIFAR-10 batch"):
        load_cifar10(tmp_path, "test")


def test_cifar_not_a_dict(tmp_path: Path) -> None:
    path = _write_test_batch(tmp_path, [1, 2, 3])
    with raises(path, "expected a pickled dict", "list"):
        load_cifar10(tmp_path, "test")


def test_cifar_wrong_keys(tmp_path: Path) -> None:
    path = _write_test_batch(
        tmp_path, {b"data": cifar_images(1).reshape(1, 3072), b"fine_labels": [1]}
    )
    with raises(path, "expected keys b'data' and b'labels'", "found keys", "b'fine_labels'"):
        load_cifar10(tmp_path, "test")


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (np.zeros((2, 3000), np.uint8), "found shape (2, 3000)"),
        (np.zeros((2, 3, 32, 32), np.uint8), "found shape (2, 3, 32, 32)"),
        (np.zeros(6144, np.uint8), "found shape (6144,)"),
        (np.zeros((2, 3072), np.float32), "found float32 array"),
        (b"\x00" * 6144, "found bytes"),
    ],
)
def test_cifar_data_wrong_size_or_type(tmp_path, data, phrase) -> None:
    path = _write_test_batch(tmp_path, {b"data": data, b"labels": [0, 1]})
    with raises(path, "3072", phrase):
        load_cifar10(tmp_path, "test")


def test_cifar_labels_count_mismatch(tmp_path: Path) -> None:
    path = _write_test_batch(tmp_path, {b"data": np.zeros((3, 3072), np.uint8), b"labels": [1]})
    with raises(path, "labels count mismatch", "3 images", "1 labels"):
        load_cifar10(tmp_path, "test")


@pytest.mark.parametrize(("labels", "bad"), [([0, 10], "found 10"), ([-1, 3], "found -1")])
def test_cifar_labels_out_of_range(tmp_path, labels, bad) -> None:
    path = _write_test_batch(tmp_path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": labels})
    with raises(path, "0..9", bad):
        load_cifar10(tmp_path, "test")


def test_cifar_labels_not_integers(tmp_path: Path) -> None:
    path = _write_test_batch(
        tmp_path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0.5, 1.0]}
    )
    with raises(path, "integers 0..9"):
        load_cifar10(tmp_path, "test")


class _Evil:
    """Unpickling an instance of this would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo hi > {self.marker}",))


def test_cifar_refuses_malicious_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = {b"data": _Evil(marker), b"labels": [0]}
    path = _write_test_batch(tmp_path, payload)
    assert b"system" in path.read_bytes()
    with raises(path, "refusing to load global", "system"):
        load_cifar10(tmp_path, "test")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_cifar_refuses_builtins_and_arbitrary_classes(tmp_path, protocol) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": eval, b"labels": [0]}, protocol=protocol))
    with raises(path, "refusing to load global", "eval"):
        load_cifar10(tmp_path, "test")
    path.write_bytes(pickle.dumps({b"data": Path("x"), b"labels": [0]}, protocol=protocol))
    with raises(path, "refusing to load global"):
        load_cifar10(tmp_path, "test")


@pytest.mark.parametrize(
    ("images", "labels", "phrase"),
    [
        (np.zeros((2, 3, 32, 32), np.float32), [0, 1], "uint8"),
        (np.zeros((2, 32, 32, 3), np.uint8), [0, 1], "(n, 3, 32, 32)"),
        (np.zeros((2, 3072), np.uint8), [0], "2 integers"),
        (np.zeros((2, 3072), np.uint8), [0, 12], "0..9"),
    ],
)
def test_write_cifar_batch_validates(tmp_path, images, labels, phrase) -> None:
    path = tmp_path / "data_batch_1"
    with raises(path, phrase):
        write_cifar_batch(path, images, labels)
    assert not path.exists()


# --------------------------------------------------------------------------------------------
# to_tensor_dataset
# --------------------------------------------------------------------------------------------


def test_to_tensor_dataset_mnist_like(tmp_path: Path) -> None:
    images, labels = write_mnist(tmp_path, "train")
    ds = to_tensor_dataset(*load_mnist(tmp_path))
    x, y = ds.tensors
    assert x.shape == (5, 1, 4, 3) and x.dtype == torch.float32
    assert y.shape == (5,) and y.dtype == torch.int64
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    np.testing.assert_allclose(x[:, 0].numpy(), images / 255.0, rtol=1e-6)
    assert y.tolist() == labels.tolist()


def test_to_tensor_dataset_cifar_like_keeps_shape() -> None:
    images = cifar_images(2)
    ds = to_tensor_dataset(images, np.array([3, 4]), scale=1.0)
    assert ds[0][0].shape == (3, 32, 32)
    assert torch.equal(ds.tensors[0], torch.from_numpy(images.astype(np.float32)))
    assert len(ds) == 2


@pytest.mark.parametrize(
    ("images", "labels", "phrase"),
    [
        (np.zeros((2, 5), np.uint8), np.zeros(2, np.int64), "(N, H, W)"),
        (np.zeros((2, 3, 3), np.uint8), np.zeros(3, np.int64), "count mismatch"),
        (np.zeros((2, 3, 3), np.uint8), np.zeros(2, np.float32), "integer"),
    ],
)
def test_to_tensor_dataset_errors(images, labels, phrase) -> None:
    with pytest.raises(DataFormatError) as info:
        to_tensor_dataset(images, labels)
    assert phrase in str(info.value)
    with pytest.raises(DataFormatError, match="scale"):
        to_tensor_dataset(np.zeros((1, 2, 2)), np.zeros(1, np.int64), scale=0)
