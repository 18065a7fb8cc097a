"""Data sets: the embedded digits, loaders for files users bring (MNIST IDX, CIFAR-10), image
splits over all three (``image_splits``), and the random shifts used to augment images.

Nothing here downloads: the digits ship with scikit-learn, everything else is read from a path.
"""

from deepnotes.data.augment import RandomShift
from deepnotes.data.bounded import (
    DEFAULT_MAX_BYTES,
    MAX_BYTES_ENV,
    BoundedReader,
    check_class_labels,
    max_bytes,
    read_file,
)
from deepnotes.data.digits import Splits, digits, load_digits_arrays
from deepnotes.data.files import (
    MNIST_MAX_SIDE,
    load_cifar10,
    load_mnist,
    read_idx,
    to_tensor_dataset,
    write_cifar_batch,
    write_idx,
)
from deepnotes.data.images import IMAGE_SOURCES, NATIVE_SIDE, image_splits
from deepnotes.data.splits import stratified_split

__all__ = [
    "DEFAULT_MAX_BYTES",
    "IMAGE_SOURCES",
    "MAX_BYTES_ENV",
    "MNIST_MAX_SIDE",
    "NATIVE_SIDE",
    "BoundedReader",
    "RandomShift",
    "Splits",
    "check_class_labels",
    "digits",
    "image_splits",
    "load_cifar10",
    "load_digits_arrays",
    "load_mnist",
    "max_bytes",
    "read_file",
    "read_idx",
    "stratified_split",
    "to_tensor_dataset",
    "write_cifar_batch",
    "write_idx",
]
