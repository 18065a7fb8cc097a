"""The registered experiments of the optim topic, one module each (notes, discussion 2,
section 3, "Optimization methods").

- :mod:`.quadratic` (``optim.quadratic``): figures 2a-c, 3 and 4 on ``f = a1 x1^2 + a2 x2^2``.
- :mod:`.adagrad_decay` (``optim.adagrad_decay``): Adagrad's effective step never grows.
- :mod:`.sgd_noise` (``optim.sgd_noise``): minibatch gradients are unbiased, variance ~ 1/|B|.
- :mod:`.compare_digits` (``optim.compare_digits``): the six optimisers training an MLP.

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
