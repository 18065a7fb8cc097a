"""Registers every generative problem with the catalog, in the order of the notes' discussion
10: autoregressive models (problem 1), the VAE (problems 2-6), flows (problems 7-8)."""

import importlib

for _area in ("autoregressive", "vae", "flows"):
    importlib.import_module(f"deepnotes.generative.problems_{_area}")
