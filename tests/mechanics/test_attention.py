"""Attention by hand against F.scaled_dot_product_attention, nn.MultiheadAttention, autograd and
finite differences; masks, their properties, and the dot-product statistics."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.mechanics import attention
from deepnotes.mechanics.attention import (
    causal_mask,
    combine_masks,
    dot_product_monte_carlo,
    dot_product_scores,
    dot_product_stats,
    mask_from_torch,
    masked_softmax,
    mha_init_params,
    mha_params_to_torch,
    multihead_attention_backward,
    multihead_attention_forward,
    padding_mask,
    scaled_dot_product_attention,
    sdpa_backward,
)
from deepnotes.mechanics.gradcheck import numerical_gradient, relative_error

TOL = 1e-7
small = st.integers(1, 4)
seeds = st.integers(0, 2**16)


def _flat(grads: dict[str, np.ndarray], keys: dict) -> np.ndarray:
    """All gradients as one vector, so finite-difference round-off on a tiny entry is measured
    against the whole gradient's scale."""
    return np.concatenate([np.ravel(grads[k]) for k in keys])


def _random_mask(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random True = attend mask with at least one key per query (no empty softmax)."""
    mask = rng.random(shape) < 0.6
    first = rng.integers(0, shape[-1], size=shape[:-1])
    np.put_along_axis(mask, first[..., None], True, axis=-1)
    return mask


def _torch_mha(params: dict[str, np.ndarray], heads: int) -> torch.nn.MultiheadAttention:
    e = params["Wq"].shape[1]
    kdim = params["Wk"].shape[0]
    mha = torch.nn.MultiheadAttention(
        e, heads, batch_first=True, kdim=kdim, vdim=kdim, dtype=torch.float64
    )
    mha.load_state_dict({k: torch.from_numpy(v) for k, v in mha_params_to_torch(params).items()})
    return mha


def test_module_imports_numpy_and_stdlib_only() -> None:
    tree = ast.parse(Path(attention.__file__).read_text(encoding="utf-8"))
    roots = {
        (alias.name if isinstance(node, ast.Import) else node.module).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert roots <= {"__future__", "collections", "dataclasses", "math", "numpy"}, roots


# --------------------------------------------------------------------------------------------
# masks


def test_padding_and_causal_masks_and_their_combination() -> None:
    pad = padding_mask(np.array([3, 1]), 4)
    assert pad.shape == (2, 1, 4) and pad.dtype == bool
    assert pad[:, 0].tolist() == [[True, True, True, False], [True, False, False, False]]
    causal = causal_mask(4)
    assert causal.shape == (4, 4)
    assert all(causal[i, j] == (j <= i) for i in range(4) for j in range(4))
    both = combine_masks(pad, None, causal)
    assert both.shape == (2, 4, 4)
    np.testing.assert_array_equal(both, pad & causal)
    assert combine_masks(None, None) is None


def test_causal_mask_is_torchs_is_causal() -> None:
    """The notes' 'i <= j' is an erratum: the prose (no future) and torch agree on j <= i."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 5, 3)) for _ in range(3))
    ours, _ = scaled_dot_product_attention(q, k, v, causal_mask(5))
    ref = F.scaled_dot_product_attention(*map(torch.from_numpy, (q, k, v)), is_causal=True)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=0, atol=1e-12)


def test_mask_from_torch_inverts_the_convention() -> None:
    attn = np.triu(np.ones((3, 4), bool), 1)  # torch: True = masked
    kpm = np.array([[False, False, False, True], [False] * 4])
    ours = mask_from_torch(attn, kpm)
    assert ours.shape == (2, 3, 4)
    np.testing.assert_array_equal(ours, ~attn & ~kpm[:, None, :])
    per_head = np.zeros((2 * 3, 3, 4), bool)  # (N*H, Tq, Tk)
    per_head[1, 0, 0] = True  # batch 0, head 1
    ours4 = mask_from_torch(per_head, kpm)
    assert ours4.shape == (2, 3, 3, 4) and not ours4[0, 1, 0, 0] and ours4[0, 0, 0, 0]
    assert mask_from_torch() is None


