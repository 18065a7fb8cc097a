r"""Full-batch, per-example and minibatch gradients (notes, discussion 2, section 3.2,
"Stochastic Gradient Descent (SGD)").

The gradient of a mean loss is the mean of the per-example gradients,

.. math:: g = \frac{1}{N} \sum_{i=1}^N G_i, \qquad
    g_B = \frac{1}{|B|} \sum_{i \in B} G_i, \qquad G_i = \nabla_\theta L(x_i, y_i, \theta),

so once the N rows :math:`G_i` are known (one ``torch.func.vmap`` over ``grad``), the gradient of
any minibatch B is a mean of rows, with no further backward pass. :func:`minibatch_means` takes
those means for many minibatches at once, and :func:`minibatch_error_moments` gives the exact
mean and variance of the squared error ``||g_B - g||^2`` for minibatches drawn with replacement.

Example:
    >>> g = flat_gradient(model, x, y)                       # (P,)
    >>> rows = per_example_gradients(model, x, y)            # (N, P)
    >>> idx = torch.randint(len(y), (100, 32), generator=gen)
    >>> g_b = minibatch_means(rows, idx)                     # (100, P): 100 minibatch gradients
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss_fn(output, target)`` -> the mean loss over the batch (e.g. ``F.cross_entropy``)."""


def flat_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = F.cross_entropy
) -> torch.Tensor:
    """The gradient of the mean loss over ``(x, y)`` by autograd, flattened to shape (P,).

    The parameters' ``.grad`` fields are left untouched.

    Arguments:
        model: the network (every parameter must take part in the loss).
        x: inputs, batch first, shape (N, ...).
        y: targets, shape (N, ...).
        loss_fn: the mean loss (default: cross-entropy).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_fn(model(x), y), params)
    return torch.cat([g.flatten() for g in grads])  # (P,)


def per_example_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = F.cross_entropy
) -> torch.Tensor:
    """The gradient of every example's loss, one row per example: shape (N, P).

    ``torch.func.vmap`` over ``torch.func.grad`` of the loss of one example (a batch of one),
    with the parameters in ``model.named_parameters()`` order, as :func:`flat_gradient` flattens
    them. The model must not depend on other examples of the batch (no BatchNorm in train mode).
    """
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}

    def loss_one(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),))  # (1, C)
        return loss_fn(out, yi.unsqueeze(0))

    grads = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)  # name -> (N, *shape)
    return torch.cat([grads[k].flatten(1) for k in params], dim=1)  # (N, P)


def minibatch_means(rows: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The mean of the rows ``idx[r]`` of ``rows`` for every draw r: shape (R, P).

    Arguments:
        rows: per-example values, shape (N, P) (e.g. :func:`per_example_gradients`).
        idx: row indices of R minibatches of size B, shape (R, B), integers in [0, N).
    """
    if rows.ndim != 2 or idx.ndim != 2:
        raise ValueError(
            f"rows must have shape (N, P) and idx (R, B), got {tuple(rows.shape)} and "
            f"{tuple(idx.shape)}"
        )
    return F.embedding_bag(idx, rows, mode="mean")  # a gather-and-average per row of idx


def minibatch_error_moments(
    deviations: torch.Tensor, batch_sizes: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact mean and variance of ``||g_B - g||^2`` for |B| rows drawn uniformly *with*
    replacement, at every size of ``batch_sizes``.

    With :math:`X_i = G_i - g` (the rows of ``deviations``, which average to 0),
    :math:`\operatorname{tr}\Sigma = \overline{\|X\|^2}`,
    :math:`\mu_4 = \overline{\|X\|^4}` and
    :math:`\operatorname{tr}\Sigma^2 = \overline{\langle X_i, X_j \rangle^2}` (over all pairs
    i, j), the mean of |B| i.i.d. rows has

    .. math:: E\|g_B - g\|^2 = \frac{\operatorname{tr}\Sigma}{|B|}, \qquad
        \operatorname{Var}\|g_B - g\|^2 = \frac{\mu_4 - (\operatorname{tr}\Sigma)^2
        + 2 (|B| - 1) \operatorname{tr}\Sigma^2}{|B|^3}

    (expand :math:`\|\sum_k X_k\|^4` and keep the pairings with non-zero expectation).

    Arguments:
        deviations: ``G_i - g``, shape (N, P), rows averaging to zero.
        batch_sizes: the sizes |B| >= 1.

    Returns:
        ``(mean, variance)``, each of shape (len(batch_sizes),), float64.
    """
    if deviations.ndim != 2:
        raise ValueError(f"deviations must have shape (N, P), got {tuple(deviations.shape)}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    x = deviations.double()
    squared_norms = (x**2).sum(1)  # ||X_i||^2, (N,)
    trace = squared_norms.mean()  # tr Sigma
    fourth = (squared_norms**2).mean()  # mu_4
    trace_sq = ((x @ x.T) ** 2).mean()  # tr Sigma^2 = mean of <X_i, X_j>^2, from the (N, N) Gram
    b = torch.as_tensor(list(batch_sizes), dtype=torch.float64, device=x.device)
    mean = trace / b
    variance = (fourth - trace**2 + 2 * (b - 1) * trace_sq) / b**3
    return mean, variance
