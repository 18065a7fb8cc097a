"""The registered experiments of the foundations topic, one module each (notes, discussion 1:
"Solving machine learning problems", "Dataset splits during training", "Estimators", "Loss
functions & risk functions"; discussion 2: "Bias-variance tradeoff").

:func:`deepnotes.core.registry.discover` imports every module of this package.
"""
