"""Derivation checks for dense networks: the closed forms of :mod:`.activations`, :mod:`.losses`,
:mod:`.layers` and :mod:`.normalization` against torch autograd in float64.

Notes: discussion 1, problems 3-4 (sigmoid and softmax derivatives); discussion 2, section 2,
problems 4-7 (the squared norm, the Jacobian of a linear map, the chain rule with vectors and
with matrices); discussion 3, section 1, problems 1-3 (softmax cross-entropy gradients with
respect to W, b and x, the skip connection); discussion 4, section 2 (the BatchNorm backward pass)
and section 4 (inverted dropout).

Each entry draws seeded inputs, computes the closed form with the NumPy library and the same
quantity with ``torch.autograd`` on float64 tensors, and returns the largest absolute difference.
Autograd's Jacobians are ``(out, in)``; they are transposed to the notes' ``(in, out)``
convention before comparing.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.core.catalog import Check, derivation
from deepnotes.mechanics.activations import sigmoid_derivative, softmax_jacobian
from deepnotes.mechanics.layers import (
    affine_backward,
    affine_forward,
    grad_sq_norm,
    grad_sq_norm_AT_x,
    jacobian_AT_x,
    residual_backward,
    residual_forward,
)
from deepnotes.mechanics.losses import softmax_cross_entropy
from deepnotes.mechanics.normalization import (
    batchnorm_backward,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
)


def _leaf(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


@derivation("sigmoid derivative", topic="mechanics", closed_form="s'(x) = s(x) (1 - s(x))")
def _sigmoid() -> Check:
    x = np.linspace(-8.0, 8.0, 101)
    tx = _leaf(x)
    (auto,) = torch.autograd.grad(torch.sigmoid(tx).sum(), tx)
    return Check.compare(sigmoid_derivative(x), auto, detail="x in [-8, 8], 101 points")


@derivation("softmax Jacobian", topic="mechanics", closed_form="dp_i/dz_j = p_i (delta_ij - p_j)")
def _softmax_jacobian() -> Check:
    z = np.random.default_rng(0).normal(scale=2.0, size=(4, 6))
    auto = [
        torch.autograd.functional.jacobian(lambda t: torch.softmax(t, dim=0), _leaf(row)).T
        for row in z
    ]  # torch's (out, in) transposed to the notes' (in, out)
    return Check.compare(
        list(softmax_jacobian(z)), auto, detail="4 random logit vectors z in R^6, batched call"
    )


def _softmax_ce_case() -> tuple[tuple[np.ndarray, ...], tuple[torch.Tensor, ...]]:
    """Closed-form and autograd gradients of mean_n -log p_{y_n}(W x_n + b) wrt W, b, x."""
    rng = np.random.default_rng(1)
    n, d, k = 5, 4, 3
    x, W, b = rng.normal(size=(n, d)), rng.normal(size=(k, d)), rng.normal(size=k)
    y = rng.integers(0, k, size=n)
    z, cache = affine_forward(x, W, b)
    _, dz = softmax_cross_entropy(z, y)  # (p - e_y) / N
    dx, dW, db = affine_backward(dz, cache)
    tx, tW, tb = _leaf(x), _leaf(W), _leaf(b)
    loss = F.cross_entropy(F.linear(tx, tW, tb), torch.from_numpy(y))
    tdx, tdW, tdb = torch.autograd.grad(loss, (tx, tW, tb))
    return (dW, db, dx), (tdW, tdb, tdx)


_CE_DETAIL = "mean over N=5 examples, x in R^4, 3 classes, W (3, 4); torch F.cross_entropy"


@derivation(
    "softmax cross-entropy gradient wrt W",
    topic="mechanics",
    closed_form="dL/dW = (p - e_y) x^T",
)
def _softmax_ce_W() -> Check:
    ours, auto = _softmax_ce_case()
    return Check.compare(ours[0], auto[0], detail=_CE_DETAIL)


@derivation(
    "softmax cross-entropy gradient wrt b", topic="mechanics", closed_form="dL/db = p - e_y"
)
def _softmax_ce_b() -> Check:
    ours, auto = _softmax_ce_case()
    return Check.compare(ours[1], auto[1], detail=_CE_DETAIL)


@derivation(
    "softmax cross-entropy gradient wrt x", topic="mechanics", closed_form="dL/dx = W^T (p - e_y)"
)
def _softmax_ce_x() -> Check:
    ours, auto = _softmax_ce_case()
    return Check.compare(ours[2], auto[2], detail=_CE_DETAIL)


@derivation(
    "skip-connection gradient",
    topic="mechanics",
    closed_form="dL/dx = W1^T (relu'(W1 x) * (W2^T delta_y)) + delta_y",
)
def _skip_connection() -> Check:
    rng = np.random.default_rng(2)
    n, d, h = 4, 5, 7
    x, W1, W2 = rng.normal(size=(n, d)), rng.normal(size=(h, d)), rng.normal(size=(d, h))
    b1, b2 = np.zeros(h), np.zeros(d)  # the notes' block has no biases
    delta_y = rng.normal(size=(n, d))
    _, cache = residual_forward(x, W1, b1, W2, b2)
    dx = residual_backward(delta_y, cache)[0]
    tx = _leaf(x)
    ty = torch.relu(tx @ torch.from_numpy(W1).T) @ torch.from_numpy(W2).T + tx
    (tdx,) = torch.autograd.grad(ty, tx, torch.from_numpy(delta_y))
    return Check.compare(dx, tdx, detail="y = W2 relu(W1 x) + x, N=4, D=5, hidden 7")


@derivation("gradient of ||x||^2", topic="mechanics", closed_form="grad ||x||^2 = 2x")
def _sq_norm() -> Check:
    x = np.random.default_rng(3).normal(size=10)
    tx = _leaf(x)
    (auto,) = torch.autograd.grad(tx.pow(2).sum(), tx)
    return Check.compare(grad_sq_norm(x), auto, detail="x in R^10")


@derivation(
    "Jacobian of A^T x",
    topic="mechanics",
    closed_form="d(A^T x)/dx = A  (d x n, entries df_j/dx_i)",
)
def _jacobian_AT_x() -> Check:
    rng = np.random.default_rng(4)
    A, x = rng.normal(size=(5, 3)), rng.normal(size=5)
    auto = torch.autograd.functional.jacobian(lambda t: torch.from_numpy(A).T @ t, _leaf(x))
    return Check.compare(
        jacobian_AT_x(A), auto.T, detail="A (5, 3), x in R^5; autograd (3, 5) transposed"
    )


def _sq_norm_AT_x_case() -> tuple[tuple[np.ndarray, np.ndarray], tuple[torch.Tensor, ...]]:
    rng = np.random.default_rng(5)
    A, x = rng.normal(size=(6, 4)), rng.normal(size=6)
    tA, tx = _leaf(A), _leaf(x)
    auto = torch.autograd.grad((tA.T @ tx).pow(2).sum(), (tx, tA))
    return grad_sq_norm_AT_x(A, x), auto


@derivation("gradient of ||A^T x||^2 wrt x", topic="mechanics", closed_form="dz/dx = 2 A A^T x")
def _sq_norm_AT_x_wrt_x() -> Check:
    (dx, _), (tdx, _) = _sq_norm_AT_x_case()
    return Check.compare(dx, tdx, detail="A (6, 4), x in R^6")


@derivation("gradient of ||A^T x||^2 wrt A", topic="mechanics", closed_form="dz/dA = 2 x x^T A")
def _sq_norm_AT_x_wrt_A() -> Check:
    (_, dA), (_, tdA) = _sq_norm_AT_x_case()
    return Check.compare(dA, tdA, detail="A (6, 4), x in R^6")


@derivation(
    "BatchNorm backward (dx, dgamma, dbeta)",
    topic="mechanics",
    closed_form=(
        "dx = 1/(m sigma) (m dxh - sum dxh - xh sum(dxh xh)), dxh = gamma dy; "
        "dgamma = sum dy xh; dbeta = sum dy"
    ),
)
def _batchnorm() -> Check:
    rng = np.random.default_rng(6)
    ours, auto = [], []
    for shape in ((8, 5), (4, 3, 3, 2)):  # (N, D) and (N, C, H, W)
        c = shape[1]
        x = rng.normal(loc=1.0, scale=2.0, size=shape)
        gamma, beta = rng.normal(size=c), rng.normal(size=c)
        out, _, _, cache = batchnorm_forward(x, gamma, beta, np.zeros(c), np.ones(c))
        dy = rng.normal(size=shape)
        ours += [out, *batchnorm_backward(dy, cache)]
        tx, tg, tb = _leaf(x), _leaf(gamma), _leaf(beta)
        tout = F.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-5)
        auto += [tout, *torch.autograd.grad(tout, (tx, tg, tb), torch.from_numpy(dy))]
    return Check.compare(
        ours, auto, detail="train mode, x (8, 5) and (4, 3, 3, 2); output and three gradients"
    )


@derivation("inverted dropout backward", topic="mechanics", closed_form="dx = dy * U, U = 1[u<p]/p")
def _dropout() -> Check:
    rng = np.random.default_rng(7)
    x, dy = rng.normal(size=(6, 8)), rng.normal(size=(6, 8))
    out, cache = dropout_forward(x, 0.7, np.random.default_rng(8))
    dx = dropout_backward(dy, cache)
    tx = _leaf(x)
    tout = tx * torch.from_numpy(cache.mask)  # the same mask U, applied by torch
    (tdx,) = torch.autograd.grad(tout, tx, torch.from_numpy(dy))
    return Check.compare([out, dx], [tout, tdx], detail="keep probability p = 0.7, x (6, 8)")
