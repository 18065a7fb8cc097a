"""Registers every mechanics derivation (closed form vs autograd) with the catalog."""

from deepnotes.mechanics import derivations_dense  # noqa: F401
