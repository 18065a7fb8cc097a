"""The registered experiments of the RL topic, one module each (notes, discussions 8-9).

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
