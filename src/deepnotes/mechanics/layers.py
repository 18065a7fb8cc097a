r"""Dense layers by hand: the affine (fully connected) layer, the skip connection, and the closed
forms of the vector/matrix calculus review.

Notes: discussion 3, section 1 ("Mechanical Backpropagation": problems 1-2, the gradients of
:math:`-\log p_y(W\mathbf{x} + \mathbf{b})` with respect to :math:`W`, :math:`\mathbf{b}` and
:math:`\mathbf{x}`; problem 3, the skip connection
:math:`\mathbf{y} = W_2\sigma(W_1\mathbf{x}) + \mathbf{x}`) and discussion 2, section 2 ("Vector
and Matrix Calculus Review", problems 4-7).

Weight layout: the notes write :math:`W\mathbf{x} + \mathbf{b}` for a column vector
:math:`\mathbf{x} \in \mathbb{R}^D`, so :math:`W \in \mathbb{R}^{M \times D}`. With batch-first
rows ``x (N, D)`` the same map is ``x @ W.T + b``, with ``W (M, D)`` and ``b (M,)`` -- the
layout of ``torch.nn.Linear`` and ``F.linear``. Every function here uses it.

Conventions: float64; batch-first; a gradient has the shape of what it differentiates with
respect to; the Jacobian of :math:`f: \mathbb{R}^n \to \mathbb{R}^m` is the ``n x m`` matrix
:math:`\partial f_j / \partial x_i` (so ``dL/dx = (dy/dx) @ dL/dy``). Bad input raises
``ValueError`` naming the expected and the received shape. NumPy and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from deepnotes.mechanics.activations import (
    _as_float,
    _check_grad,
    _check_rank,
    relu_backward,
    relu_forward,
)


@dataclass(frozen=True)
class AffineCache:
    """What :func:`affine_backward` needs from :func:`affine_forward`.

    Arguments:
        x: the input, ``(N, D)``.
        W: the weight, ``(M, D)``.
    """

    x: np.ndarray
    W: np.ndarray


@dataclass(frozen=True)
class ResidualCache:
    """What :func:`residual_backward` needs from :func:`residual_forward`.

    Arguments:
        affine1: cache of the first affine map ``h = x W1^T + b1`` (``x (N, D)``, ``W1 (H, D)``).
        relu: cache of the ReLU, its input ``h`` ``(N, H)``.
        affine2: cache of the second affine map ``relu(h) W2^T + b2`` (``W2 (D, H)``).
    """

    affine1: AffineCache
    relu: np.ndarray
    affine2: AffineCache


# --------------------------------------------------------------------------------------------
# the affine layer (discussion 3, section 1, problems 1-2)


def affine_forward(x: ArrayLike, W: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, AffineCache]:
    r"""Fully connected layer, one row per example (discussion 3, section 1).

    .. math:: \mathbf{z} = W\mathbf{x} + \mathbf{b} \quad\text{per example, i.e.}\quad
        Z = X W^\top + \mathbf{1}\mathbf{b}^\top

    Arguments:
        x: ``(N, D)`` inputs.
        W: ``(M, D)`` weight (``torch.nn.Linear`` layout).
        b: ``(M,)`` bias.

    Returns:
        ``(out, AffineCache(x, W))`` with ``out`` of shape ``(N, M)``.

    Example:
        >>> out, cache = affine_forward([[1.0, 2.0]], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
        ...                             [0.0, 0.0, 0.5])
        >>> out.tolist()
        [[1.0, 2.0, 3.5]]
    """
    x, W, b = _as_float(x, "x"), _as_float(W, "W"), _as_float(b, "b")
    _check_rank(x, "x", (2,), "(N, D)")
    _check_rank(W, "W", (2,), "(M, D)")
    if W.shape[1] != x.shape[1]:
        raise ValueError(
            f"W must have shape (M, D) with D = x.shape[1] = {x.shape[1]}; received W of shape "
            f"{W.shape} (the layout is out = x @ W.T + b)"
        )
    if b.shape != (W.shape[0],):
        raise ValueError(f"b must have shape ({W.shape[0]},) for W {W.shape}; got {b.shape}")
    return x @ W.T + b, AffineCache(x, W)  # (N, M)


def affine_backward(
    dout: ArrayLike, cache: AffineCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Backward pass of the affine layer (discussion 3, section 1, problems 1-2).

    For one example with upstream gradient :math:`\boldsymbol{\delta} = \partial L/\partial
    \mathbf{z}` (for the softmax loss :math:`\boldsymbol\delta = \mathbf{p} - \mathbf{e}_y`):

    .. math:: \nabla_W L = \boldsymbol{\delta}\mathbf{x}^\top, \quad
        \nabla_{\mathbf{b}} L = \boldsymbol{\delta}, \quad
        \nabla_{\mathbf{x}} L = W^\top \boldsymbol{\delta}

    summed over the batch: ``dW = dout.T @ x``, ``db = dout.sum(0)``, ``dx = dout @ W``.

    Arguments:
        dout: ``(N, M)``, the gradient with respect to the output.
        cache: from :func:`affine_forward`.

    Returns:
        ``(dx (N, D), dW (M, D), db (M,))``.
    """
    x, W = cache.x, cache.W
    dout = _check_grad(dout, (x.shape[0], W.shape[0]), "dout")
    return dout @ W, dout.T @ x, dout.sum(axis=0)


# --------------------------------------------------------------------------------------------
# the skip connection (discussion 3, section 1, problem 3)


