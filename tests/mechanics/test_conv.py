"""Hand-written convolutions (deepnotes.mechanics.conv) against torch, finite differences and
each other, in float64."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import deepnotes.mechanics.conv as conv_module
from deepnotes.mechanics.conv import (
    ConvCache,
    col2im,
    conv1d_backward,
    conv1d_forward,
    conv1d_naive,
    conv2d_backward,
    conv2d_backward_im2col,
    conv2d_forward,
    conv2d_matrix,
    conv2d_naive,
    conv2d_naive_backward,
    conv_matrix,
    conv_output_size,
    conv_parameter_count,
    conv_transpose1d_backward,
    conv_transpose1d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    im2col,
)
from deepnotes.mechanics.gradcheck import numerical_gradient

RTOL = 1e-7  # max relative error allowed, relative to the largest reference entry
FAST = settings(max_examples=15, deadline=None)


def rel_error(ours: np.ndarray, reference: np.ndarray | torch.Tensor) -> float:
    """max |ours - ref| / max |ref| (max-norm relative error; 0 when both are 0)."""
    ref = reference.detach().numpy() if isinstance(reference, torch.Tensor) else reference
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
    return float(np.max(np.abs(ours - ref), initial=0.0)) / scale


def leaves(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.tensor(a, requires_grad=True) for a in arrays]


@st.composite
def conv2d_cases(draw: st.DrawFn) -> dict:
    """Random shapes, kernel <= padded input, strides and paddings per axis."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    return {
        "n": draw(st.integers(1, 3)),
        "c": draw(st.integers(1, 3)),
        "f": draw(st.integers(1, 4)),
        "hw": (h, w),
        "k": (kh, kw),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": (ph, pw),
        "seed": draw(st.integers(0, 2**16)),
    }


@st.composite
def conv1d_cases(draw: st.DrawFn) -> dict:
    k, p = draw(st.integers(1, 5)), draw(st.integers(0, 2))
    return {
        "n": draw(st.integers(1, 3)),
        "c": draw(st.integers(1, 3)),
        "f": draw(st.integers(1, 4)),
        "length": draw(st.integers(max(1, k - 2 * p), 13)),
        "k": k,
        "stride": draw(st.integers(1, 3)),
        "padding": p,
        "seed": draw(st.integers(0, 2**16)),
    }


# --------------------------------------------------------------------------------------------
# sizes


