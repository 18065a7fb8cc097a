"""Registers every RL problem with the catalog, in the order of the notes: imitation
(discussion 8), then tabular MDPs and policy gradients (discussion 9)."""

import importlib

for _area in ("imitation", "tabular", "policy_gradient"):
    importlib.import_module(f"deepnotes.rl.problems_{_area}")
