r"""Watching the per-coordinate effective step of an adaptive optimiser while it trains (notes,
discussion 2, section 3.5, "RMSProp and Adagrad").

RMSProp and Adagrad move coordinate k by :math:`\alpha / \sqrt{s_k^t + \epsilon}` times its
gradient. :class:`EffectiveStepTracker` is a step post-hook (``register_step_post_hook``) that
reads that *effective step* of every coordinate after each update (through the optimiser's
``effective_step(p)``) and records how it changes: the largest increase of each coordinate
between consecutive updates, how many (coordinate, update) pairs grew, quantiles over the
coordinates, and the traces of a few chosen coordinates.

Example:
    >>> opt = Adagrad(model.parameters(), lr=0.05)
    >>> tracker = EffectiveStepTracker(traced=torch.tensor([0, 17, 42]))
    >>> opt.register_step_post_hook(tracker)
    >>> ...  # train
    >>> tracker.summary()["max_increase"] <= 0   # Adagrad's step never grows
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer

QUANTILES = (0.1, 0.5, 0.9)
"""The quantiles over coordinates recorded after every update."""


class EffectiveStepTracker:
    """A step post-hook recording every coordinate's ``alpha / sqrt(s + eps)`` after each update.

    Arguments:
        traced: flat indices (into the concatenation of all parameters, in ``param_groups``
            order) of the coordinates whose effective step is kept at every update.

    Attributes:
        max_increase: per coordinate, the largest change of its effective step between two
            consecutive updates (None before the second update); <= 0 everywhere means that
            no coordinate's step ever grew.
        increases: (coordinate, pair of consecutive updates) pairs whose step grew.
        pairs: all such pairs.
        quantiles: per update, the :data:`QUANTILES` of the effective step over coordinates.
        traces: per update, the effective steps of the ``traced`` coordinates.
    """

    def __init__(self, traced: torch.Tensor) -> None:
        self.traced = torch.as_tensor(traced, dtype=torch.long).flatten()
        self.previous: torch.Tensor | None = None
        self.max_increase: torch.Tensor | None = None
        self.increases = 0
        self.pairs = 0
        self.quantiles: list[list[float]] = []
        self.traces: list[list[float]] = []

    def __call__(self, opt: Optimizer, *_: Any) -> None:
        params = [p for group in opt.param_groups for p in group["params"]]
        step = torch.cat([opt.effective_step(p).detach().flatten() for p in params])  # (P,)
        if self.previous is not None:
            change = step - self.previous  # (P,)
            self.max_increase = (
                change if self.max_increase is None else torch.maximum(self.max_increase, change)
            )
            self.increases += int((change > 0).sum())
            self.pairs += change.numel()
        self.previous = step
        levels = torch.tensor(QUANTILES, dtype=torch.float64)
        self.quantiles.append(torch.quantile(step.double(), levels).tolist())
        self.traces.append(step[self.traced].tolist())

    @property
    def updates(self) -> int:
        """Updates seen so far."""
        return len(self.quantiles)

    def summary(self) -> dict[str, Any]:
        """What was recorded, as plain values (floats, ints, NumPy arrays):

        ``updates``, ``max_increase`` (largest over all coordinates; NaN before two updates),
        ``fraction_increased`` (coordinates whose step grew at least once), ``increases``,
        ``pairs``, ``quantiles`` (updates, 3) and ``traces`` (updates, len(traced)).
        """
        if self.max_increase is None:
            max_increase, fraction = float("nan"), float("nan")
        else:
            max_increase = float(self.max_increase.max())
            fraction = float((self.max_increase > 0).double().mean())
        return {
            "updates": self.updates,
            "max_increase": max_increase,
            "fraction_increased": fraction,
            "increases": self.increases,
            "pairs": self.pairs,
            "quantiles": np.asarray(self.quantiles, dtype=float).reshape(-1, len(QUANTILES)),
            "traces": np.asarray(self.traces, dtype=float).reshape(-1, len(self.traced)),
        }
