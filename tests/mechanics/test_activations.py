"""Activations by hand against torch (forward, autograd) and finite differences (backward)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.mechanics.activations import (
    elu_backward,
    elu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_derivative,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
    softmax_jacobian,
    tanh_backward,
    tanh_forward,
)
from deepnotes.mechanics.gradcheck import gradcheck, relative_error

TOL = 1e-7  # max relative error of every backward, against autograd and finite differences

# name -> (our forward, our backward, the torch reference of the forward)
ACTIVATIONS: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    "sigmoid": (sigmoid_forward, sigmoid_backward, torch.sigmoid),
    "tanh": (tanh_forward, tanh_backward, torch.tanh),
    "relu": (relu_forward, relu_backward, torch.relu),
    "leaky_relu": (
        lambda x: leaky_relu_forward(x, 0.1),
        leaky_relu_backward,
        lambda t: F.leaky_relu(t, 0.1),
    ),
    "elu": (lambda x: elu_forward(x, 0.7), elu_backward, lambda t: F.elu(t, 0.7)),
    "softmax": (softmax_forward, softmax_backward, lambda t: F.softmax(t, dim=-1)),
}

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2**16)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@settings(max_examples=8, deadline=None, derandomize=True)
@given(shape=shapes, seed=seeds)
def test_forward_and_backward_match_torch_and_finite_differences(
    name: str, shape: tuple[int, ...], seed: int
) -> None:
    forward, backward, reference = ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    x, g = rng.normal(scale=2.0, size=shape), rng.normal(size=shape)
    y, cache = forward(x)
    dx = backward(g, cache)

    tx = torch.tensor(x, requires_grad=True)
    ty = reference(tx)
    (tdx,) = torch.autograd.grad(ty, tx, torch.from_numpy(g))
    assert relative_error(y, ty.detach().numpy()) < TOL
    assert relative_error(dx, tdx.numpy()) < TOL

    errors = gradcheck(lambda x: float(np.sum(forward(x)[0] * g)), {"x": x}, {"x": dx})
    assert errors["x"] < TOL


@pytest.mark.parametrize(
    ("forward", "backward", "reference"),
    [
        (relu_forward, relu_backward, torch.relu),
        (lambda x: leaky_relu_forward(x, 0.2), leaky_relu_backward, lambda t: F.leaky_relu(t, 0.2)),
        (lambda x: elu_forward(x, 1.5), elu_backward, lambda t: F.elu(t, 1.5)),
    ],
)
def test_kink_subgradients_match_torch(forward: Any, backward: Any, reference: Any) -> None:
    x = np.array([-1.0, 0.0, 1.0])
    tx = torch.tensor(x, requires_grad=True)
    (tdx,) = torch.autograd.grad(reference(tx).sum(), tx)
    np.testing.assert_array_equal(backward(np.ones(3), forward(x)[1]), tdx.numpy())


def test_relu_backward_has_no_negative_zeros() -> None:
    _, cache = relu_forward([-1.0, 2.0])
    assert not np.signbit(relu_backward([-3.0, -3.0], cache)[0])


def test_extreme_inputs_stay_finite_without_warnings() -> None:
    big = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, _ = sigmoid_forward(big)
        p, _ = softmax_forward(np.stack([big, big + 1e4]))
        e, _ = elu_forward(big)
    np.testing.assert_allclose(s, torch.sigmoid(torch.from_numpy(big)).numpy(), rtol=1e-15)
    np.testing.assert_allclose(p[0], p[1], rtol=1e-12)  # shift invariance
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    assert np.all(np.isfinite(e))


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=seeds)
def test_sigmoid_derivative_is_s_times_one_minus_s(seed: int) -> None:
    x = np.random.default_rng(seed).normal(scale=4.0, size=7)
    tx = torch.tensor(x, requires_grad=True)
    (auto,) = torch.autograd.grad(torch.sigmoid(tx).sum(), tx)
    assert relative_error(sigmoid_derivative(x), auto.numpy()) < TOL
    assert float(sigmoid_derivative(0.0)) == 0.25


@settings(max_examples=15, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), seed=seeds)
def test_softmax_jacobian_against_autograd(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=n)
    # torch's jacobian is (out, in); the notes' convention is (in, out): J_ij = dp_j / dz_i
    auto = torch.autograd.functional.jacobian(
        lambda t: torch.softmax(t, dim=0), torch.from_numpy(z)
    ).T
    jac = softmax_jacobian(z)
    assert jac.shape == (n, n)
    assert relative_error(jac, auto.numpy()) < TOL
    np.testing.assert_allclose(jac.sum(axis=1), 0.0, atol=1e-15)  # p sums to 1 for every z

    batch = rng.normal(size=(3, n))
    jacs = softmax_jacobian(batch)
    assert jacs.shape == (3, n, n)
    for row, jac_row in zip(batch, jacs, strict=True):
        np.testing.assert_allclose(jac_row, softmax_jacobian(row), rtol=1e-14)


def test_softmax_backward_is_jacobian_times_gradient() -> None:
    rng = np.random.default_rng(0)
    z, dp = rng.normal(size=5), rng.normal(size=5)
    _, cache = softmax_forward(z)
    # the notes' chain rule: dL/dz = (dp/dz) dL/dp
    np.testing.assert_allclose(softmax_backward(dp, cache), softmax_jacobian(z) @ dp, rtol=1e-12)


def test_bad_inputs_raise_with_the_expected_and_received() -> None:
    _, cache = relu_forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dy must have the forward output's shape \(2, 3\)"):
        relu_backward(np.zeros((3, 2)), cache)
    _, cache = softmax_forward(np.zeros(4))
    with pytest.raises(ValueError, match=r"dp must have .* \(4,\); received \(5,\)"):
        softmax_backward(np.zeros(5), cache)
    with pytest.raises(ValueError, match=r"leaky_relu alpha must be finite and >= 0; .* -0\.1"):
        leaky_relu_forward(np.zeros(2), alpha=-0.1)
    with pytest.raises(ValueError, match="elu alpha must be finite"):
        elu_forward(np.zeros(2), alpha=float("nan"))
    with pytest.raises(ValueError, match="elu alpha must be a real number"):
        elu_forward(np.zeros(2), alpha="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"z must be 1-D or 2-D .* received shape \(2, 2, 2\)"):
        softmax_jacobian(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"at least one entry .* received shape \(\)"):
        softmax_forward(1.0)
    with pytest.raises(ValueError, match="x must be an array of numbers"):
        sigmoid_forward(["a", "b"])
