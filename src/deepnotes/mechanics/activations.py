r"""Activation functions with hand-written backward passes: sigmoid, tanh, ReLU, Leaky ReLU, ELU
and softmax.

Notes: discussion 1, problem 3 ("Derivative of Sigmoid") and problem 4 ("Derivative of Softmax");
discussion 3, section 1 ("Mechanical Backpropagation", the softmax partials
:math:`p_i(\delta_{ij} - p_j)`); discussion 4, section 6 ("Aside: ReLU Activations and its
Relatives", with the problem "(Review) Forward and Backward Pass for ReLU").

Conventions (shared by every module of :mod:`deepnotes.mechanics`):

- float64: inputs are converted with ``np.asarray(..., dtype=np.float64)``.
- Batch-first arrays. The elementwise activations accept any shape; softmax normalises along
  the last axis, so ``(N, C)`` logits give one distribution per row.
- A gradient has the shape of the quantity it is the gradient of: ``dx.shape == x.shape``.
- The Jacobian of :math:`f: \mathbb{R}^n \to \mathbb{R}^m` is the ``n x m`` matrix with
  entries :math:`(\partial f / \partial x)_{ij} = \partial f_j / \partial x_i` (discussion 2,
  section 2), so the chain rule reads ``dL/dx = (dy/dx) @ dL/dy``.
- Functional pairs: ``y, cache = relu_forward(x)`` then ``dx = relu_backward(dy, cache)``.
  Caches: ``relu`` keeps the input ``x``; ``sigmoid``, ``tanh`` and ``softmax`` keep their
  output ``y`` (their derivatives are functions of it); ``leaky_relu`` and ``elu`` keep an
  :class:`AlphaCache` with ``x`` and ``alpha``.
- Bad input raises ``ValueError`` naming the expected and the received shape or value.

This module imports NumPy and the standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class AlphaCache:
    """What the backward pass of an activation with a slope parameter needs.

    Arguments:
        x: the input of the forward pass.
        alpha: the negative-side parameter (Leaky ReLU slope or ELU scale).
    """

    x: np.ndarray
    alpha: float


# --------------------------------------------------------------------------------------------
# validation helpers (shared by the other mechanics modules)


def _as_float(value: ArrayLike, name: str) -> np.ndarray:
    """``value`` as a float64 array; a ``ValueError`` naming ``name`` if that is impossible."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers; received {value!r}") from err


def _check_rank(arr: np.ndarray, name: str, ranks: tuple[int, ...], layout: str) -> None:
    if arr.ndim not in ranks:
        expected = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(
            f"{name} must be {expected} with shape {layout}; received shape {arr.shape}"
        )


def _check_grad(grad: ArrayLike, expected: tuple[int, ...], name: str = "dy") -> np.ndarray:
    """``grad`` as float64, checked to have the forward output's shape ``expected``."""
    grad = _as_float(grad, name)
    if grad.shape != expected:
        raise ValueError(
            f"{name} must have the forward output's shape {expected}; received {grad.shape}"
        )
    return grad


def _check_alpha(alpha: float, name: str) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating | np.integer):
        raise ValueError(f"{name} alpha must be a real number; received {alpha!r}")
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"{name} alpha must be finite and >= 0; received alpha = {alpha}")
    return float(alpha)


# --------------------------------------------------------------------------------------------
# sigmoid and tanh


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """:math:`1 / (1 + e^{-x})` without overflow: only ``exp(-|x|) <= 1`` is ever computed."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_forward(x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Logistic sigmoid, elementwise (discussion 1, problem 3).

    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}}

    Returns:
        ``(y, cache)`` with ``y = sigma(x)`` (any shape) and ``cache = y``.
    """
    y = _sigmoid(_as_float(x, "x"))
    return y, y


def sigmoid_backward(dy: ArrayLike, cache: np.ndarray) -> np.ndarray:
    r"""Backward pass of the sigmoid (discussion 1, problem 3).

    .. math:: \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} \odot
        \sigma(x)(1 - \sigma(x))
    """
    y = cache
    return _check_grad(dy, y.shape) * y * (1.0 - y)


