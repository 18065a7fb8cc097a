"""Hand-written max and average pooling (deepnotes.mechanics.pooling) against torch and finite
differences, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.mechanics.gradcheck import (
    numerical_gradient,  # centred differences, tested on its own
)
from deepnotes.mechanics.pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

RTOL = 1e-7
FAST = settings(max_examples=20, deadline=None)


def rel_error(ours: np.ndarray, reference: np.ndarray | torch.Tensor) -> float:
    """max |ours - ref| / max |ref| (max-norm relative error)."""
    ref = reference.detach().numpy() if isinstance(reference, torch.Tensor) else reference
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
    return float(np.max(np.abs(ours - ref), initial=0.0)) / scale


@st.composite
def pool_cases(draw: st.DrawFn) -> dict:
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    return {
        "shape": (
            draw(st.integers(1, 2)),
            draw(st.integers(1, 3)),
            draw(st.integers(max(1, kh - 2 * ph), 9)),
            draw(st.integers(max(1, kw - 2 * pw), 9)),
        ),
        "kernel_size": (kh, kw),
        "stride": stride,
        "padding": (ph, pw),
        "ties": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def _input(case: dict) -> np.ndarray:
    rng = np.random.default_rng(case["seed"])
    if case["ties"]:  # small integers: many windows hold several equal maxima
        return rng.integers(-2, 3, size=case["shape"]).astype(np.float64)
    return rng.normal(size=case["shape"])


@FAST
@given(pool_cases())
def test_max_pool2d_forward_and_backward_match_torch(case: dict) -> None:
    x = _input(case)
    args = (case["kernel_size"], case["stride"], case["padding"])
    y, cache = max_pool2d_forward(x, *args)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.max_pool2d(tx, *args)
    assert rel_error(y, ty) < RTOL
    dy = np.random.default_rng(case["seed"] + 1).normal(size=y.shape)
    (tdx,) = torch.autograd.grad(ty, tx, torch.tensor(dy))
    assert rel_error(max_pool2d_backward(dy, cache), tdx) < RTOL  # ties: same index as torch


@FAST
@given(pool_cases())
def test_avg_pool2d_forward_and_backward_match_torch(case: dict) -> None:
    x = _input(case)
    args = (case["kernel_size"], case["stride"], case["padding"])
    y, cache = avg_pool2d_forward(x, *args)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.avg_pool2d(tx, *args)
    assert rel_error(y, ty) < RTOL
    dy = np.random.default_rng(case["seed"] + 1).normal(size=y.shape)
    (tdx,) = torch.autograd.grad(ty, tx, torch.tensor(dy))
    assert rel_error(avg_pool2d_backward(dy, cache), tdx) < RTOL


@pytest.mark.parametrize(
    ("forward", "backward"),
    [(max_pool2d_forward, max_pool2d_backward), (avg_pool2d_forward, avg_pool2d_backward)],
)
@pytest.mark.parametrize(("kernel_size", "stride", "padding"), [(2, None, 0), (3, (2, 1), 1)])
def test_pool_backward_matches_finite_differences(
    forward, backward, kernel_size, stride, padding
) -> None:
    x = np.random.default_rng(7).normal(size=(2, 2, 6, 7))  # distinct values: max is smooth here
    y, cache = forward(x, kernel_size, stride, padding)
    dy = np.random.default_rng(8).normal(size=y.shape)

    def loss(a: np.ndarray) -> float:
        return float(np.sum(forward(a, kernel_size, stride, padding)[0] * dy))

    assert rel_error(backward(dy, cache), numerical_gradient(loss, x)) < RTOL


def test_max_pool_routes_to_the_first_of_tied_maxima_and_sums_overlaps() -> None:
    x = np.array([[[[1.0, 5.0], [5.0, 0.0]]]])  # two maxima: (0, 1) comes first in row-major
    y, cache = max_pool2d_forward(x, 2)
    dx = max_pool2d_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 1], [0, 0]])
    # a peak shared by four overlapping 2x2 windows (stride 1) collects all four gradients
    peak = np.zeros((1, 1, 3, 3))
    peak[0, 0, 1, 1] = 1.0
    y, cache = max_pool2d_forward(peak, 2, stride=1)
    dx = max_pool2d_backward(np.ones_like(y), cache)
    assert dx[0, 0, 1, 1] == 4.0 and dx.sum() == 4.0


def test_stride_defaults_to_the_kernel_and_avg_pool_counts_padding() -> None:
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(max_pool2d_forward(x, 2)[0][0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(avg_pool2d_forward(x, 2)[0][0, 0], [[2.5, 4.5], [10.5, 12.5]])
    corner = avg_pool2d_forward(np.ones((1, 1, 2, 2)), 3, stride=1, padding=1)[0][0, 0, 0, 0]
    assert corner == pytest.approx(4 / 9)  # 4 ones and 5 padding zeros, divided by 9


X = np.zeros((2, 3, 5, 5))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: max_pool2d_forward(np.zeros((3, 5, 5)), 2), r"x must be 4-D .*received shape"),
        (lambda: avg_pool2d_forward(X, 3, padding=2), r"padding must be at most half .*\(1, 1\)"),
        (lambda: max_pool2d_forward(X, 7), "kernel size 7 is larger than the padded input"),
        (lambda: max_pool2d_forward(X, 0), "kernel_size must be >= 1"),
        (lambda: avg_pool2d_forward(X, (2, 2, 2)), "kernel_size must be an int or a pair"),
        (lambda: avg_pool2d_forward(X, 2, stride=1.5), "stride must be an int or a pair"),
    ],
)
def test_bad_input_raises_value_error(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_backward_rejects_wrong_dout_and_wrong_cache() -> None:
    y, cache = max_pool2d_forward(X, 2)
    with pytest.raises(ValueError, match=r"dout must have the output's shape \(2, 3, 2, 2\)"):
        max_pool2d_backward(np.zeros((2, 3, 3, 3)), cache)
    _, avg_cache = avg_pool2d_forward(X, 2)
    with pytest.raises(ValueError, match="cache has no arg-max"):
        max_pool2d_backward(y, avg_cache)
    with pytest.raises(ValueError, match="dout must have the output's shape"):
        avg_pool2d_backward(np.zeros((2, 3)), avg_cache)
