"""Data sets: the embedded digits, loaders for files users bring (MNIST IDX, CIFAR-10, parallel
text), image splits over all three (``image_splits``), the random shifts used to augment images,
procedural sequence tasks (the adding problem, copy/reverse/sort, date translation), and the
gymnasium environments of the RL room, made and evaluated one way (:mod:`deepnotes.data.envs`).

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
from deepnotes.data.parallel import (
    EOS_ID,
    PAD_ID,
    SOS_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    ParallelCorpus,
    TokenBatch,
    Vocabulary,
    load_parallel_corpus,
    make_batch,
    read_parallel_text,
    tokenize,
)
from deepnotes.data.sequences import (
    DATE_FIELDS,
    DATE_FORMATS,
    SYMBOL_TASKS,
    TARGET_FORMATS,
    AddingBatch,
    DateExample,
    DateSplits,
    adding_problem,
    alignment_mask,
    date_batch,
    date_example,
    date_splits,
    date_vocabulary,
    symbol_task,
    symbol_vocabulary,
)
from deepnotes.data.splits import stratified_split

__all__ = [
    "DATE_FIELDS",
    "DATE_FORMATS",
    "DEFAULT_MAX_BYTES",
    "EOS_ID",
    "IMAGE_SOURCES",
    "MAX_BYTES_ENV",
    "MNIST_MAX_SIDE",
    "NATIVE_SIDE",
    "PAD_ID",
    "SOS_ID",
    "SPECIAL_TOKENS",
    "SYMBOL_TASKS",
    "TARGET_FORMATS",
    "UNK_ID",
    "AddingBatch",
    "BoundedReader",
    "DateExample",
    "DateSplits",
    "ParallelCorpus",
    "RandomShift",
    "Splits",
    "TokenBatch",
    "Vocabulary",
    "adding_problem",
    "alignment_mask",
    "check_class_labels",
    "date_batch",
    "date_example",
    "date_splits",
    "date_vocabulary",
    "digits",
    "image_splits",
    "load_cifar10",
    "load_digits_arrays",
    "load_mnist",
    "load_parallel_corpus",
    "make_batch",
    "max_bytes",
    "read_file",
    "read_idx",
    "read_parallel_text",
    "stratified_split",
    "symbol_task",
    "symbol_vocabulary",
    "to_tensor_dataset",
    "tokenize",
    "write_cifar_batch",
    "write_idx",
]