@settings(max_examples=10, deadline=None)
@given(seeds, st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), small, small)
def test_sdpa_matches_torch_with_bool_masks(
    seed: int, n: int, tq: int, tk: int, d: int, dv: int
) -> None:
    rng = np.random.default_rng(seed)
    q, k, v = rng.normal(size=(n, tq, d)), rng.normal(size=(n, tk, d)), rng.normal(size=(n, tk, dv))
    mask = _random_mask(rng, (n, tq, tk))
    out, cache = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(
        *map(torch.from_numpy, (q, k, v)),
        attn_mask=torch.from_numpy(mask),  # True = attend
    )
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-12)
    assert np.all(cache.weights[~mask] == 0)
    np.testing.assert_allclose(cache.weights.sum(-1), 1.0, rtol=0, atol=1e-12)


def test_sdpa_four_axes_and_explicit_scale() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (
        rng.normal(size=(2, 3, 4, 5)),
        rng.normal(size=(2, 3, 6, 5)),
        rng.normal(size=(2, 3, 6, 2)),
    )
    out, _ = scaled_dot_product_attention(q, k, v, scale=0.3)
    ref = F.scaled_dot_product_attention(*map(torch.from_numpy, (q, k, v)), scale=0.3)
    np.testing.assert_allclose(out, ref.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dot_product_scores(q, k), q @ k.swapaxes(-1, -2) / math.sqrt(5))


@settings(max_examples=10, deadline=None)
@given(seeds, st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), small, small)
def test_sdpa_backward_matches_autograd_and_finite_differences(
    seed: int, n: int, tq: int, tk: int, d: int, dv: int
) -> None:
    rng = np.random.default_rng(seed)
    args = {
        "q": rng.normal(size=(n, tq, d)),
        "k": rng.normal(size=(n, tk, d)),
        "v": rng.normal(size=(n, tk, dv)),
    }
    mask = _random_mask(rng, (n, tq, tk))
    out, cache = scaled_dot_product_attention(args["q"], args["k"], args["v"], mask)
    dout = rng.normal(size=out.shape)
    ours = dict(zip("qkv", sdpa_backward(dout, cache), strict=True))

    leaves = [torch.tensor(args[name], requires_grad=True) for name in "qkv"]
    ref = F.scaled_dot_product_attention(*leaves, attn_mask=torch.from_numpy(mask))
    auto = torch.autograd.grad((ref * torch.from_numpy(dout)).sum(), leaves)
    for name, a in zip("qkv", auto, strict=True):
        assert relative_error(ours[name], a.numpy()) < TOL, name

    def loss(_: np.ndarray) -> float:
        return float(np.sum(dout * scaled_dot_product_attention(**args, mask=mask)[0]))

    numeric = {name: numerical_gradient(loss, args[name]) for name in "qkv"}
    assert relative_error(_flat(ours, numeric), _flat(numeric, numeric)) < TOL