def residual_forward(
    x: ArrayLike, W1: ArrayLike, b1: ArrayLike, W2: ArrayLike, b2: ArrayLike
) -> tuple[np.ndarray, ResidualCache]:
    r"""A two-layer residual block with a ReLU (discussion 3, section 1, problem 3).

    .. math:: \mathbf{y} = W_2\,\mathrm{ReLU}(W_1\mathbf{x} + \mathbf{b}_1) + \mathbf{b}_2
        + \mathbf{x}

    (the notes' block has zero biases). The skip needs the output size to equal the input size.

    Arguments:
        x: ``(N, D)``.
        W1: ``(H, D)``; b1: ``(H,)``.
        W2: ``(D, H)``; b2: ``(D,)``.

    Returns:
        ``(y (N, D), ResidualCache)``.
    """
    x = _as_float(x, "x")
    h, affine1 = affine_forward(x, W1, b1)  # (N, H)
    a, relu = relu_forward(h)  # (N, H)
    out, affine2 = affine_forward(a, W2, b2)  # (N, D2)
    if out.shape != x.shape:
        raise ValueError(
            f"the skip connection adds x {x.shape} to W2 relu(.) of shape {out.shape}: W2 must "
            f"have shape ({x.shape[1]}, {h.shape[1]}); received {affine2.W.shape}"
        )
    return out + x, ResidualCache(affine1, relu, affine2)


def residual_backward(
    dy: ArrayLike, cache: ResidualCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Backward pass of the residual block (discussion 3, section 1, problem 3).

    With :math:`\boldsymbol{\delta}_y = \partial L/\partial\mathbf{y}` and
    :math:`\mathbf{h} = W_1\mathbf{x} + \mathbf{b}_1`:

    .. math:: \nabla_{\mathbf{x}} L = W_1^\top\big(\mathrm{ReLU}'(\mathbf{h}) \odot
        (W_2^\top \boldsymbol{\delta}_y)\big) + \boldsymbol{\delta}_y

    The skip adds :math:`\boldsymbol\delta_y` unchanged: the gradient reaches ``x`` even where
    the ReLU branch is dead (discussion 4, "Vanishing Gradients in ResNet").

    Returns:
        ``(dx (N, D), dW1 (H, D), db1 (H,), dW2 (D, H), db2 (D,))``.
    """
    dy = _check_grad(dy, cache.affine1.x.shape)
    da, dW2, db2 = affine_backward(dy, cache.affine2)  # da = W2^T delta_y, (N, H)
    dh = relu_backward(da, cache.relu)  # relu'(h) * W2^T delta_y, (N, H)
    dx_branch, dW1, db1 = affine_backward(dh, cache.affine1)  # W1^T (...), (N, D)
    return dx_branch + dy, dW1, db1, dW2, db2


# --------------------------------------------------------------------------------------------
# closed forms of the calculus review (discussion 2, section 2, problems 4-7)


def grad_sq_norm(x: ArrayLike) -> np.ndarray:
    r"""Gradient of the squared l2 norm (discussion 2, problem 4).

    .. math:: f(\mathbf{x}) = \|\mathbf{x}\|_2^2 = \mathbf{x}^\top\mathbf{x}, \qquad
        \nabla f(\mathbf{x}) = 2\mathbf{x}

    Any shape (the sum of squares of every entry); the gradient has the shape of ``x``.
    """
    return 2.0 * _as_float(x, "x")


def _check_A_x(A: ArrayLike, x: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    A = _as_float(A, "A")
    _check_rank(A, "A", (2,), "(d, n)")
    if x is None:
        return A, None
    x = _as_float(x, "x")
    if x.shape != (A.shape[0],):
        raise ValueError(
            f"x must have shape ({A.shape[0]},) for A of shape {A.shape}; got {x.shape}"
        )
    return A, x


def jacobian_AT_x(A: ArrayLike) -> np.ndarray:
    r"""Jacobian of the linear map :math:`\mathbf{f}(\mathbf{x}) = A^\top\mathbf{x}` (discussion 2,
    problem 5), with :math:`A \in \mathbb{R}^{d \times n}`, :math:`\mathbf{x} \in \mathbb{R}^d`.

    :math:`f_j(\mathbf{x}) = \sum_i A_{ij} x_i`, so in the notes' convention

    .. math:: \Big(\frac{\partial \mathbf{f}}{\partial \mathbf{x}}\Big)_{ij}
        = \frac{\partial f_j}{\partial x_i} = A_{ij}, \qquad
        \frac{\partial \mathbf{f}}{\partial \mathbf{x}} = A \in \mathbb{R}^{d \times n}

    It is :math:`A` itself, not :math:`A^\top` (which is the answer in the row-gradient
    convention the notes mention and do not use).

    Returns:
        a ``(d, n)`` copy of ``A``.
    """
    A, _ = _check_A_x(A)
    return A.copy()


def grad_sq_norm_AT_x(A: ArrayLike, x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Gradients of :math:`z = \|A^\top\mathbf{x}\|_2^2` (discussion 2, problems 6 and 7).

    With :math:`\mathbf{y} = A^\top\mathbf{x}` and the notes' chain rule
    :math:`\partial z/\partial\mathbf{x} = (\partial\mathbf{y}/\partial\mathbf{x})
    (\partial z/\partial\mathbf{y})`:

    .. math:: \nabla_{\mathbf{x}} z = A \cdot 2A^\top\mathbf{x} = 2AA^\top\mathbf{x}, \qquad
        \nabla_A z = \mathbf{x}\,(2A^\top\mathbf{x})^\top = 2\mathbf{x}\mathbf{x}^\top A

    Arguments:
        A: ``(d, n)``.
        x: ``(d,)``.

    Returns:
        ``(dz/dx (d,), dz/dA (d, n))``.
    """
    A, x = _check_A_x(A, x)
    dz_dy = grad_sq_norm(A.T @ x)  # 2 A^T x, (n,)
    return jacobian_AT_x(A) @ dz_dy, np.outer(x, dz_dy)  # (d,), (d, n)
