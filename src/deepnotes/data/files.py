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
  unpickler that runs no code at all: it refuses every global but the few NumPy's own pickles
  name, and even those are replaced by stand-ins that record what the pickle declares. Arrays
  are then rebuilt from their own bytes, with the dtype and shape the format fixes.

Both loaders follow the bounded-reading rule of :mod:`deepnotes.data.bounded` (sizes are checked
against the file, and against a documented limit, before anything large is allocated; a class
label is checked against the format's range at load time), which every future loader of a user
file follows too.

Every problem with a file (missing, truncated, wrong format, inconsistent contents) raises
:class:`~deepnotes.core.errors.DataFormatError` with a message that names the file and says what
was expected and what was found.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepnotes.core.errors import DataFormatError
from deepnotes.core.io import atomic_write_bytes
from deepnotes.core.text import shorten
from deepnotes.data.bounded import BoundedReader, check_class_labels, read_file

if TYPE_CHECKING:
    from torch.utils.data import TensorDataset

__all__ = [
    "MNIST_MAX_SIDE",
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

_SPLITS = ("train", "test")
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_ALL = ", ".join(name for pair in _MNIST_FILES.values() for name in pair)
_MNIST_CLASSES = 10

MNIST_MAX_SIDE = 4096
"""Largest image height or width :func:`load_mnist` accepts, in pixels (MNIST's is 28): a header
declaring more is taken for a corrupt or hostile file, whatever the size limit."""

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


@dataclass(frozen=True)
class _IdxHeader:
    """What an IDX header declares: the shape and the element type of the data after it."""

    shape: tuple[int, ...]
    disk_dtype: np.dtype[Any]
    type_name: str

    @property
    def nbytes(self) -> int:
        """Declared data size: the product of the dimensions times the item size (exact int)."""
        return math.prod(self.shape) * self.disk_dtype.itemsize

    @property
    def declares(self) -> str:
        """The declaration in words, for messages."""
        return (
            f"header declares shape {self.shape} of {self.type_name} = {self.nbytes} bytes of data"
        )


def _read_idx_header(reader: BoundedReader) -> _IdxHeader:
    """Read and check the header (magic, type code, dimensions); reads nothing after it."""
    path, where = reader.path, reader.where
    head = reader.read_some(4)
    if len(head) < 4:
        raise DataFormatError(
            f"{path}: truncated IDX file: expected a 4-byte header (0x00 0x00, type code, number "
            f"of dimensions), found {len(head)} bytes{where}"
        )
    zero0, zero1, code, ndim = head
    if zero0 != 0 or zero1 != 0 or code not in _IDX_TYPES:
        raise DataFormatError(
            f"{path}: not an IDX file: the first two bytes must be 0x00 0x00 and the type code "
            f"(third byte) one of {_IDX_TYPE_LIST}; got 0x{zero0:02X} 0x{zero1:02X} "
            f"0x{code:02X}{where}"
        )
    header_size = 4 + 4 * ndim
    dims = reader.read_some(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataFormatError(
            f"{path}: truncated IDX file: header declares {ndim} dimensions, which needs "
            f"{header_size} header bytes, found only {4 + len(dims)} bytes{where}"
        )
    disk_dtype, type_name = _IDX_TYPES[code]
    return _IdxHeader(struct.unpack(f">{ndim}I", dims), disk_dtype, type_name)


def _read_idx_data(reader: BoundedReader, header: _IdxHeader) -> np.ndarray:
    """Read exactly the data the header declares (bounded) as a writable native-order array."""
    buffer = reader.read_declared(header.nbytes, header.declares)
    data = np.frombuffer(buffer, dtype=header.disk_dtype).reshape(header.shape)
    if not header.disk_dtype.isnative:
        data = data.byteswap(inplace=True).view(header.disk_dtype.newbyteorder("="))
    return data


def read_idx(path: PathLike, *, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), raw or gzip-compressed.

    Compression is detected from the gzip magic bytes ``1f 8b`` at the start of the file, not
    from the file name. The file is read by the bounded-reading rule of
    :mod:`deepnotes.data.bounded`: the size the header declares is checked against the limit
    before anything is allocated, a compressed file is decompressed in a streaming way, and
    reading stops one byte after the declared size.

    Arguments:
        path: the file to read.
        max_bytes: largest data size accepted, in bytes (default:
            :func:`~deepnotes.data.bounded.max_bytes`, 4 GiB unless ``DEEPNOTES_MAX_DATA_BYTES``
            says otherwise).

    Returns:
        An array with the shape declared in the header and the element type given by its type
        code (``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or ``float64``), in native
        byte order. The array is writable.

    Raises:
        DataFormatError: the file is missing or unreadable, is a corrupt or truncated gzip
            stream, does not start with a valid IDX header, is shorter than its header, declares
            more data than the limit, or holds fewer or more data bytes than the header declares.

    Example:
        >>> images = read_idx("mnist/train-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((60000, 28, 28), dtype('uint8'))
    """
    with BoundedReader(path, "IDX file", limit=max_bytes) as reader:
        return _read_idx_data(reader, _read_idx_header(reader))


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


def _check_mnist_images_header(path: Path, header: _IdxHeader) -> None:
    """Refuse an image file whose header is not ``(N, H, W)`` uint8 with N >= 1 and sane sides."""
    shape = header.shape
    if len(shape) != 3:
        raise DataFormatError(
            f"{path}: expected MNIST images of shape (N, H, W) (3 dimensions), found "
            f"shape {shape} ({len(shape)} dimensions)"
        )
    if header.type_name != "uint8":
        raise DataFormatError(
            f"{path}: expected MNIST images of dtype uint8 (type code 0x08), found "
            f"{header.type_name}"
        )
    n, height, width = shape
    if not (1 <= height <= MNIST_MAX_SIDE and 1 <= width <= MNIST_MAX_SIDE):
        raise DataFormatError(
            f"{path}: expected MNIST image height and width between 1 and {MNIST_MAX_SIDE} "
            f"pixels (28x28 in MNIST), header declares {height}x{width}"
        )
    if n == 0:
        raise DataFormatError(
            f"{path}: expected at least one image, header declares 0 images of {height}x{width}"
        )


def _check_mnist_labels_header(path: Path, header: _IdxHeader) -> None:
    """Refuse a label file whose header is not ``(N,)`` of an integer type."""
    if len(header.shape) != 1:
        raise DataFormatError(
            f"{path}: expected MNIST labels of shape (N,) (1 dimension), found shape "
            f"{header.shape} ({len(header.shape)} dimensions)"
        )
    if header.disk_dtype.kind not in "ui":
        raise DataFormatError(
            f"{path}: expected integer MNIST labels (normally uint8), found {header.type_name}"
        )


def load_mnist(
    root: PathLike, split: str = "train", *, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST (or Fashion-MNIST, which uses the same files) from a folder.

    The folder must hold the standard IDX files: ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each
    either raw or gzip-compressed with a ``.gz`` suffix (the raw file is preferred when both
    exist). Image size is not fixed to 28x28: any ``(N, H, W)`` image file with ``N >= 1`` and
    sides of 1 to :data:`MNIST_MAX_SIDE` pixels is accepted. Both headers are checked (shapes,
    types, equal counts, the size limit) before any image or label is read, and the labels are
    checked to lie in 0..9 before they are returned.

    Arguments:
        root: the folder holding the files.
        split: ``"train"`` or ``"test"`` (the ``t10k`` files).
        max_bytes: largest data size accepted per file, in bytes (default:
            :func:`~deepnotes.data.bounded.max_bytes`, 4 GiB).

    Returns:
        ``(images, labels)``: images of shape ``(N, H, W)`` and dtype ``uint8``, labels of shape
        ``(N,)`` and dtype ``int64`` with values 0..9.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        DataFormatError: the folder or a file is missing, a file is not a valid IDX file or
            declares more than the limit, the images are not a 3-D ``uint8`` array of at least
            one image with sides 1..``MNIST_MAX_SIDE``, the labels not a 1-D integer array of
            values 0..9, or the two files hold different numbers of examples.

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

    with (
        BoundedReader(images_path, "IDX file", limit=max_bytes) as images_file,
        BoundedReader(labels_path, "IDX file", limit=max_bytes) as labels_file,
    ):
        images_header = _read_idx_header(images_file)
        _check_mnist_images_header(images_path, images_header)
        labels_header = _read_idx_header(labels_file)
        _check_mnist_labels_header(labels_path, labels_header)
        n_images, n_labels = images_header.shape[0], labels_header.shape[0]
        if n_images != n_labels:
            raise DataFormatError(
                f"MNIST images and labels count mismatch: {images_path} holds {n_images} images "
                f"but {labels_path} holds {n_labels} labels; expected one label per image"
            )
        images = _read_idx_data(images_file, images_header)
        labels = _read_idx_data(labels_file, labels_header)
    return images, check_class_labels(labels_path, labels, _MNIST_CLASSES, "MNIST labels")


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


class _UnsafePickle(Exception):
    """Raised by the stand-ins below; turned into a DataFormatError naming the file."""


# The simple numeric types a pickled array may declare (NumPy's type strings). Structured,
# object, string and void types are refused: they are not in CIFAR-10 and can hide sizes.
_PICKLE_DTYPES = frozenset({"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8", "b1"})
_BYTE_ORDERS = ("<", ">", "|", "=")


def _text(value: object) -> object:
    """A Python 2 ``str`` (read as bytes) as text; anything else unchanged."""
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else value


class _PickledDtype:
    """Stand-in for ``numpy.dtype(spec, align, copy)``: a simple numeric type and a byte order."""

    def __init__(self, spec: object, *flags: object) -> None:
        spec = _text(spec)
        if not isinstance(spec, str) or spec not in _PICKLE_DTYPES or len(flags) > 2:
            raise _UnsafePickle(
                f"refusing numpy.dtype{shorten(repr((spec, *flags)))}: only simple numeric "
                f"types are allowed ({', '.join(sorted(_PICKLE_DTYPES))})"
            )
        self.spec = spec
        self.byteorder = "="

    def __setstate__(self, state: object) -> None:
        # NumPy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment,
        # flags); a simple type has no subarray, names or fields.
        order = _text(state[1]) if isinstance(state, tuple) and len(state) >= 5 else None
        if order not in _BYTE_ORDERS or any(item is not None for item in state[2:5]):
            raise _UnsafePickle(
                f"refusing the dtype state {shorten(repr(state))}: expected the state of a "
                f"simple numeric type (byte order and no fields)"
            )
        self.byteorder = order

    def resolve(self) -> np.dtype[Any]:
        dtype = np.dtype(self.spec)
        return dtype if self.byteorder in "|=" else dtype.newbyteorder(self.byteorder)


class _PickledArray:
    """Stand-in for an ndarray: the declared shape, dtype and memory order, and its own bytes.

    Built by NumPy's ``_reconstruct`` + ``__setstate__`` (protocols 0-4) or ``_frombuffer``
    (protocol 5); in both the byte length is checked against the declared shape, so an array
    can never stand for more memory than the file holds. The array itself is made only by
    :meth:`array`, from those bytes.
    """

    def __init__(self) -> None:
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype[Any] | None = None
        self.fortran = False
        self.raw = b""

    def __setstate__(self, state: object) -> None:
        # NumPy's ndarray state: (version, shape, dtype, is_fortran, rawdata), version optional.
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4):
            raise _UnsafePickle(
                f"refusing the array state {shorten(repr(state))}: expected (shape, dtype, "
                f"is_fortran, bytes)"
            )
        self._set(*state)

    def _set(self, shape: object, dtype: object, fortran: object, raw: object) -> None:
        if not (
            isinstance(shape, tuple)
            and all(type(size) is int and size >= 0 for size in shape)
            and isinstance(dtype, _PickledDtype)
            and isinstance(fortran, bool)
            and isinstance(raw, bytes | bytearray)
        ):
            raise _UnsafePickle(
                f"refusing an array declared as {shorten(repr((shape, dtype, fortran)))}: "
                f"expected a shape of whole numbers, a simple dtype and the array's own bytes"
            )
        resolved = dtype.resolve()
        declared = math.prod(shape) * resolved.itemsize
        if len(raw) != declared:
            raise _UnsafePickle(
                f"an array declares shape {shape} of {resolved} = {declared} bytes but holds "
                f"{len(raw)} bytes"
            )
        self.shape, self.dtype, self.fortran, self.raw = shape, resolved, fortran, raw

    def describe(self) -> str:
        return f"{self.dtype} array" if self.dtype is not None else "array without content"

    def array(self) -> np.ndarray:
        """A writable native-order copy of the array, made from its own bytes."""
        assert self.shape is not None and self.dtype is not None
        flat = np.frombuffer(self.raw, dtype=self.dtype)
        order = "F" if self.fortran else "C"
        shaped = flat.reshape(self.shape, order=order)
        return np.array(shaped, dtype=self.dtype.newbyteorder("="), order="C", copy=True)


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` as an argument of ``_reconstruct``; calling it is refused.

    ``numpy.ndarray(shape, dtype, buffer, offset, strides)`` would let a pickle declare an array
    far larger than its bytes (zero strides), so that call is never made.
    """

    def __call__(self, *args: object) -> None:
        raise _UnsafePickle(
            f"refusing the call numpy.ndarray{shorten(repr(args))}: arrays are rebuilt only "
            f"from their own bytes"
        )


_NDARRAY = _NdarrayMarker()


def _reconstruct(cls: object, shape: object, typecode: object) -> _PickledArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct``: an empty array awaiting its state."""
    if cls is not _NDARRAY:
        raise _UnsafePickle(
            f"refusing _reconstruct of {shorten(repr(cls))}: only numpy.ndarray is allowed"
        )
    return _PickledArray()


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> _PickledArray:
    """Stand-in for ``numpy.core.numeric._frombuffer`` (protocol 5): the array from its bytes."""
    if isinstance(buffer, pickle.PickleBuffer):
        buffer = bytes(buffer.raw())
    if order not in ("C", "F"):
        raise _UnsafePickle(f"refusing an array of memory order {shorten(repr(order))}")
    array = _PickledArray()
    array._set(shape, dtype, order == "F", buffer)
    return array


def _scalar(dtype: object, raw: object) -> int | float | bool:
    """Stand-in for ``numpy.core.multiarray.scalar``: a NumPy number as a Python number."""
    if not isinstance(dtype, _PickledDtype) or not isinstance(raw, bytes):
        raise _UnsafePickle(f"refusing a NumPy scalar built from {shorten(repr((dtype, raw)))}")
    resolved = dtype.resolve()
    if len(raw) != resolved.itemsize:
        raise _UnsafePickle(
            f"a NumPy scalar of {resolved} needs {resolved.itemsize} bytes, holds {len(raw)}"
        )
    return np.frombuffer(raw, dtype=resolved)[0].item()


def _latin1(text: object, encoding: object = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocols 0-2 use to store bytes: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _UnsafePickle(
            f"refusing _codecs.encode{shorten(repr((text, encoding)))}: only the latin-1 "
            f"encoding of a string, which is how pickles store bytes, is allowed"
        )
    return text.encode("latin-1")


def _empty_bytes(*args: object) -> bytes:
    """Stand-in for ``bytes()``, which protocol 2 uses for an empty bytes object; ``bytes(n)``,
    which would make ``n`` zero bytes out of a few, is refused."""
    if args:
        raise _UnsafePickle(
            f"refusing the call bytes{shorten(repr(args))}: only bytes() (empty) is allowed"
        )
    return b""


# The only globals NumPy's own pickles name, each mapped to a stand-in that runs no NumPy code.
# Both the NumPy 1 (``numpy.core``) and NumPy 2 (``numpy._core``) module names are accepted.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _PickledDtype,
    ("_codecs", "encode"): _latin1,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}
for _module in ("numpy.core", "numpy._core"):
    _SAFE_GLOBALS[(f"{_module}.multiarray", "_reconstruct")] = _reconstruct
    _SAFE_GLOBALS[(f"{_module}.multiarray", "scalar")] = _scalar
    _SAFE_GLOBALS[(f"{_module}.numeric", "_frombuffer")] = _frombuffer
del _module


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler for plain containers and numbers, with NumPy arrays as :class:`_PickledArray`.

    ``find_class`` is the single point through which a pickle reaches any callable; refusing
    every global outside :data:`_SAFE_GLOBALS`, whose entries are stand-ins that only record and
    check what the pickle declares, means a malicious file can neither run code nor make an
    array larger than its own bytes.
    """

    def __init__(self, file: io.BytesIO, source: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise DataFormatError(
                f"{self._source}: refusing to load global {shorten(module)}.{shorten(name)} from "
                f"a CIFAR-10 batch; only NumPy arrays and plain lists, dicts and numbers are "
                f"allowed"
            ) from None


def _key_name(key: object) -> bytes | object:
    return key.encode("latin-1") if isinstance(key, str) else key


def _cifar_data(path: Path, data: object) -> np.ndarray:
    """``b"data"``: uint8 of shape (n, 3072), rebuilt from its own bytes."""
    if not isinstance(data, _PickledArray) or data.dtype != np.uint8:
        got = data.describe() if isinstance(data, _PickledArray) else type(data).__name__
        raise DataFormatError(
            f"{path}: b'data' must be a uint8 array of shape (n, {_CIFAR_ROW}), found {got}"
        )
    assert data.shape is not None
    if len(data.shape) != 2 or data.shape[1] != _CIFAR_ROW:
        raise DataFormatError(
            f"{path}: b'data' must have shape (n, {_CIFAR_ROW}) (one row of 3x32x32 values per "
            f"image), found shape {data.shape}"
        )
    return data.array()


def _cifar_labels(path: Path, labels: object, n: int) -> np.ndarray:
    """``b"labels"``: a list of n ints 0..9 (or a 1-D integer array of them)."""
    expected = f"b'labels' must be a list of {n} integers 0..{_CIFAR_CLASSES - 1}"
    if isinstance(labels, list):
        for index, label in enumerate(labels):
            if type(label) is not int:
                raise DataFormatError(
                    f"{path}: {expected}, found {type(label).__name__} "
                    f"{shorten(repr(label))} at index {index}"
                )
            if not -(2**63) <= label < 2**63:
                raise DataFormatError(
                    f"{path}: labels must be class indices 0..{_CIFAR_CLASSES - 1}, found "
                    f"{shorten(label)} at index {index}"
                )
        values = np.array(labels, dtype=np.int64)
    elif isinstance(labels, _PickledArray) and labels.dtype is not None:
        assert labels.shape is not None
        if len(labels.shape) != 1 or labels.dtype.kind not in "ui":
            raise DataFormatError(
                f"{path}: {expected}, found {labels.describe()} of shape {labels.shape}"
            )
        values = labels.array()
    else:
        got = labels.describe() if isinstance(labels, _PickledArray) else type(labels).__name__
        raise DataFormatError(f"{path}: {expected}, found {got}")
    if len(values) != n:
        raise DataFormatError(
            f"{path}: labels count mismatch: b'data' holds {n} images but b'labels' "
            f"holds {len(values)} labels; expected one label per image"
        )
    return check_class_labels(path, values, _CIFAR_CLASSES)


def _read_cifar_batch(path: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one CIFAR-10 batch file; return images (n, 3, 32, 32) and labels."""
    raw = read_file(path, "CIFAR-10 batch", limit=limit)
    try:
        obj = _ArrayOnlyUnpickler(io.BytesIO(raw), path).load()
    except DataFormatError:
        raise
    except _UnsafePickle as exc:
        raise DataFormatError(f"{path}: not a safe CIFAR-10 batch: {exc}") from None
    except Exception as exc:
        raise DataFormatError(
            f"{path}: not a CIFAR-10 batch: expected a pickled dict with keys b'data' and "
            f"b'labels', but the file could not be unpickled ({type(exc).__name__}: "
            f"{shorten(exc)})"
        ) from None
    if not isinstance(obj, dict):
        raise DataFormatError(
            f"{path}: not a CIFAR-10 batch: expected a pickled dict with keys b'data' and "
            f"b'labels', found a pickled {type(obj).__name__}"
        )
    batch = {_key_name(key): value for key, value in obj.items()}
    if b"data" not in batch or b"labels" not in batch:
        found = shorten(", ".join(repr(key) for key in obj) or "none")
        raise DataFormatError(
            f"{path}: not a CIFAR-10 batch: expected keys b'data' and b'labels', found keys {found}"
        )
    data = _cifar_data(path, batch[b"data"])
    labels = _cifar_labels(path, batch[b"labels"], len(data))
    return data.reshape(len(data), *_CIFAR_SHAPE), labels


def load_cifar10(
    root: PathLike, split: str = "train", *, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from its "python version" batch files.

    The batches (``data_batch_1`` .. ``data_batch_5`` for training, ``test_batch`` for testing)
    are looked for in ``root`` itself and, failing that, in ``root/cifar-10-batches-py`` (the
    folder the official archive unpacks to). Files are unpickled with a restricted unpickler that
    runs no code and rebuilds each array from its own bytes with the dtype and shape the format
    fixes, so a malicious file can neither run code nor declare an array larger than itself;
    each file's size is checked against the limit before it is read.

    Arguments:
        root: the folder holding the batches, or the folder holding ``cifar-10-batches-py``.
        split: ``"train"`` (50,000 images in the real data set) or ``"test"`` (10,000).
        max_bytes: largest batch file accepted, in bytes (default:
            :func:`~deepnotes.data.bounded.max_bytes`, 4 GiB).

    Returns:
        ``(images, labels)``: images of shape ``(N, 3, 32, 32)`` and dtype ``uint8`` (channels
        R, G, B), labels of shape ``(N,)`` and dtype ``int64`` with values 0..9.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        DataFormatError: the folder or a batch file is missing or larger than the limit, a
            file is not a pickle or needs anything beyond NumPy arrays to unpickle, declares an
            array its bytes do not fill, lacks the keys ``b"data"`` / ``b"labels"``, has data not
            of shape ``(n, 3072)`` uint8, labels of the wrong count, type or outside 0..9, or the
            split holds no image.

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
    parts = [_read_cifar_batch(folder / name, max_bytes) for name in names]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    if len(images) == 0:
        raise DataFormatError(
            f"CIFAR-10 {split} batches in {folder} hold 0 images: expected at least one "
            f"({', '.join(names)})"
        )
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
