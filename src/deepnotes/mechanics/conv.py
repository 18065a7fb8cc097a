"""Convolution by hand: 1-D and 2-D cross-correlation, im2col, conv as a matrix, transposed conv.

Notes: discussion 3, section 2 ("Convolutional Neural Networks": 2.1 the cross-correlation
operator, problem 4 the conv dimensions, 2.2 / problem 5 convolution as matrix multiplication,
2.3 / problem 6 the backward pass for a convolution) and discussion 5, section 3 ("Segmentation:
Transposed Convolution & U-Net", problem 2).

Conventions (the same as ``torch.nn.functional``):

- float64: every input is converted with ``np.asarray(..., dtype=np.float64)``.
- Batch-first layouts. 1-D: ``x (N, C, L)``, ``w (F, C, K)``; 2-D: ``x (N, C, H, W)``,
  ``w (F, C, kh, kw)``; bias ``b (F,)`` (``None`` means no bias). Transposed convolutions store
  their weight the other way round, ``w (C_in, C_out, ...)``, as ``F.conv_transpose2d`` does.
- "Convolution" means **cross-correlation**, as in the notes and in torch (no kernel flip)::

      y[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xp[n, c, s*i + p, s*j + q]

  where ``xp`` is ``x`` zero-padded by ``p`` on every side.
- Output size ``floor((n + 2p - k) / s) + 1`` per spatial axis, the notes' ``(n + 2p - k)/s + 1``
  **floored like torch**: when the stride does not tile the padded input exactly, the trailing
  rows/columns no window reaches are ignored by the forward pass and receive zero gradient.
- Gradients have the shape of the quantity they differentiate with respect to.
- Bad input raises ``ValueError`` naming the expected and the received shape or value.

Forward functions return ``(out, cache)``; the matching backward takes ``(dout, cache)`` and
returns ``(dx, dw, db)``. This module imports NumPy and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

IntOrPair = int | tuple[int, int]


@dataclass(frozen=True)
class ConvCache:
    """What a convolution's backward pass needs from its forward pass.

    Arguments:
        x: the (unpadded) input of the forward pass.
        w: the weight, in the layout of the forward function that made the cache.
        stride: stride per spatial axis.
        padding: zero padding per spatial axis (each side).
        cols: the im2col matrix ``(N, C*kh*kw, H_out*W_out)`` of a 2-D forward, kept for
            :func:`conv2d_backward_im2col`; ``None`` where not computed.
        output_padding: extra rows/columns at the end of a transposed convolution's output.
    """

    x: np.ndarray
    w: np.ndarray
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    cols: np.ndarray | None = None
    output_padding: tuple[int, ...] = ()


# --------------------------------------------------------------------------------------------
# sizes and validation


def conv_output_size(n: int, k: int, stride: int = 1, padding: int = 0) -> int:
    """Length of a convolution's output along one axis: ``floor((n + 2p - k) / s) + 1``.

    The notes (discussion 3, problem 4) write ``(n + 2p - k)/s + 1``; like torch this floors when
    the stride does not tile the padded input exactly.

    Arguments:
        n: input length (>= 1).
        k: kernel length (>= 1, at most ``n + 2p``).
        stride: step between windows (>= 1).
        padding: zeros added on each side (>= 0).

    Example:
        >>> conv_output_size(32, 5), conv_output_size(32, 5, padding=2)
        (28, 32)
    """
    for name, value, least in (("n", n, 1), ("k", k, 1), ("stride", stride, 1)):
        _check_int(name, value, least)
    _check_int("padding", padding, 0)
    if k > n + 2 * padding:
        raise ValueError(
            f"kernel size {k} is larger than the padded input: expected k <= n + 2*padding = "
            f"{n} + 2*{padding} = {n + 2 * padding}, received k = {k}"
        )
    return (n + 2 * padding - k) // stride + 1


def conv_parameter_count(
    in_channels: int, out_channels: int, kernel_size: IntOrPair, bias: bool = True
) -> int:
    """Number of learnable parameters of a 2-D conv layer: ``C_out * (C_in * kh * kw + bias)``.

    Example:
        >>> conv_parameter_count(3, 10, 5, bias=False)  # ten 5x5x3 filters
        750
    """
    _check_int("in_channels", in_channels, 1)
    _check_int("out_channels", out_channels, 1)
    kh, kw = _ints(kernel_size, 2, "kernel_size", 1)
    return out_channels * (in_channels * kh * kw + int(bias))


def _check_int(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int; received {value!r}")
    if value < least:
        raise ValueError(f"{name} must be >= {least}; received {value}")


def _ints(value: object, d: int, name: str, least: int) -> tuple[int, ...]:
    """An int or a length-``d`` tuple of ints, each >= ``least``, as a tuple."""
    values = tuple(value) if isinstance(value, tuple | list) else (value,) * d
    if len(values) != d:
        raise ValueError(f"{name} must be an int or a tuple of {d} ints; received {value!r}")
    for v in values:
        _check_int(name, v, least)
    return tuple(int(v) for v in values)  # type: ignore[arg-type]


def _array(value: ArrayLike, name: str, layout: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    ndim = len([axis for axis in layout.strip("()").split(",") if axis.strip()])
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D with shape {layout}; received shape {arr.shape}")
    return arr


def _check_conv(
    x: ArrayLike, w: ArrayLike, b: ArrayLike | None, d: int, transposed: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``x``, ``w``, ``b`` of a d-D (transposed) convolution; return float64 arrays."""
    spatial = {1: "L", 2: "H, W"}[d]
    kernel = {1: "K", 2: "kh, kw"}[d]
    if transposed:
        x_layout, w_layout = f"(N, C_in, {spatial})", f"(C_in, C_out, {kernel})"
        in_axis, out_axis = 0, 1
    else:
        x_layout, w_layout = f"(N, C, {spatial})", f"(F, C, {kernel})"
        in_axis, out_axis = 1, 0
    x = _array(x, "x", x_layout)
    w = _array(w, "w", w_layout)
    if x.shape[1] != w.shape[in_axis]:
        raise ValueError(
            f"channel mismatch: w of shape {w.shape} expects {w.shape[in_axis]} input channels "
            f"(w.shape[{in_axis}]); x of shape {x.shape} has {x.shape[1]} (x.shape[1])"
        )
    n_out = w.shape[out_axis]
    if b is None:
        b = np.zeros(n_out)
    b = np.asarray(b, dtype=np.float64)
    if b.shape != (n_out,):
        raise ValueError(f"b must have shape ({n_out},) for w of shape {w.shape}; got {b.shape}")
    return x, w, b


