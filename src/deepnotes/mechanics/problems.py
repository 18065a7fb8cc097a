"""Registers every mechanics problem with the catalog."""

from deepnotes.mechanics import problems_dense  # noqa: F401
