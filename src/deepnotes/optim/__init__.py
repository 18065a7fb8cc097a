"""Optimisation: the notes' update rules and the phenomena they are introduced to fix.

Notes, discussion 2, section 3 ("Optimization methods"): gradient descent and minibatch SGD
(3.1-3.2), why gradient descent struggles on an ill-conditioned quadratic (3.3, figures 2a-c),
heavy-ball momentum (3.4, figure 3), RMSProp and Adagrad (3.5, figure 4) and Adam (3.6).

- :mod:`deepnotes.optim.optimizers`: the update rules as ``torch.optim.Optimizer`` subclasses
  (:class:`SGD`/:class:`GD`, :class:`Momentum`, :class:`RMSProp`, :class:`Adagrad`,
  :class:`Adam`), each written exactly as the notes write it, with every difference from
  ``torch.optim`` stated as a ``Deviation:`` and pinned by a test.
- :mod:`deepnotes.optim.quadratic`: the quadratic ``f = a1 x1^2 + a2 x2^2``, trajectories of an
  optimiser on it, iterations to a tolerance, and the best step size (and momentum or decay)
  from grids.
- :mod:`deepnotes.optim.gradients`: full-batch, per-example and minibatch gradients (3.2).
- :mod:`deepnotes.optim.tracking`: a hook recording every coordinate's effective step (3.5).
- :mod:`deepnotes.optim.experiments`: the registered experiments of the topic ``optim``, one
  module each.
"""

from deepnotes.optim.gradients import (
    flat_gradient,
    minibatch_error_moments,
    minibatch_means,
    per_example_gradients,
)
from deepnotes.optim.optimizers import GD, SGD, Adagrad, Adam, Momentum, RMSProp
from deepnotes.optim.quadratic import (
    Quadratic,
    Setting,
    best_setting,
    best_step,
    iterations_to_tolerance,
    trajectory,
)
from deepnotes.optim.tracking import EffectiveStepTracker

__all__ = [
    "GD",
    "SGD",
    "Adagrad",
    "Adam",
    "EffectiveStepTracker",
    "Momentum",
    "Quadratic",
    "RMSProp",
    "Setting",
    "best_setting",
    "best_step",
    "flat_gradient",
    "iterations_to_tolerance",
    "minibatch_error_moments",
    "minibatch_means",
    "per_example_gradients",
    "trajectory",
]