def _check_dout(dout: ArrayLike, expected: tuple[int, ...]) -> np.ndarray:
    dout = np.asarray(dout, dtype=np.float64)
    if dout.shape != expected:
        raise ValueError(f"dout must have the output's shape {expected}; received {dout.shape}")
    return dout


# --------------------------------------------------------------------------------------------
# the correlation engine: im2col + one matmul


def im2col(
    x: ArrayLike, kh: int, kw: int, stride: IntOrPair = 1, padding: IntOrPair = 0
) -> np.ndarray:
    """Unfold every (C, kh, kw) window of the zero-padded input into a column.

    ``cols[n, (c, p, q), (i, j)] = xp[n, c, s_h*i + p, s_w*j + q]``, so a convolution is one
    matrix product, ``y[n] = w.reshape(F, C*kh*kw) @ cols[n]`` (notes: discussion 3, section 2.2;
    the homework's Cythonized im2col). Same as ``torch.nn.functional.unfold``.

    Returns:
        ``(N, C*kh*kw, H_out*W_out)``, rows ordered (c, p, q), columns (i, j) row-major.
    """
    x = _array(x, "x", "(N, C, H, W)")
    sh, sw = _ints(stride, 2, "stride", 1)
    ph, pw = _ints(padding, 2, "padding", 0)
    _check_int("kh", kh, 1)
    _check_int("kw", kw, 1)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    # a strided view, no copy: (N, C, Hp-kh+1, Wp-kw+1, kh, kw)
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))
    rows, columns = slice(0, sh * (ho - 1) + 1, sh), slice(0, sw * (wo - 1) + 1, sw)
    windows = windows[:, :, rows, columns]  # (N, C, Ho, Wo, kh, kw): every s-th window
    # the one copy: (N, C, kh, kw, Ho, Wo) -> (N, C*kh*kw, Ho*Wo)
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)


