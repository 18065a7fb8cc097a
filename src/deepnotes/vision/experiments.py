"""Registers the vision experiments (notes, discussion 4): the CNN zoo, the training techniques
and the regularisers. Each group lives in its own module; importing it registers them."""

import importlib

for _group in ("zoo_experiments", "training_experiments", "regularization_experiments"):
    importlib.import_module(f"deepnotes.vision.{_group}")
