"""Vanilla RNN and LSTM by hand against torch (nn.RNN, nn.LSTM, autograd) and finite differences."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.mechanics import recurrent
from deepnotes.mechanics.gradcheck import numerical_gradient, relative_error
from deepnotes.mechanics.recurrent import (
    GATES,
    VanillaRNN,
    lstm_backward,
    lstm_forward,
    lstm_init_params,
    lstm_params_from_torch,
    lstm_params_to_torch,
    rnn_backward,
    rnn_forward,
)

TOL = 1e-7
small = st.integers(1, 3)
seeds = st.integers(0, 2**16)


def _flat(grads: dict[str, np.ndarray], keys: dict) -> np.ndarray:
    """Every gradient in one vector: the relative error of the whole gradient, so that a tiny
    entry's finite-difference round-off (~1e-10 absolute) is measured against the gradient's
    scale rather than its own."""
    return np.concatenate([np.ravel(grads[k]) for k in keys])


def _rnn_case(seed: int, n: int, steps: int, d: int, h: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(n, steps, d)),
        "h0": rng.normal(size=(n, h)),
        "W_xh": rng.normal(size=(h, d)),
        "W_hh": 0.7 * rng.normal(size=(h, h)),
        "b": rng.normal(size=h),
        "dhs": rng.normal(size=(n, steps, h)),
    }


def _torch_rnn(c: dict[str, np.ndarray], bias_split: np.ndarray) -> torch.nn.RNN:
    """nn.RNN with weight_ih = W_xh, weight_hh = W_hh and bias_ih + bias_hh = b."""
    h, d = c["W_xh"].shape
    rnn = torch.nn.RNN(d, h, nonlinearity="tanh", batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(c["W_xh"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(c["W_hh"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(c["b"] - bias_split))
        rnn.bias_hh_l0.copy_(torch.from_numpy(bias_split))
    return rnn


def _torch_lstm(params: dict[str, np.ndarray]) -> torch.nn.LSTM:
    d, h = params["U_i"].shape
    lstm = torch.nn.LSTM(d, h, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for name, value in lstm_params_to_torch(params).items():
            getattr(lstm, f"{name}_l0").copy_(torch.from_numpy(value))
    return lstm


def test_module_imports_numpy_and_stdlib_only() -> None:
    tree = ast.parse(Path(recurrent.__file__).read_text(encoding="utf-8"))
    roots = {
        (alias.name if isinstance(node, ast.Import) else node.module).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert roots <= {"__future__", "collections", "dataclasses", "numpy"}, roots


# --------------------------------------------------------------------------------------------
# vanilla RNN


def test_rnn_forward_matches_nn_rnn_with_weights_mapped() -> None:
    c = _rnn_case(0, 3, 6, 4, 5)
    hs, cache = rnn_forward(c["x"], c["h0"], c["W_xh"], c["W_hh"], c["b"])
    split = np.random.default_rng(1).normal(size=5)  # only bias_ih + bias_hh matters
    ref, h_last = _torch_rnn(c, split)(torch.from_numpy(c["x"]), torch.from_numpy(c["h0"])[None])
    np.testing.assert_allclose(hs, ref.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(hs[:, -1], h_last[0].detach().numpy(), rtol=0, atol=1e-12)
    assert cache.hs is hs


def test_rnn_forward_follows_the_notes_equation_step_by_step() -> None:
    c = _rnn_case(2, 1, 4, 3, 3)
    hs, _ = rnn_forward(c["x"], None, c["W_xh"], c["W_hh"], c["b"])
    h = np.zeros(3)
    for t in range(4):  # h_t = tanh(W_hh h_{t-1} + W_xh x_t + B_h), column vectors
        h = np.tanh(c["W_hh"] @ h + c["W_xh"] @ c["x"][0, t] + c["b"])
        np.testing.assert_allclose(hs[0, t], h, rtol=0, atol=1e-14)


@settings(max_examples=8, deadline=None)
@given(seeds, small, st.integers(1, 4), small, small)
def test_rnn_backward_matches_autograd_and_finite_differences(
    seed: int, n: int, steps: int, d: int, h: int
) -> None:
    c = _rnn_case(seed, n, steps, d, h)
    _, cache = rnn_forward(c["x"], c["h0"], c["W_xh"], c["W_hh"], c["b"])
    dx, dh0, grads = rnn_backward(c["dhs"], cache)
    ours = {"x": dx, "h0": dh0, **grads}

    # torch autograd through nn.RNN
    rnn = _torch_rnn(c, np.zeros(h))
    tx, th0 = (torch.tensor(c[k], requires_grad=True) for k in ("x", "h0"))
    out, _ = rnn(tx, th0[None])
    auto = torch.autograd.grad(
        (out * torch.from_numpy(c["dhs"])).sum(),
        (tx, th0, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0),
    )
    for name, ref in zip(("x", "h0", "W_xh", "W_hh", "b"), auto, strict=True):
        assert relative_error(ours[name], ref.numpy()) < TOL, name

    # centred finite differences of J = sum(dhs * hs)
    args = {k: c[k].copy() for k in ("x", "h0", "W_xh", "W_hh", "b")}

    def loss(_: np.ndarray) -> float:
        out, _ = rnn_forward(args["x"], args["h0"], args["W_xh"], args["W_hh"], args["b"])
        return float(np.sum(c["dhs"] * out))

    numeric = {name: numerical_gradient(loss, args[name]) for name in args}
    assert relative_error(_flat(ours, args), _flat(numeric, args)) < TOL


def test_vanilla_rnn_class_completes_the_notes_skeleton() -> None:
    rnn = VanillaRNN(rng=0)  # the notes' sizes: D = H = M = 3
    assert rnn.W_hh.shape == rnn.W_xh.shape == rnn.W_hy.shape == (3, 3)
    assert rnn.hidden_state.shape == (3,) and not rnn.hidden_state.any()
    xs = np.random.default_rng(1).normal(size=(5, 3))
    ys, states = [], []
    for x_t in xs:
        ys.append(rnn.step(x_t))
        states.append(rnn.hidden_state.copy())
    hs, cache = rnn.forward(xs[None])
    np.testing.assert_allclose(hs[0], np.array(states), rtol=0, atol=1e-14)
    np.testing.assert_allclose(rnn.output(hs)[0], np.array(ys), rtol=0, atol=1e-14)
    dx, dh0, grads = rnn.backward(np.ones_like(hs), cache)
    assert dx.shape == (1, 5, 3) and dh0.shape == (1, 3) and grads["b"].shape == (3,)
    rnn.reset()
    assert not rnn.hidden_state.any()
    assert np.array_equal(VanillaRNN(rng=7).W_xh, VanillaRNN(rng=7).W_xh)  # seeded


def test_rnn_errors_name_expected_and_received_shapes() -> None:
    c = _rnn_case(0, 2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"x must be 3-D \(N, T, D\).*received shape \(3, 4\)"):
        rnn_forward(c["x"][0], None, c["W_xh"], c["W_hh"], c["b"])
    with pytest.raises(ValueError, match=r"W_xh must have shape \(H, D\) with D = 4; received"):
        rnn_forward(c["x"], None, c["W_xh"].T, c["W_hh"], c["b"])
    with pytest.raises(ValueError, match=r"W_hh must have shape \(H, H\) = \(5, 5\); received"):
        rnn_forward(c["x"], None, c["W_xh"], c["W_hh"][:4], c["b"])
    with pytest.raises(ValueError, match=r"h0 must have shape \(N, H\) = \(2, 5\); received \(5,"):
        rnn_forward(c["x"], c["h0"][0], c["W_xh"], c["W_hh"], c["b"])
    _, cache = rnn_forward(c["x"], None, c["W_xh"], c["W_hh"], c["b"])
    with pytest.raises(ValueError, match=r"dhs must have shape .* = \(2, 3, 5\); received"):
        rnn_backward(c["dhs"][:, :2], cache)
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1; received 0"):
        VanillaRNN(hidden_size=0)
    with pytest.raises(ValueError, match=r"x must have shape \(D,\) = \(3,\); received \(4,\)"):
        VanillaRNN().step(np.ones(4))


# --------------------------------------------------------------------------------------------
# LSTM


def _lstm_case(seed: int, n: int, steps: int, d: int, h: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "params": lstm_init_params(d, h, rng=rng),
        "x": rng.normal(size=(n, steps, d)),
        "h0": rng.normal(size=(n, h)),
        "c0": rng.normal(size=(n, h)),
        "dhs": rng.normal(size=(n, steps, h)),
        "dcT": rng.normal(size=(n, h)),
    }


def test_lstm_forward_matches_nn_lstm_with_weights_mapped() -> None:
    c = _lstm_case(0, 3, 7, 4, 5)
    hs, cache = lstm_forward(c["x"], c["h0"], c["c0"], c["params"])
    lstm = _torch_lstm(c["params"])
    out, (h_last, c_last) = lstm(
        torch.from_numpy(c["x"]), (torch.from_numpy(c["h0"])[None], torch.from_numpy(c["c0"])[None])
    )
    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(cache.cs[:, -1], c_last[0].detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(hs[:, -1], h_last[0].detach().numpy(), rtol=0, atol=1e-12)


def test_torch_layout_stacks_gates_i_f_g_o_and_round_trips() -> None:
    params = lstm_init_params(3, 4, rng=1)
    layout = lstm_params_to_torch(params)
    assert layout["weight_ih"].shape == (16, 3) and layout["weight_hh"].shape == (16, 4)
    for k, g in enumerate(GATES):
        np.testing.assert_array_equal(layout["weight_ih"][4 * k : 4 * (k + 1)], params[f"U_{g}"].T)
        np.testing.assert_array_equal(layout["weight_hh"][4 * k : 4 * (k + 1)], params[f"W_{g}"].T)
    assert not layout["bias_hh"].any()
    back = lstm_params_from_torch(**layout)
    for key, value in params.items():
        np.testing.assert_array_equal(back[key], value)


def test_deviation_bias_free_call_is_the_notes_cell_literally() -> None:
    """Deviation pinned: without ``b_<g>`` keys the cell is the notes' bias-free LSTM."""
    c = _lstm_case(3, 2, 4, 3, 4)
    p = {k: v for k, v in c["params"].items() if not k.startswith("b_")}
    hs, _ = lstm_forward(c["x"], c["h0"], c["c0"], p)

    def sigma(z: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-z))

    h, C = c["h0"], c["c0"]
    for t in range(4):  # the notes' six equations, verbatim
        x_t = c["x"][:, t]
        f_t = sigma(x_t @ p["U_f"] + h @ p["W_f"])
        i_t = sigma(x_t @ p["U_i"] + h @ p["W_i"])
        o_t = sigma(x_t @ p["U_o"] + h @ p["W_o"])
        C_tilde = np.tanh(x_t @ p["U_g"] + h @ p["W_g"])
        C = f_t * C + i_t * C_tilde
        h = np.tanh(C) * o_t
        np.testing.assert_allclose(hs[:, t], h, rtol=0, atol=1e-14)


