"""The registered experiments of the vision topic, one module each (notes, discussions 4-5).

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
