"""The notes' RNN and LSTM against torch (float64, 1e-10), the problem-type heads, the cell path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepnotes.sequence.recurrent import (
    LSTM,
    RNN,
    LSTMCell,
    ManyToMany,
    ManyToOne,
    OneToMany,
    OneToOne,
    RNNCell,
    cell_path_gradient,
    forget_gate_product,
    unroll,
)

TOL = 1e-10  # float64: the same arithmetic in a different order


def _grads(loss: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, tensors))


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_rnn_equals_torch_values_and_gradients(num_layers: int, with_state: bool) -> None:
    torch.manual_seed(0)
    B, T, D, H = 3, 6, 4, 5
    theirs = nn.RNN(D, H, num_layers=num_layers, batch_first=True).double()
    with torch.no_grad():  # distinct redundant biases: ours must see only their sum
        for name, p in theirs.named_parameters():
            if "bias" in name:
                p.normal_()
    ours = RNN(D, H, num_layers=num_layers).double().load_torch(theirs)
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(num_layers, B, H, dtype=torch.float64) if with_state else None
    hs_t, hT_t = theirs(x) if h0 is None else theirs(x, h0)
    hs_o, hT_o = ours(x, h0)
    assert hs_o.shape == (B, T, H) and hT_o.shape == (num_layers, B, H)
    torch.testing.assert_close(hs_o, hs_t, atol=TOL, rtol=0)
    torch.testing.assert_close(hT_o, hT_t, atol=TOL, rtol=0)
    w = torch.randn(B, T, H, dtype=torch.float64)  # a generic loss on every output
    loss_t = (hs_t * w).sum() + hT_t.pow(2).sum()
    loss_o = (hs_o * w).sum() + hT_o.pow(2).sum()
    (gx_t,) = _grads(loss_t, x)
    (gx_o,) = _grads(loss_o, x)
    torch.testing.assert_close(gx_o, gx_t, atol=TOL, rtol=0)
    loss_t = (theirs(x)[0] * w).sum()
    loss_o = (ours(x)[0] * w).sum()
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    g_t = torch.autograd.grad(
        loss_t, [getattr(theirs, f"{n}_l{k}") for k in range(num_layers) for n in names]
    )
    g_o = torch.autograd.grad(loss_o, [p for c in ours.cells for p in (c.W_xh, c.W_hh, c.B_h)])
    for k in range(num_layers):
        g_xh, g_hhh, g_bh = g_o[3 * k : 3 * k + 3]
        g_ih, g_hh, g_b1, g_b2 = g_t[4 * k : 4 * k + 4]
        torch.testing.assert_close(g_xh, g_ih, atol=TOL, rtol=0)  # W_xh = weight_ih
        torch.testing.assert_close(g_hhh, g_hh, atol=TOL, rtol=0)
        torch.testing.assert_close(g_bh, g_b1, atol=TOL, rtol=0)  # d/dB_h = d/dbias_ih
        torch.testing.assert_close(g_b1, g_b2, atol=TOL, rtol=0)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_equals_torch_values_and_gradients(num_layers: int, with_state: bool) -> None:
    torch.manual_seed(1)
    B, T, D, H = 3, 7, 4, 5
    theirs = nn.LSTM(D, H, num_layers=num_layers, batch_first=True).double()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "bias" in name:
                p.normal_()
    ours = LSTM(D, H, num_layers=num_layers).double().load_torch(theirs)
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    state = None
    if with_state:
        state = tuple(torch.randn(num_layers, B, H, dtype=torch.float64) for _ in range(2))
    out_t = theirs(x) if state is None else theirs(x, state)
    hs_t, (hT_t, cT_t) = out_t
    hs_o, (hT_o, cT_o) = ours(x, state)
    for a, b in ((hs_o, hs_t), (hT_o, hT_t), (cT_o, cT_t)):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)
    w = torch.randn(B, T, H, dtype=torch.float64)

    def loss(hs: torch.Tensor, hT: torch.Tensor, cT: torch.Tensor) -> torch.Tensor:
        return (hs * w).sum() + hT.pow(2).sum() + cT.sin().sum()

    loss_t, loss_o = loss(hs_t, hT_t, cT_t), loss(hs_o, hT_o, cT_o)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    theirs_p = [getattr(theirs, f"{n}_l{k}") for k in range(num_layers) for n in names]
    ours_p = [p for cell in ours.cells for p in (cell.U, cell.W, cell.b)]
    g_t = torch.autograd.grad(loss_t, [x, *theirs_p])
    g_o = torch.autograd.grad(loss_o, [x, *ours_p])
    torch.testing.assert_close(g_o[0], g_t[0], atol=TOL, rtol=0)
    for k in range(num_layers):
        gU, gW, gb = g_o[1 + 3 * k : 4 + 3 * k]
        g_ih, g_hh, g_b1, g_b2 = g_t[1 + 4 * k : 5 + 4 * k]
        torch.testing.assert_close(gU, g_ih.T, atol=TOL, rtol=0)  # U = weight_ih.T
        torch.testing.assert_close(gW, g_hh.T, atol=TOL, rtol=0)
        torch.testing.assert_close(gb, g_b1, atol=TOL, rtol=0)
        torch.testing.assert_close(g_b1, g_b2, atol=TOL, rtol=0)


def test_lstm_cell_follows_the_notes_equations_literally() -> None:
    """Bias-free: the notes' cell exactly, each gate with its own U^g, W^g."""
    torch.manual_seed(2)
    D, H = 3, 4
    cell = LSTMCell(D, H, bias=False).double()
    x, h, c = (torch.randn(2, n, dtype=torch.float64) for n in (D, H, H))
    U = dict(zip("ifgo", cell.U.detach().chunk(4, dim=1), strict=True))
    W = dict(zip("ifgo", cell.W.detach().chunk(4, dim=1), strict=True))
    f = torch.sigmoid(x @ U["f"] + h @ W["f"])
    i = torch.sigmoid(x @ U["i"] + h @ W["i"])
    o = torch.sigmoid(x @ U["o"] + h @ W["o"])
    c_tilde = torch.tanh(x @ U["g"] + h @ W["g"])
    c_new = f * c + i * c_tilde
    h_new = torch.tanh(c_new) * o
    h_o, c_o, _ = cell(x, (h, c))
    torch.testing.assert_close(c_o, c_new, atol=1e-14, rtol=0)
    torch.testing.assert_close(h_o, h_new, atol=1e-14, rtol=0)


