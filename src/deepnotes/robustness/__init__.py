"""Adversarial examples (notes, discussion 11, part 2): the attacker's problem
``delta* = argmax_{||delta|| <= eps} L(x + delta, y)`` for the L-inf and L2 balls, solved to first
order (FGSM) and iteratively (PGD, with projection, random start and restarts), black-box and
transfer attacks, and adversarial training on the robust loss through the core engine.

:mod:`deepnotes.robustness.attacks` holds the attacks and their evaluation;
:mod:`deepnotes.robustness.models` the standard digits classifiers the experiments attack.
Every attack puts the model in eval mode and restores its mode afterwards, leaves the
parameters' gradients and the input tensor untouched, and returns the input exactly at eps = 0.
"""
