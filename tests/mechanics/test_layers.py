"""Affine layer, skip connection and the calculus-review closed forms against torch and finite
differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.mechanics.gradcheck import gradcheck, numerical_jacobian, relative_error
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

TOL = 1e-7
dims = st.integers(1, 5)
seeds = st.integers(0, 2**16)


def _leaves(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.tensor(a, requires_grad=True) for a in arrays]


@settings(max_examples=15, deadline=None, derandomize=True)
@given(n=dims, d=dims, m=dims, seed=seeds)
def test_affine_matches_f_linear_and_finite_differences(n: int, d: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, W, b, g = (rng.normal(size=s) for s in ((n, d), (m, d), (m,), (n, m)))
    out, cache = affine_forward(x, W, b)
    dx, dW, db = affine_backward(g, cache)
    assert (dx.shape, dW.shape, db.shape) == (x.shape, W.shape, b.shape)

    tx, tW, tb = _leaves(x, W, b)
    tout = F.linear(tx, tW, tb)  # the same (M, D) layout: x @ W.T + b
    grads = torch.autograd.grad(tout, (tx, tW, tb), torch.from_numpy(g))
    assert relative_error(out, tout.detach().numpy()) < TOL
    for ours, auto in zip((dx, dW, db), grads, strict=True):
        assert relative_error(ours, auto.numpy()) < TOL

    errors = gradcheck(
        lambda x, W, b: float(np.sum(affine_forward(x, W, b)[0] * g)),
        {"x": x, "W": W, "b": b},
        {"x": dx, "W": dW, "b": db},
    )
    assert max(errors.values()) < TOL


def test_softmax_regression_gradients_are_the_notes_closed_forms() -> None:
    """Discussion 3, problems 1-2: dW = (p - e_y) x^T, db = p - e_y, dx = W^T (p - e_y)."""
    rng = np.random.default_rng(0)
    x, W, b, y = rng.normal(size=4), rng.normal(size=(3, 4)), rng.normal(size=3), 2
    z, cache = affine_forward(x[None, :], W, b)  # one example as a (1, D) batch
    _, dz = softmax_cross_entropy(z, [y])
    dx, dW, db = affine_backward(dz, cache)
    p = np.exp(W @ x + b) / np.exp(W @ x + b).sum()
    delta = p - np.eye(3)[y]
    np.testing.assert_allclose(dW, np.outer(delta, x), rtol=1e-12)
    np.testing.assert_allclose(db, delta, rtol=1e-12)
    np.testing.assert_allclose(dx[0], W.T @ delta, rtol=1e-12)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(n=dims, d=dims, h=dims, seed=seeds, biased=st.booleans())
def test_residual_block_matches_torch_and_finite_differences(
    n: int, d: int, h: int, seed: int, biased: bool
) -> None:
    rng = np.random.default_rng(seed)
    x, W1, W2, g = (rng.normal(size=s) for s in ((n, d), (h, d), (d, h), (n, d)))
    b1, b2 = (rng.normal(size=h), rng.normal(size=d)) if biased else (np.zeros(h), np.zeros(d))
    y, cache = residual_forward(x, W1, b1, W2, b2)
    grads = residual_backward(g, cache)

    leaves = _leaves(x, W1, b1, W2, b2)
    tx, tW1, tb1, tW2, tb2 = leaves
    ty = F.linear(torch.relu(F.linear(tx, tW1, tb1)), tW2, tb2) + tx
    auto = torch.autograd.grad(ty, leaves, torch.from_numpy(g))
    assert relative_error(y, ty.detach().numpy()) < TOL
    for ours, theirs in zip(grads, auto, strict=True):
        assert relative_error(ours, theirs.numpy()) < TOL

    names = ("x", "W1", "b1", "W2", "b2")
    inputs = dict(zip(names, (x, W1, b1, W2, b2), strict=True))
    errors = gradcheck(
        lambda **kw: float(np.sum(residual_forward(**kw)[0] * g)),
        inputs,
        dict(zip(names, grads, strict=True)),
    )
    assert max(errors.values()) < TOL


def test_skip_connection_passes_the_gradient_through_a_dead_relu() -> None:
    x = np.ones((2, 3))
    W1, b1 = -np.ones((4, 3)), np.zeros(4)  # every hidden unit is negative: ReLU dead
    _, cache = residual_forward(x, W1, b1, np.ones((3, 4)), np.zeros(3))
    g = np.arange(6.0).reshape(2, 3)
    dx, dW1, *_ = residual_backward(g, cache)
    np.testing.assert_array_equal(dx, g)  # delta_y reaches x unchanged
    np.testing.assert_array_equal(dW1, 0.0)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(d=dims, n=dims, seed=seeds)
def test_calculus_review_closed_forms(d: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    A, x = rng.normal(size=(d, n)), rng.normal(size=d)
    tA, tx = _leaves(A, x)

    (auto,) = torch.autograd.grad(tx.pow(2).sum(), tx)
    assert relative_error(grad_sq_norm(x), auto.numpy()) < TOL
    assert gradcheck(lambda x: float(x @ x), {"x": x}, {"x": grad_sq_norm(x)})["x"] < TOL

    # problem 5: the Jacobian of A^T x is A (d x n) in the notes' convention, not A^T
    jac = jacobian_AT_x(A)
    assert jac.shape == (d, n)
    np.testing.assert_array_equal(jac, A)
    auto_jac = torch.autograd.functional.jacobian(lambda t: tA.detach().T @ t, tx.detach())
    assert relative_error(jac, auto_jac.T.numpy()) < TOL  # torch's is (out, in)
    assert relative_error(jac, numerical_jacobian(lambda v: A.T @ v, x.copy())) < TOL

    # problems 6-7: gradients of ||A^T x||^2 with respect to x and to A
    dx, dA = grad_sq_norm_AT_x(A, x)
    tdx, tdA = torch.autograd.grad((tA.T @ tx).pow(2).sum(), (tx, tA))
    assert relative_error(dx, tdx.numpy()) < TOL
    assert relative_error(dA, tdA.numpy()) < TOL
    np.testing.assert_allclose(dx, 2 * A @ A.T @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dA, 2 * np.outer(x, x) @ A, rtol=1e-12, atol=1e-12)
    errors = gradcheck(
        lambda A, x: float(np.sum((A.T @ x) ** 2)), {"A": A, "x": x}, {"A": dA, "x": dx}
    )
    assert max(errors.values()) < TOL


def test_bad_inputs_raise_with_the_expected_and_received() -> None:
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"W must have shape \(M, D\) with D = x.shape\[1\] = 3"):
        affine_forward(x, np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match=r"b must have shape \(4,\) for W \(4, 3\); got \(3,\)"):
        affine_forward(x, np.zeros((4, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"x must be 2-D with shape \(N, D\); .* \(3,\)"):
        affine_forward(np.zeros(3), np.zeros((4, 3)), np.zeros(4))
    _, cache = affine_forward(x, np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 4\)"):
        affine_backward(np.zeros((2, 3)), cache)
    with pytest.raises(ValueError, match=r"skip connection adds x \(2, 3\) .* \(2, 5\)"):
        residual_forward(x, np.zeros((4, 3)), np.zeros(4), np.zeros((5, 4)), np.zeros(5))
    with pytest.raises(ValueError, match=r"A must be 2-D with shape \(d, n\)"):
        jacobian_AT_x(np.zeros(3))
    with pytest.raises(ValueError, match=r"x must have shape \(3,\) for A of shape \(3, 2\)"):
        grad_sq_norm_AT_x(np.zeros((3, 2)), np.zeros(2))
