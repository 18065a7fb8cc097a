r"""Recurrent networks by hand: the notes' vanilla RNN and LSTM, with backpropagation through time.

Notes: discussion 6 ("Recurrent Neural Network"), section 1.3 "Vanilla RNN" (the equations and
the problem "Coding RNNs Up!", whose ``VanillaRNN`` class is completed here) and section 2
"Long Short Term Memory (LSTM)" (the cell and the problem "Backpropagation Through LSTM").

**Vanilla RNN** (section 1.3), in the notes' column-vector orientation:

.. math:: h_t = \tanh(W_{h,h} h_{t-1} + W_{x,h} x_t + B_h), \qquad y_t = W_{h,y} h_t + B_y

so ``W_xh`` is ``(H, D)``, ``W_hh`` is ``(H, H)`` and ``b`` (the notes' :math:`B_h`) is ``(H,)``.
With batch-first rows the same map is ``h_t = tanh(x_t @ W_xh.T + h_{t-1} @ W_hh.T + b)``; this
is exactly ``torch.nn.RNN(nonlinearity="tanh")`` with ``weight_ih_l0 = W_xh``,
``weight_hh_l0 = W_hh`` and ``bias_ih_l0 + bias_hh_l0 = b``.

**LSTM** (section 2), in the notes' row-vector orientation (the input multiplies from the left):

.. math::
    f_t &= \sigma(x_t U^f + h_{t-1} W^f + b^f) \\
    i_t &= \sigma(x_t U^i + h_{t-1} W^i + b^i) \\
    o_t &= \sigma(x_t U^o + h_{t-1} W^o + b^o) \\
    \tilde C_t &= \tanh(x_t U^g + h_{t-1} W^g + b^g) \\
    C_t &= f_t \circ C_{t-1} + i_t \circ \tilde C_t \\
    h_t &= \tanh(C_t) \circ o_t

``U^g`` is ``(D, H)``, ``W^g`` is ``(H, H)`` and ``b^g`` is ``(H,)`` for each gate
``g in ("i", "f", "g", "o")``, where ``"g"`` names the candidate :math:`\tilde C_t` (the notes'
:math:`U^g, W^g`). Parameters travel in a dict with keys ``"U_i"``, ``"W_i"``, ``"b_i"``, ...

Mapping to ``torch.nn.LSTM`` (:func:`lstm_params_to_torch`): torch computes
``gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh`` with the ``4H`` rows stacked
in the order i, f, g, o, so ``weight_ih_l0 = [U^i.T; U^f.T; U^g.T; U^o.T]`` ``(4H, D)``,
``weight_hh_l0 = [W^i.T; ...]`` ``(4H, H)``. Torch's cell reads ``h_t = o_t * tanh(c_t)``; the
Hadamard product commutes, so it is the notes' ``tanh(C_t) * o_t`` exactly, with the same
nonlinearities (sigmoid on f, i, o; tanh on the candidate and on the cell), and no deviation there.

Deviation: the notes' LSTM equations carry **no bias**. We keep one bias ``b^g`` per gate
(torch's layers have biases, and a forget-gate bias is common practice); a missing ``"b_<g>"``
key means zero, which is the notes' cell exactly. Torch has two redundant biases per gate
(``bias_ih`` and ``bias_hh``, only their sum matters); :func:`lstm_params_to_torch` puts ``b^g``
in ``bias_ih`` and zeros in ``bias_hh``. ``test_recurrent.py`` pins both facts: a bias-free call
follows the notes' equations written out literally, and torch with arbitrary ``bias_ih``,
``bias_hh`` equals ours with ``b = bias_ih + bias_hh``.

**Backpropagation through time.** The loss :math:`J` depends on every :math:`h_t`; the gradient
flowing into :math:`h_t` is the direct term ``dhs[:, t]`` plus what comes back from step
``t + 1``. For the LSTM (problem "Backpropagation Through LSTM"), with
:math:`a^g_t = x_t U^g + h_{t-1} W^g + b^g` the pre-activations,

.. math::
    \frac{\partial J}{\partial W^g} = \sum_t h_{t-1}^\top \frac{\partial J}{\partial a^g_t},
    \qquad
    \frac{\partial J}{\partial C_{t-1}} = \frac{\partial J}{\partial C_t} \circ f_t
        + (\text{the path through } h_{t-1})

and the additive path :math:`\partial C_t / \partial C_{t-1} = \mathrm{diag}(f_t)` is what lets
the LSTM carry gradients over long lags (the problem "Vanishing Gradient in LSTMs").

Conventions (shared with the rest of :mod:`deepnotes.mechanics`): float64; batch-first arrays,
``x (N, T, D)``, hidden states ``(N, T, H)``; a gradient has the shape of what it differentiates
with respect to (discussion 2, section 2); bad input raises ``ValueError`` naming the expected and
the received shapes. This module imports NumPy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

GATES = ("i", "f", "g", "o")
"""LSTM gates in torch's stacking order: input, forget, candidate (the notes' C~), output."""


# --------------------------------------------------------------------------------------------
# validation


def _array(value: ArrayLike, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers; received {value!r}") from err


def _check_shape(arr: np.ndarray, expected: tuple[int, ...], name: str, layout: str) -> None:
    if arr.shape != expected:
        raise ValueError(f"{name} must have shape {layout} = {expected}; received {arr.shape}")


def _check_x(x: ArrayLike) -> np.ndarray:
    x = _array(x, "x")
    if x.ndim != 3 or min(x.shape) < 1:
        raise ValueError(
            f"x must be 3-D (N, T, D) with N, T, D >= 1 (batch-first); received shape {x.shape}"
        )
    return x


def _initial_state(value: ArrayLike | None, n: int, h: int, name: str) -> np.ndarray:
    if value is None:
        return np.zeros((n, h))
    value = _array(value, name)
    _check_shape(value, (n, h), name, "(N, H)")
    return value


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, written so no ``exp`` overflows for large ``|z|``."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# --------------------------------------------------------------------------------------------
# vanilla RNN (section 1.3)


@dataclass(frozen=True)
class RNNCache:
    """What :func:`rnn_backward` needs from :func:`rnn_forward`.

    Arguments:
        x: the inputs ``(N, T, D)``.
        h0: the initial hidden state ``(N, H)``.
        hs: the hidden states ``h_1 .. h_T``, ``(N, T, H)``.
        W_xh: input-to-hidden weight ``(H, D)``.
        W_hh: hidden-to-hidden weight ``(H, H)``.
    """

    x: np.ndarray
    h0: np.ndarray
    hs: np.ndarray
    W_xh: np.ndarray
    W_hh: np.ndarray


def _check_rnn_params(
    W_xh: ArrayLike, W_hh: ArrayLike, b: ArrayLike, d: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    W_xh = _array(W_xh, "W_xh")
    if W_xh.ndim != 2 or W_xh.shape[1] != d:
        raise ValueError(f"W_xh must have shape (H, D) with D = {d}; received {W_xh.shape}")
    h = W_xh.shape[0]
    W_hh, b = _array(W_hh, "W_hh"), _array(b, "b")
    _check_shape(W_hh, (h, h), "W_hh", "(H, H)")
    _check_shape(b, (h,), "b", "(H,)")
    return W_xh, W_hh, b


def rnn_forward(
    x: ArrayLike, h0: ArrayLike | None, W_xh: ArrayLike, W_hh: ArrayLike, b: ArrayLike
) -> tuple[np.ndarray, RNNCache]:
    r"""Unroll the vanilla RNN over a batch of sequences (discussion 6, section 1.3).

    .. math:: h_t = \tanh(W_{h,h} h_{t-1} + W_{x,h} x_t + B_h), \quad t = 1, \dots, T

    computed on batch-first rows as ``tanh(x_t @ W_xh.T + h_{t-1} @ W_hh.T + b)``.

    Arguments:
        x: inputs ``(N, T, D)``.
        h0: initial hidden state ``(N, H)``; ``None`` means zeros.
        W_xh: ``(H, D)``; W_hh: ``(H, H)``; b: ``(H,)`` (the notes' :math:`B_h`).

    Returns:
        ``(hs, cache)`` with ``hs (N, T, H)`` the hidden states ``h_1 .. h_T``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x, W_xh, W_hh = rng.normal(size=(2, 5, 3)), rng.normal(size=(4, 3)), np.eye(4)
        >>> hs, cache = rnn_forward(x, None, W_xh, W_hh, np.zeros(4))
        >>> hs.shape
        (2, 5, 4)
    """
    x = _check_x(x)
    n, steps, d = x.shape
    W_xh, W_hh, b = _check_rnn_params(W_xh, W_hh, b, d)
    h0 = _initial_state(h0, n, W_xh.shape[0], "h0")
    x_proj = x @ W_xh.T + b  # (N, T, H): the input term of every step at once
    hs = np.empty(x_proj.shape)
    h = h0
    for t in range(steps):
        h = np.tanh(x_proj[:, t] + h @ W_hh.T)  # (N, H)
        hs[:, t] = h
    return hs, RNNCache(x, h0, hs, W_xh, W_hh)


def rnn_backward(
    dhs: ArrayLike, cache: RNNCache
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    r"""Backpropagation through time for :func:`rnn_forward`.

    With :math:`a_t` the pre-activation and :math:`\delta_t = \partial J / \partial h_t` the
    total gradient reaching :math:`h_t` (its own term plus the one returned from :math:`t+1`):

    .. math::
        \frac{\partial J}{\partial a_t} = \delta_t \circ (1 - h_t^2), \qquad
        \delta_{t-1} = \frac{\partial J}{\partial h_{t-1}}\Big|_{\text{direct}}
            + \frac{\partial J}{\partial a_t} W_{h,h}, \qquad
        \frac{\partial J}{\partial W_{h,h}} = \sum_t \Big(\frac{\partial J}{\partial a_t}\Big)^\top
            h_{t-1}

    Arguments:
        dhs: ``dJ/dh_t`` for every step, ``(N, T, H)`` (zeros where the loss ignores a step).
        cache: from :func:`rnn_forward`.

    Returns:
        ``(dx, dh0, grads)`` with ``dx (N, T, D)``, ``dh0 (N, H)`` and
        ``grads = {"W_xh": (H, D), "W_hh": (H, H), "b": (H,)}``.
    """
    dhs = _array(dhs, "dhs")
    _check_shape(dhs, cache.hs.shape, "dhs", "the forward output's shape (N, T, H)")
    x, hs, W_xh, W_hh = cache.x, cache.hs, cache.W_xh, cache.W_hh
    steps = x.shape[1]
    da = np.empty(hs.shape)  # (N, T, H): dJ/da_t for every step
    dh_next = np.zeros_like(cache.h0)  # (N, H): gradient returned from step t + 1
    for t in reversed(range(steps)):
        da[:, t] = (dhs[:, t] + dh_next) * (1.0 - hs[:, t] ** 2)  # tanh'(a) = 1 - h^2
        dh_next = da[:, t] @ W_hh  # (N, H)
    h_prev = np.concatenate([cache.h0[:, None], hs[:, :-1]], axis=1)  # (N, T, H): h_0 .. h_{T-1}
    grads = {
        "W_xh": np.einsum("nth,ntd->hd", da, x),  # sum_t da_t^T x_t
        "W_hh": np.einsum("nth,ntk->hk", da, h_prev),  # sum_t da_t^T h_{t-1}
        "b": da.sum(axis=(0, 1)),
    }
    dx = da @ W_xh  # (N, T, D)
    return dx, dh_next, grads


class VanillaRNN:
    """The notes' ``VanillaRNN`` (problem "Coding RNNs Up!"), completed.

    Holds ``W_hh (H, H)``, ``W_xh (H, D)``, ``W_hy (M, H)``, ``Bh (H,)``, ``By (M,)`` and a
    ``hidden_state``, as in the notes' skeleton (which uses ``D = H = M = 3``). :meth:`step` is
    the notes' ``forward``: one timestep, updating the hidden state; :meth:`forward` and
    :meth:`backward` process whole batches of sequences with :func:`rnn_forward` and
    :func:`rnn_backward`.

    Arguments:
        input_size: ``D``. hidden_size: ``H``. output_size: ``M``.
        rng: a generator or a seed for the standard-normal initialisation (the notes'
            ``np.random.randn``, made reproducible).

    Example:
        >>> rnn = VanillaRNN(rng=0)
        >>> y = rnn.step(np.ones(3))  # h_1 = tanh(W_hh h_0 + W_xh x_1 + Bh); y_1 = W_hy h_1 + By
        >>> y.shape, rnn.hidden_state.shape
        ((3,), (3,))
    """

    def __init__(
        self,
        input_size: int = 3,
        hidden_size: int = 3,
        output_size: int = 3,
        rng: np.random.Generator | int = 0,
    ) -> None:
        for name, size in (("input", input_size), ("hidden", hidden_size), ("output", output_size)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"{name}_size must be an integer >= 1; received {size!r}")
        rng = np.random.default_rng(rng)
        self.W_hh = rng.standard_normal((hidden_size, hidden_size))
        self.W_xh = rng.standard_normal((hidden_size, input_size))
        self.W_hy = rng.standard_normal((output_size, hidden_size))
        self.Bh = rng.standard_normal(hidden_size)
        self.By = rng.standard_normal(output_size)
        self.hidden_state = np.zeros(hidden_size)

    def step(self, x: ArrayLike) -> np.ndarray:
        """Process one timestep ``x (D,)``: update the hidden state and return ``y_t (M,)``."""
        x = _array(x, "x")
        _check_shape(x, (self.W_xh.shape[1],), "x", "(D,)")
        # h_t = tanh(W_hh h_{t-1} + W_xh x_t + B_h)
        self.hidden_state = np.tanh(self.W_hh @ self.hidden_state + self.W_xh @ x + self.Bh)
        return self.W_hy @ self.hidden_state + self.By  # y_t = W_hy h_t + B_y

    def reset(self) -> None:
        """Forget the hidden state (zeros), before a new sequence."""
        self.hidden_state = np.zeros_like(self.hidden_state)

    def forward(self, x: ArrayLike, h0: ArrayLike | None = None) -> tuple[np.ndarray, RNNCache]:
        """Hidden states ``(N, T, H)`` of a batch ``x (N, T, D)``; see :func:`rnn_forward`."""
        return rnn_forward(x, h0, self.W_xh, self.W_hh, self.Bh)

    def output(self, hs: ArrayLike) -> np.ndarray:
        """The outputs ``y_t = W_hy h_t + B_y`` for hidden states ``(..., H)``."""
        return _array(hs, "hs") @ self.W_hy.T + self.By

    def backward(
        self, dhs: ArrayLike, cache: RNNCache
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``(dx, dh0, grads)``; ``grads["b"]`` is the gradient of ``Bh``. See rnn_backward."""
        return rnn_backward(dhs, cache)


# --------------------------------------------------------------------------------------------
# LSTM (section 2)


@dataclass(frozen=True)
class LSTMCache:
    """What :func:`lstm_backward` needs from :func:`lstm_forward`.

    Arguments:
        x: inputs ``(N, T, D)``. h0, c0: initial states ``(N, H)``.
        U: input weights of the gates stacked as ``(D, 4H)`` in the order of :data:`GATES`.
        W: recurrent weights stacked as ``(H, 4H)``.
        gates: activated gates ``(N, T, 4H)``: ``i_t, f_t, C~_t, o_t`` side by side.
        cs: cell states ``C_1 .. C_T``, ``(N, T, H)``. tanh_cs: ``tanh(C_t)``, ``(N, T, H)``.
        hs: hidden states ``h_1 .. h_T``, ``(N, T, H)``.
    """

    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    U: np.ndarray
    W: np.ndarray
    gates: np.ndarray
    cs: np.ndarray
    tanh_cs: np.ndarray
    hs: np.ndarray


def _stack_lstm_params(
    params: Mapping[str, ArrayLike], d: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(U (D, 4H), W (H, 4H), b (4H,))`` stacked in :data:`GATES` order, shapes checked."""
    required = [f"{kind}_{g}" for g in GATES for kind in ("U", "W")]
    missing = [key for key in required if key not in params]
    if missing:
        raise ValueError(
            f"LSTM params need the keys {required} (b_<gate> optional); missing {missing}"
        )
    unknown = sorted(set(params) - set(required) - {f"b_{g}" for g in GATES})
    if unknown:
        raise ValueError(f"unknown LSTM param keys {unknown}; expected U_<g>, W_<g>, b_<g>")
    U0 = _array(params["U_i"], "U_i")
    if U0.ndim != 2 or (d is not None and U0.shape[0] != d):
        raise ValueError(f"U_i must have shape (D, H) with D = {d}; received {U0.shape}")
    d, h = U0.shape
    Us, Ws, bs = [], [], []
    for g in GATES:
        U, W = _array(params[f"U_{g}"], f"U_{g}"), _array(params[f"W_{g}"], f"W_{g}")
        b = _array(params.get(f"b_{g}", np.zeros(h)), f"b_{g}")
        _check_shape(U, (d, h), f"U_{g}", "(D, H)")
        _check_shape(W, (h, h), f"W_{g}", "(H, H)")
        _check_shape(b, (h,), f"b_{g}", "(H,)")
        Us.append(U)
        Ws.append(W)
        bs.append(b)
    return np.concatenate(Us, axis=1), np.concatenate(Ws, axis=1), np.concatenate(bs)


def lstm_init_params(
    input_size: int, hidden_size: int, rng: np.random.Generator | int = 0, bias: bool = True
) -> dict[str, np.ndarray]:
    """Random LSTM parameters ``U_g (D, H)``, ``W_g (H, H)`` (and ``b_g (H,)`` if ``bias``).

    Entries are uniform on ``[-1/sqrt(H), 1/sqrt(H)]``, torch's ``nn.LSTM`` initialisation.
    """
    for name, size in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{name} must be an integer >= 1; received {size!r}")
    rng = np.random.default_rng(rng)
    bound = 1.0 / np.sqrt(hidden_size)
    params = {}
    for g in GATES:
        params[f"U_{g}"] = rng.uniform(-bound, bound, (input_size, hidden_size))
        params[f"W_{g}"] = rng.uniform(-bound, bound, (hidden_size, hidden_size))
        if bias:
            params[f"b_{g}"] = rng.uniform(-bound, bound, hidden_size)
    return params


def lstm_forward(
    x: ArrayLike,
    h0: ArrayLike | None,
    c0: ArrayLike | None,
    params: Mapping[str, ArrayLike],
) -> tuple[np.ndarray, LSTMCache]:
    r"""Unroll the notes' LSTM over a batch of sequences (discussion 6, section 2).

    .. math::
        (i_t, f_t, o_t) = \sigma(x_t U^{i,f,o} + h_{t-1} W^{i,f,o} + b^{i,f,o}), \quad
        \tilde C_t = \tanh(x_t U^g + h_{t-1} W^g + b^g), \\
        C_t = f_t \circ C_{t-1} + i_t \circ \tilde C_t, \qquad h_t = \tanh(C_t) \circ o_t

    Arguments:
        x: inputs ``(N, T, D)``.
        h0, c0: initial hidden and cell states ``(N, H)``; ``None`` means zeros.
        params: ``U_<g> (D, H)``, ``W_<g> (H, H)`` and optionally ``b_<g> (H,)`` for
            ``g in ("i", "f", "g", "o")``; a missing bias is zero (the notes' bias-free cell).

    Returns:
        ``(hs, cache)``: the hidden states ``h_1 .. h_T`` ``(N, T, H)``; the final cell state
        is ``cache.cs[:, -1]``.

    Example:
        >>> params = lstm_init_params(3, 4, rng=0)
        >>> hs, cache = lstm_forward(np.ones((2, 5, 3)), None, None, params)
        >>> hs.shape, cache.cs[:, -1].shape
        ((2, 5, 4), (2, 4))
    """
    x = _check_x(x)
    n, steps, d = x.shape
    U, W, b = _stack_lstm_params(params, d)
    h = W.shape[0]
    h_prev = _initial_state(h0, n, h, "h0")
    c_prev = _initial_state(c0, n, h, "c0")
    h0_, c0_ = h_prev, c_prev
    x_proj = x @ U + b  # (N, T, 4H): x_t U^g + b^g for every gate and step at once
    gates = np.empty(x_proj.shape)  # (N, T, 4H)
    cs, tanh_cs, hs = (np.empty((n, steps, h)) for _ in range(3))
    for t in range(steps):
        a = x_proj[:, t] + h_prev @ W  # (N, 4H): pre-activations a^i, a^f, a^g, a^o
        i, f = _sigmoid(a[:, :h]), _sigmoid(a[:, h : 2 * h])
        g, o = np.tanh(a[:, 2 * h : 3 * h]), _sigmoid(a[:, 3 * h :])
        c_prev = f * c_prev + i * g  # C_t = f_t o C_{t-1} + i_t o C~_t
        tanh_c = np.tanh(c_prev)
        h_prev = tanh_c * o  # h_t = tanh(C_t) o o_t
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)  # (N, 4H)
        cs[:, t], tanh_cs[:, t], hs[:, t] = c_prev, tanh_c, h_prev
    return hs, LSTMCache(x, h0_, c0_, U, W, gates, cs, tanh_cs, hs)


def lstm_backward(
    dhs: ArrayLike, cache: LSTMCache, dcT: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    r"""Backpropagation through time for :func:`lstm_forward` (problem "Backpropagation Through
    LSTM").

    Walking back from :math:`t = T`, with :math:`\delta h_t` the total gradient reaching
    :math:`h_t` and :math:`\delta C_t` the one reaching :math:`C_t`:

    .. math::
        \delta C_t &\mathrel{+}= \delta h_t \circ o_t \circ (1 - \tanh^2 C_t), \qquad
        \delta a^o_t = \delta h_t \circ \tanh C_t \circ o_t (1 - o_t) \\
        \delta a^f_t &= \delta C_t \circ C_{t-1} \circ f_t (1 - f_t), \quad
        \delta a^i_t = \delta C_t \circ \tilde C_t \circ i_t (1 - i_t), \quad
        \delta a^g_t = \delta C_t \circ i_t \circ (1 - \tilde C_t^2) \\
        \delta C_{t-1} &= \delta C_t \circ f_t, \qquad
        \delta h_{t-1} = \frac{\partial J}{\partial h_{t-1}}\Big|_{\text{direct}}
            + \textstyle\sum_g \delta a^g_t (W^g)^\top \\
        \frac{\partial J}{\partial W^g} &= \textstyle\sum_t h_{t-1}^\top \delta a^g_t, \quad
        \frac{\partial J}{\partial U^g} = \sum_t x_t^\top \delta a^g_t, \quad
        \frac{\partial J}{\partial b^g} = \sum_t \mathbf{1}^\top \delta a^g_t

    Arguments:
        dhs: ``dJ/dh_t`` for every step, ``(N, T, H)``.
        cache: from :func:`lstm_forward`.
        dcT: ``dJ/dC_T`` when the loss reads the final cell state, ``(N, H)``; ``None``: zero.

    Returns:
        ``(dx, dh0, dc0, grads)`` with ``dx (N, T, D)``, ``dh0, dc0 (N, H)`` and ``grads`` holding
        ``U_<g> (D, H)``, ``W_<g> (H, H)`` and ``b_<g> (H,)`` for every gate (the bias gradients
        are returned even when the forward pass ran without biases).
    """
    hs = cache.hs
    dhs = _array(dhs, "dhs")
    _check_shape(dhs, hs.shape, "dhs", "the forward output's shape (N, T, H)")
    n, steps, h = hs.shape
    dc_next = np.zeros((n, h)) if dcT is None else _array(dcT, "dcT")
    _check_shape(dc_next, (n, h), "dcT", "(N, H)")
    dh_next = np.zeros((n, h))
    da = np.empty(cache.gates.shape)  # (N, T, 4H): dJ/da^g_t for every gate and step
    for t in reversed(range(steps)):
        gate = cache.gates[:, t]
        i, f, g, o = gate[:, :h], gate[:, h : 2 * h], gate[:, 2 * h : 3 * h], gate[:, 3 * h :]
        c_prev = cache.c0 if t == 0 else cache.cs[:, t - 1]
        tanh_c = cache.tanh_cs[:, t]
        dh = dhs[:, t] + dh_next  # (N, H)
        dc = dc_next + dh * o * (1.0 - tanh_c**2)  # the path C_t -> h_t joins the cell path
        da[:, t] = np.concatenate(
            [
                dc * g * i * (1.0 - i),  # input gate
                dc * c_prev * f * (1.0 - f),  # forget gate
                dc * i * (1.0 - g**2),  # candidate C~_t
                dh * tanh_c * o * (1.0 - o),  # output gate
            ],
            axis=1,
        )
        dc_next = dc * f  # dC_t/dC_{t-1} = diag(f_t): the additive memory path
        dh_next = da[:, t] @ cache.W.T  # (N, H)
    h_prev = np.concatenate([cache.h0[:, None], hs[:, :-1]], axis=1)  # (N, T, H): h_0 .. h_{T-1}
    dU = np.einsum("ntd,ntk->dk", cache.x, da)  # (D, 4H): sum_t x_t^T da_t
    dW = np.einsum("nth,ntk->hk", h_prev, da)  # (H, 4H): sum_t h_{t-1}^T da_t
    db = da.sum(axis=(0, 1))  # (4H,)
    grads = {}
    for k, gname in enumerate(GATES):
        cols = slice(k * h, (k + 1) * h)
        grads[f"U_{gname}"] = dU[:, cols]
        grads[f"W_{gname}"] = dW[:, cols]
        grads[f"b_{gname}"] = db[cols]
    dx = da @ cache.U.T  # (N, T, D)
    return dx, dh_next, dc_next, grads


def lstm_params_to_torch(params: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """The notes' LSTM parameters in ``torch.nn.LSTM``'s layout (one layer).

    Returns ``{"weight_ih": (4H, D), "weight_hh": (4H, H), "bias_ih": (4H,), "bias_hh": (4H,)}``
    with rows stacked i, f, g, o: ``weight_ih = [U^i.T; U^f.T; U^g.T; U^o.T]``, likewise
    ``weight_hh`` from ``W^g``; ``bias_ih`` holds ``b^g`` and ``bias_hh`` is zero (torch adds the
    two, so only their sum matters). Load them as ``lstm.weight_ih_l0`` and so on.
    """
    U, W, b = _stack_lstm_params(params)
    return {
        "weight_ih": np.ascontiguousarray(U.T),  # (4H, D)
        "weight_hh": np.ascontiguousarray(W.T),  # (4H, H)
        "bias_ih": b.copy(),
        "bias_hh": np.zeros_like(b),
    }


def lstm_params_from_torch(
    weight_ih: ArrayLike,
    weight_hh: ArrayLike,
    bias_ih: ArrayLike | None = None,
    bias_hh: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """The inverse of :func:`lstm_params_to_torch`: ``b^g = bias_ih + bias_hh`` per gate."""
    weight_ih, weight_hh = _array(weight_ih, "weight_ih"), _array(weight_hh, "weight_hh")
    if weight_hh.ndim != 2 or weight_hh.shape[0] != 4 * weight_hh.shape[1]:
        raise ValueError(f"weight_hh must have shape (4H, H); received {weight_hh.shape}")
    h = weight_hh.shape[1]
    if weight_ih.ndim != 2 or weight_ih.shape[0] != 4 * h:
        raise ValueError(
            f"weight_ih must have shape (4H, D) with 4H = {4 * h}; received {weight_ih.shape}"
        )
    bias = np.zeros(4 * h)
    for name, value in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if value is not None:
            value = _array(value, name)
            _check_shape(value, (4 * h,), name, "(4H,)")
            bias = bias + value
    params = {}
    for k, g in enumerate(GATES):
        rows = slice(k * h, (k + 1) * h)
        params[f"U_{g}"] = weight_ih[rows].T.copy()  # (D, H)
        params[f"W_{g}"] = weight_hh[rows].T.copy()  # (H, H)
        params[f"b_{g}"] = bias[rows].copy()
    return params
