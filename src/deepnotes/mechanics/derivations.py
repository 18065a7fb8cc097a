"""Registers every mechanics derivation (closed form vs autograd) with the catalog, in the
order of the notes: dense layers, convolutions, recurrent nets and attention."""

import importlib

for _area in ("dense", "conv", "sequence"):
    importlib.import_module(f"deepnotes.mechanics.derivations_{_area}")
