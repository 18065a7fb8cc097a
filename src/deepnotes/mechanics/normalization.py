r"""Batch normalisation and inverted dropout, forward and backward, by hand.

Notes: discussion 4, section 2 ("Batch Normalization", problem "Examining the BatchNorm Layer")
and section 4 ("Dropout", the sample code ``U1 = (np.random.rand(*H1.shape) < p) / p``).

BatchNorm accepts ``(N, D)`` (one feature per column, like ``nn.BatchNorm1d``) and
``(N, C, H, W)`` (one channel per ``C``, statistics over ``N, H, W``, like ``nn.BatchNorm2d``).
Internally a 4-D input is laid out as rows ``(N*H*W, C)`` so both cases share the 2-D code.
Running statistics follow torch exactly:

- normalisation uses the **biased** batch variance :math:`\sigma_B^2` (divide by ``m``);
- the running variance is updated with the **unbiased** one (divide by ``m - 1``);
- ``momentum`` is the weight of the *new* batch statistic:
  ``running = (1 - momentum) * running + momentum * batch``.

Dropout: ``p`` is the **keep** probability, as in the notes' code ("Probability of keeping a unit
active"); the mask is ``(rng.random(x.shape) < p) / p``, so kept units are scaled by ``1/p`` at
training time and the layer is the identity at test time. Deviation: torch's ``nn.Dropout(p)``
takes the *drop* probability; ``dropout_forward(x, p)`` here matches ``nn.Dropout(1 - p)``.

Conventions: float64; batch-first; gradients have the shape of what they differentiate; the
functions never modify their arguments (new running statistics are returned). Bad input raises
``ValueError`` naming the expected and the received shape or value; a non-Generator ``rng``
raises ``TypeError``. NumPy and the standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from deepnotes.mechanics.activations import _as_float, _check_grad, _check_rank


@dataclass(frozen=True)
class BatchNormCache:
    """What :func:`batchnorm_backward` needs from :func:`batchnorm_forward`.

    Arguments:
        x_hat: the normalised input in the rows layout ``(m, C)`` (``m = N`` or ``N*H*W``).
        inv_sigma: ``(C,)``, ``1 / sqrt(var + eps)`` with the batch variance
            (train) or the running variance (eval).
        gamma: ``(C,)`` scale.
        train: whether the batch statistics were used (and must be differentiated through).
        shape: the input's shape, ``(N, D)`` or ``(N, C, H, W)``.
    """

    x_hat: np.ndarray
    inv_sigma: np.ndarray
    gamma: np.ndarray
    train: bool
    shape: tuple[int, ...]


@dataclass(frozen=True)
class DropoutCache:
    """What :func:`dropout_backward` needs from :func:`dropout_forward`.

    Arguments:
        mask: the scaled mask :math:`U` with entries in ``{0, 1/p}`` (shape of ``x``), or
            ``None`` in eval mode.
        shape: the input's shape.
    """

    mask: np.ndarray | None
    shape: tuple[int, ...]


# --------------------------------------------------------------------------------------------
# layout helpers: (N, D) stays, (N, C, H, W) <-> rows (N*H*W, C)


def _to_rows(x: np.ndarray) -> np.ndarray:
    if x.ndim == 2:
        return x  # (N, D)
    n, c, h, w = x.shape
    return x.transpose(0, 2, 3, 1).reshape(n * h * w, c)  # (N*H*W, C)


def _from_rows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 2:
        return rows  # (N, D)
    n, c, h, w = shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)  # (N, C, H, W)


def _check_real(value: float, name: str, low: float, high: float, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a real number; received {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value > high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be in {interval}; received {value}")
    return value


# --------------------------------------------------------------------------------------------
# batch normalisation (discussion 4, section 2)


def batchnorm_forward(
    x: ArrayLike,
    gamma: ArrayLike,
    beta: ArrayLike,
    running_mean: ArrayLike,
    running_var: ArrayLike,
    momentum: float = 0.1,
    eps: float = 1e-5,
    train: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, BatchNormCache]:
    r"""Batch normalisation (discussion 4, section 2), per feature/channel ``k``.

    Train mode, over the ``m`` values of feature ``k`` in the batch:

    .. math:: \mu_B = \frac{1}{m}\sum_{i=1}^m a_i, \quad
        \sigma_B^2 = \frac{1}{m}\sum_{i=1}^m (a_i - \mu_B)^2, \quad
        \bar a_i = \frac{a_i - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}}\,\gamma + \beta

    and the running estimates become :math:`(1 - \text{momentum})\,r + \text{momentum}\,s` with
    :math:`s = \mu_B` and :math:`s = \frac{m}{m-1}\sigma_B^2` (unbiased), as in torch.
    Eval mode normalises with the running mean and variance instead and leaves them unchanged.

    Arguments:
        x: ``(N, D)`` or ``(N, C, H, W)``.
        gamma, beta: ``(C,)`` scale and shift (``C = x.shape[1]``).
        running_mean, running_var: ``(C,)`` running estimates (not modified).
        momentum: weight of the new batch statistic, in ``[0, 1]``.
        eps: added to the variance, ``> 0``.
        train: batch statistics (``True``) or running statistics (``False``).

    Returns:
        ``(out, new_running_mean, new_running_var, cache)``; ``out`` has the shape of ``x``.
    """
    x = _as_float(x, "x")
    _check_rank(x, "x", (2, 4), "(N, D) or (N, C, H, W)")
    c = x.shape[1]
    params = {}
    for name, value in (
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        params[name] = _as_float(value, name)
        if params[name].shape != (c,):
            raise ValueError(
                f"{name} must have shape ({c},) for x of shape {x.shape}; "
                f"received {params[name].shape}"
            )
    if np.any(params["running_var"] < 0):
        raise ValueError(f"running_var must be >= 0; received min {params['running_var'].min()}")
    momentum = _check_real(momentum, "momentum", 0.0, 1.0, low_open=False)
    eps = _check_real(eps, "eps", 0.0, math.inf, low_open=True)

    rows = _to_rows(x)  # (m, C)
    m = rows.shape[0]
    new_mean, new_var = params["running_mean"].copy(), params["running_var"].copy()
    if train:
        if m < 2:
            raise ValueError(
                f"train mode needs more than one value per channel (m = N*H*W >= 2) for the "
                f"batch variance; received x of shape {x.shape}, m = {m}"
            )
        mu = rows.mean(axis=0)  # (C,) mu_B
        var = rows.var(axis=0)  # (C,) sigma_B^2, biased (divide by m)
        new_mean = (1.0 - momentum) * new_mean + momentum * mu
        new_var = (1.0 - momentum) * new_var + momentum * var * m / (m - 1)  # unbiased
    else:
        mu, var = params["running_mean"], params["running_var"]
    inv_sigma = 1.0 / np.sqrt(var + eps)  # (C,)
    x_hat = (rows - mu) * inv_sigma  # (m, C)
    out = _from_rows(x_hat * params["gamma"] + params["beta"], x.shape)
    cache = BatchNormCache(x_hat, inv_sigma, params["gamma"], bool(train), x.shape)
    return out, new_mean, new_var, cache


def batchnorm_backward(
    dout: ArrayLike, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Backward pass of batch normalisation (discussion 4, "Examining the BatchNorm Layer").

    With :math:`\hat x_i = (a_i - \mu_B)/\sigma`, :math:`\sigma = \sqrt{\sigma_B^2 + \epsilon}`,
    upstream :math:`dy_i = \partial L/\partial \bar a_i` and
    :math:`d\hat x_i = \gamma\, dy_i`, the compact closed form (train mode) is

    .. math:: \frac{\partial L}{\partial a_i} = \frac{1}{m\sigma}\Big(m\,d\hat x_i
        - \sum_{j=1}^m d\hat x_j - \hat x_i \sum_{j=1}^m d\hat x_j\,\hat x_j\Big), \quad
        \frac{\partial L}{\partial\gamma} = \sum_i dy_i\,\hat x_i, \quad
        \frac{\partial L}{\partial\beta} = \sum_i dy_i

    The two subtracted sums are the paths through :math:`\mu_B` and :math:`\sigma_B^2`. In eval
    mode the statistics are constants and :math:`\partial L/\partial a_i = d\hat x_i/\sigma`.

    Returns:
        ``(dx, dgamma (C,), dbeta (C,))``; ``dx`` has the shape of the forward input.
    """
    dy = _to_rows(_check_grad(dout, cache.shape, "dout"))  # (m, C)
    x_hat = cache.x_hat  # (m, C)
    m = x_hat.shape[0]
    dgamma = np.sum(dy * x_hat, axis=0)  # (C,)
    dbeta = np.sum(dy, axis=0)  # (C,)
    dx_hat = dy * cache.gamma  # (m, C)
    if cache.train:
        dx = (cache.inv_sigma / m) * (
            m * dx_hat
            - dx_hat.sum(axis=0)  # path through mu_B
            - x_hat * np.sum(dx_hat * x_hat, axis=0)  # path through sigma_B^2
        )  # (m, C)
    else:
        dx = dx_hat * cache.inv_sigma  # (m, C)
    return _from_rows(dx, cache.shape), dgamma, dbeta


