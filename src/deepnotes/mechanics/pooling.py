"""Max pooling and average pooling in 2-D, forward and backward, in NumPy only.

Notes: discussion 4, section 1 (LeNet's "series of convolutional layers, then pooling layers")
and discussion 5 (early convolutional and pooling layers downsample). Same results as
``F.max_pool2d`` and ``F.avg_pool2d`` with their defaults (``ceil_mode=False``, and for average
pooling ``count_include_pad=True``).

Conventions: float64, ``x (N, C, H, W)``; ``kernel_size``, ``stride`` and ``padding`` are an int
or an ``(h, w)`` pair; ``stride`` defaults to ``kernel_size`` like torch; padding is at most half
the kernel (torch's rule). Output size ``floor((H + 2p - k) / s) + 1`` (floored like torch, see
:func:`deepnotes.mechanics.conv.conv_output_size`). Each channel is pooled separately::

    max:  y[n, c, i, j] = max_{p, q} xp[n, c, s_h*i + p, s_w*j + q]      (xp padded with -inf)
    avg:  y[n, c, i, j] = 1/(kh*kw) sum_{p, q} xp[n, c, s_h*i + p, s_w*j + q]  (xp padded with 0)

Backward: max pooling routes each ``dout[n, c, i, j]`` to the arg-max of its window (only that
input moves the max); average pooling spreads it evenly, ``dout / (kh*kw)``, over its window.
Where windows overlap the contributions add. **Ties**: the arg-max is the first maximal entry of
the window in row-major order (``np.argmax``), which is also the entry torch's CPU kernel picks.
Forward functions return ``(out, cache)``, backward functions ``dx`` with the shape of ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from deepnotes.mechanics.conv import col2im, conv_output_size, im2col

IntOrPair = int | tuple[int, int]


@dataclass(frozen=True)
class PoolCache:
    """What a pooling backward pass needs.

    Arguments:
        x_shape: shape of the input ``(N, C, H, W)``.
        kernel_size, stride, padding: the pooling geometry, one value per spatial axis.
        argmax: for max pooling, the flat window index ``p*kw + q`` of each output's maximum,
            ``(N, C, H_out*W_out)``; ``None`` for average pooling.
    """

    x_shape: tuple[int, int, int, int]
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    argmax: np.ndarray | None = None


def _pair(name: str, value: object, least: int) -> tuple[int, int]:
    values = tuple(value) if isinstance(value, tuple | list) else (value, value)
    if len(values) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int | np.integer) for v in values
    ):
        raise ValueError(f"{name} must be an int or a pair of ints; received {value!r}")
    if min(values) < least:  # type: ignore[type-var, operator]
        raise ValueError(f"{name} must be >= {least}; received {value!r}")
    return int(values[0]), int(values[1])  # type: ignore[call-overload]


def _windows(
    x: ArrayLike,
    kernel_size: IntOrPair,
    stride: IntOrPair | None,
    padding: IntOrPair,
    fill: float,
) -> tuple[np.ndarray, PoolCache, tuple[int, int]]:
    """Validate; return the windows ``(N, C, kh*kw, H_out*W_out)``, a cache and ``(Ho, Wo)``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D with shape (N, C, H, W); received shape {x.shape}")
    kh, kw = _pair("kernel_size", kernel_size, 1)
    sh, sw = _pair("stride", kernel_size if stride is None else stride, 1)
    ph, pw = _pair("padding", padding, 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"padding must be at most half the kernel size: expected padding <= "
            f"({kh // 2}, {kw // 2}) for kernel_size ({kh}, {kw}); received ({ph}, {pw})"
        )
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    cols = im2col(xp, kh, kw, (sh, sw)).reshape(n, c, kh * kw, ho * wo)  # (N, C, kh*kw, Ho*Wo)
    cache = PoolCache((n, c, h, w), (kh, kw), (sh, sw), (ph, pw))
    return cols, cache, (ho, wo)


def _check_dout(dout: ArrayLike, cache: PoolCache) -> np.ndarray:
    n, c, h, w = cache.x_shape
    (kh, kw), (sh, sw), (ph, pw) = cache.kernel_size, cache.stride, cache.padding
    expected = (n, c, conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw))
    dout = np.asarray(dout, dtype=np.float64)
    if dout.shape != expected:
        raise ValueError(f"dout must have the output's shape {expected}; received {dout.shape}")
    return dout


