r"""The notes' vanilla RNN and LSTM as batch-first PyTorch modules, and heads for the problem types.

Notes: discussion 6 ("Recurrent Neural Network"), section 1.1 "Types of Problems", section 1.3
"Vanilla RNN" and section 2 "Long Short Term Memory (LSTM)". The NumPy forward/backward of the
same cells is :mod:`deepnotes.mechanics.recurrent`; this module is the trained, autograd side.

**Vanilla RNN** (Elman, 1990), in the notes' column-vector orientation:

.. math:: h_t = \tanh(W_{h,h} h_{t-1} + W_{x,h} x_t + B_h), \qquad y_t = W_{h,y} h_t + B_y

``W_xh`` is ``(H, D)``, ``W_hh`` is ``(H, H)``, ``B_h`` is ``(H,)``; on batch-first rows the step
is ``tanh(x_t @ W_xh.T + h_{t-1} @ W_hh.T + B_h)``. The output map ``y_t = W_hy h_t + B_y`` is the
head's ``nn.Linear(H, M)`` (:class:`ManyToMany` and friends), so ``RNN`` returns hidden states
as ``torch.nn.RNN`` does. It equals ``nn.RNN(nonlinearity="tanh", batch_first=True)`` with
``weight_ih = W_xh``, ``weight_hh = W_hh``, ``bias_ih + bias_hh = B_h``.

**LSTM** (Hochreiter & Schmidhuber, 1997; forget gate: Gers, Schmidhuber & Cummins, 2000), in
the notes' row-vector orientation (the input multiplies from the left):

.. math::
    f_t &= \sigma(x_t U^f + h_{t-1} W^f + b^f), \quad
    i_t = \sigma(x_t U^i + h_{t-1} W^i + b^i), \quad
    o_t = \sigma(x_t U^o + h_{t-1} W^o + b^o) \\
    \tilde C_t &= \tanh(x_t U^g + h_{t-1} W^g + b^g), \quad
    C_t = f_t \circ C_{t-1} + i_t \circ \tilde C_t, \quad
    h_t = \tanh(C_t) \circ o_t

The four gates are stacked along the last axis in torch's order i, f, g, o: ``U`` is
``(D, 4H)`` ``= [U^i U^f U^g U^o]``, ``W`` is ``(H, 4H)``, ``b`` is ``(4H,)``. It equals
``nn.LSTM(batch_first=True)`` with ``weight_ih = U.T``, ``weight_hh = W.T``,
``bias_ih + bias_hh = b`` (:meth:`LSTM.load_torch`). The additive cell path
:math:`\partial C_t / \partial C_{t-1} = \mathrm{diag}(f_t)` (with the path through
:math:`h_{t-1}` blocked) is what the notes' problem "Vanishing Gradient in LSTMs" asks for:
:func:`forget_gate_product` computes it in closed form from the gates ``LSTM(...,
return_gates=True)`` exposes, :func:`cell_path_gradient` by autograd.

Deviation: the notes' LSTM has no bias; ours has one per gate by default (``bias=False`` gives
the notes' cell exactly), and ``forget_bias`` initialises :math:`b^f` to a constant (1.0 is the
usual choice, Gers et al. 2000; Jozefowicz et al. 2015). Torch's two redundant biases per gate
are summed into one when loading (tested).

Conventions: batch-first tensors, ``x (B, T, D)``, outputs ``(B, T, H)``. States follow
``torch.nn.RNN``/``nn.LSTM`` (layer-first, ``(num_layers, B, H)``) so that the heads accept
either implementation and weights/states move between them unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "LSTM",
    "RNN",
    "LSTMCell",
    "LSTMGates",
    "ManyToMany",
    "ManyToOne",
    "OneToMany",
    "OneToOne",
    "RNNCell",
    "cell_path_gradient",
    "forget_gate_product",
    "unroll",
]

LSTMState = tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------------------------
# validation


def _check_input(x: torch.Tensor, input_size: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor (B, T, D); received {type(x).__name__}")
    if x.dim() != 3 or x.shape[1] < 1 or x.shape[2] != input_size:
        raise ValueError(
            f"x must be batch-first (B, T, D) with T >= 1 and D = {input_size}; "
            f"received shape {tuple(x.shape)}"
        )


def _check_state(state: torch.Tensor, expected: tuple[int, ...], name: str) -> None:
    if tuple(state.shape) != expected:
        raise ValueError(
            f"{name} must have shape (num_layers, B, H) = {expected}; received {tuple(state.shape)}"
        )


def _uniform_(tensor: torch.Tensor, hidden_size: int) -> None:
    """torch's recurrent init: U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias."""
    bound = 1.0 / math.sqrt(hidden_size)
    nn.init.uniform_(tensor, -bound, bound)


