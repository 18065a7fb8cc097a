"""Derivation checks for convolutions and pooling: closed forms of :mod:`.conv` and
:mod:`.pooling` against torch autograd in float64 (notes: discussion 3, section 2; discussion 5,
section 3).

Each entry builds seeded random inputs, runs the hand-written NumPy forward/backward and the
torch reference (``F.conv1d``, ``F.conv2d``, ``F.conv_transpose2d``, ``F.max_pool2d``), and
returns the largest absolute difference. Shapes use strides > 1 and padding so that dilation,
the full correlation and the cropping are all exercised.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.core.catalog import Check, derivation
from deepnotes.mechanics.conv import (
    conv1d_backward,
    conv1d_forward,
    conv2d_backward,
    conv2d_forward,
    conv2d_matrix,
    conv_matrix,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from deepnotes.mechanics.pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)


def _leaves(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


@derivation(
    "conv1d backward as convolutions",
    topic="mechanics",
    closed_form="dx = full_corr(dilate(dy), flip(w)); dw = corr(x_pad, dilate(dy)); db = sum dy",
)
def _conv1d_backward() -> Check:
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 3, 11)), rng.normal(size=(4, 3, 3)), rng.normal(size=4)
    y, cache = conv1d_forward(x, w, b, stride=2, padding=1)
    dy = rng.normal(size=y.shape)
    dx, dw, db = conv1d_backward(dy, cache)
    tx, tw, tb = _leaves(x, w, b)
    ty = F.conv1d(tx, tw, tb, stride=2, padding=1)
    tdx, tdw, tdb = torch.autograd.grad(ty, (tx, tw, tb), torch.from_numpy(dy))
    return Check.compare(
        [y, dx, dw, db],
        [ty, tdx, tdw, tdb],
        detail="N=2, C=3, L=11, F=4, K=3, stride 2, padding 1 (forward and all three gradients)",
    )


@derivation(
    "conv2d backward as convolutions",
    topic="mechanics",
    closed_form="dx = full_corr(dilate(dy), rot180(w)); dw = corr(x_pad, dilate(dy)); db = sum dy",
)
def _conv2d_backward() -> Check:
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4)
    y, cache = conv2d_forward(x, w, b, stride=(2, 3), padding=(1, 2))
    dy = rng.normal(size=y.shape)
    dx, dw, db = conv2d_backward(dy, cache)
    tx, tw, tb = _leaves(x, w, b)
    ty = F.conv2d(tx, tw, tb, stride=(2, 3), padding=(1, 2))
    tdx, tdw, tdb = torch.autograd.grad(ty, (tx, tw, tb), torch.from_numpy(dy))
    return Check.compare(
        [y, dx, dw, db],
        [ty, tdx, tdw, tdb],
        detail="N=2, C=3, 9x8, F=4, kernel 3x2, stride (2, 3), padding (1, 2)",
    )


@derivation(
    "convolution as a matrix: W @ x_pad equals the convolution (forward identity)",
    topic="mechanics",
    closed_form="W[i, s*i + k] = w[k]; W @ x_pad = x_pad * w (1-D); M @ vec(x) = vec(x * w) (2-D)",
)
def _conv_as_matrix() -> Check:
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=9), rng.normal(size=3)
    mat = conv_matrix(w, 9, padding=1, stride=2)  # (5, 11), acts on the padded input
    ours_1d = mat @ np.pad(x, 1)
    torch_1d = F.conv1d(
        torch.from_numpy(x)[None, None], torch.from_numpy(w)[None, None], None, 2, 1
    )
    img, kernel = rng.normal(size=(6, 7)), rng.normal(size=(3, 3))
    mat2 = conv2d_matrix(kernel, (6, 7), stride=2, padding=1)  # (3*4, 6*7), padding folded in
    ours_2d = (mat2 @ img.ravel()).reshape(3, 4)
    torch_2d = F.conv2d(
        torch.from_numpy(img)[None, None], torch.from_numpy(kernel)[None, None], None, 2, 1
    )
    return Check.compare(
        [ours_1d, ours_2d],
        [torch_1d[0, 0], torch_2d[0, 0]],
        detail="1-D: n=9, K=3, stride 2, padding 1 (5x11 matrix); 2-D: 6x7, 3x3, stride 2, pad 1",
    )


@derivation(
    "transposed conv2d is the transpose of the conv matrix (and conv2d's input gradient)",
    topic="mechanics",
    closed_form="conv_transpose(x) = col2im(w^T x) = M^T vec(x) = VJP of conv2d wrt its input",
)
def _conv_transpose_as_transpose() -> Check:
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(3, 2, 3, 3))  # w: (C_in, C_out, 3, 3)
    stride, padding, out_pad = 2, 1, 1
    y, _ = conv_transpose2d_forward(x, w, None, stride, padding, out_pad)  # (2, 2, 8, 10)
    ref = F.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w), None, stride, padding, out_pad
    )
    # autograd's vector-Jacobian product of conv2d (weights read as (F, C) = (C_in, C_out))
    probe = torch.zeros(2, 2, 8, 10, dtype=torch.float64, requires_grad=True)
    conv = F.conv2d(probe, torch.from_numpy(w), None, stride, padding)  # (2, 3, 4, 5)
    (vjp,) = torch.autograd.grad(conv, probe, torch.from_numpy(x))
    # the explicit transpose of each channel pair's conv matrix, summed over input channels
    by_matrix = np.zeros_like(y)
    for n in range(2):
        for o in range(2):
            for c in range(3):
                mat = conv2d_matrix(w[c, o], (8, 10), stride, padding)  # (4*5, 8*10)
                by_matrix[n, o] += (mat.T @ x[n, c].ravel()).reshape(8, 10)
    return Check.compare(
        [y, y, y],
        [ref, vjp, by_matrix],
        detail="x (2, 3, 4, 5), w (3, 2, 3, 3), stride 2, padding 1, output_padding 1",
    )


@derivation(
    "conv_transpose2d backward",
    topic="mechanics",
    closed_form="dx = conv2d(dy, w); dw = corr(pad(dy), dilate(x)); db = sum dy",
)
def _conv_transpose_backward() -> Check:
    rng = np.random.default_rng(4)
    x, w, b = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(3, 2, 3, 2)), rng.normal(size=2)
    y, cache = conv_transpose2d_forward(x, w, b, (2, 1), (1, 0), (1, 0))
    dy = rng.normal(size=y.shape)
    dx, dw, db = conv_transpose2d_backward(dy, cache)
    tx, tw, tb = _leaves(x, w, b)
    ty = F.conv_transpose2d(tx, tw, tb, (2, 1), (1, 0), (1, 0))
    tdx, tdw, tdb = torch.autograd.grad(ty, (tx, tw, tb), torch.from_numpy(dy))
    return Check.compare(
        [y, dx, dw, db],
        [ty, tdx, tdw, tdb],
        detail="x (2, 3, 4, 5), w (3, 2, 3, 2), stride (2, 1), padding (1, 0), out. padding (1, 0)",
    )


@derivation(
    "max-pool backward routes the gradient to the arg-max",
    topic="mechanics",
    closed_form="dx[argmax of window] += dy[window]; 0 elsewhere (ties: first index)",
)
def _max_pool_backward() -> Check:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 4, size=(2, 3, 7, 8)).astype(np.float64)  # small integers: many ties
    y, cache = max_pool2d_forward(x, 3, stride=2, padding=1)
    dy = rng.normal(size=y.shape)
    dx = max_pool2d_backward(dy, cache)
    (tx,) = _leaves(x)
    ty = F.max_pool2d(tx, 3, stride=2, padding=1)
    (tdx,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    return Check.compare(
        [y, dx],
        [ty, tdx],
        detail="x (2, 3, 7, 8) with integer values in 0..3 (ties), kernel 3, stride 2, padding 1",
    )


@derivation(
    "average-pool backward spreads the gradient evenly",
    topic="mechanics",
    closed_form="dx[window] += dy[window] / (kh * kw)",
)
def _avg_pool_backward() -> Check:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 3, 7, 8))
    y, cache = avg_pool2d_forward(x, (3, 2), stride=(2, 1), padding=(1, 1))
    dy = rng.normal(size=y.shape)
    dx = avg_pool2d_backward(dy, cache)
    (tx,) = _leaves(x)
    ty = F.avg_pool2d(tx, (3, 2), stride=(2, 1), padding=(1, 1))
    (tdx,) = torch.autograd.grad(ty, tx, torch.from_numpy(dy))
    return Check.compare(
        [y, dx], [ty, tdx], detail="x (2, 3, 7, 8), kernel (3, 2), stride (2, 1), padding (1, 1)"
    )
