"""Backpropagation by hand, in NumPy only (notes: discussions 2-4, 6-7).

Functional forward/backward pairs with a cache, in float64 and batch-first layout. Conventions
used throughout: a gradient has the shape of the quantity it differentiates with respect to; the
Jacobian of f: R^n -> R^m is the n x m matrix whose (i, j) entry is d f_j / d x_i.

The implementation modules import NumPy and the standard library only. The modules
``derivations*.py`` are the bridge to autograd: they compare the closed forms with torch in
float64 and register the results for ``deepnotes derivations``; ``problems*.py`` answer the
notes' numeric problems for ``deepnotes problems``; ``experiments.py`` trains a network by hand.
"""
