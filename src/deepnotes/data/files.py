"""Loaders for image data sets that the user already has on disk; nothing here downloads.

Two on-disk formats are read (and written, so that tests and users can produce small files):

* **IDX**, the format of MNIST and Fashion-MNIST. A file starts with a four-byte header: two
  zero bytes, one byte naming the element type (unsigned or signed bytes, 16- or 32-bit
  integers, 32- or 64-bit floats) and one byte giving the number of dimensions. Then comes the
  size of each dimension as a big-endian unsigned 32-bit integer, and then the elements
  themselves, row-major, each multi-byte value big-endian. The files are often distributed
  gzip-compressed; :func:`read_idx` recognises compression from the file's first two bytes, so
  the file name does not matter.
* **CIFAR-10 "python version" batches**: each batch file is a pickled dict with byte-string keys.
  ``b"data"`` holds a ``uint8`` array with one row of 3072 values per image (the 32x32 red plane,
  then the green plane, then the blue plane, each row by row) and ``b"labels"`` a list of class
  indices 0..9. Pickles can run arbitrary code when loaded, so batches are read with an
  unpickler that can only rebuild NumPy arrays and refuses every other global.

Every problem with a file (missing, truncated, wrong format, inconsistent contents) raises
:class:`~deepnotes.core.errors.DataFormatError` with a message that names the file and says what
was expected and what was found.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepnotes.core.errors import DataFormatError
from deepnotes.core.io import atomic_write_bytes

if TYPE_CHECKING:
    from torch.utils.data import TensorDataset

__all__ = [
    "load_cifar10",
    "load_mnist",
    "read_idx",
    "to_tensor_dataset",
    "write_cifar_batch",
    "write_idx",
]

PathLike = str | os.PathLike[str]

# IDX type code -> (dtype as stored on disk, i.e. big-endian; human-readable name).
_IDX_TYPES: dict[int, tuple[np.dtype[Any], str]] = {
    0x08: (np.dtype(">u1"), "uint8"),
    0x09: (np.dtype(">i1"), "int8"),
    0x0B: (np.dtype(">i2"), "int16"),
    0x0C: (np.dtype(">i4"), "int32"),
    0x0D: (np.dtype(">f4"), "float32"),
    0x0E: (np.dtype(">f8"), "float64"),
}
# (kind, itemsize) of a NumPy dtype -> IDX type code, used by write_idx.
_IDX_CODES: dict[tuple[str, int], int] = {
    (dtype.kind, dtype.itemsize): code for code, (dtype, _) in _IDX_TYPES.items()
}
_IDX_TYPE_LIST = ", ".join(f"0x{code:02X} ({name})" for code, (_, name) in _IDX_TYPES.items())
_GZIP_MAGIC = b"\x1f\x8b"

_SPLITS = ("train", "test")
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_ALL = ", ".join(name for pair in _MNIST_FILES.values() for name in pair)

_CIFAR_SUBDIR = "cifar-10-batches-py"
_CIFAR_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CIFAR_SHAPE = (3, 32, 32)
_CIFAR_ROW = 3 * 32 * 32
_CIFAR_CLASSES = 10


# --------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------


def _read_bytes(path: Path, what: str) -> bytes:
    """Return the contents of ``path``, turning OS errors into :class:`DataFormatError`."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a folder, expected a {what}") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read {what}: {exc}") from exc


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), raw or gzip-compressed.

    Compression is detected from the gzip magic bytes ``1f 8b`` at the start of the file, not
    from the file name.

    Arguments:
        path: the file to read.

    Returns:
        An array with the shape declared in the header and the element type given by its type
        code (``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or ``float64``), in native
        byte order. The array owns its memory and is writable.

    Raises:
        DataFormatError: the file is missing or unreadable, is a corrupt or truncated gzip
            stream, does not start with a valid IDX header, is shorter than its header, or holds
            fewer or more data bytes than the header declares.

    Example:
        >>> images = read_idx("mnist/train-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((60000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    raw = _read_bytes(path, "IDX file")
    compressed = raw[:2] == _GZIP_MAGIC
    if compressed:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataFormatError(
                f"{path}: corrupt or truncated gzip file (expected a gzip-compressed IDX file): "
                f"{exc}"
            ) from None
    where = " after gzip decompression" if compressed else ""

    if len(raw) < 4:
        raise DataFormatError(
            f"{path}: truncated IDX file: expected a 4-byte header (0x00 0x00, type code, number "
            f"of dimensions), found {len(raw)} bytes{where}"
        )
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_TYPES:
        raise DataFormatError(
            f"{path}: not an IDX file: the first two bytes must be 0x00 0x00 and the type code "
            f"(third byte) one of {_IDX_TYPE_LIST}; got 0x{zero0:02X} 0x{zero1:02X} "
            f"0x{code:02X}{where}"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataFormatError(
            f"{path}: truncated IDX file: header declares {ndim} dimensions, which needs "
            f"{header_size} header bytes, found only {len(raw)} bytes{where}"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    disk_dtype, type_name = _IDX_TYPES[code]
    count = 1
    for size in shape:
        count *= size
    expected = count * disk_dtype.itemsize
    found = len(raw) - header_size
    if found != expected:
        problem = "truncated IDX file" if found < expected else "IDX file has extra bytes"
        raise DataFormatError(
            f"{path}: {problem}: header declares shape {tuple(shape)} of {type_name} = "
            f"{expected} bytes of data, found {found}{where}"
        )
    data = np.frombuffer(raw, dtype=disk_dtype, count=count, offset=header_size)
    return data.reshape(shape).astype(disk_dtype.newbyteorder("="))


def write_idx(path: PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends with ``.gz``.

    The file is written atomically: a reader never sees a half-written file.

    Arguments:
        path: destination file; its parent folder is created if needed.
        array: an array of dtype ``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or
            ``float64`` with at most 255 dimensions, each smaller than 2**32.

    Returns:
        The path written.

    Raises:
        DataFormatError: the array's dtype or shape cannot be represented in IDX.

    Example:
        >>> write_idx("labels-idx1-ubyte.gz", np.array([5, 0, 4], dtype=np.uint8))  # doctest: +SKIP
        PosixPath('labels-idx1-ubyte.gz')
    """
    path = Path(path)
    arr = np.asarray(array)
    code = _IDX_CODES.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        names = ", ".join(name for _, name in _IDX_TYPES.values())
        raise DataFormatError(
            f"{path}: cannot write dtype {arr.dtype} as IDX; expected one of {names}"
        )
    if arr.ndim > 255 or any(size >= 2**32 for size in arr.shape):
        raise DataFormatError(
            f"{path}: cannot write shape {arr.shape} as IDX; expected at most 255 dimensions, "
            f"each smaller than 2**32"
        )
    disk_dtype = _IDX_TYPES[code][0]
    header = struct.pack(f">BBBB{arr.ndim}I", 0, 0, code, arr.ndim, *arr.shape)
    payload = header + np.ascontiguousarray(arr, dtype=disk_dtype).tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    return atomic_write_bytes(path, payload)


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, _SPLITS))}; got {split!r}")


def _check_root(root: Path, what: str, expected: str) -> None:
    if not root.exists():
        raise DataFormatError(
            f"{what} folder not found: {root}; expected a folder holding {expected}"
        )
    if not root.is_dir():
        raise DataFormatError(f"{root}: is not a folder; expected a folder holding {expected}")


def _find_mnist_file(root: Path, name: str) -> Path:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataFormatError(
        f"MNIST file not found: {root / name} (also looked for {name}.gz); expected the four "
        f"standard MNIST files in {root}: {_MNIST_ALL} (each optionally gzip-compressed, .gz)"
    )


def load_mnist(root: PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST (or Fashion-MNIST, which uses the same files) from a folder.

    The folder must hold the standard IDX files: ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each
    either raw or gzip-compressed with a ``.gz`` suffix (the raw file is preferred when both
    exist). Image size is not fixed to 28x28: any ``(N, H, W)`` image file is accepted.

    Arguments:
        root: the folder holding the files.
        split: ``"train"`` or ``"test"`` (the ``t10k`` files).

    Returns:
        ``(images, labels)``: images of shape ``(N, H, W)`` and dtype ``uint8``, labels of shape
        ``(N,)`` and dtype ``int64``.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        DataFormatError: the folder or a file is missing, a file is not a valid IDX file, the
            images are not a 3-D ``uint8`` array, the labels not a 1-D integer array, or the two
            files hold different numbers of examples.

    Example:
        >>> images, labels = load_mnist("~/data/fashion-mnist", split="test")  # doctest: +SKIP
        >>> images.shape, labels.shape  # doctest: +SKIP
        ((10000, 28, 28), (10000,))
    """
    _check_split(split)
    root = Path(root).expanduser()
    _check_root(root, "MNIST", f"the four standard MNIST files: {_MNIST_ALL}")
    images_name, labels_name = _MNIST_FILES[split]
    images_path = _find_mnist_file(root, images_name)
    labels_path = _find_mnist_file(root, labels_name)

    images = read_idx(images_path)
    if images.ndim != 3:
        raise DataFormatError(
            f"{images_path}: expected MNIST images of shape (N, H, W) (3 dimensions), found "
            f"shape {images.shape} ({images.ndim} dimensions)"
        )
    if images.dtype != np.uint8:
        raise DataFormatError(
            f"{images_path}: expected MNIST images of dtype uint8 (type code 0x08), found "
            f"{images.dtype}"
        )
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise DataFormatError(
            f"{labels_path}: expected MNIST labels of shape (N,) (1 dimension), found shape "
            f"{labels.shape} ({labels.ndim} dimensions)"
        )
    if labels.dtype.kind not in "ui":
        raise DataFormatError(
            f"{labels_path}: expected integer MNIST labels (normally uint8), found {labels.dtype}"
        )
    if len(images) != len(labels):
        raise DataFormatError(
            f"MNIST images and labels count mismatch: {images_path} holds {len(images)} images "
            f"but {labels_path} holds {len(labels)} labels"
        )
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------

# The only globals a pickled ndarray needs. Both the NumPy 1 (``numpy.core``) and NumPy 2
# (``numpy._core``) module names are accepted, but resolved to the live functions directly so
# the deprecated ``numpy.core`` alias is never imported.
_probe = np.zeros(1, dtype=np.uint8)
_RECONSTRUCT = _probe.__reduce__()[0]
_FROMBUFFER = _probe.__reduce_ex__(5)[0]
_SCALAR = np.uint8(0).__reduce__()[0]
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("_codecs").encode,
}
for _module in ("numpy.core", "numpy._core"):
    _SAFE_GLOBALS[(f"{_module}.multiarray", "_reconstruct")] = _RECONSTRUCT
    _SAFE_GLOBALS[(f"{_module}.multiarray", "scalar")] = _SCALAR
    _SAFE_GLOBALS[(f"{_module}.numeric", "_frombuffer")] = _FROMBUFFER
del _probe, _module


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and plain containers, and nothing else.

    ``find_class`` is the single point through which a pickle reaches any callable; refusing
    every global outside :data:`_SAFE_GLOBALS` means a malicious file cannot run code.
    """

    def __init__(self, file: io.BytesIO, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise DataFormatError(
                f"{self._source}: refusing to load global {module}.{name} from a CIFAR-10 "
                f"batch; only NumPy arrays and plain lists, dicts and numbers are allowed"
            ) from None


def _key_name(key: object) -> bytes | object:
    return key.encode("latin-1") if isinstance(key, str) else key


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one CIFAR-10 batch file; return images (n, 3, 32, 32) and labels."""
    raw = _read_bytes(path, "CIFAR-10 batch")
    try:
        obj = _ArrayOnlyUnpickler(io.BytesIO(raw), path).load()
    except DataFormatError:
        raise
    except Exception as exc:
        raise DataFormatError(
            f"{path}: not a CIFAR-10 batch: expected a pickled dict with keys b'data' and "
            f"b'labels', but the file could not be unpickled ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, dict):
        raise DataFormatError(
            f"{path}: not a CIFAR-10 batch: expected a pickled dict with keys b'data' and "
            f"b'labels', found a pickled {type(obj).__name__}"
        )
    batch = {_key_name(key): value for key, value in obj.items()}
    if b"data" not in batch or b"labels" not in batch:
        found = ", ".join(repr(key) for key in obj) or "none"
        raise DataFormatError(
            f"{path}: not a CIFAR-10 batch: expected keys b'data' and b'labels', found keys {found}"
        )

    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        got = f"{data.dtype} array" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFormatError(
            f"{path}: b'data' must be a uint8 array of shape (n, {_CIFAR_ROW}), found {got}"
        )
    if data.ndim != 2 or data.shape[1] != _CIFAR_ROW:
        raise DataFormatError(
            f"{path}: b'data' must have shape (n, {_CIFAR_ROW}) (one row of 3x32x32 values per "
            f"image), found shape {data.shape}"
        )

    raw_labels = batch[b"labels"]
    try:
        labels = np.asarray(raw_labels)
    except Exception as exc:
        raise DataFormatError(
            f"{path}: b'labels' must be a list of integers 0..9, could not read it ({exc})"
        ) from None
    if labels.size == 0 and labels.ndim == 1:
        labels = labels.astype(np.int64)
    if labels.ndim != 1 or labels.dtype.kind not in "ui":
        raise DataFormatError(
            f"{path}: b'labels' must be a list of integers 0..9, found "
            f"{type(raw_labels).__name__} of {labels.dtype} with shape {labels.shape}"
        )
    if len(labels) != len(data):
        raise DataFormatError(
            f"{path}: labels count mismatch: b'data' holds {len(data)} images but b'labels' "
            f"holds {len(labels)} labels"
        )
    bad = (labels < 0) | (labels >= _CIFAR_CLASSES)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: labels must be class indices 0..{_CIFAR_CLASSES - 1}, found "
            f"{int(labels[index])} at position {index} ({int(bad.sum())} out of range in all)"
        )
    return data.reshape(len(data), *_CIFAR_SHAPE).copy(), labels.astype(np.int64)


def load_cifar10(root: PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from its "python version" batch files.

    The batches (``data_batch_1`` .. ``data_batch_5`` for training, ``test_batch`` for testing)
    are looked for in ``root`` itself and, failing that, in ``root/cifar-10-batches-py`` (the
    folder the official archive unpacks to). Files are unpickled with a restricted unpickler that
    can only rebuild NumPy arrays, so a malicious file cannot run code.

    Arguments:
        root: the folder holding the batches, or the folder holding ``cifar-10-batches-py``.
        split: ``"train"`` (50,000 images in the real data set) or ``"test"`` (10,000).

    Returns:
        ``(images, labels)``: images of shape ``(N, 3, 32, 32)`` and dtype ``uint8`` (channels
        R, G, B), labels of shape ``(N,)`` and dtype ``int64`` with values 0..9.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        DataFormatError: the folder or a batch file is missing, a file is not a pickle or needs
            anything beyond NumPy arrays to unpickle, lacks the keys ``b"data"`` / ``b"labels"``,
            has data not of shape ``(n, 3072)`` uint8, or labels of the wrong count or outside
            0..9.

    Example:
        >>> images, labels = load_cifar10("~/data/cifar10", split="test")  # doctest: +SKIP
        >>> images.shape, labels[:3]  # doctest: +SKIP
        ((10000, 3, 32, 32), array([3, 8, 8]))
    """
    _check_split(split)
    root = Path(root).expanduser()
    names = _CIFAR_BATCHES[split]
    all_names = ", ".join(_CIFAR_BATCHES["train"] + _CIFAR_BATCHES["test"])
    _check_root(root, "CIFAR-10", f"the CIFAR-10 python batches ({all_names})")
    folder = root
    if not (root / names[0]).exists() and (root / _CIFAR_SUBDIR).is_dir():
        folder = root / _CIFAR_SUBDIR
    for name in names:
        if not (folder / name).is_file():
            raise DataFormatError(
                f"CIFAR-10 batch not found: {folder / name}; expected the {split} batches "
                f"{', '.join(names)} in {root} or {root / _CIFAR_SUBDIR} (the python version of "
                f"CIFAR-10, unpacked)"
            )
    parts = [_read_cifar_batch(folder / name) for name in names]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return images, labels


def write_cifar_batch(
    path: PathLike,
    images: np.ndarray,
    labels: np.ndarray | list[int],
    batch_label: str = "training batch 1 of 1",
) -> Path:
    """Write a CIFAR-10 batch file in the format of the official "python version".

    The file is a protocol-2 pickle of a dict with the byte-string keys ``b"batch_label"``,
    ``b"labels"`` (a list of ints), ``b"data"`` (a ``uint8`` array of shape ``(n, 3072)``) and
    ``b"filenames"`` (synthetic names), written atomically.

    Arguments:
        path: destination file; its parent folder is created if needed.
        images: ``uint8`` images of shape ``(n, 3, 32, 32)`` or already flattened ``(n, 3072)``.
        labels: ``n`` class indices in 0..9.
        batch_label: stored under ``b"batch_label"`` (ASCII).

    Returns:
        The path written.

    Raises:
        DataFormatError: the images are not ``uint8`` of a valid shape, or the labels are not
            ``n`` integers in 0..9.

    Example:
        >>> images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
        >>> write_cifar_batch("cifar/data_batch_1", images, [3, 7])  # doctest: +SKIP
        PosixPath('cifar/data_batch_1')
    """
    path = Path(path)
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise DataFormatError(f"{path}: CIFAR-10 images must be uint8, got {arr.dtype}")
    if arr.ndim == 4 and arr.shape[1:] == _CIFAR_SHAPE:
        arr = arr.reshape(len(arr), _CIFAR_ROW)
    elif not (arr.ndim == 2 and arr.shape[1] == _CIFAR_ROW):
        raise DataFormatError(
            f"{path}: CIFAR-10 images must have shape (n, 3, 32, 32) or (n, {_CIFAR_ROW}), got "
            f"{arr.shape}"
        )
    lab = np.asarray(labels)
    if lab.size == 0 and lab.ndim == 1:
        lab = lab.astype(np.int64)
    if lab.ndim != 1 or lab.dtype.kind not in "ui" or len(lab) != len(arr):
        raise DataFormatError(
            f"{path}: CIFAR-10 labels must be {len(arr)} integers (one per image), got "
            f"{lab.dtype} with shape {lab.shape}"
        )
    if len(lab) and (lab.min() < 0 or lab.max() >= _CIFAR_CLASSES):
        raise DataFormatError(
            f"{path}: CIFAR-10 labels must be in 0..{_CIFAR_CLASSES - 1}, got values from "
            f"{int(lab.min())} to {int(lab.max())}"
        )
    batch = {
        b"batch_label": batch_label.encode("ascii"),
        b"labels": [int(label) for label in lab],
        b"data": np.ascontiguousarray(arr),
        b"filenames": [f"image_{i:05d}.png".encode("ascii") for i in range(len(arr))],
    }
    return atomic_write_bytes(path, pickle.dumps(batch, protocol=2))


# --------------------------------------------------------------------------------------------
# To PyTorch
# --------------------------------------------------------------------------------------------


def to_tensor_dataset(
    images: np.ndarray, labels: np.ndarray, scale: float = 255.0
) -> TensorDataset:
    """Wrap images and labels in a :class:`torch.utils.data.TensorDataset`.

    Arguments:
        images: ``(N, H, W)`` (a channel dimension of 1 is added) or ``(N, C, H, W)`` array.
        labels: ``(N,)`` integer class indices.
        scale: images are divided by this (255 maps ``uint8`` pixels to [0, 1]).

    Returns:
        A dataset of ``float32`` images of shape ``(N, C, H, W)`` and ``int64`` labels.

    Raises:
        DataFormatError: images are not 3-D or 4-D, labels not 1-D integers, the counts differ,
            or ``scale`` is not positive.

    Example:
        >>> ds = to_tensor_dataset(np.zeros((4, 28, 28), np.uint8), np.arange(4))
        >>> ds[0][0].shape
        torch.Size([1, 28, 28])
    """
    import torch
    from torch.utils.data import TensorDataset

    arr = np.asarray(images)
    lab = np.asarray(labels)
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim != 4:
        raise DataFormatError(
            f"images must have shape (N, H, W) or (N, C, H, W), got shape {arr.shape}"
        )
    if lab.ndim != 1 or lab.dtype.kind not in "ui":
        raise DataFormatError(
            f"labels must be a 1-D integer array, got {lab.dtype} with shape {lab.shape}"
        )
    if len(arr) != len(lab):
        raise DataFormatError(
            f"images and labels count mismatch: {len(arr)} images, {len(lab)} labels"
        )
    if not scale > 0:
        raise DataFormatError(f"scale must be positive, got {scale}")
    x = torch.from_numpy(arr.astype(np.float32)).div_(float(scale))
    y = torch.from_numpy(lab.astype(np.int64))
    return TensorDataset(x, y)
