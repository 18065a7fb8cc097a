r"""Derivations of the vision topic, registered with the catalog.

Notes: discussion 4, section 5, "Problem: Deriving Xavier Initialization". For
:math:`z = \sum_{j=1}^{D_a} W_j a_j` with independent, zero-mean weights and inputs,

.. math::

    \mathrm{Var}(z) = \sum_j E[W_j^2] E[a_j^2] = D_a \mathrm{Var}(W) \mathrm{Var}(a),

so :math:`\mathrm{Var}(W) = 1 / D_a` keeps :math:`\mathrm{Var}(z) = \mathrm{Var}(a)`, and with
the notes' assumption that tanh is linear near 0 (:math:`\mathrm{Var}(a) = \mathrm{Var}(z)`)
the variance stays constant from layer to layer.

Deviation: a variance has no autograd counterpart, so the closed form is checked against a
Monte Carlo estimate instead, with a statistical tolerance: the error is measured in units of
the estimate's standard error and must stay within 4 of them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from deepnotes.core.catalog import Check, derivation
from deepnotes.core.stats import standardized_deviation
from deepnotes.vision.deep_nets import (
    linear_output_variance,
    monte_carlo_linear_variance,
    xavier_weight_variance,
)

SE_TOLERANCE = 4.0
"""How many Monte Carlo standard errors the closed form may be off."""

SETTINGS: tuple[tuple[int, float | None, float], ...] = (
    (64, None, 0.5),  # Xavier: Var(W) = 1/D_a, so Var(z) should equal Var(a) = 0.5
    (128, None, 2.0),  # Xavier on a wider layer
    (16, 0.2, 1.5),  # a generic Var(W): Var(z) = 16 * 0.2 * 1.5 = 4.8
)
"""(D_a, Var(W) or None for Xavier's 1/D_a, Var(a)) of every setting checked."""


def linear_variance_check(
    closed_form: Callable[[int, float, float], float] = linear_output_variance,
    samples: int = 50_000,
    seed: int = 0,
) -> Check:
    """Compare ``closed_form(D_a, Var(W), Var(a))`` with Monte Carlo estimates at :data:`SETTINGS`.

    The reported error is max over the settings of |closed - estimate| / SE, SE being each
    estimate's standard error; the check passes when it is at most :data:`SE_TOLERANCE`.
    """
    generator = torch.Generator().manual_seed(seed)
    worst, parts = 0.0, []
    for d_a, var_w, var_a in SETTINGS:
        var_w = xavier_weight_variance(d_a) if var_w is None else var_w
        estimate, se = monte_carlo_linear_variance(d_a, var_w, var_a, samples, generator)
        closed = closed_form(d_a, var_w, var_a)
        worst = max(worst, abs(float(standardized_deviation(estimate, se, closed))))
        parts.append(
            f"D_a={d_a}, Var(W)={var_w:.4g}, Var(a)={var_a:g}: "
            f"closed {closed:.4f}, MC {estimate:.4f} ± {se:.4f}"
        )
    return Check(
        max_abs_error=worst,
        tolerance=SE_TOLERANCE,
        detail=(
            f"error in Monte Carlo standard errors (max over settings), tolerance "
            f"{SE_TOLERANCE:g} SE; {samples} samples each, W ~ N(0, Var(W)), a ~ uniform; "
            + "; ".join(parts)
        ),
        unit="SE",
    )


@derivation(
    "Xavier initialisation (variance of a linear layer)",
    topic="vision",
    closed_form="Var(z) = D_a Var(W) Var(a), so Var(W) = 1/D_a gives Var(z) = Var(a)",
)
def _xavier() -> Check:
    return linear_variance_check()