def col2im(
    cols: ArrayLike,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every column back onto the window it came from.

    ``x[n, c, a, b] = sum over windows (i, j) and offsets (p, q) with s_h*i + p = a + p_h and
    s_w*j + q = b + p_w of cols[n, (c, p, q), (i, j)]`` -- overlapping windows sum, padding is
    cropped. ``col2im(im2col(x))`` is therefore not ``x`` but ``x`` times the number of windows
    covering each pixel; ``<im2col(x), y> = <x, col2im(y)>`` is the identity that holds.

    Returns:
        ``x_shape`` = ``(N, C, H, W)``.
    """
    if len(x_shape) != 4:
        raise ValueError(f"x_shape must be (N, C, H, W); received {x_shape!r}")
    n, c, h, w = (int(v) for v in x_shape)
    sh, sw = _ints(stride, 2, "stride", 1)
    ph, pw = _ints(padding, 2, "padding", 0)
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    cols = np.asarray(cols, dtype=np.float64)
    if cols.shape != (n, c * kh * kw, ho * wo):
        raise ValueError(
            f"cols must have shape (N, C*kh*kw, H_out*W_out) = {(n, c * kh * kw, ho * wo)} for "
            f"x_shape {tuple(x_shape)}; received {cols.shape}"
        )
    cols6 = cols.reshape(n, c, kh, kw, ho, wo)  # (N, C, kh, kw, Ho, Wo)
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    for p in range(kh):  # loop over kernel offsets only; every window is added at once
        for q in range(kw):
            rows, columns = slice(p, p + sh * (ho - 1) + 1, sh), slice(q, q + sw * (wo - 1) + 1, sw)
            xp[:, :, rows, columns] += cols6[:, :, p, q]  # (N, C, Ho, Wo) onto the grid
    return xp[:, :, ph : ph + h, pw : pw + w]


def _correlate2d(x: np.ndarray, w: np.ndarray, stride: tuple[int, ...] = (1, 1)) -> np.ndarray:
    """Valid (unpadded) 2-D cross-correlation of ``x (N, C, H, W)`` with ``w (F, C, kh, kw)``."""
    n = x.shape[0]
    f, c, kh, kw = w.shape
    ho = (x.shape[2] - kh) // stride[0] + 1
    wo = (x.shape[3] - kw) // stride[1] + 1
    cols = im2col(x, kh, kw, stride)  # (N, C*kh*kw, Ho*Wo)
    return (w.reshape(f, c * kh * kw) @ cols).reshape(n, f, ho, wo)  # (N, F, Ho, Wo)


def _dilate(a: np.ndarray, stride: tuple[int, ...]) -> np.ndarray:
    """Insert ``s - 1`` zeros between neighbouring entries along each spatial axis."""
    spatial = a.shape[2:]
    out = np.zeros(
        a.shape[:2] + tuple((m - 1) * s + 1 for m, s in zip(spatial, stride, strict=True))
    )
    out[(slice(None), slice(None), *(slice(None, None, s) for s in stride))] = a
    return out


def _pad(
    a: np.ndarray, before: tuple[int, ...], after: tuple[int, ...] | None = None
) -> np.ndarray:
    after = before if after is None else after
    return np.pad(a, ((0, 0), (0, 0), *zip(before, after, strict=True)))


def _input_grad2d(
    dout: np.ndarray,
    w: np.ndarray,
    in_hw: tuple[int, int],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
) -> np.ndarray:
    """``dx``: full correlation of the dilated ``dout`` with the 180-degree-rotated kernel.

    ``dout (N, F, Ho, Wo)``, ``w (F, C, kh, kw)`` -> ``dx (N, C, H, W)`` with ``(H, W) = in_hw``.
    """
    kh, kw = w.shape[2:]
    dil = _dilate(dout, stride)  # (N, F, (Ho-1)s_h+1, (Wo-1)s_w+1)
    full = _pad(dil, (kh - 1, kw - 1))  # "full": every partial overlap of kernel and dout
    w_rot = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, kh, kw), rotated 180 degrees
    dxp = _correlate2d(full, w_rot)  # (N, C, (Ho-1)s_h+kh, (Wo-1)s_w+kw)
    hp, wp = in_hw[0] + 2 * padding[0], in_hw[1] + 2 * padding[1]
    # rows/columns of the padded input that the floored output never reached: zero gradient
    dxp = _pad(dxp, (0, 0), (hp - dxp.shape[2], wp - dxp.shape[3]))  # (N, C, Hp, Wp)
    return dxp[:, :, padding[0] : padding[0] + in_hw[0], padding[1] : padding[1] + in_hw[1]]


def _weight_grad2d(
    x: np.ndarray,
    dout: np.ndarray,
    kernel_hw: tuple[int, int],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
) -> np.ndarray:
    """``dw``: correlation of the padded input with the dilated ``dout``, batch summed.

    ``x (N, C, H, W)``, ``dout (N, F, Ho, Wo)`` -> ``dw (F, C, kh, kw)``. The batch axis plays the
    role of the channel axis that a correlation sums over.
    """
    xp = _pad(x, padding).transpose(1, 0, 2, 3)  # (C, N, Hp, Wp): C as batch, N as channels
    dil = _dilate(dout, stride).transpose(1, 0, 2, 3)  # (F, N, Hd, Wd): the "kernel"
    dw = _correlate2d(xp, dil)  # (C, F, Hp-Hd+1, Wp-Wd+1); >= (kh, kw), more when floored
    return dw[:, :, : kernel_hw[0], : kernel_hw[1]].transpose(1, 0, 2, 3)  # (F, C, kh, kw)


# --------------------------------------------------------------------------------------------
# 1-D


def conv1d_naive(
    x: ArrayLike, w: ArrayLike, b: ArrayLike | None = None, stride: int = 1, padding: int = 0
) -> np.ndarray:
    """1-D cross-correlation with explicit loops (the notes' recipe, discussion 3, section 2.1).

    ``y[n, f, i] = b[f] + sum_{c, k} w[f, c, k] * xp[n, c, s*i + k]``: align the filter with the
    start of the padded input, take the dot product, shift by ``s``, repeat.

    Returns:
        ``(N, F, L_out)``, ``L_out = floor((L + 2p - K) / s) + 1``.
    """
    x, w, b = _check_conv(x, w, b, 1)
    n, _, length = x.shape
    f, _, k = w.shape
    l_out = conv_output_size(length, k, stride, padding)
    xp = _pad(x, (padding,))
    out = np.empty((n, f, l_out))
    for ni in range(n):
        for fi in range(f):
            for i in range(l_out):
                out[ni, fi, i] = np.sum(w[fi] * xp[ni, :, stride * i : stride * i + k]) + b[fi]
    return out


def conv1d_forward(
    x: ArrayLike, w: ArrayLike, b: ArrayLike | None = None, stride: int = 1, padding: int = 0
) -> tuple[np.ndarray, ConvCache]:
    """1-D cross-correlation as one matrix product over unfolded windows (im2col).

    ``y[n, f, i] = b[f] + sum_{c, k} w[f, c, k] * xp[n, c, s*i + k]``; same as ``F.conv1d``.

    Arguments:
        x: ``(N, C, L)``; w: ``(F, C, K)``; b: ``(F,)`` or ``None``.
        stride: ``s >= 1``; padding: zeros on each side, ``p >= 0``.

    Returns:
        ``out (N, F, L_out)`` and the cache for :func:`conv1d_backward`.
    """
    x, w, b = _check_conv(x, w, b, 1)
    _check_int("stride", stride, 1)
    _check_int("padding", padding, 0)
    conv_output_size(x.shape[2], w.shape[2], stride, padding)  # validates the sizes
    # a 1-D signal is a 2-D image of height 1
    out = _correlate2d(_pad(x, (padding,))[:, :, None], w[:, :, None], (1, stride))[:, :, 0]
    return out + b[None, :, None], ConvCache(x, w, (stride,), (padding,))


def conv1d_backward(dout: ArrayLike, cache: ConvCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv1d_forward`, written as convolutions (notes: problem 6).

    With ``xp`` the padded input and ``d`` the upstream gradient ``dout`` dilated by the stride
    (``s - 1`` zeros between entries, so ``d[s*i] = dout[i]``)::

        db[f]       = sum_{n, i} dout[n, f, i]
        dxp[n, c, j] = sum_{f, k} w[f, c, k] * d[n, f, j - k]
                    = sum_{f, m} pad(d, K-1)[n, f, j + m] * w[f, c, K-1-m]
                    = full_corr(d, flip(w))          -> dx = dxp without the padding
        dw[f, c, k] = sum_{n, t} xp[n, c, t + k] * d[n, f, t]
                    = corr(xp, d)                   (batch summed like a channel)

    For the notes' case (x in R^4, w in R^3, y in R^2, s = 1, p = 0):
    ``dx = [0, 0, dy1, dy2, 0, 0] * [w3, w2, w1]`` and ``dw = x * dy``. Positions of ``xp``
    that a floored stride never reached get zero gradient.

    Returns:
        ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``b``.
    """
    x, w = cache.x, cache.w
    (s,), (p,) = cache.stride, cache.padding
    n, _, length = x.shape
    f, _, k = w.shape
    dout = _check_dout(dout, (n, f, conv_output_size(length, k, s, p)))
    db = dout.sum(axis=(0, 2))
    # dx: full correlation of the dilated dout with the flipped kernel, on the padded grid
    d = _dilate(dout, (s,))  # (N, F, (L_out-1)s+1)
    full = _pad(d, (k - 1,))  # (N, F, (L_out-1)s+2K-1)
    w_flip = w[:, :, ::-1].transpose(1, 0, 2)  # (C, F, K)
    dxp = _correlate2d(full[:, :, None], w_flip[:, :, None])[:, :, 0]  # (N, C, (L_out-1)s+K)
    dxp = _pad(dxp, (0,), (length + 2 * p - dxp.shape[2],))  # (N, C, L+2p)
    dx = dxp[:, :, p : p + length]
    # dw: correlation of the padded input with the dilated dout
    xp = _pad(x, (p,)).transpose(1, 0, 2)  # (C, N, L+2p)
    dw = _correlate2d(xp[:, :, None], d.transpose(1, 0, 2)[:, :, None])[:, :, 0]  # (C, F, >=K)
    dw = dw[:, :, :k].transpose(1, 0, 2)  # (F, C, K)
    return dx, dw, db


# --------------------------------------------------------------------------------------------
# 2-D


def conv2d_naive(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """2-D cross-correlation with explicit loops over batch, filters and output positions.

    ``y[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xp[n, c, s_h*i + p, s_w*j + q]``.
    The slow reference the im2col version is tested against (and timed against).
    """
    x, w, b = _check_conv(x, w, b, 2)
    sh, sw = _ints(stride, 2, "stride", 1)
    ph, pw = _ints(padding, 2, "padding", 0)
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(wd, kw, sw, pw)
    xp = _pad(x, (ph, pw))
    out = np.empty((n, f, ho, wo))
    for ni in range(n):
        for fi in range(f):
            for i in range(ho):
                for j in range(wo):
                    window = xp[ni, :, sh * i : sh * i + kh, sw * j : sw * j + kw]
                    out[ni, fi, i, j] = np.sum(window * w[fi]) + b[fi]
    return out


def conv2d_naive_backward(
    dout: ArrayLike,
    x: ArrayLike,
    w: ArrayLike,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv2d_naive` with the same explicit loops.

    Each output ``y[n, f, i, j]`` touched one window, so its gradient flows back to it:
    ``dw[f] += dout[n, f, i, j] * window`` and ``dxp[n, :, window] += dout[n, f, i, j] * w[f]``.
    """
    x, w, _ = _check_conv(x, w, None, 2)
    sh, sw = _ints(stride, 2, "stride", 1)
    ph, pw = _ints(padding, 2, "padding", 0)
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(wd, kw, sw, pw)
    dout = _check_dout(dout, (n, f, ho, wo))
    xp = _pad(x, (ph, pw))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for ni in range(n):
        for fi in range(f):
            for i in range(ho):
                for j in range(wo):
                    g = dout[ni, fi, i, j]
                    rows, cols = slice(sh * i, sh * i + kh), slice(sw * j, sw * j + kw)
                    dw[fi] += g * xp[ni, :, rows, cols]
                    dxp[ni, :, rows, cols] += g * w[fi]
    return dxp[:, :, ph : ph + h, pw : pw + wd], dw, dout.sum(axis=(0, 2, 3))


def conv2d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> tuple[np.ndarray, ConvCache]:
    """2-D cross-correlation as im2col and one matrix product (notes: discussion 3, 2.2).

    ``y[n] = w.reshape(F, C*kh*kw) @ im2col(x)[n] + b``, i.e.
    ``y[n, f, i, j] = b[f] + sum_{c, p, q} w[f, c, p, q] * xp[n, c, s_h*i + p, s_w*j + q]``;
    same as ``F.conv2d(x, w, b, stride, padding)``.

    Arguments:
        x: ``(N, C, H, W)``; w: ``(F, C, kh, kw)``; b: ``(F,)`` or ``None``.
        stride, padding: an int or an ``(h, w)`` pair.

    Returns:
        ``out (N, F, H_out, W_out)`` and the cache for :func:`conv2d_backward` (and
        :func:`conv2d_backward_im2col`, which reuses the columns).

    Example:
        >>> x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
        >>> conv2d_forward(x, w, padding=1)[0][0, 0, 0]
        array([4., 6., 6., 4.])
    """
    x, w, b = _check_conv(x, w, b, 2)
    stride2, padding2 = _ints(stride, 2, "stride", 1), _ints(padding, 2, "padding", 0)
    n, _, h, wd = x.shape
    f, c, kh, kw = w.shape
    ho = conv_output_size(h, kh, stride2[0], padding2[0])
    wo = conv_output_size(wd, kw, stride2[1], padding2[1])
    cols = im2col(x, kh, kw, stride2, padding2)  # (N, C*kh*kw, Ho*Wo)
    out = (w.reshape(f, c * kh * kw) @ cols).reshape(n, f, ho, wo)  # (N, F, Ho, Wo)
    out += b[None, :, None, None]
    return out, ConvCache(x, w, stride2, padding2, cols)


def conv2d_backward(dout: ArrayLike, cache: ConvCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv2d_forward`, written as convolutions (notes: problem 6, 2-D).

    With ``xp`` the padded input and ``d`` the upstream gradient dilated by the stride
    (``d[s_h*i, s_w*j] = dout[i, j]``, zeros between)::

        db[f]          = sum_{n, i, j} dout[n, f, i, j]
        dxp[n, c, :, :] = sum_f full_corr(d[n, f], rot180(w[f, c]))  -> dx = dxp, padding cropped
        dw[f, c, :, :]  = sum_n corr(xp[n, c], d[n, f])

    ``full_corr`` pads ``d`` with ``kh - 1`` / ``kw - 1`` zeros on every side first. Both lines
    reuse the forward correlation (im2col + matmul): the backward pass of a convolution is two
    more convolutions. Rows/columns of ``xp`` a floored stride never reached get zero gradient.

    Returns:
        ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``b``.
    """
    x, w = cache.x, cache.w
    stride, padding = cache.stride, cache.padding
    n, _, h, wd = x.shape
    f, _, kh, kw = w.shape
    ho = conv_output_size(h, kh, stride[0], padding[0])
    wo = conv_output_size(wd, kw, stride[1], padding[1])
    dout = _check_dout(dout, (n, f, ho, wo))
    dx = _input_grad2d(dout, w, (h, wd), stride, padding)
    dw = _weight_grad2d(x, dout, (kh, kw), stride, padding)
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv2d_backward_im2col(
    dout: ArrayLike, cache: ConvCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv2d_forward` through its im2col matrix (the fast route).

    With ``Y = W2 @ cols`` per sample (``W2 = w.reshape(F, C*kh*kw)``)::

        dW2 = sum_n dY[n] @ cols[n]^T,    dcols[n] = W2^T @ dY[n],    dx = col2im(dcols)

    Equal to :func:`conv2d_backward`; ``col2im`` is the adjoint of ``im2col``.
    """
    x, w, cols = cache.x, cache.w, cache.cols
    if cols is None:
        raise ValueError("cache has no im2col columns; expected the cache of conv2d_forward")
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    p_out = cols.shape[2]
    dout = np.asarray(dout, dtype=np.float64)
    if dout.shape[:2] != (n, f) or dout.ndim != 4 or dout.shape[2] * dout.shape[3] != p_out:
        raise ValueError(f"dout must have shape (N, F, H_out, W_out) with N={n}, F={f} and "
                         f"H_out*W_out={p_out}; received {dout.shape}")  # fmt: skip
    dy = dout.reshape(n, f, p_out)  # (N, F, Ho*Wo)
    # per-sample (F, P) @ (P, C*kh*kw) products, then the batch sum: faster than one tensordot,
    # which would first copy both operands into (F, N*P) and (N*P, C*kh*kw)
    dw = (dy @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)  # (F, C, kh, kw)
    dcols = w.reshape(f, c * kh * kw).T @ dy  # (N, C*kh*kw, Ho*Wo)
    dx = col2im(dcols, (n, c, h, wd), kh, kw, cache.stride, cache.padding)
    return dx, dw, dy.sum(axis=(0, 2))


# --------------------------------------------------------------------------------------------
# convolution as a matrix


def conv_matrix(
    w: ArrayLike, n: int, padding: int = 0, stride: int = 1, fold_padding: bool = False
) -> np.ndarray:
    """The (Toeplitz) matrix of a 1-D cross-correlation (notes: discussion 3, problem 5).

    Row ``i`` holds the kernel at columns ``s*i .. s*i + K - 1``: ``W[i, s*i + k] = w[k]``, so
    ``W @ xp = xp * w`` for the zero-padded input ``xp`` of length ``n + 2p``. For the notes'
    ``n = 4``, ``K = 3``, ``p = 1``, ``s = 1`` this is the 4x6 matrix::

        [[w1, w2, w3, 0,  0,  0 ],
         [0,  w1, w2, w3, 0,  0 ],
         [0,  0,  w1, w2, w3, 0 ],
         [0,  0,  0,  w1, w2, w3]]

    Arguments:
        w: the kernel, ``(K,)``.
        n: length of the unpadded input.
        fold_padding: if true, drop the columns that multiply padding zeros, giving the
            ``(L_out, n)`` matrix with ``W @ x = x * w`` directly (the form whose transpose is the
            transposed convolution).

    Returns:
        ``(L_out, n + 2p)``, or ``(L_out, n)`` with ``fold_padding``.
    """
    w = _array(w, "w", "(K,)")
    k = w.shape[0]
    l_out = conv_output_size(n, k, stride, padding)
    mat = np.zeros((l_out, n + 2 * padding))
    for i in range(l_out):
        mat[i, stride * i : stride * i + k] = w
    return mat[:, padding : padding + n] if fold_padding else mat


def conv2d_matrix(
    w: ArrayLike,
    input_shape: tuple[int, int],
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """The matrix of a single-channel 2-D cross-correlation, with the padding folded in.

    Rows are output positions ``(i, j)`` and columns input positions ``(a, b)``, both flattened
    row-major: ``M[(i, j), (a, b)] = w[a + p_h - s_h*i, b + p_w - s_w*j]`` when that index lies
    inside the kernel, else 0. Then ``(M @ x.ravel()).reshape(H_out, W_out)`` is the convolution of
    ``x`` and ``(M.T @ y.ravel()).reshape(H, W)`` is the transposed convolution of ``y``.

    Arguments:
        w: the kernel, ``(kh, kw)``.
        input_shape: ``(H, W)`` of the unpadded input.

    Returns:
        ``(H_out * W_out, H * W)``.
    """
    w = _array(w, "w", "(kh, kw)")
    if len(input_shape) != 2:
        raise ValueError(f"input_shape must be (H, W); received {input_shape!r}")
    h, wd = input_shape
    (sh, sw), (ph, pw) = _ints(stride, 2, "stride", 1), _ints(padding, 2, "padding", 0)
    kh, kw = w.shape
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(wd, kw, sw, pw)
    mat = np.zeros((ho, wo, h + 2 * ph, wd + 2 * pw))  # (Ho, Wo, Hp, Wp)
    for i in range(ho):
        for j in range(wo):
            mat[i, j, sh * i : sh * i + kh, sw * j : sw * j + kw] = w
    return mat[:, :, ph : ph + h, pw : pw + wd].reshape(ho * wo, h * wd)  # (Ho*Wo, H*W)


# --------------------------------------------------------------------------------------------
# transposed convolution


def _transposed_size(n: int, k: int, s: int, p: int, op: int, axis: str) -> int:
    if op >= s:
        raise ValueError(
            f"output_padding must be smaller than the stride; received output_padding {op} "
            f"with stride {s} ({axis})"
        )
    size = (n - 1) * s - 2 * p + k + op
    if size < 1:
        raise ValueError(
            f"transposed convolution output would be empty ({axis}): expected "
            f"(n-1)*s - 2p + k + output_padding >= 1, received ({n}-1)*{s} - 2*{p} + {k} + {op} "
            f"= {size}"
        )
    return size


def conv_transpose2d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
) -> tuple[np.ndarray, ConvCache]:
    """2-D transposed convolution, as ``F.conv_transpose2d`` (notes: discussion 5, section 3).

    Every input pixel stamps a copy of the kernel scaled by its value onto the output, the
    stamps ``s`` apart; overlaps add, then ``p`` rows/columns are cropped from each side::

        yp[n, o, s_h*i + p, s_w*j + q] += x[n, c, i, j] * w[c, o, p, q]
        y = yp[:, :, p_h : p_h + H_out, p_w : p_w + W_out] + b,
        H_out = (H - 1) s_h - 2 p_h + kh + output_padding_h

    This is ``col2im(w^T @ x)``: exactly the input-gradient of the convolution with the same
    ``w`` (read as ``(F, C, kh, kw)`` = ``(C_in, C_out, kh, kw)``), stride and padding -- the
    forward and backward passes of the convolution swap roles. Per channel pair it is the
    transpose of the convolution matrix: with ``M = conv2d_matrix(w[c, o], (H_out, W_out), s, p)``
    (``(H*W, H_out*W_out)``), ``y[n, o].ravel() = sum_c M.T @ x[n, c].ravel() + b[o]``.

    Arguments:
        x: ``(N, C_in, H, W)``; w: ``(C_in, C_out, kh, kw)``; b: ``(C_out,)`` or ``None``.
        output_padding: extra rows/columns at the bottom/right (``< stride``), which picks
            among the input sizes a strided convolution maps to the same ``H``.

    Returns:
        ``out (N, C_out, H_out, W_out)`` and the cache for :func:`conv_transpose2d_backward`.
    """
    x, w, b = _check_conv(x, w, b, 2, transposed=True)
    stride2, padding2 = _ints(stride, 2, "stride", 1), _ints(padding, 2, "padding", 0)
    out_pad2 = _ints(output_padding, 2, "output_padding", 0)
    n, c_in, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    ho = _transposed_size(h, kh, stride2[0], padding2[0], out_pad2[0], "height")
    wo = _transposed_size(wd, kw, stride2[1], padding2[1], out_pad2[1], "width")
    cols = w.reshape(c_in, c_out * kh * kw).T @ x.reshape(n, c_in, h * wd)  # (N, C_out*kh*kw, H*W)
    out = col2im(cols, (n, c_out, ho, wo), kh, kw, stride2, padding2)  # (N, C_out, Ho, Wo)
    out = out + b[None, :, None, None]
    return out, ConvCache(x, w, stride2, padding2, output_padding=out_pad2)


def conv_transpose2d_backward(
    dout: ArrayLike, cache: ConvCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv_transpose2d_forward`.

    The transposed convolution is ``y = A^T x`` with ``A`` the convolution by ``w``, so::

        dx = A dout = conv2d(dout, w, stride, padding)       (an ordinary convolution)
        dw[c, o] = sum_n corr(pad(dout[n, o]), dilate(x[n, c]))   (conv2d's weight gradient
                                                             with the roles of x and dout swapped)
        db[o] = sum_{n, i, j} dout[n, o, i, j]

    Returns:
        ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``b``.
    """
    x, w = cache.x, cache.w
    stride, padding, out_pad = cache.stride, cache.padding, cache.output_padding
    n, _, h, wd = x.shape
    _, c_out, kh, kw = w.shape
    ho = (h - 1) * stride[0] - 2 * padding[0] + kh + out_pad[0]
    wo = (wd - 1) * stride[1] - 2 * padding[1] + kw + out_pad[1]
    dout = _check_dout(dout, (n, c_out, ho, wo))
    dx = _correlate2d(_pad(dout, padding), w, stride)  # (N, C_in, H, W)
    dw = _weight_grad2d(dout, x, (kh, kw), stride, padding)
    return dx, dw, dout.sum(axis=(0, 2, 3))


def conv_transpose1d_forward(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
) -> tuple[np.ndarray, ConvCache]:
    """1-D transposed convolution, as ``F.conv_transpose1d``: ``x (N, C_in, L)``,
    ``w (C_in, C_out, K)`` -> ``(N, C_out, (L-1)s - 2p + K + output_padding)``.

    Equals ``conv_matrix(w, L_out, padding, stride, fold_padding=True).T @ x`` per channel pair;
    see :func:`conv_transpose2d_forward` (a 1-D signal is an image of height 1).
    """
    x, w, b = _check_conv(x, w, b, 1, transposed=True)
    for name, value, least in (("stride", stride, 1), ("padding", padding, 0)):
        _check_int(name, value, least)
    _check_int("output_padding", output_padding, 0)
    out, _ = conv_transpose2d_forward(
        x[:, :, None], w[:, :, None], b, (1, stride), (0, padding), (0, output_padding)
    )
    return out[:, :, 0], ConvCache(x, w, (stride,), (padding,), output_padding=(output_padding,))


def conv_transpose1d_backward(
    dout: ArrayLike, cache: ConvCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of :func:`conv_transpose1d_forward` (``dx`` is ``conv1d(dout, w)``)."""
    dout = np.asarray(dout, dtype=np.float64)
    if dout.ndim != 3:
        raise ValueError(f"dout must have shape (N, C_out, L_out); received {dout.shape}")
    cache2 = ConvCache(
        cache.x[:, :, None],
        cache.w[:, :, None],
        (1, *cache.stride),
        (0, *cache.padding),
        output_padding=(0, *cache.output_padding),
    )
    dx, dw, db = conv_transpose2d_backward(dout[:, :, None], cache2)
    return dx[:, :, 0], dw[:, :, 0], db
