r"""Derivation checks of the language topic: word2vec's gradients in closed form against autograd.

Notes: discussion 8, part 1, sections 1.1.1-1.1.2 (the skip-gram objective with the full
softmax and with negative sampling). Issue 17, "Problems".

- Full softmax, :math:`L = -\sum_{(c, o)} \log p(o|c)`,
  :math:`p(o|c) = \exp(u_o^\top v_c) / \sum_w \exp(u_w^\top v_c)`:
  :math:`\partial L / \partial u_w = \sum_{(c, o)} (p(w|c) - [w = o]) v_c` and
  :math:`\partial L / \partial v_c = \sum_{(c, o)} (\sum_w p(w|c) u_w - u_o)`
  (:func:`deepnotes.language.word2vec.softmax_gradients`).
- Negative sampling, :math:`L = -\sum_{(c, o)} [\log\sigma(u_o^\top v_c) + \sum_j
  \log\sigma(-u_{w_j}^\top v_c)]`: :math:`\partial L / \partial u_o = (\sigma(u_o^\top v_c) -
  1) v_c`, :math:`\partial L / \partial u_{w_j} = \sigma(u_{w_j}^\top v_c) v_c`,
  :math:`\partial L / \partial v_c = (\sigma(u_o^\top v_c) - 1) u_o + \sum_j
  \sigma(u_{w_j}^\top v_c) u_{w_j}`
  (:func:`deepnotes.language.word2vec.negative_sampling_gradients`).

Both are the functions the training step uses; they are checked in float64 on a small random
problem with repeated centres, contexts and negatives (so that the accumulation over pairs is
checked too) against ``torch.autograd.grad`` of the losses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from deepnotes.core.catalog import Check, derivation
from deepnotes.language.word2vec import (
    negative_sampling_gradients,
    negative_sampling_loss,
    softmax_gradients,
    softmax_loss,
)

VOCAB, DIM, PAIRS, NEGATIVES = 9, 4, 12, 3


def _problem(seed: int) -> tuple[torch.Tensor, ...]:
    """``u, v (V, D)`` float64 and ``centres, contexts (P,)``, ``negatives (P, k)``."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(VOCAB, DIM, generator=g, dtype=torch.float64)
    v = torch.randn(VOCAB, DIM, generator=g, dtype=torch.float64)
    centres = torch.randint(VOCAB, (PAIRS,), generator=g)
    contexts = torch.randint(VOCAB, (PAIRS,), generator=g)
    negatives = torch.randint(VOCAB, (PAIRS, NEGATIVES), generator=g)
    return u, v, centres, contexts, negatives


def softmax_gradient_check(gradients: Callable[..., tuple] = softmax_gradients) -> Check:
    """``gradients(u, v, centres, contexts) -> (loss, dU, dv_c)`` against autograd."""
    u, v, centres, contexts, _ = _problem(0)
    leaves = [u.clone().requires_grad_(True), v.clone().requires_grad_(True)]
    auto_u, auto_v = torch.autograd.grad(softmax_loss(*leaves, centres, contexts), leaves)
    loss, du, dvc = gradients(u, v, centres, contexts)
    dv = torch.zeros_like(v).index_add_(0, centres, dvc)  # repeated centres add up
    return Check.compare(
        [du, dv, loss],
        [auto_u, auto_v, softmax_loss(u, v, centres, contexts)],
        detail=f"|V|={VOCAB}, D={DIM}, {PAIRS} pairs; dL/dU (every row), dL/dV, the loss",
    )


def negative_sampling_gradient_check(
    gradients: Callable[..., tuple] = negative_sampling_gradients,
) -> Check:
    """``gradients(u, v, centres, contexts, negatives) -> (loss, ids, du, dv_c)`` against
    autograd, with and without negatives (the positives-only objective)."""
    u, v, centres, contexts, negatives = _problem(1)
    closed, auto = [], []
    for neg in (negatives, None):
        leaves = [u.clone().requires_grad_(True), v.clone().requires_grad_(True)]
        loss = negative_sampling_loss(*leaves, centres, contexts, neg)
        auto += [*torch.autograd.grad(loss, leaves), loss.detach()]
        value, ids, du_rows, dvc = gradients(u, v, centres, contexts, neg)
        du = torch.zeros_like(u).index_add_(0, ids.reshape(-1), du_rows.reshape(-1, DIM))
        dv = torch.zeros_like(v).index_add_(0, centres, dvc)
        closed += [du, dv, value]
    return Check.compare(
        closed,
        auto,
        detail=f"|V|={VOCAB}, D={DIM}, {PAIRS} pairs, k={NEGATIVES} (and k=0); dL/du_o and "
        "dL/du_wj accumulated into dL/dU, dL/dV, the loss",
    )


@derivation(
    "word2vec full softmax: dL/du_w, dL/dv_c",
    topic="language",
    closed_form="dL/du_w = sum_(c,o) (p(w|c) - [w=o]) v_c; dL/dv_c = sum_w p(w|c) u_w - u_o",
)
def _softmax_gradients() -> Check:
    return softmax_gradient_check()


@derivation(
    "word2vec negative sampling: dL/du_o, dL/du_wj, dL/dv_c",
    topic="language",
    closed_form="dL/du_o = (s(u_o.v_c) - 1) v_c; dL/du_wj = s(u_wj.v_c) v_c; "
    "dL/dv_c = (s(u_o.v_c) - 1) u_o + sum_j s(u_wj.v_c) u_wj",
)
def _negative_sampling_gradients() -> Check:
    return negative_sampling_gradient_check()
