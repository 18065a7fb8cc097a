"""The hand-trained NumPy network: its gradients, its momentum step, a smoke run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepnotes.core.context import run_experiment
from deepnotes.mechanics.experiments import NumpyMLP, sgd_momentum_step


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


def test_dropout_masks_scale_kept_units_by_one_over_p() -> None:
    rng = np.random.default_rng(1)
    net = NumpyMLP((5, 50, 40, 3), keep=0.5, rng=rng)
    net.loss_and_grads(rng.normal(size=(8, 5)), rng.integers(0, 3, 8))
    for mask in net.last_masks:
        assert set(np.unique(mask)) <= {0.0, 2.0}
    assert np.allclose(net.predict(np.ones((1, 5))), net.predict(np.ones((1, 5))))


def test_momentum_step_is_heavy_ball() -> None:
    params = {"w": np.array([1.0, -2.0])}
    velocity: dict[str, np.ndarray] = {}
    g = {"w": np.array([0.5, 0.5])}
    sgd_momentum_step(params, g, velocity, lr=0.1, momentum=0.9)  # v = g
    sgd_momentum_step(params, g, velocity, lr=0.1, momentum=0.9)  # v = 0.9 g + g
    assert np.allclose(velocity["w"], 1.9 * g["w"])
    assert np.allclose(params["w"], np.array([1.0, -2.0]) - 0.1 * (1.0 + 1.9) * 0.5)


def test_bad_keep_probability() -> None:
    with pytest.raises(ValueError, match=r"keep must be in \(0, 1\]"):
        NumpyMLP((2, 2, 2, 2), keep=0.0, rng=np.random.default_rng(0))


def test_numpy_mlp_smoke_run_matches_torch_and_learns(tmp_path: Path) -> None:
    result = run_experiment(
        "mechanics.numpy_mlp", overrides=["epochs=5"], out=tmp_path, show_progress=False
    )
    match, accuracy = result.record["claims"]
    assert match["holds"] and match["measured"] < 1e-12
    assert accuracy["measured"] > 0.85  # five epochs already learn most digits
    assert (result.run_dir / "curves.png").is_file()
