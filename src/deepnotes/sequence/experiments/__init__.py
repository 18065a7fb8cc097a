"""The registered experiments of the sequence topic, one module each (notes, discussions 6-7).

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
