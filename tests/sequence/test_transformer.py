"""The transformer's invariants: masks, permutation equivariance, LN placement, the KV cache."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deepnotes.data.parallel import make_batch
from deepnotes.sequence.attention import padding_mask
from deepnotes.sequence.transformer import (
    DecoderCache,
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    Transformer,
    TransformerDecoder,
    TransformerEncoder,
    sinusoidal_table,
)

CACHE_TOL = 1e-12  # float64; not bitwise: see the Deviation in transformer.py
EQUIVARIANCE_TOL = 1e-12  # float64; permuting the rows changes the order of sums
PAD, BOS, EOS = 0, 1, 2


def _model(seed: int = 0, **kwargs) -> Transformer:
    torch.manual_seed(seed)
    defaults = {"d_model": 16, "num_heads": 4, "dim_feedforward": 32, "max_len": 32}
    return Transformer(11, 13, **{**defaults, **kwargs}).double().eval()


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 11, (3, 8), generator=g)
    src[1, 5:] = PAD  # two padded sources
    src[2, 3:] = PAD
    tgt = torch.randint(3, 13, (3, 7), generator=g)
    tgt[:, 0] = BOS
    return src, tgt


# --------------------------------------------------------------------------------------------
# positional encodings


def test_sinusoidal_table_is_the_papers_formula() -> None:
    table = sinusoidal_table(50, 6)
    for pos, i in ((0, 0), (7, 1), (49, 2)):
        angle = pos / 10000 ** (2 * i / 6)
        assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-15)
        assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-15)
    assert sinusoidal_table(4, 5).shape == (4, 5)  # odd D: the last column is a sine


@pytest.mark.parametrize("cls", [SinusoidalPositionalEncoding, LearnedPositionalEncoding])
def test_positional_encoding_offsets_and_rejects_long_sequences(cls) -> None:
    pe = cls(8, max_len=10).double()
    x = torch.zeros(2, 6, 8, dtype=torch.float64)
    assert torch.equal(pe(x)[:, 4:], pe(x[:, :2], offset=4))  # the cache's offset
    with pytest.raises(ValueError, match=r"length 12 .* max_len = 10"):
        pe(torch.zeros(1, 12, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"length 11 .* max_len = 10"):
        pe(x, offset=5)


def test_model_rejects_a_source_longer_than_the_table() -> None:
    model = _model(max_len=8)
    with pytest.raises(ValueError, match=r"length 9 .* max_len = 8"):
        model.encode(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"integer tensor \(B, L\)"):
        model.encode(torch.ones(1, 4))
    with pytest.raises(ValueError, match="positional must be"):
        Transformer(5, 5, d_model=8, num_heads=2, positional="rotary")


# --------------------------------------------------------------------------------------------
# masks as properties


@pytest.mark.parametrize("norm_first", [False, True])
def test_changing_a_future_target_token_leaves_earlier_outputs_bitwise_unchanged(
    norm_first: bool,
) -> None:
    model = _model(norm_first=norm_first)
    src, tgt = _batch()
    logits = model(src, tgt)
    for t in (6, 3):
        changed = tgt.clone()
        changed[:, t] = (changed[:, t] + 1 - 3) % 10 + 3
        new = model(src, changed)
        assert torch.equal(new[:, :t], logits[:, :t])
        assert not torch.equal(new[:, t:], logits[:, t:])


def test_changing_padded_source_content_leaves_every_output_unchanged() -> None:
    model = _model()
    src, tgt = _batch()
    lengths = [8, 5, 3]
    mask = padding_mask(lengths, 8)  # (B, Ls), True = real token
    logits = model(src, tgt, mask)
    changed = src.clone()
    changed[1, 5:] = torch.tensor([4, 9, 7])  # new content where the mask says padding
    changed[2, 3:] = 5
    assert torch.equal(model(changed, tgt, mask), logits)  # bitwise: every output
    assert torch.equal(model(src, tgt), logits)  # the default mask from pad_id is the same
    assert not torch.equal(model(changed, tgt), logits)  # unmasked, the content would matter


def test_a_token_batch_mask_is_the_models_mask() -> None:
    """One mask convention: data.parallel's batches and the models both say True = real token."""
    batch = make_batch([[5, 6, 7, 8], [4, 9]], [[3, 4], [5, 6, 7]])
    model = _model()
    assert torch.equal(batch.src_mask, model.source_mask(batch.src))
    logits = model(batch.src, batch.tgt_in, batch.src_mask)
    assert torch.equal(logits, model(batch.src, batch.tgt_in))


def test_encoder_without_positional_encoding_is_permutation_equivariant() -> None:
    torch.manual_seed(0)
    encoder = TransformerEncoder(2, d_model=16, num_heads=4, dim_feedforward=32).double().eval()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    perm = torch.randperm(9)
    out, _ = encoder(x)
    out_perm, _ = encoder(x[:, perm])
    assert (out_perm - out[:, perm]).abs().max() <= EQUIVARIANCE_TOL
    # through the whole model: token ids permuted, no positional table
    model = _model(positional="none")
    src, _ = _batch()
    src = src[:1, :5]  # no padding
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert (model.encode(src[:, perm]) - model.encode(src)[:, perm]).abs().max() <= 1e-12
    # with the table, it is not
    with_pe = _model()
    assert (with_pe.encode(src[:, perm]) - with_pe.encode(src)[:, perm]).abs().max() > 1e-3


