"""The registered experiments of the meta-learning topic, one module each (notes, discussion 12).

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