# --------------------------------------------------------------------------------------------
# vanilla RNN (section 1.3)


class RNNCell(nn.Module):
    r"""One step of the notes' vanilla RNN: ``h_t = tanh(W_hh h_{t-1} + W_xh x_t + B_h)``.

    Arguments:
        input_size: ``D``; hidden_size: ``H``.
        bias: keep ``B_h`` (default True).

    Example:
        >>> cell = RNNCell(3, 4)
        >>> h = cell(torch.randn(2, 3), torch.zeros(2, 4))   # (2, 4)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W_xh = nn.Parameter(torch.empty(hidden_size, input_size))  # (H, D)
        self.W_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))  # (H, H)
        self.B_h = nn.Parameter(torch.empty(hidden_size)) if bias else None  # (H,)
        for p in self.parameters():
            _uniform_(p, hidden_size)

    def input_term(self, x: torch.Tensor) -> torch.Tensor:
        """``W_xh x + B_h`` for inputs of any leading shape ``(..., D) -> (..., H)``."""
        z = x @ self.W_xh.T
        return z if self.B_h is None else z + self.B_h

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``x (B, D)``, ``h (B, H)`` -> ``h_t (B, H)``."""
        return torch.tanh(self.input_term(x) + h @ self.W_hh.T)


class RNN(nn.Module):
    r"""The notes' vanilla tanh RNN over a sequence (drop-in for ``nn.RNN(batch_first=True)``).

    Arguments:
        input_size: ``D``; hidden_size: ``H``; num_layers: stacked layers (layer ``k > 0`` reads
            the hidden states of layer ``k - 1``).
        bias: keep ``B_h``.

    ``forward(x (B, T, D), h0 (L, B, H) | None) -> (hs (B, T, H), h_T (L, B, H))``: the hidden
    states of the last layer at every step, and every layer's final state (zeros if no ``h0``).

    Example:
        >>> rnn = RNN(3, 8)
        >>> hs, h_T = rnn(torch.randn(2, 5, 3))   # (2, 5, 8), (1, 2, 8)
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1; received {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias = bias
        self.cells = nn.ModuleList(
            RNNCell(input_size if k == 0 else hidden_size, hidden_size, bias)
            for k in range(num_layers)
        )

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(x, self.input_size)
        b, steps, _ = x.shape
        shape = (self.num_layers, b, self.hidden_size)
        if h0 is None:
            h0 = x.new_zeros(shape)
        _check_state(h0, shape, "h0")
        layer_in, finals = x, []
        for k, cell in enumerate(self.cells):
            x_term = cell.input_term(layer_in)  # (B, T, H): W_xh x_t + B_h for every step at once
            h, hs = h0[k], []
            for t in range(steps):
                h = torch.tanh(x_term[:, t] + h @ cell.W_hh.T)  # (B, H)
                hs.append(h)
            layer_in = torch.stack(hs, dim=1)  # (B, T, H)
            finals.append(h)
        return layer_in, torch.stack(finals)  # (B, T, H), (L, B, H)

    @torch.no_grad()
    def load_torch(self, rnn: nn.RNN) -> RNN:
        """Copy the weights of a tanh ``nn.RNN`` (``B_h = bias_ih + bias_hh``); returns self."""
        if rnn.nonlinearity != "tanh" or rnn.bidirectional:
            raise ValueError("load_torch expects a unidirectional tanh nn.RNN")
        _check_same_shape(self, rnn)
        for k, cell in enumerate(self.cells):
            cell.W_xh.copy_(getattr(rnn, f"weight_ih_l{k}"))
            cell.W_hh.copy_(getattr(rnn, f"weight_hh_l{k}"))
            if cell.B_h is not None:
                cell.B_h.copy_(getattr(rnn, f"bias_ih_l{k}") + getattr(rnn, f"bias_hh_l{k}"))
        return self


def _check_same_shape(ours: RNN | LSTM, theirs: nn.RNNBase) -> None:
    mine = (ours.input_size, ours.hidden_size, ours.num_layers, ours.bias)
    other = (theirs.input_size, theirs.hidden_size, theirs.num_layers, theirs.bias)
    if mine != other:
        raise ValueError(
            f"(input_size, hidden_size, num_layers, bias) must match: ours {mine}, torch's {other}"
        )


# --------------------------------------------------------------------------------------------
# LSTM (section 2)


@dataclass(frozen=True)
class LSTMGates:
    """The gate activations of one LSTM layer at every step, each ``(B, T, H)``.

    Arguments:
        i: input gate; f: forget gate; g: candidate (the notes' ``C~_t``); o: output gate.
        c: the cell states ``C_1 .. C_T``.
    """

    i: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    o: torch.Tensor
    c: torch.Tensor


class LSTMCell(nn.Module):
    r"""One step of the notes' LSTM: ``C_t = f_t C_{t-1} + i_t C~_t``, ``h_t = tanh(C_t) o_t``.

    Arguments:
        input_size: ``D``; hidden_size: ``H``.
        bias: keep the gate biases ``b`` (False: the notes' bias-free cell).
        forget_bias: if given, initialise ``b^f`` to this constant (e.g. 1.0); needs ``bias``.

    ``forward(x (B, D), (h, c) (B, H) each) -> (h_t, C_t, (i, f, g, o))``.

    Example:
        >>> cell = LSTMCell(3, 4, forget_bias=1.0)
        >>> h, c, (i, f, g, o) = cell(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 4)))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        if forget_bias is not None and not bias:
            raise ValueError("forget_bias needs bias=True; received bias=False")
        self.input_size, self.hidden_size = input_size, hidden_size
        # U = [U^i U^f U^g U^o] (D, 4H), W the same for h (H, 4H), b (4H,)
        self.U = nn.Parameter(torch.empty(input_size, 4 * hidden_size))  # (D, 4H)
        self.W = nn.Parameter(torch.empty(hidden_size, 4 * hidden_size))  # (H, 4H)
        self.b = nn.Parameter(torch.empty(4 * hidden_size)) if bias else None  # (4H,)
        for p in self.parameters():
            _uniform_(p, hidden_size)
        if forget_bias is not None:
            with torch.no_grad():
                self.b[hidden_size : 2 * hidden_size].fill_(float(forget_bias))

    def input_term(self, x: torch.Tensor) -> torch.Tensor:
        """``x U + b`` for inputs of any leading shape ``(..., D) -> (..., 4H)``."""
        z = x @ self.U
        return z if self.b is None else z + self.b

    def step(
        self, x_term: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """One step from the precomputed input term ``x_t U + b`` ``(B, 4H)``."""
        a = x_term + h @ self.W  # (B, 4H): the pre-activations of the four gates
        a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)  # each (B, H)
        i, f, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.sigmoid(a_o)
        g = torch.tanh(a_g)  # the candidate C~_t
        c = f * c + i * g  # C_t = f_t o C_{t-1} + i_t o C~_t
        h = torch.tanh(c) * o  # h_t = tanh(C_t) o o_t
        return h, c, (i, f, g, o)

    def forward(
        self, x: torch.Tensor, state: LSTMState
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        h, c = state
        return self.step(self.input_term(x), h, c)


class LSTM(nn.Module):
    r"""The notes' LSTM over a sequence (drop-in for ``nn.LSTM(batch_first=True)``).

    Arguments:
        input_size: ``D``; hidden_size: ``H``; num_layers: stacked layers.
        bias: keep the gate biases; forget_bias: initial value of every layer's ``b^f``.

    ``forward(x (B, T, D), state=(h0, c0) (L, B, H) each | None, return_gates=False)`` returns
    ``(hs (B, T, H), (h_T, C_T) (L, B, H) each)``, plus a list of :class:`LSTMGates` (one per
    layer) when ``return_gates``.

    Example:
        >>> lstm = LSTM(3, 8, forget_bias=1.0)
        >>> hs, (h_T, c_T), gates = lstm(torch.randn(2, 5, 3), return_gates=True)
        >>> gates[0].f.shape    # forget gates of layer 0: (2, 5, 8)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1; received {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias = bias
        self.cells = nn.ModuleList(
            LSTMCell(input_size if k == 0 else hidden_size, hidden_size, bias, forget_bias)
            for k in range(num_layers)
        )

    def forward(
        self,
        x: torch.Tensor,
        state: LSTMState | None = None,
        return_gates: bool = False,
    ):  # -> (hs, (h_T, C_T)) or (hs, (h_T, C_T), gates)
        _check_input(x, self.input_size)
        b, steps, _ = x.shape
        shape = (self.num_layers, b, self.hidden_size)
        if state is None:
            state = (x.new_zeros(shape), x.new_zeros(shape))
        h0, c0 = state
        _check_state(h0, shape, "h0")
        _check_state(c0, shape, "c0")
        layer_in, h_fin, c_fin, all_gates = x, [], [], []
        for k, cell in enumerate(self.cells):
            x_term = cell.input_term(layer_in)  # (B, T, 4H): x_t U + b for every step at once
            h, c = h0[k], c0[k]
            hs, record = [], []
            for t in range(steps):
                h, c, gates = cell.step(x_term[:, t], h, c)
                hs.append(h)
                if return_gates:
                    record.append((*gates, c))
            layer_in = torch.stack(hs, dim=1)  # (B, T, H)
            h_fin.append(h)
            c_fin.append(c)
            if return_gates:
                i, f, g, o, cs = (
                    torch.stack(z, dim=1) for z in zip(*record, strict=True)
                )  # (B, T, H)
                all_gates.append(LSTMGates(i=i, f=f, g=g, o=o, c=cs))
        final = (torch.stack(h_fin), torch.stack(c_fin))  # (L, B, H) each
        if return_gates:
            return layer_in, final, all_gates
        return layer_in, final

    @torch.no_grad()
    def load_torch(self, lstm: nn.LSTM) -> LSTM:
        """Copy an ``nn.LSTM``: ``U = weight_ih.T``, ``W = weight_hh.T``, ``b = sum of biases``."""
        if lstm.bidirectional or lstm.proj_size:
            raise ValueError("load_torch expects a unidirectional nn.LSTM without projections")
        _check_same_shape(self, lstm)
        for k, cell in enumerate(self.cells):
            cell.U.copy_(getattr(lstm, f"weight_ih_l{k}").T)
            cell.W.copy_(getattr(lstm, f"weight_hh_l{k}").T)
            if cell.b is not None:
                cell.b.copy_(getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"))
        return self


def unroll(
    cell: RNNCell | LSTMCell,
    x: torch.Tensor,
    state: torch.Tensor | LSTMState | None = None,
) -> list:
    r"""Run one cell over ``x (B, T, D)`` and return every step's state, as graph tensors.

    Unlike the stacked outputs of :class:`RNN`/:class:`LSTM`, these are the very tensors the
    next step reads, so ``torch.autograd.grad(loss, states)`` gives :math:`\partial L /
    \partial h_t` through the recurrence (what the time-lag experiments measure).

    Arguments:
        cell: an :class:`RNNCell` or :class:`LSTMCell`.
        x: inputs ``(B, T, D)``; state: ``h0 (B, H)`` or ``(h0, c0)``; zeros if None.

    Returns:
        ``T`` entries: ``h_t (B, H)`` for an RNN cell, ``(h_t, C_t)`` for an LSTM cell.

    Example:
        >>> hs = unroll(cell, x)
        >>> grads = torch.autograd.grad(hs[-1].pow(2).sum(), hs)   # dL/dh_t for every t
    """
    _check_input(x, cell.input_size)
    zeros = x.new_zeros(x.shape[0], cell.hidden_size)
    x_term = cell.input_term(x)  # (B, T, H) or (B, T, 4H)
    states = []
    if isinstance(cell, LSTMCell):
        h, c = (zeros, zeros) if state is None else state
        for t in range(x.shape[1]):
            h, c, _ = cell.step(x_term[:, t], h, c)
            states.append((h, c))
        return states
    h = zeros if state is None else state
    for t in range(x.shape[1]):
        h = torch.tanh(x_term[:, t] + h @ cell.W_hh.T)  # (B, H)
        states.append(h)
    return states


def forget_gate_product(f: torch.Tensor) -> torch.Tensor:
    r"""The cell-path gradient in closed form: ``out[:, t] = prod_{s > t} f_s = dC_T / dC_t``.

    With the path through :math:`h_{t-1}` blocked, :math:`\partial C_s / \partial C_{s-1} =
    \mathrm{diag}(f_s)`, so the chain from step ``t`` to the last step ``T`` is the elementwise
    product of the later forget gates (``out[:, T-1] = 1``).

    Arguments:
        f: forget gates ``(B, T, H)`` (e.g. ``LSTMGates.f``).

    Returns:
        ``(B, T, H)``, the diagonal of :math:`\partial C_T / \partial C_t` for every ``t``.
    """
    if f.dim() != 3:
        raise ValueError(f"f must be (B, T, H); received shape {tuple(f.shape)}")
    later = torch.cat([f[:, 1:], torch.ones_like(f[:, :1])], dim=1)  # (B, T, H): f_{t+1}, ..., 1
    # reverse cumulative product: out[:, t] = f_{t+1} * ... * f_T
    return later.flip(1).cumprod(1).flip(1)


def cell_path_gradient(
    cell: LSTMCell, x: torch.Tensor, state: LSTMState | None = None
) -> torch.Tensor:
    r"""Autograd's :math:`\partial C_T / \partial C_t` along the cell path, for every ``t``.

    Unrolls ``cell`` over ``x`` with the hidden-state feedback detached (so the gates do not
    depend on earlier cells and only :math:`C_{t-1} \to C_t` carries gradient), then
    differentiates :math:`\sum C_T` with respect to every :math:`C_t`. The Jacobian is diagonal
    (each unit's cell feeds only itself), so this returns its diagonal; it should equal
    :func:`forget_gate_product` of the same run's forget gates.

    Arguments:
        cell: an :class:`LSTMCell` (e.g. ``lstm.cells[0]``).
        x: inputs ``(B, T, D)``; state: ``(h0, c0)`` each ``(B, H)`` (zeros if None).

    Returns:
        ``(B, T, H)``; ``out[:, T-1]`` is 1.
    """
    _check_input(x, cell.input_size)
    b, steps, _ = x.shape
    if state is None:
        state = (x.new_zeros(b, cell.hidden_size), x.new_zeros(b, cell.hidden_size))
    h, c = state[0].detach(), state[1].detach()
    with torch.enable_grad():
        x_term = cell.input_term(x.detach())  # (B, T, 4H)
        cs = []
        for t in range(steps):
            h, c, _ = cell.step(x_term[:, t], h.detach(), c)  # h feedback blocked
            if not c.requires_grad:
                c.requires_grad_(True)
            cs.append(c)
        grads = torch.autograd.grad(cs[-1].sum(), cs, allow_unused=True)
    return torch.stack(
        [torch.ones_like(c) if g is None else g for g, c in zip(grads, cs, strict=True)], dim=1
    )  # (B, T, H)


# --------------------------------------------------------------------------------------------
# heads for the problem types (section 1.1)


class _Head(nn.Module):
    """A recurrent core plus the notes' output map ``y_t = W_hy h_t + B_y`` (``self.out``)."""

    def __init__(self, core: nn.Module, output_size: int) -> None:
        super().__init__()
        if getattr(core, "batch_first", True) is not True:
            raise ValueError("core must be batch-first (nn.RNN/nn.LSTM need batch_first=True)")
        if not hasattr(core, "hidden_size"):
            raise TypeError(f"core must expose hidden_size; received {type(core).__name__}")
        self.core = core
        self.out = nn.Linear(core.hidden_size, output_size)  # W_hy (M, H), B_y (M,)

    def _run(self, x: torch.Tensor, state=None):
        return self.core(x) if state is None else self.core(x, state)


class OneToOne(_Head):
    """One input, one output: a single recurrent step, ``x (B, D) -> y (B, M)``.

    Example:
        >>> OneToOne(RNN(3, 8), output_size=2)(torch.randn(4, 3)).shape   # (4, 2)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"x must be (B, D); received shape {tuple(x.shape)}")
        hs, _ = self._run(x[:, None])  # (B, 1, H)
        return self.out(hs[:, 0])  # (B, M)


class OneToMany(_Head):
    """One start input unrolled for ``steps`` steps, each output fed back as the next input.

    ``x_1 = x``, ``y_t = W_hy h_t + B_y``, ``x_{t+1} = y_t``; so ``output_size`` must equal the
    core's ``input_size``. ``forward(x (B, D), steps) -> ys (B, T, D)``.

    Example:
        >>> OneToMany(LSTM(3, 8), output_size=3)(torch.randn(4, 3), steps=6).shape  # (4, 6, 3)
    """

    def __init__(self, core: nn.Module, output_size: int) -> None:
        super().__init__(core, output_size)
        if core.input_size != output_size:
            raise ValueError(
                f"one-to-many feeds each output back as the next input, so output_size must "
                f"equal the core's input_size = {core.input_size}; received {output_size}"
            )

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"x must be (B, D); received shape {tuple(x.shape)}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1; received {steps}")
        state, inp, ys = None, x, []
        for _ in range(steps):
            hs, state = self._run(inp[:, None], state)  # (B, 1, H)
            inp = self.out(hs[:, 0])  # y_t (B, M), the next input
            ys.append(inp)
        return torch.stack(ys, dim=1)  # (B, T, M)


class ManyToOne(_Head):
    """A sequence in, one output from the last hidden state: ``x (B, T, D) -> y (B, M)``.

    ``lengths (B,)`` (optional) picks each sequence's last real step ``h_{len-1}`` when the
    batch is right-padded.

    Example:
        >>> ManyToOne(LSTM(2, 16), output_size=1)(torch.randn(4, 50, 2)).shape   # (4, 1)
    """

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        hs, _ = self._run(x)  # (B, T, H)
        if lengths is None:
            return self.out(hs[:, -1])  # (B, M)
        lengths = torch.as_tensor(lengths, device=hs.device)
        if lengths.shape != (hs.shape[0],) or bool(((lengths < 1) | (lengths > hs.shape[1])).any()):
            raise ValueError(
                f"lengths must be (B,) = ({hs.shape[0]},) with values in [1, {hs.shape[1]}]; "
                f"received {lengths.tolist()}"
            )
        last = hs[torch.arange(hs.shape[0], device=hs.device), lengths.long() - 1]  # (B, H)
        return self.out(last)


class ManyToMany(_Head):
    """A sequence in, an output at every step: ``x (B, T, D) -> ys (B, T, M)``.

    With :class:`RNN` as the core this is the notes' full vanilla RNN
    (``h_t = tanh(...)``, ``y_t = W_hy h_t + B_y``).

    Example:
        >>> ManyToMany(RNN(3, 3), output_size=3)(torch.randn(2, 7, 3)).shape   # (2, 7, 3)
    """

    def forward(self, x: torch.Tensor, state=None) -> torch.Tensor:
        hs, _ = self._run(x, state)  # (B, T, H)
        return self.out(hs)  # (B, T, M)
