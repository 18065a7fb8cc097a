"""The registered experiments of the language topic, one module each (notes, discussion 8).

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