def test_deviation_torch_two_biases_sum_to_our_one() -> None:
    """Deviation pinned: nn.LSTM with any (bias_ih, bias_hh) is ours with b = bias_ih + bias_hh,
    and torch's o * tanh(c) is the notes' tanh(C) * o."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64)  # random biases, both
    state = {k.removesuffix("_l0"): v.detach().numpy() for k, v in lstm.named_parameters()}
    assert np.abs(state["bias_hh"]).max() > 0
    params = lstm_params_from_torch(**state)
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    hs, _ = lstm_forward(x, None, None, params)
    ref, _ = lstm(torch.from_numpy(x))
    np.testing.assert_allclose(hs, ref.detach().numpy(), rtol=0, atol=1e-12)


@settings(max_examples=8, deadline=None)
@given(seeds, small, st.integers(1, 4), small, small)
def test_lstm_backward_matches_autograd_and_finite_differences(
    seed: int, n: int, steps: int, d: int, h: int
) -> None:
    c = _lstm_case(seed, n, steps, d, h)
    params = c["params"]
    _, cache = lstm_forward(c["x"], c["h0"], c["c0"], params)
    dx, dh0, dc0, grads = lstm_backward(c["dhs"], cache, c["dcT"])

    # torch autograd through nn.LSTM; weight gradients mapped back to the notes' layout
    lstm = _torch_lstm(params)
    tx, th0, tc0 = (torch.tensor(c[k], requires_grad=True) for k in ("x", "h0", "c0"))
    out, (_, c_last) = lstm(tx, (th0[None], tc0[None]))
    J = (out * torch.from_numpy(c["dhs"])).sum() + (c_last[0] * torch.from_numpy(c["dcT"])).sum()
    auto = torch.autograd.grad(
        J, (tx, th0, tc0, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0)
    )
    for ours, ref in zip((dx, dh0, dc0), auto[:3], strict=True):
        assert relative_error(ours, ref.numpy()) < TOL
    auto_params = lstm_params_from_torch(*(a.numpy() for a in auto[3:]))
    for key in grads:
        assert relative_error(grads[key], auto_params[key]) < TOL, key

    # centred finite differences of J = sum(dhs * hs) + sum(dcT * C_T)
    inputs = {k: c[k].copy() for k in ("x", "h0", "c0")}
    p = {k: v.copy() for k, v in params.items()}

    def loss(_: np.ndarray) -> float:
        out, cache = lstm_forward(inputs["x"], inputs["h0"], inputs["c0"], p)
        return float(np.sum(c["dhs"] * out) + np.sum(c["dcT"] * cache.cs[:, -1]))

    numeric = {k: numerical_gradient(loss, v) for k, v in (inputs | p).items()}
    ours = {"x": dx, "h0": dh0, "c0": dc0, **grads}
    assert relative_error(_flat(ours, numeric), _flat(numeric, numeric)) < TOL


def test_lstm_without_dcT_and_without_biases_still_returns_every_gradient() -> None:
    c = _lstm_case(5, 2, 3, 2, 3)
    p = {k: v for k, v in c["params"].items() if not k.startswith("b_")}
    _, cache = lstm_forward(c["x"], None, None, p)
    dx, dh0, dc0, grads = lstm_backward(c["dhs"], cache)
    assert set(grads) == {f"{kind}_{g}" for g in GATES for kind in "UWb"}
    assert dx.shape == c["x"].shape and dh0.shape == dc0.shape == (2, 3)


def test_lstm_errors_name_expected_and_received() -> None:
    c = _lstm_case(0, 2, 3, 4, 5)
    params = c["params"]
    with pytest.raises(ValueError, match=r"missing \['W_o'\]"):
        lstm_forward(c["x"], None, None, {k: v for k, v in params.items() if k != "W_o"})
    with pytest.raises(ValueError, match=r"unknown LSTM param keys \['V_i'\]"):
        lstm_forward(c["x"], None, None, {**params, "V_i": params["U_i"]})
    with pytest.raises(
        ValueError, match=r"U_i must have shape \(D, H\) with D = 3; received \(4, 5\)"
    ):
        lstm_forward(c["x"][..., :3], None, None, params)
    with pytest.raises(ValueError, match=r"W_f must have shape \(H, H\) = \(5, 5\); received"):
        lstm_forward(c["x"], None, None, {**params, "W_f": params["W_f"][:, :4]})
    with pytest.raises(ValueError, match=r"b_g must have shape \(H,\) = \(5,\); received \(4,\)"):
        lstm_forward(c["x"], None, None, {**params, "b_g": np.zeros(4)})
    with pytest.raises(ValueError, match=r"c0 must have shape \(N, H\) = \(2, 5\); received"):
        lstm_forward(c["x"], None, np.zeros((3, 5)), params)
    _, cache = lstm_forward(c["x"], None, None, params)
    with pytest.raises(ValueError, match=r"dcT must have shape \(N, H\) = \(2, 5\); received"):
        lstm_backward(c["dhs"], cache, np.zeros(5))
    with pytest.raises(ValueError, match=r"dhs must have shape .* received \(2, 3, 4\)"):
        lstm_backward(c["dhs"][..., :4], cache)
    with pytest.raises(ValueError, match=r"weight_ih must have shape \(4H, D\) with 4H = 20"):
        lstm_params_from_torch(np.zeros((16, 4)), np.zeros((20, 5)))
    with pytest.raises(ValueError, match=r"weight_hh must have shape \(4H, H\); received"):
        lstm_params_from_torch(np.zeros((20, 4)), np.zeros((20, 4)))
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1"):
        lstm_init_params(3, 0)
