"""Registers every RL derivation (closed form vs autograd or enumeration) with the catalog."""

import importlib

for _area in ("tabular",):
    importlib.import_module(f"deepnotes.rl.derivations_{_area}")