def sigmoid_derivative(x: ArrayLike) -> np.ndarray:
    r"""The derivative of the sigmoid written in terms of the sigmoid (discussion 1, problem 3).

    .. math:: \sigma'(x) = \sigma(x)(1 - \sigma(x))

    Example:
        >>> float(sigmoid_derivative(0.0))
        0.25
    """
    s = _sigmoid(_as_float(x, "x"))
    return s * (1.0 - s)


def tanh_forward(x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Hyperbolic tangent, elementwise (discussion 4, section 5, "Deriving Xavier Initialization").

    .. math:: \tanh(x) = \frac{e^x - e^{-x}}{e^x + e^{-x}}

    Returns:
        ``(y, cache)`` with ``y = tanh(x)`` and ``cache = y``.
    """
    y = np.tanh(_as_float(x, "x"))
    return y, y


def tanh_backward(dy: ArrayLike, cache: np.ndarray) -> np.ndarray:
    r"""Backward pass of tanh.

    .. math:: \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} \odot
        (1 - \tanh^2(x))
    """
    y = cache
    return _check_grad(dy, y.shape) * (1.0 - y * y)


# --------------------------------------------------------------------------------------------
# ReLU and its relatives (discussion 4, section 6)


def relu_forward(x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""ReLU, elementwise (discussion 4, section 6, Definition 3).

    .. math:: \mathrm{ReLU}(x) = \max(0, x)

    Returns:
        ``(y, cache)`` with ``cache = x``.
    """
    x = _as_float(x, "x")
    return np.maximum(x, 0.0), x


def relu_backward(dy: ArrayLike, cache: np.ndarray) -> np.ndarray:
    r"""Backward pass of ReLU: the gradient flows where the input was positive.

    .. math:: \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} \odot
        \mathbb{1}[x > 0]

    At ``x = 0`` the subgradient 0 is used, as torch does.
    """
    x = cache
    return np.where(x > 0, _check_grad(dy, x.shape), 0.0)  # no -0.0 where x <= 0


def leaky_relu_forward(x: ArrayLike, alpha: float = 0.01) -> tuple[np.ndarray, AlphaCache]:
    r"""Leaky ReLU, elementwise (discussion 4, section 6): a small linear part for ``x < 0``.

    .. math:: \mathrm{LeakyReLU}(x) = \begin{cases} x & x > 0 \\ \alpha x & x \le 0
        \end{cases}

    Arguments:
        x: any shape.
        alpha: the negative-side slope, ``>= 0`` (``F.leaky_relu``'s ``negative_slope``).

    Returns:
        ``(y, AlphaCache(x, alpha))``.
    """
    alpha = _check_alpha(alpha, "leaky_relu")
    x = _as_float(x, "x")
    return np.where(x > 0, x, alpha * x), AlphaCache(x, alpha)


def leaky_relu_backward(dy: ArrayLike, cache: AlphaCache) -> np.ndarray:
    r"""Backward pass of Leaky ReLU (slope ``alpha`` at ``x = 0``, as torch).

    .. math:: \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} \odot
        (\mathbb{1}[x > 0] + \alpha \mathbb{1}[x \le 0])
    """
    return _check_grad(dy, cache.x.shape) * np.where(cache.x > 0, 1.0, cache.alpha)


def elu_forward(x: ArrayLike, alpha: float = 1.0) -> tuple[np.ndarray, AlphaCache]:
    r"""ELU, elementwise (discussion 4, section 6).

    .. math:: \mathrm{ELU}(x) = \begin{cases} x & x > 0 \\ \alpha (e^x - 1) & x \le 0
        \end{cases}

    Arguments:
        x: any shape.
        alpha: the scale of the negative saturation, ``>= 0`` (``F.elu``'s ``alpha``).

    Returns:
        ``(y, AlphaCache(x, alpha))``.
    """
    alpha = _check_alpha(alpha, "elu")
    x = _as_float(x, "x")
    # expm1 of min(x, 0): accurate near 0, and no overflow on the branch np.where discards
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0))), AlphaCache(x, alpha)


