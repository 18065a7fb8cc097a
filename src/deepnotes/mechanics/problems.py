"""Registers every mechanics problem with the catalog, in the order of the notes."""

import importlib

for _area in ("dense", "conv", "sequence"):
    importlib.import_module(f"deepnotes.mechanics.problems_{_area}")