def test_rnn_cell_is_the_notes_step() -> None:
    torch.manual_seed(3)
    cell = RNNCell(3, 3).double()
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    expected = torch.tanh(h @ cell.W_hh.T + x @ cell.W_xh.T + cell.B_h)
    torch.testing.assert_close(cell(x, h), expected, atol=1e-14, rtol=0)


def test_forget_bias_initialises_only_the_forget_gate() -> None:
    lstm = LSTM(3, 4, num_layers=2, forget_bias=1.0)
    for cell in lstm.cells:
        b_i, b_f, b_g, b_o = cell.b.detach().chunk(4)
        assert torch.all(b_f == 1.0)
        assert not torch.all(b_i == 1.0) and b_g.abs().max() <= 0.5 and b_o.abs().max() <= 0.5
    with pytest.raises(ValueError, match="forget_bias needs bias=True"):
        LSTM(3, 4, bias=False, forget_bias=1.0)


def test_return_gates_exposes_the_run() -> None:
    torch.manual_seed(4)
    lstm = LSTM(3, 5).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    hs, (_, c_T), gates = lstm(x, return_gates=True)
    (g,) = gates
    assert g.f.shape == g.i.shape == g.g.shape == g.o.shape == g.c.shape == (2, 6, 5)
    torch.testing.assert_close(g.c[:, -1], c_T[0])
    torch.testing.assert_close(torch.tanh(g.c) * g.o, hs)  # h_t = tanh(C_t) o_t
    c_prev = torch.cat([torch.zeros_like(g.c[:, :1]), g.c[:, :-1]], dim=1)
    torch.testing.assert_close(g.c, g.f * c_prev + g.i * g.g)  # C_t = f C_{t-1} + i C~
    torch.testing.assert_close(lstm(x)[0], hs)


