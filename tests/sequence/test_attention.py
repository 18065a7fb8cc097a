"""Hand-written attention vs torch's: F.scaled_dot_product_attention and nn.MultiheadAttention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.sequence.attention import (
    MultiHeadAttention,
    causal_mask,
    combine_masks,
    merge_heads,
    padding_mask,
    padding_mask_from_ids,
    scaled_dot_product_attention,
    split_heads,
)

SDPA_TOL = 1e-12  # float64, same arithmetic up to the order of the sums
MHA_TOL = 1e-10  # float64, through four projections


def _qkv(seed: int, shape_q=(2, 3, 5, 8), lk: int = 5, dv: int = 8):
    g = torch.Generator().manual_seed(seed)
    *lead, _, d = shape_q
    q = torch.randn(*shape_q, generator=g, dtype=torch.float64)
    k = torch.randn(*lead, lk, d, generator=g, dtype=torch.float64)
    v = torch.randn(*lead, lk, dv, generator=g, dtype=torch.float64)
    return q, k, v


# --------------------------------------------------------------------------------------------
# masks


def test_padding_mask_from_lengths_and_ids() -> None:
    assert padding_mask([2, 3]).tolist() == [[True, True, False], [True, True, True]]
    assert padding_mask(torch.tensor([0, 1]), max_len=3).tolist() == [
        [False, False, False],
        [True, False, False],
    ]
    ids = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])
    assert torch.equal(padding_mask_from_ids(ids, pad_id=0), padding_mask([2, 1], 4))


def test_causal_mask_is_lower_triangular_and_offsets_for_the_cache() -> None:
    assert causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    # the last 2 queries of a length-4 sequence: rows 2 and 3 of the full mask
    assert torch.equal(causal_mask(2, 4), causal_mask(4)[2:])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: padding_mask([1, 4], max_len=3), r"\[0, 3\]; received \[1, 4\]"),
        (lambda: padding_mask(torch.ones(2, 2, dtype=torch.long)), r"\(B,\); received shape"),
        (lambda: padding_mask_from_ids(torch.zeros(3), 0), r"\(B, L\); received shape \(3,\)"),
        (lambda: causal_mask(3, 2), "query_len=3, key_len=2"),
        (lambda: combine_masks(torch.ones(2, 3).bool(), torch.ones(4).bool()), r"\(2, 3\)"),
        (lambda: combine_masks(torch.ones(2)), "boolean"),
    ],
)
def test_mask_helpers_reject_bad_input(call, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --------------------------------------------------------------------------------------------
# scaled dot-product attention vs F.scaled_dot_product_attention (float64, 1e-12)


def _random_mask(seed: int, shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) < 0.6
    mask[..., 0] = True  # every query keeps at least one key
    return mask


@pytest.mark.parametrize(
    "mask_kind", ["none", "causal", "random (Lq, Lk)", "random (B, H, Lq, Lk)", "padding"]
)
def test_sdpa_matches_torch_values_and_gradients(mask_kind: str) -> None:
    q, k, v = _qkv(0, (2, 3, 5, 8), lk=5, dv=6)
    mask = {
        "none": None,
        "causal": causal_mask(5),
        "random (Lq, Lk)": _random_mask(1, (5, 5)),
        "random (B, H, Lq, Lk)": _random_mask(2, (2, 3, 5, 5)),
        "padding": padding_mask([5, 2])[:, None, None, :],  # (B, 1, 1, Lk)
    }[mask_kind]
    for t in (q, k, v):
        t.requires_grad_(True)
    ours, weights = scaled_dot_product_attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (ours - theirs).abs().max() <= SDPA_TOL
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))
    if mask is not None:
        assert torch.all(weights[~mask.expand_as(weights)] == 0)
    g = torch.randn_like(ours)
    grads_ours = torch.autograd.grad(ours, (q, k, v), g)
    grads_theirs = torch.autograd.grad(theirs, (q, k, v), g)
    for a, b in zip(grads_ours, grads_theirs, strict=True):
        assert (a - b).abs().max() <= SDPA_TOL


def test_sdpa_cross_attention_lengths_and_scale() -> None:
    q, k, v = _qkv(3, (2, 4, 8), lk=7, dv=3)
    ours, weights = scaled_dot_product_attention(q, k, v, scale=0.3)
    theirs = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert ours.shape == (2, 4, 3) and weights.shape == (2, 4, 7)
    assert (ours - theirs).abs().max() <= SDPA_TOL


def test_fully_masked_row_is_zero() -> None:
    """Deviation pinned: an all-masked query gets zero weights and output (torch's sdpa agrees),
    with finite gradients; nn.MultiheadAttention gives NaN there."""
    q, k, v = _qkv(4, (1, 3, 4), lk=3, dv=4)
    q.requires_grad_(True)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.all(out[:, 1] == 0) and torch.all(weights[:, 1] == 0)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (out - theirs).abs().max() <= SDPA_TOL
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert torch.isfinite(grad).all()
    mha = nn.MultiheadAttention(4, 1, batch_first=True, dtype=torch.float64)
    torch_out, _ = mha(q, k, k, attn_mask=~mask)
    assert torch.isnan(torch_out[:, 1]).all()


def test_causal_mask_blocks_the_future() -> None:
    q, k, v = _qkv(5, (2, 6, 4), lk=6, dv=4)
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(6))
    k2, v2 = k.clone(), v.clone()
    k2[:, 4:] += 10.0
    v2[:, 4:] -= 3.0
    out2, _ = scaled_dot_product_attention(q, k2, v2, causal_mask(6))
    assert torch.equal(out[:, :4], out2[:, :4])
    assert not torch.equal(out[:, 4:], out2[:, 4:])


def test_sdpa_errors_name_expected_and_received_shapes() -> None:
    q, k, v = _qkv(6, (2, 5, 8), lk=5, dv=8)
    with pytest.raises(ValueError, match=r"\(2, 5, 5\); received shape \(3, 4\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 5))
    with pytest.raises(ValueError, match=r"received q \(2, 5, 8\), k \(2, 5, 7\)"):
        scaled_dot_product_attention(q, k[..., :7], v)


def test_split_and_merge_heads_are_inverse_reshapes() -> None:
    x = torch.arange(2 * 3 * 8, dtype=torch.float64).reshape(2, 3, 8)  # (B, L, D)
    heads = split_heads(x, 4)  # (B, H, L, D/H)
    assert heads.shape == (2, 4, 3, 2)
    assert torch.equal(heads[1, 2, 0], x[1, 0, 4:6])  # head h holds columns h*D/H ...
    assert torch.equal(merge_heads(heads), x)


# --------------------------------------------------------------------------------------------
# multi-head attention vs nn.MultiheadAttention (copied weights, float64, 1e-10)


def _pair(fused: bool, seed: int = 0, embed_dim: int = 12, num_heads: int = 3):
    torch.manual_seed(seed)
    ours = MultiHeadAttention(embed_dim, num_heads, fused_projection=fused).double().eval()
    for p in ours.parameters():  # non-zero biases, so they are checked too
        nn.init.normal_(p, std=0.3)
    theirs = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        if fused:
            theirs.in_proj_weight.copy_(ours.in_proj.weight)
            theirs.in_proj_bias.copy_(ours.in_proj.bias)
        else:
            lins = (ours.q_proj, ours.k_proj, ours.v_proj)
            theirs.in_proj_weight.copy_(torch.cat([lin.weight for lin in lins]))
            theirs.in_proj_bias.copy_(torch.cat([lin.bias for lin in lins]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)
    return ours, theirs.eval()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("masks", ["none", "key padding", "causal", "key padding + causal"])
def test_self_attention_matches_nn_multihead_attention(fused: bool, masks: str) -> None:
    ours, theirs = _pair(fused)
    x = torch.randn(3, 6, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    kpm = padding_mask([6, 4, 2]) if "padding" in masks else None  # (B, Lk), True = keep
    causal = causal_mask(6) if "causal" in masks else None  # (Lq, Lk), True = keep
    out, weights = ours(x, x, x, key_padding_mask=kpm, attn_mask=causal)
    ref, ref_weights = theirs(
        x,
        x,
        x,
        key_padding_mask=None if kpm is None else ~kpm,  # torch: True = masked
        attn_mask=None if causal is None else ~causal,
        average_attn_weights=False,
    )
    assert out.shape == (3, 6, 12) and weights.shape == (3, 3, 6, 6)
    assert (out - ref).abs().max() <= MHA_TOL
    assert (weights - ref_weights).abs().max() <= MHA_TOL


@pytest.mark.parametrize("fused", [True, False])
def test_cross_attention_matches_nn_multihead_attention(fused: bool) -> None:
    ours, theirs = _pair(fused, seed=2)
    g = torch.Generator().manual_seed(3)
    query = torch.randn(2, 4, 12, dtype=torch.float64, generator=g)
    memory = torch.randn(2, 7, 12, dtype=torch.float64, generator=g)
    value = torch.randn(2, 7, 12, dtype=torch.float64, generator=g)
    kpm = padding_mask([7, 5])
    for v in (memory, value):
        out, weights = ours(query, memory, v, key_padding_mask=kpm)
        ref, ref_w = theirs(query, memory, v, key_padding_mask=~kpm, average_attn_weights=False)
        assert (out - ref).abs().max() <= MHA_TOL
        assert (weights - ref_w).abs().max() <= MHA_TOL


def test_mha_gradients_match_nn_multihead_attention() -> None:
    ours, theirs = _pair(True, seed=4)
    x = torch.randn(2, 5, 12, dtype=torch.float64, requires_grad=True)
    out, _ = ours(x, x, x, attn_mask=causal_mask(5))
    ref, _ = theirs(x, x, x, attn_mask=~causal_mask(5))
    (gx,) = torch.autograd.grad(out.square().sum(), x)
    (rx,) = torch.autograd.grad(ref.square().sum(), x)
    assert (gx - rx).abs().max() <= MHA_TOL
    gw = torch.autograd.grad(ours(x, x, x)[0].sum(), ours.in_proj.weight)[0]
    rw = torch.autograd.grad(theirs(x, x, x)[0].sum(), theirs.in_proj_weight)[0]
    assert (gw - rw).abs().max() <= MHA_TOL


def test_use_sdpa_equals_the_hand_written_path() -> None:
    ours, _ = _pair(True, seed=5)
    fast = MultiHeadAttention(12, 3, use_sdpa=True).double().eval()
    fast.load_state_dict(ours.state_dict())
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    kpm, causal = padding_mask([6, 3]), causal_mask(6)
    out, weights = ours(x, x, x, key_padding_mask=kpm, attn_mask=causal)
    fast_out, fast_weights = fast(x, x, x, key_padding_mask=kpm, attn_mask=causal)
    assert fast_weights is None and weights is not None
    assert (out - fast_out).abs().max() <= SDPA_TOL


def test_mha_mask_errors_name_expected_and_received_shapes() -> None:
    mha = MultiHeadAttention(8, 2).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\(B, Lk\) = \(2, 5\); received \(2, 4\)"):
        mha(x, x, x, key_padding_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(Lq, Lk\) = \(5, 5\).*received \(4, 5\)"):
        mha(x, x, x, attn_mask=torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        mha(x, x, x, key_padding_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"D = 8; received \(2, 5, 6\)"):
        mha(x[..., :6], x, x)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MultiHeadAttention(10, 3)
