r"""Attention by hand: scaled dot products, masks, multi-head attention, and why we scale.

Notes: discussion 7 ("Attention Mechanisms and Transformers"): section 1.2 "Self-Attention in
Transformer Networks" (the score table, "Generalized Attention in Matrix Form", "Justifying
Scaled Self-Attention") and section 2 "Transformers" (2.2 encoder attention, multi-head
reshaping, padding; 2.3 masked decoder self-attention and encoder-decoder attention).

**Scaled dot-product attention** (section 2.2), for queries ``q (N, Tq, d)``, keys
``k (N, Tk, d)`` and values ``v (N, Tk, dv)``:

.. math:: S = \frac{Q K^\top}{\sqrt{d}}, \qquad
    P = \mathrm{softmax}_{\text{keys}}(S + M), \qquad \text{out} = P V

where the mask adds :math:`M_{ij} = -\infty` wherever query ``i`` may not attend to key ``j``
(padding, the future). Dividing by :math:`\sqrt{d}` keeps the scores at unit variance: for
``q, k`` with iid standard-normal entries :math:`E[q^\top k] = 0` and
:math:`\mathrm{Var}(q^\top k) = d` (:func:`dot_product_stats`), so unscaled scores grow like
:math:`\sqrt{d}`, the softmax saturates to a one-hot and its gradient vanishes.

**Masks are boolean with True = attend**, the convention of ``F.scaled_dot_product_attention``.
``torch.nn.MultiheadAttention`` uses the opposite for its boolean ``attn_mask`` and
``key_padding_mask`` (True = *masked*); :func:`mask_from_torch` performs the inversion,
``ours = ~attn_mask & ~key_padding_mask[:, None, :]``.

Deviation: a query whose every key is masked has an empty softmax. We return **zero weights and
a zero output** for it (and zero gradients), never NaN. ``F.scaled_dot_product_attention`` in
recent torch does the same, while ``nn.MultiheadAttention`` returns NaN for that row; the tests
pin both behaviours.

Erratum: section 2.3 writes the causal score as :math:`q_i^\top k_j / \sqrt{D}` "if
:math:`i \le j`", which would let query ``i`` see only the future. The prose ("every position
pays attention to all previous positions, but not future positions") means :math:`j \le i`;
:func:`causal_mask` implements that (``causal_mask(T)[i, j] = j <= i``), as does torch's
``is_causal=True``, and a property test checks that the future cannot change the past.

**Multi-head attention** (section 2.2), in the notes' row orientation :math:`Q = X W_Q`:
``Q = x_q Wq + bq``, ``K = x_kv Wk + bk``, ``V = x_kv Wv + bv``, each ``(N, T, E)`` reshaped to
``(N, H, T, E/H)``, attended per head with scale :math:`1/\sqrt{E/H}`, merged back to
``(N, Tq, E)`` and mapped by ``Wo, bo``. Mapping to ``nn.MultiheadAttention(E, H,
batch_first=True)`` (:func:`mha_params_to_torch`): ``in_proj_weight = [Wq.T; Wk.T; Wv.T]``
``(3E, E)``, ``in_proj_bias = [bq; bk; bv]``, ``out_proj.weight = Wo.T``,
``out_proj.bias = bo`` (torch's ``nn.Linear`` layout is the transpose of the notes').

Conventions (shared with :mod:`deepnotes.mechanics`): float64; batch-first; a gradient has the
shape of what it differentiates with respect to (discussion 2, section 2); bad input raises
``ValueError`` naming the expected and the received shapes. NumPy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

# --------------------------------------------------------------------------------------------
# validation


def _array(value: ArrayLike, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers; received {value!r}") from err


def _check_int(value: object, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}; received {value!r}")
    return int(value)


def _check_mask(mask: ArrayLike, target: tuple[int, ...], layout: str) -> np.ndarray:
    """``mask`` as a bool array broadcast to ``target`` (the scores' shape)."""
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(
            f"mask must be a boolean array (True = attend); received dtype {mask.dtype}"
        )
    try:
        return np.broadcast_to(mask, target)
    except ValueError as err:
        raise ValueError(
            f"mask must broadcast to the scores' shape {layout} = {target}; "
            f"received shape {mask.shape}"
        ) from err


# --------------------------------------------------------------------------------------------
# masks (section 2.2 "padding", section 2.3 "masked decoder self-attention")


def padding_mask(lengths: ArrayLike, T: int) -> np.ndarray:
    """Key-padding mask, True = attend: ``mask[n, 0, j] = j < lengths[n]``.

    Arguments:
        lengths: the true length of each sequence, ``(N,)`` integers in ``[0, T]``.
        T: the padded length.

    Returns:
        bool ``(N, 1, T)``, which broadcasts over the queries of ``(N, Tq, T)`` scores.

    Example:
        >>> padding_mask([2, 3], 3)[:, 0].tolist()
        [[True, True, False], [True, True, True]]
    """
    T = _check_int(T, "T", 1)
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(
            f"lengths must be a 1-D integer array (N,); received shape {lengths.shape}, "
            f"dtype {lengths.dtype}"
        )
    if np.any(lengths < 0) or np.any(lengths > T):
        raise ValueError(f"lengths must lie in [0, T] = [0, {T}]; received {lengths.tolist()}")
    return (np.arange(T)[None, :] < lengths[:, None])[:, None, :]  # (N, 1, T)


def causal_mask(T: int) -> np.ndarray:
    """Causal mask, True = attend: ``mask[i, j] = j <= i`` (query ``i`` sees keys up to ``i``).

    Returns bool ``(T, T)``, lower triangular, which broadcasts over the batch.

    Example:
        >>> causal_mask(3).astype(int).tolist()
        [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    T = _check_int(T, "T", 1)
    return np.tril(np.ones((T, T), dtype=bool))


def combine_masks(*masks: ArrayLike | None) -> np.ndarray | None:
    """Attend only where every mask allows it: the broadcast logical AND (``None`` is skipped).

    Example: ``combine_masks(padding_mask(lengths, T), causal_mask(T))`` is ``(N, T, T)``.
    """
    result = None
    for mask in masks:
        if mask is None:
            continue
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise ValueError(
                f"masks must be boolean arrays (True = attend); received dtype {mask.dtype}"
            )
        if result is None:
            result = mask
            continue
        try:
            result = np.logical_and(result, mask)
        except ValueError as err:
            raise ValueError(
                f"masks of shapes {result.shape} and {mask.shape} do not broadcast together"
            ) from err
    return result


def mask_from_torch(
    attn_mask: ArrayLike | None = None, key_padding_mask: ArrayLike | None = None
) -> np.ndarray | None:
    """Convert ``nn.MultiheadAttention``'s boolean masks (True = masked) to ours (True = attend).

    Arguments:
        attn_mask: bool ``(Tq, Tk)`` or ``(N * H, Tq, Tk)`` in torch's layout; True = masked.
        key_padding_mask: bool ``(N, Tk)``; True = a padding key, masked.

    Returns:
        ``~attn_mask & ~key_padding_mask[:, None, :]``: ``(Tq, Tk)``, ``(N, 1, Tk)`` or
        ``(N, Tq, Tk)``; a 3-D ``attn_mask`` comes back as ``(N, H, Tq, Tk)`` (needs the
        padding mask, or reshape it yourself). ``None`` when both are ``None``.
    """
    ours_attn = None
    if attn_mask is not None:
        attn_mask = np.asarray(attn_mask)
        if attn_mask.dtype != np.bool_ or attn_mask.ndim not in (2, 3):
            raise ValueError(
                "attn_mask must be a boolean (Tq, Tk) or (N*H, Tq, Tk) array; received "
                f"shape {attn_mask.shape}, dtype {attn_mask.dtype}"
            )
        ours_attn = ~attn_mask
    ours_pad = None
    if key_padding_mask is not None:
        key_padding_mask = np.asarray(key_padding_mask)
        if key_padding_mask.dtype != np.bool_ or key_padding_mask.ndim != 2:
            raise ValueError(
                "key_padding_mask must be a boolean (N, Tk) array; received shape "
                f"{key_padding_mask.shape}, dtype {key_padding_mask.dtype}"
            )
        ours_pad = ~key_padding_mask[:, None, :]  # (N, 1, Tk)
    if ours_attn is not None and ours_attn.ndim == 3:
        if ours_pad is None:
            raise ValueError(
                "a 3-D attn_mask (N*H, Tq, Tk) needs key_padding_mask (N, Tk) to know N"
            )
        n = ours_pad.shape[0]
        if ours_attn.shape[0] % n:
            raise ValueError(
                f"attn_mask's first axis must be N*H with N = {n}; received {ours_attn.shape}"
            )
        ours_attn = ours_attn.reshape(n, -1, *ours_attn.shape[1:])  # (N, H, Tq, Tk)
        ours_pad = ours_pad[:, None]  # (N, 1, 1, Tk)
    return combine_masks(ours_attn, ours_pad)


# --------------------------------------------------------------------------------------------
# scaled dot-product attention (section 1.2, section 2.2)


@dataclass(frozen=True)
class AttentionCache:
    """What :func:`sdpa_backward` needs from :func:`scaled_dot_product_attention`.

    Arguments:
        q, k, v: the inputs, ``(..., Tq, d)``, ``(..., Tk, d)``, ``(..., Tk, dv)``.
        weights: the attention weights ``P`` ``(..., Tq, Tk)``, zero where masked.
        scale: the factor on the dot products, ``1/sqrt(d)`` unless given.
    """

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    weights: np.ndarray
    scale: float


def _check_qkv(
    q: ArrayLike, k: ArrayLike, v: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q, k, v = _array(q, "q"), _array(k, "k"), _array(v, "v")
    if q.ndim not in (3, 4) or min(q.shape) < 1:
        raise ValueError(
            f"q must be (N, Tq, d) or (N, H, Tq, d) with every size >= 1; received {q.shape}"
        )
    batch, d = q.shape[:-2], q.shape[-1]
    if k.ndim != q.ndim or k.shape[:-2] != batch or k.shape[-1] != d or k.shape[-2] < 1:
        raise ValueError(
            f"k must have shape {(*batch, 'Tk', d)} to match q {q.shape}; received {k.shape}"
        )
    if v.ndim != q.ndim or v.shape[:-1] != k.shape[:-1] or v.shape[-1] < 1:
        raise ValueError(
            f"v must have shape {(*k.shape[:-1], 'dv')} to match k {k.shape}; received {v.shape}"
        )
    return q, k, v


def dot_product_scores(q: ArrayLike, k: ArrayLike, scale: float | None = None) -> np.ndarray:
    r"""The score of every key for every query, :math:`S = Q K^\top \cdot \text{scale}`.

    Arguments:
        q: ``(..., Tq, d)``. k: ``(..., Tk, d)``.
        scale: the factor; ``None`` means :math:`1/\sqrt{d}` (scaled dot product), ``1.0`` the
            raw dot products :math:`q_i \cdot k_j`.

    Returns:
        ``(..., Tq, Tk)``.
    """
    q, k = _array(q, "q"), _array(k, "k")
    if q.ndim < 2 or k.ndim != q.ndim or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q (..., Tq, d) and k (..., Tk, d) must share their rank and d; received "
            f"{q.shape} and {k.shape}"
        )
    scale = _resolve_scale(scale, q.shape[-1])
    return (q @ np.swapaxes(k, -1, -2)) * scale  # (..., Tq, Tk)


def _resolve_scale(scale: float | None, d: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(d)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise ValueError(f"scale must be a positive number or None; received {scale!r}")
    return float(scale)


def masked_softmax(scores: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    r"""Softmax over the last axis with masked entries set to :math:`-\infty` first.

    Stable: each row is shifted by its largest *unmasked* score. A row with no unmasked entry
    gets all-zero weights (instead of 0/0 = NaN).

    Arguments:
        scores: ``(..., Tq, Tk)``.
        mask: bool, broadcastable to ``scores``; True = attend. ``None``: attend everywhere.

    Returns:
        weights of the shape of ``scores``; each row sums to 1, or to 0 if fully masked.
    """
    scores = _array(scores, "scores")
    if scores.ndim < 1 or scores.shape[-1] < 1:
        raise ValueError(f"scores must have shape (..., Tk) with Tk >= 1; received {scores.shape}")
    if mask is None:
        shifted = scores - scores.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True)
    mask = _check_mask(mask, scores.shape, "(..., Tq, Tk)")
    masked = np.where(mask, scores, -np.inf)  # S + M with M = -inf where not attending
    row_max = masked.max(axis=-1, keepdims=True)  # -inf for a fully masked row
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.exp(masked - row_max)  # exp(-inf) = 0 at masked entries
    total = e.sum(axis=-1, keepdims=True)
    return e / np.where(total > 0, total, 1.0)  # a fully masked row stays 0


def scaled_dot_product_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    mask: ArrayLike | None = None,
    scale: float | None = None,
) -> tuple[np.ndarray, AttentionCache]:
    r"""Scaled dot-product attention (discussion 7, sections 1.2 and 2.2).

    .. math:: \text{out} = \mathrm{softmax}\Big(\frac{QK^\top}{\sqrt{d}} + M\Big) V, \qquad
        M_{ij} = \begin{cases} 0 & \text{mask}_{ij} \\ -\infty & \text{otherwise}\end{cases}

    Arguments:
        q: queries ``(N, Tq, d)`` (or ``(N, H, Tq, d)``, one attention per head).
        k: keys ``(N, Tk, d)``. v: values ``(N, Tk, dv)`` (same leading axes as ``q``).
        mask: bool, broadcastable to the scores ``(N, Tq, Tk)``; True = attend (as
            ``F.scaled_dot_product_attention``). A fully masked query row outputs zeros.
        scale: factor on the dot products; ``None`` means :math:`1/\sqrt{d}`.

    Returns:
        ``(out, cache)`` with ``out (N, Tq, dv)``; ``cache.weights`` holds ``P (N, Tq, Tk)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> q, k, v = rng.normal(size=(2, 4, 8)), rng.normal(size=(2, 4, 8)), np.eye(4)[None]
        >>> out, cache = scaled_dot_product_attention(q, k, v.repeat(2, 0), mask=causal_mask(4))
        >>> bool(np.allclose(out, cache.weights)), float(cache.weights[0, 0, 1])
        (True, 0.0)
    """
    q, k, v = _check_qkv(q, k, v)
    scale = _resolve_scale(scale, q.shape[-1])
    scores = (q @ np.swapaxes(k, -1, -2)) * scale  # (N, Tq, Tk): q_i . k_j / sqrt(d)
    if mask is not None:
        layout = "(N, Tq, Tk)" if q.ndim == 3 else "(N, H, Tq, Tk)"
        mask = _check_mask(mask, scores.shape, layout)
    weights = masked_softmax(scores, mask)  # (N, Tq, Tk), rows sum to 1
    out = weights @ v  # (N, Tq, dv): sum_j P_ij v_j
    return out, AttentionCache(q, k, v, weights, scale)


def sdpa_backward(
    dout: ArrayLike, cache: AttentionCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Backward pass of :func:`scaled_dot_product_attention`.

    .. math::
        \frac{\partial J}{\partial V} = P^\top \frac{\partial J}{\partial \text{out}}, \quad
        \frac{\partial J}{\partial P} = \frac{\partial J}{\partial \text{out}} V^\top, \quad
        \frac{\partial J}{\partial S} = P \circ \Big(\frac{\partial J}{\partial P}
            - \mathrm{rowsum}\big(P \circ \tfrac{\partial J}{\partial P}\big)\Big), \\
        \frac{\partial J}{\partial Q} = \text{scale} \cdot \frac{\partial J}{\partial S} K, \qquad
        \frac{\partial J}{\partial K} = \text{scale} \cdot
            \Big(\frac{\partial J}{\partial S}\Big)^\top Q

    Masked entries have :math:`P_{ij} = 0`, so no gradient flows through them.

    Returns:
        ``(dq, dk, dv)`` with the shapes of ``q``, ``k``, ``v``.
    """
    P = cache.weights
    expected = (*P.shape[:-1], cache.v.shape[-1])
    dout = _array(dout, "dout")
    if dout.shape != expected:
        raise ValueError(
            f"dout must have the forward output's shape {expected}; received {dout.shape}"
        )
    dv = np.swapaxes(P, -1, -2) @ dout  # (N, Tk, dv)
    dP = dout @ np.swapaxes(cache.v, -1, -2)  # (N, Tq, Tk)
    dS = P * (dP - np.sum(dP * P, axis=-1, keepdims=True))  # softmax backward, row by row
    dq = (dS @ cache.k) * cache.scale  # (N, Tq, d)
    dk = (np.swapaxes(dS, -1, -2) @ cache.q) * cache.scale  # (N, Tk, d)
    return dq, dk, dv


# --------------------------------------------------------------------------------------------
# multi-head attention (section 2.2)


PROJECTIONS = ("q", "k", "v", "o")


@dataclass(frozen=True)
class MHACache:
    """What :func:`multihead_attention_backward` needs from the forward pass.

    Arguments:
        x_q: query input ``(N, Tq, Dq)``. x_kv: key/value input ``(N, Tk, Dkv)``.
        params: the weights ``Wq, Wk, Wv, Wo`` as float64 arrays.
        num_heads: ``H``.
        attention: the per-head attention cache; ``attention.weights`` is ``(N, H, Tq, Tk)``.
        merged: the heads' outputs merged back, ``(N, Tq, E)``, the input of ``Wo``.
    """

    x_q: np.ndarray
    x_kv: np.ndarray
    params: dict[str, np.ndarray]
    num_heads: int
    attention: AttentionCache
    merged: np.ndarray


def _check_mha_params(
    params: Mapping[str, ArrayLike], dq: int, dkv: int, num_heads: int
) -> dict[str, np.ndarray]:
    missing = [f"W{p}" for p in PROJECTIONS if f"W{p}" not in params]
    if missing:
        raise ValueError(f"params need Wq, Wk, Wv, Wo (bq, bk, bv, bo optional); missing {missing}")
    unknown = sorted(set(params) - {f"{w}{p}" for w in "Wb" for p in PROJECTIONS})
    if unknown:
        raise ValueError(f"unknown params {unknown}; expected Wq, Wk, Wv, Wo, bq, bk, bv, bo")
    out = {f"W{p}": _array(params[f"W{p}"], f"W{p}") for p in PROJECTIONS}
    Wq = out["Wq"]
    if Wq.ndim != 2 or Wq.shape[0] != dq:
        raise ValueError(f"Wq must have shape (Dq, E) with Dq = {dq}; received {Wq.shape}")
    e = Wq.shape[1]
    if e % num_heads:
        raise ValueError(f"E = {e} (Wq's columns) must be divisible by num_heads = {num_heads}")
    for name, rows in (("Wk", dkv), ("Wv", dkv), ("Wo", e)):
        if (
            out[name].ndim != 2
            or out[name].shape[0] != rows
            or (name != "Wo" and out[name].shape[1] != e)
        ):
            layout = f"({rows}, {e})" if name != "Wo" else f"({e}, E_out)"
            raise ValueError(f"{name} must have shape {layout}; received {out[name].shape}")
    for p in PROJECTIONS:
        width = out[f"W{p}"].shape[1]
        b = _array(params.get(f"b{p}", np.zeros(width)), f"b{p}")
        if b.shape != (width,):
            raise ValueError(f"b{p} must have shape ({width},); received {b.shape}")
        out[f"b{p}"] = b
    return out


def mha_init_params(
    embed_dim: int, rng: np.random.Generator | int = 0, kdim: int | None = None
) -> dict[str, np.ndarray]:
    """Random multi-head attention parameters (Xavier-uniform weights, small biases).

    ``Wq (E, E)``, ``Wk, Wv (kdim, E)``, ``Wo (E, E)`` and ``bq, bk, bv, bo (E,)``.
    """
    e = _check_int(embed_dim, "embed_dim", 1)
    kd = e if kdim is None else _check_int(kdim, "kdim", 1)
    rng = np.random.default_rng(rng)
    params = {}
    for p, rows in (("q", e), ("k", kd), ("v", kd), ("o", e)):
        bound = math.sqrt(6.0 / (rows + e))
        params[f"W{p}"] = rng.uniform(-bound, bound, (rows, e))
        params[f"b{p}"] = rng.uniform(-0.1, 0.1, e)
    return params


def _split_heads(a: np.ndarray, num_heads: int) -> np.ndarray:
    n, t, e = a.shape
    return a.reshape(n, t, num_heads, e // num_heads).transpose(0, 2, 1, 3)  # (N, H, T, E/H)


def _merge_heads(a: np.ndarray) -> np.ndarray:
    n, h, t, dh = a.shape
    return a.transpose(0, 2, 1, 3).reshape(n, t, h * dh)  # (N, H, T, E/H) -> (N, T, E)


def multihead_attention_forward(
    x_q: ArrayLike,
    x_kv: ArrayLike,
    params: Mapping[str, ArrayLike],
    num_heads: int,
    mask: ArrayLike | None = None,
) -> tuple[np.ndarray, MHACache]:
    r"""Multi-head attention (discussion 7, section 2.2; encoder-decoder attention, 2.3).

    .. math::
        Q = X_q W_Q + b_Q, \quad K = X_{kv} W_K + b_K, \quad V = X_{kv} W_V + b_V, \\
        \text{head}_h = \mathrm{softmax}\Big(\frac{Q_h K_h^\top}{\sqrt{E/H}} + M\Big) V_h, \quad
        \text{out} = [\text{head}_1, \dots, \text{head}_H] W_O + b_O

    where :math:`Q_h` is the ``h``-th block of ``E/H`` columns of :math:`Q` (the notes' reshape
    from ``B x L x D`` to ``B x H x L x D/H``). Self-attention passes the same array as ``x_q``
    and ``x_kv``.

    Arguments:
        x_q: ``(N, Tq, Dq)``. x_kv: ``(N, Tk, Dkv)``.
        params: ``Wq (Dq, E)``, ``Wk (Dkv, E)``, ``Wv (Dkv, E)``, ``Wo (E, E_out)`` and optional
            biases ``bq, bk, bv (E,)``, ``bo (E_out,)`` (missing means zero).
        num_heads: ``H``, dividing ``E``.
        mask: bool, True = attend; a mask of up to 3 axes broadcasts to ``(N, Tq, Tk)`` and is
            shared by the heads, a 4-axis mask broadcasts to ``(N, H, Tq, Tk)``.

    Returns:
        ``(out (N, Tq, E_out), cache)``; ``cache.attention.weights`` is ``(N, H, Tq, Tk)``
        (torch's ``need_weights`` output is its mean over the heads).

    Example:
        >>> params = mha_init_params(8, rng=0)
        >>> x = np.random.default_rng(1).normal(size=(2, 5, 8))
        >>> out, cache = multihead_attention_forward(x, x, params, 2, mask=causal_mask(5))
        >>> out.shape, cache.attention.weights.shape
        ((2, 5, 8), (2, 2, 5, 5))
    """
    x_q, x_kv = _array(x_q, "x_q"), _array(x_kv, "x_kv")
    if x_q.ndim != 3 or min(x_q.shape) < 1:
        raise ValueError(f"x_q must be 3-D (N, Tq, Dq) with sizes >= 1; received {x_q.shape}")
    if x_kv.ndim != 3 or x_kv.shape[0] != x_q.shape[0] or min(x_kv.shape) < 1:
        raise ValueError(
            f"x_kv must be 3-D (N, Tk, Dkv) with N = {x_q.shape[0]}; received {x_kv.shape}"
        )
    num_heads = _check_int(num_heads, "num_heads", 1)
    p = _check_mha_params(params, x_q.shape[2], x_kv.shape[2], num_heads)
    n, tq, tk = x_q.shape[0], x_q.shape[1], x_kv.shape[1]
    if mask is not None:
        mask = np.asarray(mask)
        if mask.ndim <= 3:
            mask = _check_mask(mask, (n, tq, tk), "(N, Tq, Tk)")[:, None]  # (N, 1, Tq, Tk)
        else:
            mask = _check_mask(mask, (n, num_heads, tq, tk), "(N, H, Tq, Tk)")
    Q = _split_heads(x_q @ p["Wq"] + p["bq"], num_heads)  # (N, H, Tq, E/H)
    K = _split_heads(x_kv @ p["Wk"] + p["bk"], num_heads)  # (N, H, Tk, E/H)
    V = _split_heads(x_kv @ p["Wv"] + p["bv"], num_heads)  # (N, H, Tk, E/H)
    heads, attention = scaled_dot_product_attention(Q, K, V, mask)  # (N, H, Tq, E/H)
    merged = _merge_heads(heads)  # (N, Tq, E)
    out = merged @ p["Wo"] + p["bo"]  # (N, Tq, E_out)
    return out, MHACache(x_q, x_kv, p, num_heads, attention, merged)


def multihead_attention_backward(
    dout: ArrayLike, cache: MHACache
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    r"""Backward pass of :func:`multihead_attention_forward`.

    Back through ``Wo``, the merge (a reshape: its gradient is the inverse reshape), the
    per-head :func:`sdpa_backward`, the split, and the three input projections:

    .. math:: \frac{\partial J}{\partial W_Q} = X_q^\top \frac{\partial J}{\partial Q}, \quad
        \frac{\partial J}{\partial X_{kv}} = \frac{\partial J}{\partial K} W_K^\top
            + \frac{\partial J}{\partial V} W_V^\top

    Returns:
        ``(dx_q, dx_kv, grads)`` with ``grads`` holding ``Wq, Wk, Wv, Wo, bq, bk, bv, bo``. For
        self-attention (``x_q is x_kv``) the input gradient is ``dx_q + dx_kv``.
    """
    p = cache.params
    expected = (*cache.merged.shape[:2], p["Wo"].shape[1])
    dout = _array(dout, "dout")
    if dout.shape != expected:
        raise ValueError(
            f"dout must have the forward output's shape {expected}; received {dout.shape}"
        )
    grads = {
        "Wo": np.einsum("nte,nto->eo", cache.merged, dout),  # merged^T dout
        "bo": dout.sum(axis=(0, 1)),
    }
    dmerged = dout @ p["Wo"].T  # (N, Tq, E)
    dheads = _split_heads(dmerged, cache.num_heads)  # (N, H, Tq, E/H)
    dQ, dK, dV = (_merge_heads(g) for g in sdpa_backward(dheads, cache.attention))  # (N, T, E)
    for name, x, d in (("q", cache.x_q, dQ), ("k", cache.x_kv, dK), ("v", cache.x_kv, dV)):
        grads[f"W{name}"] = np.einsum("ntd,nte->de", x, d)  # x^T dProjection
        grads[f"b{name}"] = d.sum(axis=(0, 1))
    dx_q = dQ @ p["Wq"].T  # (N, Tq, Dq)
    dx_kv = dK @ p["Wk"].T + dV @ p["Wv"].T  # (N, Tk, Dkv)
    return dx_q, dx_kv, {k: grads[k] for k in ("Wq", "Wk", "Wv", "Wo", "bq", "bk", "bv", "bo")}


def mha_params_to_torch(params: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """The parameters as an ``nn.MultiheadAttention(E, H, batch_first=True)`` state dict.

    With ``Dq = Dkv = E``: ``in_proj_weight = [Wq.T; Wk.T; Wv.T]`` ``(3E, E)`` and
    ``in_proj_bias = [bq; bk; bv]``; with ``Dkv != E`` (torch's ``kdim = vdim = Dkv``):
    ``q_proj_weight = Wq.T``, ``k_proj_weight = Wk.T``, ``v_proj_weight = Wv.T``. Always
    ``out_proj.weight = Wo.T`` and ``out_proj.bias = bo``; torch needs ``Wo`` square.
    """
    if "Wq" not in params or "Wk" not in params:
        raise ValueError(f"params need Wq, Wk, Wv, Wo; received keys {sorted(params)}")
    Wq, Wk = _array(params["Wq"], "Wq"), _array(params["Wk"], "Wk")
    if Wq.ndim != 2 or Wk.ndim != 2:
        raise ValueError(f"Wq and Wk must be 2-D; received {Wq.shape} and {Wk.shape}")
    p = _check_mha_params(params, Wq.shape[0], Wk.shape[0], 1)
    e = p["Wq"].shape[1]
    if p["Wq"].shape[0] != e or p["Wo"].shape != (e, e):
        raise ValueError(
            f"torch's MultiheadAttention needs Wq ({e}, {e}) and Wo ({e}, {e}); received "
            f"{p['Wq'].shape} and {p['Wo'].shape}"
        )
    state = {
        "in_proj_bias": np.concatenate([p["bq"], p["bk"], p["bv"]]),
        "out_proj.weight": np.ascontiguousarray(p["Wo"].T),  # (E, E)
        "out_proj.bias": p["bo"].copy(),
    }
    if p["Wk"].shape[0] == e:
        state["in_proj_weight"] = np.concatenate([p["Wq"].T, p["Wk"].T, p["Wv"].T])  # (3E, E)
    else:
        state["q_proj_weight"] = np.ascontiguousarray(p["Wq"].T)  # (E, E)
        state["k_proj_weight"] = np.ascontiguousarray(p["Wk"].T)  # (E, kdim)
        state["v_proj_weight"] = np.ascontiguousarray(p["Wv"].T)  # (E, vdim)
    return state


# --------------------------------------------------------------------------------------------
# why scale by sqrt(d) (problem "Justifying Scaled Self-Attention")


def _check_gaussian(d: int, mu: float | ArrayLike, sigma: float) -> tuple[int, np.ndarray, float]:
    d = _check_int(d, "d", 1)
    mu = _array(mu, "mu")
    if mu.shape not in ((), (d,)):
        raise ValueError(f"mu must be a number or have shape (d,) = ({d},); received {mu.shape}")
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number; received {sigma!r}")
    return d, np.broadcast_to(mu, (d,)), float(sigma)


def dot_product_stats(
    d: int, mu: float | ArrayLike = 0.0, sigma: float = 1.0
) -> tuple[float, float]:
    r"""Closed-form mean and variance of :math:`q^\top k` for independent
    :math:`q, k \sim \mathcal{N}(\mu, \sigma^2 I_d)`.

    Each term :math:`q_i k_i` is a product of independent Gaussians with
    :math:`E[q_i k_i] = \mu_i^2` and :math:`E[(q_i k_i)^2] = (\sigma^2 + \mu_i^2)^2`, and the
    ``d`` terms are independent, so

    .. math:: E[q^\top k] = \|\mu\|^2, \qquad
        \mathrm{Var}(q^\top k) = d\sigma^4 + 2\sigma^2\|\mu\|^2

    which is ``(0, d)`` for standard-normal entries: the scores' standard deviation grows like
    :math:`\sqrt{d}`, and dividing by :math:`s = \sigma^2\sqrt{d}` brings the variance back to 1.

    Arguments:
        d: the dimension. mu: the mean, a number (every coordinate) or ``(d,)``.
        sigma: the standard deviation of each coordinate.

    Returns:
        ``(mean, variance)``.
    """
    d, mu, sigma = _check_gaussian(d, mu, sigma)
    norm2 = float(mu @ mu)
    return norm2, d * sigma**4 + 2 * sigma**2 * norm2


def dot_product_monte_carlo(
    d: int,
    n: int,
    rng: np.random.Generator | int,
    mu: float | ArrayLike = 0.0,
    sigma: float = 1.0,
) -> tuple[float, float]:
    """Monte Carlo estimate of :func:`dot_product_stats`: ``n`` independent pairs ``q, k``.

    Returns ``(sample mean, unbiased sample variance)`` of the ``n`` dot products ``q . k``.
    """
    d, mu, sigma = _check_gaussian(d, mu, sigma)
    n = _check_int(n, "n", 2)
    rng = np.random.default_rng(rng)
    q = mu + sigma * rng.standard_normal((n, d))  # (n, d)
    k = mu + sigma * rng.standard_normal((n, d))  # (n, d)
    dots = np.einsum("nd,nd->n", q, k)  # (n,): one q . k per pair
    return float(dots.mean()), float(dots.var(ddof=1))
