"""The hand-written NumPy network of the notes and its momentum step."""

from __future__ import annotations

import numpy as np
import pytest

from deepnotes.mechanics.mlp import NumpyMLP, sgd_momentum_step


def numeric_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f()
        x[i] = old - h
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def test_numpy_mlp_gradients_match_finite_differences_without_dropout() -> None:
    rng = np.random.default_rng(0)
    net = NumpyMLP((5, 4, 3, 3), keep=1.0, rng=rng)
    x, y = rng.normal(size=(6, 5)), rng.integers(0, 3, 6)
    _, grads = net.loss_and_grads(x, y)
    for name, param in net.params.items():
        numeric = numeric_grad(lambda: net.loss_and_grads(x, y)[0], param)
        assert np.max(np.abs(numeric - grads[name])) < 1e-7, name


def test_gradients_with_dropout_match_finite_differences_for_fixed_masks() -> None:
    # replaying the same generator state gives the same masks, so the loss is a smooth
    # function of the parameters and the analytic gradient must match central differences
    rng = np.random.default_rng(3)
    net = NumpyMLP((5, 6, 4, 3), keep=0.5, rng=np.random.default_rng(4))
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 3, 7)
    for i in (1, 2, 3):  # non-zero biases keep every pre-activation off the ReLU kink at 0
        net.params[f"b{i}"] = rng.normal(size=net.params[f"b{i}"].shape)
    state = net.rng.bit_generator.state

    def loss() -> float:
        net.rng.bit_generator.state = state
        return net.loss_and_grads(x, y)[0]

    net.rng.bit_generator.state = state
    _, grads = net.loss_and_grads(x, y)
    for name, param in net.params.items():
        assert np.max(np.abs(numeric_grad(loss, param) - grads[name])) < 1e-7, name


def test_dropout_masks_scale_kept_units_by_one_over_p() -> None:
    rng = np.random.default_rng(1)
    net = NumpyMLP((5, 50, 40, 3), keep=0.5, rng=rng)
    net.loss_and_grads(rng.normal(size=(8, 5)), rng.integers(0, 3, 8))
    for mask in net.last_masks:
        assert set(np.unique(mask)) <= {0.0, 2.0}
    assert np.allclose(net.predict(np.ones((1, 5))), net.predict(np.ones((1, 5))))


def test_he_initialisation_scale() -> None:
    net = NumpyMLP((400, 300, 200, 10), keep=1.0, rng=np.random.default_rng(2))
    assert net.params["W1"].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert net.params["W2"].shape == (200, 300) and not net.params["b2"].any()


def test_momentum_step_is_heavy_ball() -> None:
    params = {"w": np.array([1.0, -2.0])}
    velocity: dict[str, np.ndarray] = {}
    g = {"w": np.array([0.5, 0.5])}
    sgd_momentum_step(params, g, velocity, lr=0.1, momentum=0.9)  # v = g
    sgd_momentum_step(params, g, velocity, lr=0.1, momentum=0.9)  # v = 0.9 g + g
    assert np.allclose(velocity["w"], 1.9 * g["w"])
    assert np.allclose(params["w"], np.array([1.0, -2.0]) - 0.1 * (1.0 + 1.9) * 0.5)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"keep must be in \(0, 1\]"):
        NumpyMLP((2, 2, 2, 2), keep=0.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="4 positive widths"):
        NumpyMLP((2, 2, 2), keep=0.5, rng=np.random.default_rng(0))  # type: ignore[arg-type]
