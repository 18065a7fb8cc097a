"""The registered experiments of the mechanics topic, one module each.

:func:`deepnotes.core.registry.discover` imports every module of this package. The mechanics
library itself (layers, losses, the NumPy network of :mod:`deepnotes.mechanics.mlp`) uses NumPy
only; experiments may import torch to check it.
"""