def test_deviation_fully_masked_row_gives_zeros_not_nan() -> None:
    """Deviation pinned: a query with no key to attend outputs 0 (and gets 0 gradient); torch's
    nn.MultiheadAttention gives NaN there, F.scaled_dot_product_attention gives 0 or NaN
    depending on the version."""
    rng = np.random.default_rng(2)
    q, k, v = rng.normal(size=(1, 2, 3)), rng.normal(size=(1, 3, 3)), rng.normal(size=(1, 3, 3))
    mask = np.array([[[True, False, True], [False, False, False]]])
    out, cache = scaled_dot_product_attention(q, k, v, mask)
    assert np.isfinite(out).all() and not out[0, 1].any() and not cache.weights[0, 1].any()
    dq, dk, dv = sdpa_backward(np.ones_like(out), cache)
    assert np.isfinite(dq).all() and not dq[0, 1].any()  # the empty query gets no gradient
    assert not dk[0, 1].any() and not dv[0, 1].any()  # key 1 is masked for every query
    ref = F.scaled_dot_product_attention(
        *map(torch.from_numpy, (q, k, v)), attn_mask=torch.from_numpy(mask)
    )
    row = ref[0, 1].numpy()
    assert np.isnan(row).all() or not row.any()
    np.testing.assert_allclose(out[0, 0], ref[0, 0].numpy(), rtol=0, atol=1e-12)

    params = mha_init_params(4, rng=0)
    x = rng.normal(size=(1, 2, 4))
    ours, _ = multihead_attention_forward(x, x, params, 2, mask[:, :, :2])
    tx = torch.from_numpy(x)
    theirs, _ = _torch_mha(params, 2)(tx, tx, tx, attn_mask=torch.from_numpy(~mask[0, :, :2]))
    assert torch.isnan(theirs[0, 1]).all() and np.isfinite(ours).all()


def test_masked_softmax_is_stable_and_normalised() -> None:
    p = masked_softmax(np.array([[1e4, 1e4 - 1.0, -1e4]]))
    np.testing.assert_allclose(p, [[1 / (1 + math.exp(-1)), 1 / (1 + math.e), 0.0]], atol=1e-15)
    ref = torch.softmax(torch.tensor([[3.0, 1.0, -2.0]], dtype=torch.float64), -1).numpy()
    np.testing.assert_allclose(masked_softmax([[3.0, 1.0, -2.0]]), ref, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------------------
# properties: the future is invisible, padding gets no weight


@settings(max_examples=8, deadline=None)
@given(seeds, st.integers(2, 6), st.integers(0, 5))
def test_causal_mask_blocks_the_future(seed: int, t: int, cut: int) -> None:
    cut = cut % t
    rng = np.random.default_rng(seed)
    params = mha_init_params(4, rng=rng)
    x = rng.normal(size=(2, t, 4))
    later = x.copy()
    later[:, cut + 1 :] = rng.normal(size=later[:, cut + 1 :].shape)  # change x at t > cut
    out, _ = multihead_attention_forward(x, x, params, 2, causal_mask(t))
    out_changed, _ = multihead_attention_forward(later, later, params, 2, causal_mask(t))
    np.testing.assert_allclose(out_changed[:, : cut + 1], out[:, : cut + 1], rtol=0, atol=1e-13)
    if cut + 1 < t:  # without the mask the past does see the change
        free, _ = multihead_attention_forward(x, x, params, 2)
        free_changed, _ = multihead_attention_forward(later, later, params, 2)
        assert np.abs(free_changed[:, 0] - free[:, 0]).max() > 1e-6


def test_padding_positions_get_zero_attention_weight_and_no_influence() -> None:
    rng = np.random.default_rng(3)
    lengths = np.array([4, 2, 1])
    x = rng.normal(size=(3, 4, 6))
    params = mha_init_params(6, rng=rng)
    mask = padding_mask(lengths, 4)
    out, cache = multihead_attention_forward(x, x, params, 3, mask)
    weights = cache.attention.weights  # (N, H, Tq, Tk)
    for n, length in enumerate(lengths):
        assert not weights[n, :, :, length:].any()
        np.testing.assert_allclose(weights[n].sum(-1), 1.0, atol=1e-12)
    garbage = x.copy()
    garbage[1, 2:] = 1e3  # change the padding of sequence 1: its real positions are unaffected
    out2, _ = multihead_attention_forward(garbage, garbage, params, 3, mask)
    np.testing.assert_allclose(out2[1, :2], out[1, :2], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# multi-head attention


def test_mha_matches_nn_multihead_attention_with_both_torch_masks() -> None:
    rng = np.random.default_rng(4)
    n, tq, tk, e, heads = 3, 4, 5, 8, 4
    params = mha_init_params(e, rng=rng)
    x_q, x_kv = rng.normal(size=(n, tq, e)), rng.normal(size=(n, tk, e))
    kpm = ~padding_mask(np.array([5, 3, 2]), tk)[:, 0]  # torch: True = padding
    attn = rng.random((tq, tk)) < 0.3
    attn[:, 0] = False  # every query keeps key 0
    out, cache = multihead_attention_forward(x_q, x_kv, params, heads, mask_from_torch(attn, kpm))
    ref, ref_weights = _torch_mha(params, heads)(
        torch.from_numpy(x_q),
        torch.from_numpy(x_kv),
        torch.from_numpy(x_kv),
        key_padding_mask=torch.from_numpy(kpm),
        attn_mask=torch.from_numpy(attn),
    )
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        cache.attention.weights.mean(1), ref_weights.detach().numpy(), rtol=0, atol=1e-12
    )


def test_mha_per_head_mask_and_cross_attention_with_kdim() -> None:
    rng = np.random.default_rng(5)
    n, tq, tk, e, kdim, heads = 2, 3, 4, 6, 5, 2
    params = mha_init_params(e, rng=rng, kdim=kdim)
    assert "q_proj_weight" in mha_params_to_torch(params)
    x_q, x_kv = rng.normal(size=(n, tq, e)), rng.normal(size=(n, tk, kdim))
    torch_mask = ~_random_mask(rng, (n * heads, tq, tk))  # (N*H, Tq, Tk), True = masked
    kpm = np.zeros((n, tk), bool)
    out, _ = multihead_attention_forward(x_q, x_kv, params, heads, mask_from_torch(torch_mask, kpm))
    ref, _ = _torch_mha(params, heads)(
        torch.from_numpy(x_q),
        torch.from_numpy(x_kv),
        torch.from_numpy(x_kv),
        attn_mask=torch.from_numpy(torch_mask),
    )
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=0, atol=1e-12)