def elu_backward(dy: ArrayLike, cache: AlphaCache) -> np.ndarray:
    r"""Backward pass of ELU (``alpha e^0 = alpha`` at ``x = 0``, as torch).

    .. math:: \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} \odot
        \begin{cases} 1 & x > 0 \\ \alpha e^x & x \le 0 \end{cases}
    """
    x = cache.x
    slope = np.where(x > 0, 1.0, cache.alpha * np.exp(np.minimum(x, 0.0)))
    return _check_grad(dy, x.shape) * slope


# --------------------------------------------------------------------------------------------
# softmax (discussion 1, problem 4; discussion 3, section 1)


def _softmax(z: np.ndarray) -> np.ndarray:
    """Softmax along the last axis, shifted by the row max so no ``exp`` overflows."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))  # same shape as z, entries in (0, 1]
    return e / e.sum(axis=-1, keepdims=True)


def _check_softmax_input(z: ArrayLike) -> np.ndarray:
    z = _as_float(z, "z")
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(
            f"softmax needs at least one entry along the last axis, shape (..., k) with k >= 1; "
            f"received shape {z.shape}"
        )
    return z


def softmax_forward(z: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Numerically stable softmax along the last axis (discussion 3, section 1).

    .. math:: p_i(\mathbf{z}) = \frac{e^{z_i}}{\sum_{j=1}^k e^{z_j}}
        = \frac{e^{z_i - \max_l z_l}}{\sum_{j=1}^k e^{z_j - \max_l z_l}}

    Arguments:
        z: ``(..., k)``, e.g. ``(N, k)`` logits, one distribution per row.

    Returns:
        ``(p, cache)`` with ``p`` of the shape of ``z`` and ``cache = p``.
    """
    p = _softmax(_check_softmax_input(z))
    return p, p


def softmax_backward(dp: ArrayLike, cache: np.ndarray) -> np.ndarray:
    r"""Backward pass of softmax: the Jacobian-vector product, without forming the Jacobian.

    With :math:`\partial p_j / \partial z_i = p_j(\delta_{ij} - p_i)` (discussion 3, section 1),

    .. math:: \frac{\partial L}{\partial z_i} = \sum_j \frac{\partial p_j}{\partial z_i}
        \frac{\partial L}{\partial p_j}
        = p_i \Big(\frac{\partial L}{\partial p_i} - \sum_j p_j
        \frac{\partial L}{\partial p_j}\Big)

    applied to every row (last axis) independently.
    """
    p = cache
    dp = _check_grad(dp, p.shape, "dp")
    return p * (dp - np.sum(dp * p, axis=-1, keepdims=True))  # (..., k)


def softmax_jacobian(z: ArrayLike) -> np.ndarray:
    r"""The softmax Jacobian (discussion 1, problem 4; discussion 3, section 1).

    .. math:: \frac{\partial p_i(\mathbf{z})}{\partial z_j} = p_i(\delta_{ij} - p_j),
        \qquad J = \mathrm{diag}(\mathbf{p}) - \mathbf{p}\mathbf{p}^\top

    ``J`` is symmetric, so it is the same matrix in the notes' convention
    (``J_ij = d p_j / d z_i``) and in the transposed one.

    Arguments:
        z: ``(n,)`` for one vector, or ``(B, n)`` for a batch.

    Returns:
        ``(n, n)``, or ``(B, n, n)`` for batched input.

    Example:
        >>> softmax_jacobian([0.0, 0.0])
        array([[ 0.25, -0.25],
               [-0.25,  0.25]])
    """
    z = _check_softmax_input(z)
    _check_rank(z, "z", (1, 2), "(n,) or (B, n)")
    p = _softmax(z)  # (n,) or (B, n)
    eye = np.eye(p.shape[-1])  # (n, n)
    return p[..., :, None] * eye - p[..., :, None] * p[..., None, :]  # (n, n) or (B, n, n)