def _fold(dcols: np.ndarray, cache: PoolCache) -> np.ndarray:
    """Sum window gradients ``(N, C, kh*kw, Ho*Wo)`` back onto the input grid (col2im)."""
    n, c, _, p_out = dcols.shape
    kh, kw = cache.kernel_size
    return col2im(
        dcols.reshape(n, c * kh * kw, p_out), cache.x_shape, kh, kw, cache.stride, cache.padding
    )


def max_pool2d_forward(
    x: ArrayLike,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> tuple[np.ndarray, PoolCache]:
    """2-D max pooling, ``y[n, c, i, j] = max over the window at (s_h*i, s_w*j)``.

    Arguments:
        x: ``(N, C, H, W)``.
        kernel_size: window ``(kh, kw)``; stride: defaults to ``kernel_size``; padding: ``-inf``
            rows/columns on each side, at most half the kernel.

    Returns:
        ``out (N, C, H_out, W_out)`` and the cache (holding the arg-max of every window).

    Example:
        >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
        >>> max_pool2d_forward(x, 2)[0][0, 0]
        array([[ 5.,  7.],
               [13., 15.]])
    """
    cols, cache, (ho, wo) = _windows(x, kernel_size, stride, padding, fill=-np.inf)
    argmax = cols.argmax(axis=2)  # (N, C, Ho*Wo), the first maximum on ties
    out = np.take_along_axis(cols, argmax[:, :, None], axis=2)  # (N, C, 1, Ho*Wo)
    n, c = cols.shape[:2]
    cache = PoolCache(cache.x_shape, cache.kernel_size, cache.stride, cache.padding, argmax)
    return out.reshape(n, c, ho, wo), cache


def max_pool2d_backward(dout: ArrayLike, cache: PoolCache) -> np.ndarray:
    """Backward pass of :func:`max_pool2d_forward`: the gradient goes to each window's arg-max.

    ``dx[n, c, a, b] = sum over windows (i, j) whose arg-max is (a, b) of dout[n, c, i, j]``;
    every other input gets zero (nudging a non-maximal entry does not change the max).
    """
    if cache.argmax is None:
        raise ValueError("cache has no arg-max; expected the cache of max_pool2d_forward")
    dout = _check_dout(dout, cache)
    n, c = dout.shape[:2]
    kh, kw = cache.kernel_size
    dcols = np.zeros((n, c, kh * kw, cache.argmax.shape[2]))  # (N, C, kh*kw, Ho*Wo)
    np.put_along_axis(dcols, cache.argmax[:, :, None], dout.reshape(n, c, 1, -1), axis=2)
    return _fold(dcols, cache)


def avg_pool2d_forward(
    x: ArrayLike,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> tuple[np.ndarray, PoolCache]:
    """2-D average pooling, ``y[n, c, i, j] = mean of the window at (s_h*i, s_w*j)``.

    Padding zeros count in the mean (torch's default ``count_include_pad=True``): the divisor
    is always ``kh * kw``.

    Returns:
        ``out (N, C, H_out, W_out)`` and the cache for :func:`avg_pool2d_backward`.
    """
    cols, cache, (ho, wo) = _windows(x, kernel_size, stride, padding, fill=0.0)
    n, c = cols.shape[:2]
    return cols.mean(axis=2).reshape(n, c, ho, wo), cache


def avg_pool2d_backward(dout: ArrayLike, cache: PoolCache) -> np.ndarray:
    """Backward pass of :func:`avg_pool2d_forward`: ``dout / (kh*kw)`` to every window entry.

    ``dx[n, c, a, b] = 1/(kh*kw) sum over windows (i, j) containing (a, b) of dout[n, c, i, j]``.
    """
    dout = _check_dout(dout, cache)
    n, c = dout.shape[:2]
    kh, kw = cache.kernel_size
    share = dout.reshape(n, c, 1, -1) / (kh * kw)  # (N, C, 1, Ho*Wo)
    dcols = np.broadcast_to(share, (n, c, kh * kw, share.shape[3]))  # (N, C, kh*kw, Ho*Wo)
    return _fold(np.ascontiguousarray(dcols), cache)
