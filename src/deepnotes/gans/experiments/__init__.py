"""The registered experiments of the GAN topic, one module each (notes, discussion 11).

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
