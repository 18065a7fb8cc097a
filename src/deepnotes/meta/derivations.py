r"""Derivation checks of the meta-learning topic (notes, discussion 12).

- Problem 1 "Gradient Update of MAML": after ``k`` inner steps
  :math:`\theta_{j+1} = \theta_j - \alpha \nabla \mathcal{L}^{(0)}(\theta_j)`, the outer
  gradient is :math:`g_{MAML} = (I - \alpha H_0) \cdots (I - \alpha H_{k-1})
  \nabla \mathcal{L}^{(1)}(\theta_k)`
  (:func:`deepnotes.meta.meta_gradient.closed_form_meta_gradient`, Hessians by
  :func:`torch.func.hessian`), compared with autograd through
  :func:`deepnotes.meta.maml.adapt` (second order) for ``k = 1, 2, 3`` on a small tanh MLP and a
  sinusoid task, in float64.

The closed form is an argument of the check function, so the tests hand it wrong ones (the
factors in the reverse order, or none: first-order MAML) and see the check fail.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from deepnotes.core.catalog import Check, derivation
from deepnotes.core.seeding import seeded
from deepnotes.data.tasks import sample_sinusoids
from deepnotes.meta.meta_gradient import (
    TOLERANCE,
    FlatLoss,
    autograd_meta_gradient,
    closed_form_meta_gradient,
    flat_loss,
    flatten,
    tanh_mlp,
)

ClosedForm = Callable[[FlatLoss, FlatLoss, torch.Tensor, float, int], torch.Tensor]

STEPS = (1, 2, 3)
INNER_LR = 0.1
SEED = 0


def maml_meta_gradient_check(closed_form: ClosedForm = closed_form_meta_gradient) -> Check:
    """``closed_form(L0, L1, theta, alpha, k)`` vs autograd's meta-gradient, ``k = 1, 2, 3``."""
    xs, ys, xq, yq, _, _ = sample_sinusoids(1, 10, torch.Generator().manual_seed(SEED))
    support, query = (xs[0].double(), ys[0].double()), (xq[0].double(), yq[0].double())
    with seeded(SEED):
        model = tanh_mlp((8, 8))
    loss0 = flat_loss(model, F.mse_loss, *support)
    loss1 = flat_loss(model, F.mse_loss, *query)
    theta = flatten({k: v.detach() for k, v in model.named_parameters()})
    ours, reference = [], []
    for k in STEPS:
        ours.append(closed_form(loss0, loss1, theta, INNER_LR, k))
        reference.append(
            autograd_meta_gradient(
                model, support, query, inner_lr=INNER_LR, steps=k, first_order=False
            )
        )
    return Check.compare(
        ours,
        reference,
        TOLERANCE,
        f"1-8-8-1 tanh MLP ({theta.numel()} parameters), one sinusoid task with K = 10, "
        f"alpha = {INNER_LR:g}, k = {', '.join(map(str, STEPS))}",
    )


@derivation(
    "MAML meta-gradient: g = prod_j (I - a H_j) grad L1(theta_k)",
    topic="meta",
    closed_form="theta_{j+1} = theta_j - a grad L0(theta_j); d theta_{j+1}/d theta_j = "
    "I - a H_j, so g_MAML = (I - a H_0)(I - a H_1)...(I - a H_{k-1}) grad L1(theta_k)",
)
def _maml_meta_gradient() -> Check:
    return maml_meta_gradient_check()