def test_conv_output_size_is_the_notes_formula_floored_like_torch() -> None:
    assert conv_output_size(32, 5) == 28
    assert conv_output_size(32, 5, padding=2) == 32
    assert conv_output_size(32, 1) == 32
    assert conv_output_size(7, 3, stride=2) == 3  # (7 - 3)/2 + 1, exact
    assert conv_output_size(8, 3, stride=2) == 3  # (8 - 3)/2 + 1 = 3.5, floored
    y = F.conv1d(torch.zeros(1, 1, 8), torch.zeros(1, 1, 3), stride=2)
    assert y.shape[-1] == conv_output_size(8, 3, stride=2)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((4, 7), r"kernel size 7 is larger than the padded input.*n \+ 2\*padding = 4"),
        ((4, 7, 1, 1), r"expected k <= .* = 6, received k = 7"),
        ((4, 3, 0), "stride must be >= 1; received 0"),
        ((4, 3, 1, -1), "padding must be >= 0; received -1"),
        ((0, 1), "n must be >= 1; received 0"),
        ((4.0, 3), "n must be an int; received 4.0"),
        ((4, True), "k must be an int; received True"),
    ],
)
def test_conv_output_size_rejects_bad_values(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        conv_output_size(*args)


def test_conv_parameter_count_matches_torch_layers() -> None:
    assert conv_parameter_count(3, 10, 5, bias=False) == 750
    for c_in, c_out, k, bias in [(3, 10, 5, True), (3, 16, (3, 2), True), (10, 1, 1, False)]:
        layer = torch.nn.Conv2d(c_in, c_out, k, bias=bias)
        assert conv_parameter_count(c_in, c_out, k, bias) == sum(
            p.numel() for p in layer.parameters()
        )
    with pytest.raises(ValueError, match="kernel_size must be an int or a tuple of 2 ints"):
        conv_parameter_count(3, 4, (3, 3, 3))


# --------------------------------------------------------------------------------------------
# 1-D


@FAST
@given(conv1d_cases())
def test_conv1d_forward_and_backward_match_torch(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x = rng.normal(size=(case["n"], case["c"], case["length"]))
    w = rng.normal(size=(case["f"], case["c"], case["k"]))
    b = rng.normal(size=case["f"])
    s, p = case["stride"], case["padding"]
    y, cache = conv1d_forward(x, w, b, s, p)
    tx, tw, tb = leaves(x, w, b)
    ty = F.conv1d(tx, tw, tb, stride=s, padding=p)
    assert rel_error(y, ty) < RTOL
    assert rel_error(conv1d_naive(x, w, b, s, p), ty) < RTOL
    dy = rng.normal(size=y.shape)
    grads = conv1d_backward(dy, cache)
    for ours, theirs in zip(
        grads, torch.autograd.grad(ty, (tx, tw, tb), torch.tensor(dy)), strict=True
    ):
        assert rel_error(ours, theirs) < RTOL


@pytest.mark.parametrize(("length", "stride", "padding"), [(11, 2, 1), (10, 3, 0), (4, 1, 0)])
def test_conv1d_backward_matches_finite_differences(length: int, stride: int, padding: int) -> None:
    rng = np.random.default_rng(length)
    x, w, b = rng.normal(size=(2, 3, length)), rng.normal(size=(2, 3, 3)), rng.normal(size=2)
    y, cache = conv1d_forward(x, w, b, stride, padding)
    dy = rng.normal(size=y.shape)
    dx, dw, db = conv1d_backward(dy, cache)

    def loss(_: np.ndarray) -> float:  # L = <y, dy>, so dL/dy = dy
        return float(np.sum(conv1d_forward(x, w, b, stride, padding)[0] * dy))

    assert rel_error(dx, numerical_gradient(loss, x)) < RTOL
    assert rel_error(dw, numerical_gradient(loss, w)) < RTOL
    assert rel_error(db, numerical_gradient(loss, b)) < RTOL


def test_conv1d_backward_is_the_notes_convolutions() -> None:
    """Notes' problem 6: dx = [0, 0, dy1, dy2, 0, 0] * flip(w), dw = x * dy."""
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=4), rng.normal(size=3)
    y, cache = conv1d_forward(x[None, None], w[None, None])
    assert y.shape == (1, 1, 2)
    dy = rng.normal(size=2)
    dx, dw, _ = conv1d_backward(dy[None, None], cache)
    full = np.pad(dy, 2)
    expected_dx = [full[i : i + 3] @ w[::-1] for i in range(4)]
    expected_dw = [x[k : k + 2] @ dy for k in range(3)]
    np.testing.assert_allclose(dx[0, 0], expected_dx, rtol=1e-12)
    np.testing.assert_allclose(dw[0, 0], expected_dw, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# 2-D


@FAST
@given(conv2d_cases())
def test_conv2d_naive_and_im2col_match_torch(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x = rng.normal(size=(case["n"], case["c"], *case["hw"]))
    w = rng.normal(size=(case["f"], case["c"], *case["k"]))
    b = rng.normal(size=case["f"])
    y, _ = conv2d_forward(x, w, b, case["stride"], case["padding"])
    ref = F.conv2d(
        torch.tensor(x), torch.tensor(w), torch.tensor(b), case["stride"], case["padding"]
    )
    assert rel_error(y, ref) < RTOL
    assert rel_error(conv2d_naive(x, w, b, case["stride"], case["padding"]), y) < RTOL


@FAST
@given(conv2d_cases())
def test_conv2d_backwards_match_torch_autograd(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x = rng.normal(size=(case["n"], case["c"], *case["hw"]))
    w = rng.normal(size=(case["f"], case["c"], *case["k"]))
    b = rng.normal(size=case["f"])
    s, p = case["stride"], case["padding"]
    y, cache = conv2d_forward(x, w, b, s, p)
    dy = rng.normal(size=y.shape)
    tx, tw, tb = leaves(x, w, b)
    expected = torch.autograd.grad(F.conv2d(tx, tw, tb, s, p), (tx, tw, tb), torch.tensor(dy))
    for grads in (
        conv2d_backward(dy, cache),
        conv2d_backward_im2col(dy, cache),
        conv2d_naive_backward(dy, x, w, s, p),
    ):
        for ours, theirs in zip(grads, expected, strict=True):
            assert rel_error(ours, theirs) < RTOL


@pytest.mark.parametrize(
    ("hw", "stride", "padding"),
    [((7, 6), (2, 1), (1, 0)), ((8, 8), 2, 0), ((5, 6), (1, 3), (2, 1))],
)
def test_conv2d_backward_matches_finite_differences(hw: tuple, stride, padding) -> None:
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(2, 2, *hw)), rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    y, cache = conv2d_forward(x, w, b, stride, padding)
    dy = rng.normal(size=y.shape)

    def loss(_: np.ndarray) -> float:
        return float(np.sum(conv2d_forward(x, w, b, stride, padding)[0] * dy))

    numeric = [numerical_gradient(loss, a) for a in (x, w, b)]
    for grads in (conv2d_backward(dy, cache), conv2d_backward_im2col(dy, cache)):
        for ours, theirs in zip(grads, numeric, strict=True):
            assert rel_error(ours, theirs) < RTOL


def test_conv2d_floored_stride_gives_uncovered_rows_zero_gradient() -> None:
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(1, 1, 8, 8)), rng.normal(size=(1, 1, 3, 3))
    y, cache = conv2d_forward(x, w, None, stride=2)  # windows cover rows/cols 0..6 only
    assert y.shape == (1, 1, 3, 3)
    dx, _, _ = conv2d_backward(np.ones_like(y), cache)
    assert np.all(dx[0, 0, 7, :] == 0) and np.all(dx[0, 0, :, 7] == 0)
    assert np.any(dx[0, 0, 6, :] != 0)


def test_im2col_matches_torch_unfold_and_col2im_is_its_adjoint() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 7, 6))
    cols = im2col(x, 3, 2, stride=(2, 1), padding=(1, 2))
    ref = F.unfold(torch.tensor(x), (3, 2), padding=(1, 2), stride=(2, 1))
    assert rel_error(cols, ref) < RTOL
    z = rng.normal(size=cols.shape)
    back = col2im(z, x.shape, 3, 2, stride=(2, 1), padding=(1, 2))
    folded = F.fold(torch.tensor(z), (7, 6), (3, 2), padding=(1, 2), stride=(2, 1))
    assert rel_error(back, folded) < RTOL
    assert np.sum(cols * z) == pytest.approx(np.sum(x * back), rel=1e-12)  # <Ax, z> = <x, A^T z>


