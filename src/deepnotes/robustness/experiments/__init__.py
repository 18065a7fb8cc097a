"""The registered experiments of the robustness topic, one module each (notes, discussion 11,
part 2: adversarial examples).

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