# --------------------------------------------------------------------------------------------
# inverted dropout (discussion 4, section 4)


def dropout_forward(
    x: ArrayLike, p: float, rng: np.random.Generator, train: bool = True
) -> tuple[np.ndarray, DropoutCache]:
    r"""Inverted dropout with keep probability ``p`` (discussion 4, section 4).

    .. math:: U = \frac{\mathbb{1}[u < p]}{p},\ u \sim \mathcal{U}[0, 1) \text{ entrywise},
        \qquad \text{out} = x \odot U

    so each unit is kept with probability ``p`` and :math:`\mathbb{E}[\text{out}] = x`; at test
    time (``train=False``) the layer is the identity, as the notes' ``predict``.

    Arguments:
        x: any shape.
        p: probability of **keeping** a unit, in ``(0, 1]`` (``p = 1`` keeps everything).
        rng: the NumPy generator that draws the mask (the caller controls the seed).
        train: draw a mask (``True``) or pass ``x`` through (``False``).

    Returns:
        ``(out, DropoutCache(mask, shape))``; ``mask`` is ``None`` in eval mode.
    """
    p = _check_real(p, "p (the keep probability)", 0.0, 1.0, low_open=True)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; received {type(rng).__name__}")
    x = _as_float(x, "x")
    if not train:
        return x.copy(), DropoutCache(None, x.shape)
    mask = (rng.random(x.shape) < p) / p  # U, entries in {0, 1/p}
    return x * mask, DropoutCache(mask, x.shape)


def dropout_backward(dout: ArrayLike, cache: DropoutCache) -> np.ndarray:
    r"""Backward pass of inverted dropout: the same mask scales the gradient.

    .. math:: \frac{\partial L}{\partial x} = \frac{\partial L}{\partial\,\text{out}} \odot U

    (the identity in eval mode).
    """
    dout = _check_grad(dout, cache.shape, "dout")
    return dout if cache.mask is None else dout * cache.mask