# --------------------------------------------------------------------------------------------
# convolution as a matrix


def test_conv_matrix_is_the_notes_4x6_matrix() -> None:
    mat = conv_matrix([1.0, 2.0, 3.0], 4, padding=1)
    expected = np.array(
        [[1, 2, 3, 0, 0, 0], [0, 1, 2, 3, 0, 0], [0, 0, 1, 2, 3, 0], [0, 0, 0, 1, 2, 3]]
    )
    np.testing.assert_array_equal(mat, expected)
    np.testing.assert_array_equal(
        conv_matrix([1.0, 2.0, 3.0], 4, 1, fold_padding=True), mat[:, 1:5]
    )


@FAST
@given(conv1d_cases())
def test_conv_matrix_times_padded_input_is_the_convolution(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x, w = rng.normal(size=case["length"]), rng.normal(size=case["k"])
    s, p = case["stride"], case["padding"]
    ref = F.conv1d(torch.tensor(x)[None, None], torch.tensor(w)[None, None], None, s, p)[0, 0]
    assert rel_error(conv_matrix(w, x.size, p, s) @ np.pad(x, p), ref) < RTOL
    assert rel_error(conv_matrix(w, x.size, p, s, fold_padding=True) @ x, ref) < RTOL
    # the same matrix is the Jacobian of the convolution with respect to the input
    jac = torch.autograd.functional.jacobian(
        lambda t: F.conv1d(t[None, None], torch.tensor(w)[None, None], None, s, p)[0, 0],
        torch.tensor(x),
    )
    assert rel_error(conv_matrix(w, x.size, p, s, fold_padding=True), jac) < RTOL


@FAST
@given(conv2d_cases())
def test_conv2d_matrix_times_input_is_the_convolution(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    img, kernel = rng.normal(size=case["hw"]), rng.normal(size=case["k"])
    mat = conv2d_matrix(kernel, case["hw"], case["stride"], case["padding"])
    ref = F.conv2d(
        torch.tensor(img)[None, None],
        torch.tensor(kernel)[None, None],
        None,
        case["stride"],
        case["padding"],
    )[0, 0]
    assert mat.shape == (ref.numel(), img.size)
    assert rel_error((mat @ img.ravel()).reshape(ref.shape), ref) < RTOL


# --------------------------------------------------------------------------------------------
# transposed convolution


@st.composite
def transpose_cases(draw: st.DrawFn) -> dict:
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    oph, opw = draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))
    # keep the output non-empty: (h-1)s - 2p + k + op >= 1
    ph = draw(st.integers(0, max(0, ((h - 1) * sh + kh + oph - 1) // 2)))
    pw = draw(st.integers(0, max(0, ((w - 1) * sw + kw + opw - 1) // 2)))
    return {
        "n": draw(st.integers(1, 2)),
        "c_in": draw(st.integers(1, 3)),
        "c_out": draw(st.integers(1, 3)),
        "hw": (h, w),
        "k": (kh, kw),
        "stride": (sh, sw),
        "padding": (ph, pw),
        "output_padding": (oph, opw),
        "seed": draw(st.integers(0, 2**16)),
    }


@FAST
@given(transpose_cases())
def test_conv_transpose2d_matches_torch(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    x = rng.normal(size=(case["n"], case["c_in"], *case["hw"]))
    w = rng.normal(size=(case["c_in"], case["c_out"], *case["k"]))
    b = rng.normal(size=case["c_out"])
    args = (case["stride"], case["padding"], case["output_padding"])
    y, cache = conv_transpose2d_forward(x, w, b, *args)
    tx, tw, tb = leaves(x, w, b)
    ty = F.conv_transpose2d(tx, tw, tb, *args)
    assert rel_error(y, ty) < RTOL
    dy = rng.normal(size=y.shape)
    expected = torch.autograd.grad(ty, (tx, tw, tb), torch.tensor(dy))
    for ours, theirs in zip(conv_transpose2d_backward(dy, cache), expected, strict=True):
        assert rel_error(ours, theirs) < RTOL


def test_conv_transpose2d_is_the_transposed_matrix_and_the_conv_input_gradient() -> None:
    rng = np.random.default_rng(4)
    x, w = rng.normal(size=(1, 1, 3, 4)), rng.normal(size=(1, 1, 3, 3))
    y, _ = conv_transpose2d_forward(x, w, None, stride=2, padding=1, output_padding=1)
    assert y.shape == (1, 1, 6, 8)  # (H - 1) s - 2p + k + output_padding
    mat = conv2d_matrix(w[0, 0], (6, 8), stride=2, padding=1)  # (3*4, 6*8)
    np.testing.assert_allclose(y[0, 0], (mat.T @ x.ravel()).reshape(6, 8), rtol=1e-12)
    # ... which is the input gradient of the convolution by w with dout = x
    _, cache = conv2d_forward(np.zeros((1, 1, 6, 8)), w, None, stride=2, padding=1)
    dx, _, _ = conv2d_backward(x, cache)
    np.testing.assert_allclose(y, dx, rtol=1e-12, atol=1e-14)


def test_conv_transpose2d_backward_matches_finite_differences() -> None:
    rng = np.random.default_rng(5)
    x, w, b = rng.normal(size=(2, 2, 3, 4)), rng.normal(size=(2, 3, 2, 3)), rng.normal(size=3)
    args = ((2, 1), (1, 1), (1, 0))
    y, cache = conv_transpose2d_forward(x, w, b, *args)
    dy = rng.normal(size=y.shape)

    def loss(_: np.ndarray) -> float:
        return float(np.sum(conv_transpose2d_forward(x, w, b, *args)[0] * dy))

    for ours, a in zip(conv_transpose2d_backward(dy, cache), (x, w, b), strict=True):
        assert rel_error(ours, numerical_gradient(loss, a)) < RTOL


@pytest.mark.parametrize(("stride", "padding", "output_padding"), [(1, 0, 0), (2, 1, 1), (3, 2, 2)])
def test_conv_transpose1d_matches_torch(stride: int, padding: int, output_padding: int) -> None:
    rng = np.random.default_rng(stride)
    x, w, b = rng.normal(size=(2, 3, 5)), rng.normal(size=(3, 2, 4)), rng.normal(size=2)
    y, cache = conv_transpose1d_forward(x, w, b, stride, padding, output_padding)
    tx, tw, tb = leaves(x, w, b)
    ty = F.conv_transpose1d(tx, tw, tb, stride, padding, output_padding)
    assert rel_error(y, ty) < RTOL
    dy = rng.normal(size=y.shape)
    expected = torch.autograd.grad(ty, (tx, tw, tb), torch.tensor(dy))
    for ours, theirs in zip(conv_transpose1d_backward(dy, cache), expected, strict=True):
        assert rel_error(ours, theirs) < RTOL
    mat = conv_matrix(w[0, 0], y.shape[2], padding, stride, fold_padding=True)
    np.testing.assert_allclose(
        conv_transpose1d_forward(x[:1, :1], w[:1, :1], None, stride, padding, output_padding)[0][
            0, 0
        ],
        mat.T @ x[0, 0],
        rtol=1e-12,
    )


# --------------------------------------------------------------------------------------------
# errors

X2, W2 = np.zeros((2, 3, 5, 5)), np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: conv2d_forward(np.zeros((3, 5, 5)), W2),
            r"x must be 4-D .*received shape \(3, 5, 5\)",
        ),
        (
            lambda: conv2d_forward(X2, np.zeros((4, 3, 3))),
            r"w must be 4-D with shape \(F, C, kh, kw\)",
        ),
        (
            lambda: conv2d_forward(X2, np.zeros((4, 2, 3, 3))),
            r"channel mismatch: .* expects 2 .* x .* has 3",
        ),
        (lambda: conv2d_forward(X2, W2, np.zeros(3)), r"b must have shape \(4,\) .*got \(3,\)"),
        (
            lambda: conv2d_forward(X2, np.zeros((4, 3, 8, 3)), padding=1),
            "kernel size 8 is larger than the padded input",
        ),
        (
            lambda: conv2d_forward(X2, W2, stride=(1, 2, 3)),
            "stride must be an int or a tuple of 2 ints",
        ),
        (lambda: conv2d_forward(X2, W2, stride=0), "stride must be >= 1"),
        (lambda: conv2d_naive(X2, W2, padding=-1), "padding must be >= 0"),
        (lambda: conv1d_forward(np.zeros((2, 3, 5)), np.zeros((4, 2, 3))), "channel mismatch"),
        (lambda: conv1d_naive(np.zeros((2, 3, 2)), np.zeros((4, 3, 3))), "kernel size 3 is larger"),
        (lambda: conv1d_forward(X2, W2), r"x must be 3-D with shape \(N, C, L\)"),
        (lambda: im2col(np.zeros((5, 5)), 3, 3), r"x must be 4-D"),
        (
            lambda: col2im(np.zeros((2, 27, 8)), (2, 3, 5, 5), 3, 3),
            r"cols must have shape .*\(2, 27, 9\)",
        ),
        (lambda: conv_matrix(np.zeros((3, 3)), 4), r"w must be 1-D with shape \(K,\)"),
        (lambda: conv_matrix(np.zeros(5), 2, padding=1), "kernel size 5 is larger"),
        (lambda: conv2d_matrix(np.zeros((3, 3)), (5, 5, 1)), r"input_shape must be \(H, W\)"),
        (
            lambda: conv_transpose2d_forward(X2, np.zeros((4, 3, 3, 3))),
            r"channel mismatch: .* expects 4 .* has 3",
        ),
        (
            lambda: conv_transpose2d_forward(
                X2, np.zeros((3, 2, 3, 3)), stride=2, output_padding=2
            ),
            "output_padding must be smaller than the stride",
        ),
        (
            lambda: conv_transpose2d_forward(
                np.zeros((1, 3, 1, 1)), np.zeros((3, 2, 1, 1)), padding=1
            ),
            "transposed convolution output would be empty",
        ),
        (
            lambda: conv_transpose1d_forward(np.zeros((1, 3, 4)), np.zeros((3, 2, 2)), stride=0),
            "stride must be >= 1",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_expected_and_received(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_backward_rejects_wrong_dout_and_wrong_cache() -> None:
    y, cache = conv2d_forward(X2, W2, None, padding=1)
    with pytest.raises(ValueError, match=r"dout must have the output's shape \(2, 4, 5, 5\)"):
        conv2d_backward(np.zeros((2, 4, 4, 4)), cache)
    with pytest.raises(ValueError, match="dout must have shape"):
        conv2d_backward_im2col(np.zeros((2, 4, 4, 4)), cache)
    bare = ConvCache(cache.x, cache.w, cache.stride, cache.padding)
    with pytest.raises(ValueError, match="cache has no im2col columns"):
        conv2d_backward_im2col(y, bare)
    _, cache1 = conv1d_forward(np.zeros((1, 1, 6)), np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match=r"dout must have the output's shape \(1, 1, 4\)"):
        conv1d_backward(np.zeros((1, 1, 5)), cache1)
    _, cache_t = conv_transpose2d_forward(X2, np.zeros((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"dout must have the output's shape \(2, 2, 7, 7\)"):
        conv_transpose2d_backward(np.zeros((2, 2, 5, 5)), cache_t)
    _, cache_t1 = conv_transpose1d_forward(np.zeros((1, 3, 4)), np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match=r"dout must have shape \(N, C_out, L_out\)"):
        conv_transpose1d_backward(np.zeros((1, 2, 5, 1)), cache_t1)


def test_conv_module_imports_numpy_and_the_standard_library_only() -> None:
    tree = ast.parse(Path(conv_module.__file__).read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "dataclasses", "numpy"}, roots