@settings(max_examples=6, deadline=None)
@given(seeds, st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), small)
def test_mha_backward_matches_autograd_and_finite_differences(
    seed: int, n: int, tq: int, tk: int, heads: int, head_dim: int
) -> None:
    rng = np.random.default_rng(seed)
    e = heads * head_dim
    params = mha_init_params(e, rng=rng)
    x = {"x_q": rng.normal(size=(n, tq, e)), "x_kv": rng.normal(size=(n, tk, e))}
    mask = _random_mask(rng, (n, tq, tk))
    out, cache = multihead_attention_forward(x["x_q"], x["x_kv"], params, heads, mask)
    dout = rng.normal(size=out.shape)
    dx_q, dx_kv, grads = multihead_attention_backward(dout, cache)

    mha = _torch_mha(params, heads)
    tq_, tkv = (torch.tensor(x[k], requires_grad=True) for k in ("x_q", "x_kv"))
    per_head = np.repeat(~mask, heads, axis=0)  # torch's (N*H, Tq, Tk), True = masked
    ref, _ = mha(tq_, tkv, tkv, attn_mask=torch.from_numpy(per_head))
    auto = torch.autograd.grad(
        (ref * torch.from_numpy(dout)).sum(),
        (tq_, tkv, mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias),
    )
    ours_in = np.concatenate([grads["Wq"].T, grads["Wk"].T, grads["Wv"].T])  # (3E, E)
    ours_bias = np.concatenate([grads["bq"], grads["bk"], grads["bv"]])
    for mine, theirs in zip(
        (dx_q, dx_kv, ours_in, ours_bias, grads["Wo"].T, grads["bo"]), auto, strict=True
    ):
        assert relative_error(mine, theirs.numpy()) < TOL

    p = {k: v.copy() for k, v in params.items()}

    def loss(_: np.ndarray) -> float:
        return float(
            np.sum(dout * multihead_attention_forward(x["x_q"], x["x_kv"], p, heads, mask)[0])
        )

    numeric = {k: numerical_gradient(loss, v) for k, v in (x | p).items()}
    ours = {"x_q": dx_q, "x_kv": dx_kv, **grads}
    assert relative_error(_flat(ours, numeric), _flat(numeric, numeric)) < TOL


