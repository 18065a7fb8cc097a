"""The registered experiments of the generative topic, one module each (notes, discussion 10).

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
