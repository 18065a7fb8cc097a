"""Finite differences, the relative error and gradcheck on functions with known gradients."""

from __future__ import annotations

import numpy as np
import pytest

from deepnotes.mechanics.gradcheck import (
    gradcheck,
    numerical_gradient,
    numerical_jacobian,
    relative_error,
)


def test_numerical_gradient_of_a_quadratic_form_and_restores_x() -> None:
    rng = np.random.default_rng(0)
    Q, x = rng.normal(size=(4, 4)), rng.normal(size=4)
    before = x.copy()
    grad = numerical_gradient(lambda v: float(v @ Q @ v), x)
    np.testing.assert_allclose(grad, (Q + Q.T) @ x, rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(x, before)  # bit for bit


def test_numerical_gradient_on_a_matrix_and_restores_x_when_f_raises() -> None:
    X = np.arange(6.0).reshape(2, 3)
    grad = numerical_gradient(lambda M: float(np.sum(np.sin(M))), X)
    assert grad.shape == (2, 3)
    np.testing.assert_allclose(grad, np.cos(X), rtol=1e-8, atol=1e-10)

    calls = []

    def flaky(v: np.ndarray) -> float:
        calls.append(v.copy())
        if len(calls) == 2:
            raise RuntimeError("boom")
        return float(v.sum())

    before = X.copy()
    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(flaky, X)
    np.testing.assert_array_equal(X, before)


def test_numerical_jacobian_uses_the_notes_convention() -> None:
    """J_ij = d f_j / d x_i: for f(x) = A^T x (A is d x n) the Jacobian is A, shape (d, n)."""
    rng = np.random.default_rng(1)
    A, x = rng.normal(size=(3, 5)), rng.normal(size=3)
    jac = numerical_jacobian(lambda v: A.T @ v, x)
    assert jac.shape == (3, 5)
    np.testing.assert_allclose(jac, A, rtol=1e-8, atol=1e-9)
    # a matrix input gives the rank-3 Jacobian (d1, d2, n) of the notes
    v = rng.normal(size=2)
    X = rng.normal(size=(4, 2))
    jac3 = numerical_jacobian(lambda M: M @ v, X)  # f: R^{4x2} -> R^4
    assert jac3.shape == (4, 2, 4)
    np.testing.assert_allclose(jac3, np.einsum("ik,j->ijk", np.eye(4), v), atol=1e-9)


def test_relative_error_definition() -> None:
    a = np.array([1.0, -2.0, 3.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(a, -a) == pytest.approx(1.0)
    assert relative_error(a, np.zeros(3)) == pytest.approx(1.0)
    # max |a - b| / max(|a| + |b|): one entry off by 0.06 against a scale of 6
    off = np.array([0.0, 0.0, 0.06])
    assert relative_error(a, a + off) == pytest.approx(0.06 / 6.06)
    assert relative_error(1e-9 * a, 1e-9 * (a + off)) == pytest.approx(0.06 / 6.06)  # scale-free
    assert relative_error(np.zeros(0), np.zeros(0)) == 0.0


def test_gradcheck_reports_per_input_and_catches_a_wrong_gradient() -> None:
    rng = np.random.default_rng(2)
    W, x = rng.normal(size=(3, 4)), rng.normal(size=4)

    def f(W: np.ndarray, x: np.ndarray, scale: float) -> float:
        return scale * float(np.sum(np.tanh(W @ x)))

    d = 1 - np.tanh(W @ x) ** 2
    inputs = {"W": W, "x": x, "scale": 2.0}  # scale is passed through, not differentiated
    good = gradcheck(f, inputs, {"W": 2.0 * np.outer(d, x), "x": 2.0 * W.T @ d})
    assert set(good) == {"W", "x"}
    assert max(good.values()) < 1e-8
    bad = gradcheck(f, inputs, {"W": 2.0 * np.outer(d, x).T.reshape(3, 4), "x": W.T @ d})
    assert bad["x"] > 0.1 and bad["W"] > 1e-3
    np.testing.assert_array_equal(inputs["W"], W)  # the caller's arrays are untouched


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match=r"must be a float64 numpy array .* received int64"):
        numerical_gradient(lambda v: 0.0, np.arange(3))
    with pytest.raises(ValueError, match=r"must be a float64 numpy array .* received list"):
        numerical_jacobian(lambda v: v, [1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"step h must be a number in \(0, 1\); received 0"):
        numerical_gradient(lambda v: 0.0, np.zeros(2), h=0)
    with pytest.raises(ValueError, match=r"same shape; received \(2,\) and \(3,\)"):
        relative_error(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match=r"analytic gradients \['y'\] name no input"):
        gradcheck(lambda x: 0.0, {"x": np.zeros(2)}, {"y": np.zeros(2)})
    with pytest.raises(ValueError, match=r"analytic\['x'\] must have the shape .* \(2,\)"):
        gradcheck(lambda x: 0.0, {"x": np.zeros(2)}, {"x": np.zeros(3)})