def test_mha_backward_against_autograd_with_a_batch_of_masks() -> None:
    """A per-sequence mask in torch: key_padding_mask (N, Tk) plus a causal attn_mask."""
    rng = np.random.default_rng(6)
    n, t, e, heads = 3, 5, 6, 2
    params = mha_init_params(e, rng=rng)
    x = rng.normal(size=(n, t, e))
    lengths = np.array([5, 4, 2])
    mask = combine_masks(padding_mask(lengths, t), causal_mask(t))
    out, cache = multihead_attention_forward(x, x, params, heads, mask)
    dout = rng.normal(size=out.shape)
    dx_q, dx_kv, grads = multihead_attention_backward(dout, cache)
    mha = _torch_mha(params, heads)
    tx = torch.tensor(x, requires_grad=True)
    ref, _ = mha(
        tx,
        tx,
        tx,
        key_padding_mask=torch.from_numpy(~padding_mask(lengths, t)[:, 0]),
        attn_mask=torch.from_numpy(~causal_mask(t)),
    )
    auto = torch.autograd.grad(
        (ref * torch.from_numpy(dout)).sum(), (tx, mha.out_proj.weight, mha.out_proj.bias)
    )
    assert relative_error(dx_q + dx_kv, auto[0].numpy()) < TOL
    assert relative_error(grads["Wo"].T, auto[1].numpy()) < TOL
    assert relative_error(grads["bo"], auto[2].numpy()) < TOL


# --------------------------------------------------------------------------------------------
# why scale by sqrt(d)


def test_dot_product_stats_closed_form() -> None:
    for d in (1, 7, 64):
        assert dot_product_stats(d) == (0.0, float(d))
    mean, var = dot_product_stats(3, mu=np.array([1.0, 0.0, 2.0]), sigma=0.5)
    assert mean == pytest.approx(5.0) and var == pytest.approx(3 * 0.5**4 + 2 * 0.25 * 5.0)


def test_dot_product_monte_carlo_agrees_and_is_seeded() -> None:
    n = 40_000
    for d, mu, sigma in ((16, 0.0, 1.0), (8, 0.5, 2.0)):
        mean, var = dot_product_stats(d, mu, sigma)
        mc_mean, mc_var = dot_product_monte_carlo(d, n, np.random.default_rng(0), mu, sigma)
        assert abs(mc_mean - mean) < 5 * math.sqrt(var / n)  # 5 standard errors
        assert abs(mc_var / var - 1) < 0.05
    assert dot_product_monte_carlo(4, 100, 3) == dot_product_monte_carlo(4, 100, 3)


# --------------------------------------------------------------------------------------------
# errors


