"""Data sets: the embedded digits, loaders for files users bring, splits."""

from deepnotes.data.digits import Splits, digits, load_digits_arrays
from deepnotes.data.splits import stratified_split

__all__ = ["Splits", "digits", "load_digits_arrays", "stratified_split"]
