r"""Numerical gradient checking: centred finite differences and a relative error.

Notes: discussion 2, section 2 ("Vector and Matrix Calculus Review": gradients have the shape of
the input; the Jacobian of :math:`f: \mathbb{R}^n \to \mathbb{R}^m` is ``n x m`` with entries
:math:`\partial f_j / \partial x_i`, and for a matrix input a tensor of shape
``X.shape + f.shape``). These are the tools that check every hand-written backward pass.

Centred differences have truncation error :math:`O(h^2)` and round-off error
:math:`O(\varepsilon_{\text{mach}} |f| / h)`; with float64 and ``h = 1e-6`` both are around
1e-10 relative for well-scaled functions. The functions perturb the input **in place** (so a
closure over ``x`` sees the perturbation) and restore every entry afterwards, even on error.

NumPy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from deepnotes.mechanics.activations import _as_float


def _check_inplace(x: np.ndarray, name: str = "x") -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(
            f"{name} must be a float64 numpy array (it is perturbed in place); received {kind}"
        )


def _check_step(h: float) -> None:
    if not (isinstance(h, int | float) and 0 < h < 1):
        raise ValueError(f"step h must be a number in (0, 1); received {h!r}")


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    r"""Gradient of a scalar function by centred differences, one entry at a time.

    .. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(\mathbf{x} + h\mathbf{e}_i)
        - f(\mathbf{x} - h\mathbf{e}_i)}{2h}

    Arguments:
        f: called as ``f(x)``; returns a scalar.
        x: float64 array of any shape, perturbed in place and restored.
        h: the step.

    Returns:
        the gradient, with the shape of ``x``.

    Example:
        >>> x = np.array([1.0, -2.0])
        >>> np.round(numerical_gradient(lambda v: float(np.sum(v**2)), x), 6).tolist()
        [2.0, -4.0]
    """
    _check_inplace(x)
    _check_step(h)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        try:
            x[i] = old + h
            f_plus = float(f(x))
            x[i] = old - h
            f_minus = float(f(x))
        finally:
            x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


def numerical_jacobian(
    f: Callable[[np.ndarray], ArrayLike], x: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    r"""Jacobian by centred differences, in the notes' convention (discussion 2, section 2).

    .. math:: J_{ij} = \frac{\partial f_j}{\partial x_i} \approx
        \frac{f_j(\mathbf{x} + h\mathbf{e}_i) - f_j(\mathbf{x} - h\mathbf{e}_i)}{2h}

    Arguments:
        f: called as ``f(x)``; returns an array (its shape must not depend on ``x``'s values).
        x: float64 array, perturbed in place and restored.
        h: the step.

    Returns:
        ``x.shape + f(x).shape``: ``(n, m)`` for ``f: R^n -> R^m``; ``(d1, d2, n)`` for a matrix
        input, as the notes' rank-3 Jacobian.
    """
    _check_inplace(x)
    _check_step(h)
    out_shape = np.shape(f(x))
    jac = np.zeros(x.shape + out_shape)
    for i in np.ndindex(x.shape):
        old = x[i]
        try:
            x[i] = old + h
            f_plus = np.array(f(x), dtype=np.float64)
            x[i] = old - h
            f_minus = np.array(f(x), dtype=np.float64)
        finally:
            x[i] = old
        jac[i] = (f_plus - f_minus) / (2 * h)  # row i: d f / d x_i, shape out_shape
    return jac


def relative_error(a: ArrayLike, b: ArrayLike) -> float:
    r"""A scale-aware distance between two arrays of the same shape.

    .. math:: \mathrm{rel}(a, b) = \frac{\max_k |a_k - b_k|}
        {\max\big(\max_k (|a_k| + |b_k|),\ \text{tiny}\big)}

    The worst entrywise difference measured against the largest magnitude of the two arrays
    (not entry by entry, so entries that are ~0 in both do not blow the ratio up). ``tiny`` is
    the smallest positive normal float64, so two zero arrays give 0. The result lies in
    ``[0, 1]``; 1 means opposite signs or one array zero.
    """
    a, b = _as_float(a, "a"), _as_float(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; received {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a) + np.abs(b))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b))) / scale


def gradcheck(
    f: Callable[..., float],
    inputs: Mapping[str, Any],
    analytic: Mapping[str, ArrayLike],
    h: float = 1e-6,
) -> dict[str, float]:
    """Compare analytic gradients with centred differences, one relative error per input.

    Arguments:
        f: the scalar function, called as ``f(**inputs)``.
        inputs: every argument of ``f`` by name. Those named in ``analytic`` are copied to
            float64 and differentiated; the others (labels, flags) are passed unchanged.
        analytic: ``{name: gradient}`` for the inputs to check; each of the input's shape.
        h: the finite-difference step.

    Returns:
        ``{name: relative_error(analytic[name], numerical)}``.

    Example:
        >>> gradcheck(lambda x, c: float(c * np.sum(x**2)), {"x": np.ones(3), "c": 2.0},
        ...           {"x": 4 * np.ones(3)})["x"] < 1e-8
        True
    """
    unknown = sorted(set(analytic) - set(inputs))
    if unknown:
        raise ValueError(f"analytic gradients {unknown} name no input; inputs are {sorted(inputs)}")
    args = {k: (np.array(v, dtype=np.float64) if k in analytic else v) for k, v in inputs.items()}
    errors = {}
    for name, grad in analytic.items():
        grad = _as_float(grad, f"analytic[{name!r}]")
        if grad.shape != args[name].shape:
            raise ValueError(
                f"analytic[{name!r}] must have the shape of inputs[{name!r}], "
                f"{args[name].shape}; received {grad.shape}"
            )
        numeric = numerical_gradient(lambda _: f(**args), args[name], h)
        errors[name] = relative_error(grad, numeric)
    return errors