def test_attention_errors_name_expected_and_received() -> None:
    q, k, v = np.zeros((2, 3, 4)), np.zeros((2, 5, 4)), np.zeros((2, 5, 6))
    with pytest.raises(ValueError, match=r"q must be \(N, Tq, d\) or \(N, H, Tq, d\).*\(3, 4\)"):
        scaled_dot_product_attention(q[0], k, v)
    with pytest.raises(ValueError, match=r"k must have shape \(2, 'Tk', 4\).*received \(2, 5, 3\)"):
        scaled_dot_product_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match=r"v must have shape \(2, 5, 'dv'\).*received \(2, 4, 6\)"):
        scaled_dot_product_attention(q, k, v[:, :4])
    with pytest.raises(ValueError, match=r"mask must be a boolean array.*received dtype float64"):
        scaled_dot_product_attention(q, k, v, np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"scores' shape \(N, Tq, Tk\) = \(2, 3, 5\); received"):
        scaled_dot_product_attention(q, k, v, np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="scale must be a positive number or None; received -1"):
        scaled_dot_product_attention(q, k, v, scale=-1.0)
    _, cache = scaled_dot_product_attention(q, k, v)
    with pytest.raises(ValueError, match=r"dout must have .* \(2, 3, 6\); received \(2, 3, 4\)"):
        sdpa_backward(np.zeros((2, 3, 4)), cache)
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\] = \[0, 3\]; received"):
        padding_mask(np.array([1, 4]), 3)
    with pytest.raises(ValueError, match=r"lengths must be a 1-D integer array"):
        padding_mask(np.array([1.5]), 3)
    with pytest.raises(ValueError, match="T must be an integer >= 1; received 0"):
        causal_mask(0)
    with pytest.raises(ValueError, match=r"masks of shapes \(2, 3\) and \(4,\) do not broadcast"):
        combine_masks(np.ones((2, 3), bool), np.ones(4, bool))
    with pytest.raises(ValueError, match=r"a 3-D attn_mask \(N\*H, Tq, Tk\) needs key_padding"):
        mask_from_torch(np.zeros((4, 2, 2), bool))
    with pytest.raises(ValueError, match=r"mu must be a number or have shape \(d,\) = \(3,\)"):
        dot_product_stats(3, mu=np.zeros(2))
    with pytest.raises(ValueError, match="sigma must be a positive number; received 0"):
        dot_product_stats(3, sigma=0)
    with pytest.raises(ValueError, match="n must be an integer >= 2; received 1"):
        dot_product_monte_carlo(3, 1, 0)


def test_mha_errors_name_expected_and_received() -> None:
    params = mha_init_params(6, rng=0)
    x = np.zeros((2, 3, 6))
    with pytest.raises(ValueError, match=r"E = 6 .* must be divisible by num_heads = 4"):
        multihead_attention_forward(x, x, params, 4)
    with pytest.raises(ValueError, match=r"missing \['Wo'\]"):
        multihead_attention_forward(x, x, {k: v for k, v in params.items() if k != "Wo"}, 2)
    with pytest.raises(ValueError, match=r"unknown params \['Wx'\]"):
        multihead_attention_forward(x, x, {**params, "Wx": params["Wq"]}, 2)
    with pytest.raises(ValueError, match=r"Wq must have shape \(Dq, E\) with Dq = 5; received"):
        multihead_attention_forward(x[..., :5], x, params, 2)
    with pytest.raises(ValueError, match=r"Wk must have shape \(4, 6\); received \(6, 6\)"):
        multihead_attention_forward(x, x[..., :4], params, 2)
    with pytest.raises(ValueError, match=r"bv must have shape \(6,\); received \(5,\)"):
        multihead_attention_forward(x, x, {**params, "bv": np.zeros(5)}, 2)
    with pytest.raises(ValueError, match=r"x_kv must be 3-D \(N, Tk, Dkv\) with N = 2; received"):
        multihead_attention_forward(x, x[:1], params, 2)
    with pytest.raises(
        ValueError, match=r"\(N, H, Tq, Tk\) = \(2, 2, 3, 3\); received shape \(2, 3, 3, 3\)"
    ):
        multihead_attention_forward(x, x, params, 2, np.ones((2, 3, 3, 3), bool))
    _, cache = multihead_attention_forward(x, x, params, 2)
    with pytest.raises(ValueError, match=r"dout must have .* \(2, 3, 6\); received \(2, 3\)"):
        multihead_attention_backward(np.zeros((2, 3)), cache)
    with pytest.raises(ValueError, match=r"needs Wq \(6, 6\) and Wo \(6, 6\); received"):
        mha_params_to_torch({**params, "Wo": np.zeros((6, 4)), "bo": np.zeros(4)})
