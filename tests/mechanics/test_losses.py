"""Losses by hand against torch.nn.functional and finite differences."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.mechanics.gradcheck import gradcheck, relative_error
from deepnotes.mechanics.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    mse_loss,
    softmax_cross_entropy,
)

TOL = 1e-7
seeds = st.integers(0, 2**16)
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)


def _torch_loss_and_grad(
    fn: Callable[..., torch.Tensor], first: np.ndarray, *rest: torch.Tensor
) -> tuple[float, np.ndarray]:
    t = torch.tensor(first, requires_grad=True)
    loss = fn(t, *rest)
    (grad,) = torch.autograd.grad(loss, t)
    return float(loss.detach()), grad.numpy()


@settings(max_examples=20, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), c=st.integers(1, 6), scale=st.sampled_from([0.1, 3.0]), seed=seeds)
def test_softmax_cross_entropy_matches_torch(n: int, c: int, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z, y = rng.normal(scale=scale, size=(n, c)), rng.integers(0, c, size=n)
    loss, dz = softmax_cross_entropy(z, y)
    t_loss, t_dz = _torch_loss_and_grad(F.cross_entropy, z, torch.from_numpy(y))
    assert loss == pytest.approx(t_loss, rel=1e-12, abs=1e-14)
    assert relative_error(dz, t_dz) < TOL
    errors = gradcheck(lambda z, y: softmax_cross_entropy(z, y)[0], {"z": z, "y": y}, {"z": dz})
    assert errors["z"] < TOL


def test_softmax_cross_entropy_is_stable_for_huge_logits() -> None:
    z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 3.0]])
    y = np.array([2, 1])
    loss, dz = softmax_cross_entropy(z, y)
    t_loss, t_dz = _torch_loss_and_grad(F.cross_entropy, z, torch.from_numpy(y))
    assert np.isfinite(loss) and loss == pytest.approx(t_loss, rel=1e-12)
    np.testing.assert_allclose(dz, t_dz, atol=1e-15)


def test_softmax_cross_entropy_gradient_is_p_minus_onehot_over_n() -> None:
    z = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    _, dz = softmax_cross_entropy(z, [1, 0])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dz, (p - np.eye(3)[[1, 0]]) / 2, rtol=1e-14)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(shape=shapes, seed=seeds)
def test_mse_loss_matches_torch(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(size=shape), rng.normal(size=shape)
    loss, dpred = mse_loss(pred, target)
    t_loss, t_grad = _torch_loss_and_grad(F.mse_loss, pred, torch.from_numpy(target))
    assert loss == pytest.approx(t_loss, rel=1e-12)
    assert relative_error(dpred, t_grad) < TOL
    errors = gradcheck(lambda p: mse_loss(p, target)[0], {"p": pred}, {"p": dpred})
    assert errors["p"] < TOL


@settings(max_examples=15, deadline=None, derandomize=True)
@given(shape=shapes, seed=seeds, soft=st.booleans())
def test_binary_cross_entropy_matches_torch(shape: tuple[int, ...], seed: int, soft: bool) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.02, 0.98, size=shape)
    target = rng.uniform(size=shape) if soft else rng.integers(0, 2, size=shape).astype(float)
    loss, dprobs = binary_cross_entropy(probs, target)
    t_loss, t_grad = _torch_loss_and_grad(F.binary_cross_entropy, probs, torch.from_numpy(target))
    assert loss == pytest.approx(t_loss, rel=1e-12)
    assert relative_error(dprobs, t_grad) < TOL
    errors = gradcheck(lambda p: binary_cross_entropy(p, target)[0], {"p": probs}, {"p": dprobs})
    assert errors["p"] < TOL


def test_binary_cross_entropy_clamps_like_torch_at_0_and_1() -> None:
    probs, target = np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0, 0.0])
    loss, dprobs = binary_cross_entropy(probs, target)
    t_loss, t_grad = _torch_loss_and_grad(F.binary_cross_entropy, probs, torch.from_numpy(target))
    assert loss == pytest.approx(t_loss, rel=1e-12)  # the two wrong ones cost 100 each
    # torch's clamp constant 1e-12 is a float32 literal (relative difference 4e-9)
    np.testing.assert_allclose(dprobs, t_grad, rtol=1e-8)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(shape=shapes, seed=seeds, scale=st.sampled_from([1.0, 30.0]))
def test_binary_cross_entropy_with_logits_matches_torch(
    shape: tuple[int, ...], seed: int, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    z, target = rng.normal(scale=scale, size=shape), rng.uniform(size=shape)
    loss, dz = binary_cross_entropy_with_logits(z, target)
    fn = F.binary_cross_entropy_with_logits
    t_loss, t_grad = _torch_loss_and_grad(fn, z, torch.from_numpy(target))
    assert loss == pytest.approx(t_loss, rel=1e-12)
    assert relative_error(dz, t_grad) < TOL
    if scale == 1.0:  # finite differences of a loss ~ 30 lose digits; autograd covers that case
        errors = gradcheck(
            lambda z: binary_cross_entropy_with_logits(z, target)[0], {"z": z}, {"z": dz}
        )
        assert errors["z"] < TOL


def test_bce_with_logits_is_finite_where_the_probability_saturates() -> None:
    z, t = np.array([800.0, -800.0]), np.array([0.0, 1.0])
    loss, dz = binary_cross_entropy_with_logits(z, t)
    assert loss == pytest.approx(800.0)
    np.testing.assert_allclose(dz, [0.5, -0.5])


def test_bad_inputs_raise_with_the_expected_and_received() -> None:
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) .* max 3"):
        softmax_cross_entropy(z, [0, 3])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\) .* min -1"):
        softmax_cross_entropy(z, [-1, 0])
    with pytest.raises(ValueError, match="integer class labels; received dtype float64"):
        softmax_cross_entropy(z, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"y must have shape \(2,\) to match logits \(2, 3\)"):
        softmax_cross_entropy(z, [0, 1, 2])
    with pytest.raises(ValueError, match=r"logits must be 2-D with shape \(N, C\)"):
        softmax_cross_entropy(np.zeros(3), [0])
    with pytest.raises(ValueError, match=r"target must have the shape of pred, \(2,\)"):
        mse_loss(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="pred must have at least one entry"):
        mse_loss(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]; received values in"):
        binary_cross_entropy([0.5, 1.5], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        binary_cross_entropy_with_logits([0.5, 1.5], [0.0, 2.0])