def test_forget_gate_product_equals_autograd_cell_path() -> None:
    """dC_T/dC_t = prod_{s>t} f_s once the h feedback is blocked (the notes' answer)."""
    torch.manual_seed(5)
    lstm = LSTM(3, 4, forget_bias=1.0).double()
    x = torch.randn(2, 12, 3, dtype=torch.float64)
    cell = lstm.cells[0]
    # the forget gates of the same run, with h detached, as the closed form sees them
    h = c = torch.zeros(2, 4, dtype=torch.float64)
    fs, hs = [], []
    for t in range(x.shape[1]):
        h, c, (_, f, _, _) = cell(x[:, t], (h.detach(), c))
        fs.append(f)
        hs.append(h.detach())
    closed = forget_gate_product(torch.stack(fs, dim=1).detach())
    auto = cell_path_gradient(cell, x)
    torch.testing.assert_close(auto, closed, atol=1e-12, rtol=0)
    assert torch.all(auto[:, -1] == 1)
    # the full Jacobian dC_T/dC_t from one start t is diagonal, with the product on it
    t0 = 4

    def c_final(c_start: torch.Tensor) -> torch.Tensor:
        c_ = c_start
        for t in range(t0 + 1, x.shape[1]):  # the run's h_{t-1}, held fixed (blocked)
            _, c_, _ = cell(x[:, t], (hs[t - 1], c_))
        return c_

    c_start = torch.randn(2, 4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(c_final, c_start)  # (B, H, B, H)
    diag = torch.einsum("bhbh->bh", jac)
    off = jac.clone()
    for b in range(2):
        for j in range(4):
            off[b, j, b, j] = 0
    assert off.abs().max() == 0
    torch.testing.assert_close(diag, closed[:, t0], atol=1e-12, rtol=0)


def test_without_blocking_the_cell_path_is_not_the_whole_gradient() -> None:
    """The h path adds to dC_T/dC_t when not detached: the blocking in the check matters."""
    torch.manual_seed(6)
    cell = LSTMCell(3, 4).double()
    x = torch.randn(1, 5, 3, dtype=torch.float64)

    def c_final(c_start: torch.Tensor) -> torch.Tensor:
        h_, c_ = torch.tanh(c_start), c_start  # h depends on C as in the real cell
        for t in range(1, 5):
            h_, c_, _ = cell(x[:, t], (h_, c_))
        return c_

    jac = torch.autograd.functional.jacobian(c_final, torch.randn(1, 4, dtype=torch.float64))
    off = jac[0, :, 0, :] - torch.diag(torch.diagonal(jac[0, :, 0, :]))
    assert off.abs().max() > 1e-6


# --------------------------------------------------------------------------------------------
# heads


@pytest.mark.parametrize("core_cls", [RNN, LSTM])
def test_head_shapes(core_cls: type) -> None:
    torch.manual_seed(7)
    B, T, D, H, M = 4, 6, 3, 8, 2
    x_seq, x_one = torch.randn(B, T, D), torch.randn(B, D)
    assert OneToOne(core_cls(D, H), M)(x_one).shape == (B, M)
    assert OneToMany(core_cls(D, H), D)(x_one, steps=T).shape == (B, T, D)
    assert ManyToOne(core_cls(D, H), M)(x_seq).shape == (B, M)
    assert ManyToMany(core_cls(D, H), M)(x_seq).shape == (B, T, M)


@pytest.mark.parametrize("core_cls", [RNN, LSTM])
def test_head_invariants(core_cls: type) -> None:
    torch.manual_seed(8)
    B, T, D, H, M = 3, 7, 3, 6, 3
    core = core_cls(D, H).double()
    many = ManyToMany(core, M).double()
    one = ManyToOne(core, M).double()
    one.out.load_state_dict(many.out.state_dict())
    x = torch.randn(B, T, D, dtype=torch.float64)
    torch.testing.assert_close(one(x), many(x)[:, -1])  # many-to-one = many-to-many's last step
    lengths = torch.tensor([7, 3, 1])
    y_len = one(x, lengths)
    for b, n in enumerate(lengths.tolist()):  # right padding is ignored up to the length
        torch.testing.assert_close(y_len[b], one(x[b : b + 1, :n])[0])
    single = OneToOne(core, M).double()
    single.out.load_state_dict(many.out.state_dict())
    x1 = torch.randn(B, D, dtype=torch.float64)
    torch.testing.assert_close(single(x1), many(x1[:, None])[:, 0])  # one step of many-to-many
    gen = OneToMany(core, M).double()
    gen.out.load_state_dict(many.out.state_dict())
    ys = gen(x1, steps=5)
    torch.testing.assert_close(ys[:, 0], single(x1))
    # unrolled with feedback = many-to-many run on the inputs (x1, y_1, ..., y_4)
    fed = torch.cat([x1[:, None], ys[:, :-1]], dim=1)
    torch.testing.assert_close(ys, many(fed))


def test_heads_accept_torch_cores() -> None:
    torch.manual_seed(9)
    theirs = nn.LSTM(3, 5, batch_first=True).double()
    ours = LSTM(3, 5).double().load_torch(theirs)
    head_t, head_o = ManyToMany(theirs, 2).double(), ManyToMany(ours, 2).double()
    head_o.out.load_state_dict(head_t.out.state_dict())
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(head_o(x), head_t(x), atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="batch-first"):
        ManyToMany(nn.LSTM(3, 5), 2)


def test_bad_input_names_expected_and_received() -> None:
    rnn, lstm = RNN(3, 4), LSTM(3, 4)
    with pytest.raises(ValueError, match=r"\(B, T, D\).*D = 3.*\(2, 5, 2\)"):
        rnn(torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match=r"h0 must have shape .*\(1, 2, 4\).*\(2, 4\)"):
        rnn(torch.randn(2, 5, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"c0 must have shape"):
        lstm(torch.randn(2, 5, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        lstm([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="output_size must equal the core's input_size = 3"):
        OneToMany(lstm, 2)
    with pytest.raises(ValueError, match=r"lengths must be \(B,\)"):
        ManyToOne(lstm, 1)(torch.randn(2, 5, 3), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="must match"):
        LSTM(3, 4).load_torch(nn.LSTM(3, 5, batch_first=True))


@pytest.mark.parametrize("cell_cls", [RNNCell, LSTMCell])
def test_unroll_gives_the_states_the_recurrence_reads(cell_cls: type) -> None:
    torch.manual_seed(10)
    cell = cell_cls(3, 4).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    states = unroll(cell, x)
    core = (RNN if cell_cls is RNNCell else LSTM)(3, 4).double()
    core.cells[0] = cell
    hs, _ = core(x)
    h_list = [s if cell_cls is RNNCell else s[0] for s in states]
    torch.testing.assert_close(torch.stack(h_list, dim=1), hs, atol=1e-14, rtol=0)
    grads = torch.autograd.grad(h_list[-1].pow(2).sum(), h_list)
    assert all(g.abs().sum() > 0 for g in grads)  # every earlier h_t feeds h_T
    if cell_cls is RNNCell:  # one step back by hand: dL/dh_{T-1} = dL/dh_T dh_T/dh_{T-1}
        prev = h_list[-2].detach().requires_grad_(True)
        (manual,) = torch.autograd.grad(cell(x[:, -1], prev), prev, grad_outputs=grads[-1])
        torch.testing.assert_close(manual, grads[-2], atol=1e-14, rtol=0)