def test_post_ln_and_pre_ln_both_run_and_differ() -> None:
    src, tgt = _batch()
    post, pre = _model(norm_first=False), _model(norm_first=True)
    assert pre.encoder.norm is not None and post.encoder.norm is None
    out_post, out_pre = post(src, tgt), pre(src, tgt)
    assert out_post.shape == out_pre.shape == (3, 7, 13)
    assert torch.isfinite(out_post).all() and torch.isfinite(out_pre).all()
    assert (out_post - out_pre).abs().max() > 1e-3
    # post-LN: each layer's output is layer-normalised (zero mean over D)
    x, _ = post.encoder(torch.randn(2, 4, 16, dtype=torch.float64))
    assert x.mean(-1).abs().max() < 1e-12


def test_dropout_is_active_in_training_only() -> None:
    model = _model(dropout=0.3)
    src, tgt = _batch()
    assert torch.equal(model(src, tgt), model(src, tgt))
    model.train()
    assert not torch.equal(model(src, tgt), model(src, tgt))


def test_use_sdpa_model_equals_the_hand_written_one() -> None:
    model, fast = _model(), _model(use_sdpa=True)
    fast.load_state_dict(model.state_dict())
    src, tgt = _batch()
    assert (model(src, tgt) - fast(src, tgt)).abs().max() <= 1e-12
    maps = model.attention_maps(src, tgt)
    cross = maps["decoder_cross"][0]
    assert cross.shape == (3, 4, 7, 8)
    assert torch.all(cross[2, :, :, 3:] == 0)  # no attention on padding


# --------------------------------------------------------------------------------------------
# incremental decoding


@pytest.mark.parametrize("norm_first", [False, True])
def test_kv_cache_equals_full(norm_first: bool) -> None:
    model = _model(norm_first=norm_first, dropout=0.2)  # eval: dropout off
    src, tgt = _batch(1)
    memory, src_mask = model.encode(src), model.source_mask(src)
    full = model.decode(tgt, memory, src_mask)
    cache = DecoderCache()
    steps = [model.decode(tgt[:, t : t + 1], memory, src_mask, cache) for t in range(7)]
    assert cache.length == 7 and cache.layers[0].self_k.shape == (3, 4, 7, 4)
    assert (torch.cat(steps, dim=1) - full).abs().max() <= CACHE_TOL
    # chunks of several tokens work too (a prompt, then one at a time)
    cache = DecoderCache()
    chunked = [model.decode(tgt[:, :4], memory, src_mask, cache)]
    chunked += [model.decode(tgt[:, t : t + 1], memory, src_mask, cache) for t in (4, 5, 6)]
    assert (torch.cat(chunked, dim=1) - full).abs().max() <= CACHE_TOL


def test_greedy_decoding_with_and_without_cache_agree() -> None:
    model = _model(seed=3)
    src, _ = _batch(2)
    cached = model.greedy_decode(src, BOS, max_new_tokens=10, use_cache=True)
    recomputed = model.greedy_decode(src, BOS, max_new_tokens=10, use_cache=False)
    assert cached.shape == (3, 11) and torch.all(cached[:, 0] == BOS)
    assert torch.equal(cached, recomputed)
    # the greedy tokens are the argmax of the full teacher-forced logits on their own prefix
    logits = model(src, cached[:, :-1])
    assert torch.equal(logits.argmax(-1), cached[:, 1:])


def test_greedy_decoding_stops_at_eos_and_pads() -> None:
    model = _model(seed=4)
    with torch.no_grad():
        model.generator.bias[EOS] = 50.0  # EOS is always the argmax
    out = model.greedy_decode(torch.tensor([[5, 6, 7]]), BOS, max_new_tokens=5, eos_id=EOS)
    assert out.tolist() == [[BOS, EOS]]


def test_decoder_only_stack_is_causal_and_caches() -> None:
    torch.manual_seed(0)
    decoder = TransformerDecoder(
        2, d_model=16, num_heads=4, dim_feedforward=32, dropout=0.0, cross_attention=False
    ).double()
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    full, _, cross = decoder(x)
    assert cross == [None, None]
    x2 = x.clone()
    x2[:, 4] += 1.0
    assert torch.equal(decoder(x2)[0][:, :4], full[:, :4])
    cache = DecoderCache()
    steps = [decoder(x[:, t : t + 1], cache=cache)[0] for t in range(6)]
    assert (torch.cat(steps, dim=1) - full).abs().max() <= CACHE_TOL


# --------------------------------------------------------------------------------------------
# a tiny copy task overfits


def test_copy_task_overfits() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(3, 10, (8, 6), generator=g)  # 8 sequences of 6 symbols
    tgt_in = torch.cat([torch.full((8, 1), BOS), src[:, :-1]], dim=1)  # shifted right
    model = Transformer(
        10,
        10,
        d_model=32,
        num_heads=4,
        num_encoder_layers=1,
        num_decoder_layers=1,
        dim_feedforward=64,
        dropout=0.0,
        max_len=16,
        norm_first=True,
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = F.cross_entropy(model(src, tgt_in).reshape(-1, 10), src.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out = model.greedy_decode(src, BOS, max_new_tokens=6)
    assert loss.item() < 0.1  # seed 0 ends near 0.03; the exact copies are the point
    assert torch.equal(out[:, 1:], src)
