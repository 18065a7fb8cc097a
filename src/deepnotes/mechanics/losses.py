r"""Losses with their gradients: softmax cross-entropy, mean squared error, binary cross-entropy.

Notes: discussion 3, section 1 ("Mechanical Backpropagation": the multiclass logistic loss
:math:`L = -\log p_y(W\mathbf{x} + \mathbf{b})`); discussion 1, section 4.1 ("Loss Functions &
Risk Functions": the squared error and the empirical risk as a mean over the data set).

Conventions: float64; batch-first; every loss is the **mean** over the batch (the empirical
risk), as torch's default ``reduction="mean"``; each function returns ``(loss, grad)`` where
``loss`` is a Python float and ``grad`` is the gradient of that mean with respect to the first
argument, with its shape. Bad input raises ``ValueError`` naming the expected and the received
shape or value. This module imports NumPy and the standard library only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from deepnotes.mechanics.activations import _as_float, _check_rank, _sigmoid

# torch clamps the logarithms of binary_cross_entropy at -100 and its gradient's denominator
# p (1 - p) at 1e-12, so that p in {0, 1} gives a finite loss and gradient; we do the same.
BCE_LOG_FLOOR = -100.0
BCE_EPSILON = 1e-12


def softmax_cross_entropy(logits: ArrayLike, y: ArrayLike) -> tuple[float, np.ndarray]:
    r"""Mean softmax cross-entropy over a batch, and its gradient (discussion 3, section 1).

    For one example with logits :math:`\mathbf{z} = W\mathbf{x} + \mathbf{b}` and label ``y``,

    .. math:: L = -\log p_y(\mathbf{z}), \qquad
        \nabla_{\mathbf{z}} L = \mathbf{p}(\mathbf{z}) - \mathbf{e}_y

    and over the batch :math:`\bar L = \frac{1}{N}\sum_n L_n`, so the returned gradient is
    :math:`(\mathbf{p}_n - \mathbf{e}_{y_n}) / N` per row. :math:`\log p_y` is computed as
    :math:`z_y - \max_l z_l - \log \sum_j e^{z_j - \max_l z_l}`, which never overflows.

    Arguments:
        logits: ``(N, C)`` unnormalised scores.
        y: ``(N,)`` integer labels in ``[0, C)``.

    Returns:
        ``(loss, dlogits)`` with ``dlogits`` of shape ``(N, C)``.

    Example:
        >>> loss, dz = softmax_cross_entropy([[0.0, 0.0]], [1])
        >>> round(loss, 6), dz.tolist()
        (0.693147, [[0.5, -0.5]])
    """
    z = _as_float(logits, "logits")
    _check_rank(z, "logits", (2,), "(N, C)")
    n, c = z.shape
    if n < 1 or c < 1:
        raise ValueError(f"logits must have N >= 1 rows and C >= 1 classes; received {z.shape}")
    labels = np.asarray(y)
    if labels.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match logits {z.shape}; got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"y must hold integer class labels; received dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= c:
        raise ValueError(
            f"labels must be in [0, {c}) for {c} classes; received min {labels.min()}, "
            f"max {labels.max()}"
        )
    shifted = z - z.max(axis=1, keepdims=True)  # (N, C), max 0 per row
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, C) log p
    rows = np.arange(n)
    loss = -float(log_p[rows, labels].mean())
    dlogits = np.exp(log_p)  # (N, C) p
    dlogits[rows, labels] -= 1.0  # p - e_y
    return loss, dlogits / n


def _check_pair(a: ArrayLike, b: ArrayLike, a_name: str, b_name: str) -> tuple[np.ndarray, ...]:
    a, b = _as_float(a, a_name), _as_float(b, b_name)
    if a.shape != b.shape:
        raise ValueError(f"{b_name} must have the shape of {a_name}, {a.shape}; received {b.shape}")
    if a.size == 0:
        raise ValueError(f"{a_name} must have at least one entry; received shape {a.shape}")
    return a, b


def _check_unit_interval(a: np.ndarray, name: str) -> None:
    if not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"{name} must lie in [0, 1]; received values in [{a.min()}, {a.max()}]")


def mse_loss(pred: ArrayLike, target: ArrayLike) -> tuple[float, np.ndarray]:
    r"""Mean squared error over every entry, and its gradient (discussion 1, section 4.1).

    .. math:: L = \frac{1}{K}\sum_{k=1}^K (\hat y_k - y_k)^2, \qquad
        \frac{\partial L}{\partial \hat y_k} = \frac{2}{K}(\hat y_k - y_k)

    where ``K = pred.size`` (``F.mse_loss`` with ``reduction="mean"``).

    Returns:
        ``(loss, dpred)`` with ``dpred`` of the shape of ``pred``.
    """
    pred, target = _check_pair(pred, target, "pred", "target")
    diff = pred - target
    return float(np.mean(diff * diff)), 2.0 * diff / diff.size


def binary_cross_entropy(probs: ArrayLike, target: ArrayLike) -> tuple[float, np.ndarray]:
    r"""Mean binary cross-entropy of probabilities, and its gradient.

    .. math:: L = -\frac{1}{K}\sum_{k=1}^K \big[t_k \log p_k + (1 - t_k)\log(1 - p_k)\big],
        \qquad \frac{\partial L}{\partial p_k} = \frac{1}{K}\frac{p_k - t_k}{p_k(1 - p_k)}

    the two-class case of the notes' :math:`-\log p_y` (discussion 3, section 1) with soft
    targets allowed. Like ``F.binary_cross_entropy``, each log is clamped at -100 and the
    denominator :math:`p(1-p)` at 1e-12, so ``p`` in {0, 1} stays finite.

    Arguments:
        probs: probabilities in ``[0, 1]``, any shape.
        target: targets in ``[0, 1]``, the shape of ``probs``.

    Returns:
        ``(loss, dprobs)`` with ``dprobs`` of the shape of ``probs``.
    """
    p, t = _check_pair(probs, target, "probs", "target")
    _check_unit_interval(p, "probs")
    _check_unit_interval(t, "target")
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped just below
        log_p = np.maximum(np.log(p), BCE_LOG_FLOOR)
        log_1mp = np.maximum(np.log1p(-p), BCE_LOG_FLOOR)
    loss = -float(np.mean(t * log_p + (1.0 - t) * log_1mp))
    dprobs = (p - t) / np.maximum(p * (1.0 - p), BCE_EPSILON) / p.size
    return loss, dprobs


def binary_cross_entropy_with_logits(
    logits: ArrayLike, target: ArrayLike
) -> tuple[float, np.ndarray]:
    r"""Mean binary cross-entropy of :math:`\sigma(z)`, computed stably from the logits ``z``.

    .. math:: L = \frac{1}{K}\sum_k \big[\max(z_k, 0) - z_k t_k + \log(1 + e^{-|z_k|})\big],
        \qquad \frac{\partial L}{\partial z_k} = \frac{1}{K}(\sigma(z_k) - t_k)

    which equals :func:`binary_cross_entropy` of ``sigmoid(z)`` but never takes the log of 0
    (``F.binary_cross_entropy_with_logits``). The gradient is the sigmoid derivative of
    discussion 1, problem 3 cancelling the BCE denominator :math:`p(1-p)`.

    Returns:
        ``(loss, dlogits)`` with ``dlogits`` of the shape of ``logits``.
    """
    z, t = _check_pair(logits, target, "logits", "target")
    _check_unit_interval(t, "target")
    per_entry = np.maximum(z, 0.0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return float(np.mean(per_entry)), (_sigmoid(z) - t) / z.size
