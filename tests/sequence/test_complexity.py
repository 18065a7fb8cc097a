"""sequence.complexity: FlopCounterMode's counts of the attention sublayers and stacks against
the closed forms (derived by hand), on real and meta tensors, and the power-law fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepnotes.sequence.attention import MultiHeadAttention, causal_mask
from deepnotes.sequence.complexity import (
    attention_matmul_flops,
    count_flops,
    decoder_flops,
    encoder_flops,
    feedforward_flops,
    power_law_exponent,
    projection_flops,
    sublayer_flops,
)
from deepnotes.sequence.transformer import Transformer


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_self_attention_count_equals_the_closed_form(fused: bool, device: str) -> None:
    b, length, d = 3, 7, 12
    with torch.device(device):
        mha = MultiHeadAttention(d, 3, fused_projection=fused)
    x = torch.randn(b, length, d).to(device)
    for mask in (None, causal_mask(length, device=torch.device(device))):
        counted = sublayer_flops(mha, x, attn_mask=mask)
        assert counted.attention == attention_matmul_flops(b, length, length, d) == 4 * b * 49 * d
        assert counted.projections == projection_flops(b, length, length, d) == 8 * b * 7 * d * d


def test_cross_attention_count_is_bilinear_in_the_two_lengths() -> None:
    b, n, m, d = 2, 5, 9, 8
    mha = MultiHeadAttention(d, 2)
    tgt, memory = torch.randn(b, n, d), torch.randn(b, m, d)
    pad = torch.ones(b, m, dtype=torch.bool)
    pad[0, -3:] = False  # padding masks scores, it does not remove products
    counted = sublayer_flops(mha, tgt, memory, key_padding_mask=pad)
    assert counted.attention == 2 * (2 * b * n * m * d)  # Q K^T and A V, 2 FLOPs a multiply-add
    assert counted.projections == 2 * b * d * d * (2 * n + 2 * m)  # W_Q, W_O on N; W_K, W_V on M


def test_the_counts_do_not_depend_on_the_head_count() -> None:
    x = torch.randn(2, 6, 16)
    counts = {h: sublayer_flops(MultiHeadAttention(16, h), x) for h in (1, 2, 4, 8)}
    assert len(set(counts.values())) == 1


def test_a_fused_kernel_module_is_refused() -> None:
    # FlopCounterMode counts torch's fused CPU attention as 0 FLOPs (the module's Deviation)
    q = torch.randn(1, 2, 5, 4)
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == 0
    with pytest.raises(ValueError, match="use_sdpa must be False"):
        sublayer_flops(MultiHeadAttention(8, 2, use_sdpa=True), torch.randn(1, 5, 8))
    with pytest.raises(TypeError, match="MultiHeadAttention"):
        sublayer_flops(torch.nn.Linear(8, 8), torch.randn(1, 5, 8))  # type: ignore[arg-type]


def test_stack_counts_equal_the_closed_forms() -> None:
    b, m, n, d, ff, layers, vocab = 3, 9, 6, 16, 24, 2, 11
    model = Transformer(
        vocab, vocab, d_model=d, num_heads=4, num_encoder_layers=layers,
        num_decoder_layers=layers, dim_feedforward=ff, dropout=0.0,
    ).eval()  # fmt: skip
    src = torch.randint(4, vocab, (b, m))
    tgt = torch.randint(4, vocab, (b, n))
    with torch.no_grad():
        memory = model.encode(src)
        enc = count_flops(lambda: model.encode(src))
        dec = count_flops(lambda: model.decode(tgt, memory))
        full = count_flops(lambda: model(src, tgt))
    assert enc == encoder_flops(b, m, d, ff, layers)
    assert dec == decoder_flops(b, n, m, d, ff, layers, vocab)
    assert full == enc + dec
    per_layer = 4 * b * m * m * d + 8 * b * m * d * d + feedforward_flops(b, m, d, ff)
    assert enc == layers * per_layer


def test_closed_forms_reject_bad_sizes() -> None:
    with pytest.raises(ValueError, match="query_len must be a positive int"):
        attention_matmul_flops(1, 0, 3, 4)
    with pytest.raises(ValueError, match="num_layers"):
        encoder_flops(1, 3, 4, 8, 0)


def test_power_law_exponent_reads_the_exponent() -> None:
    x = np.array([16.0, 32, 64, 128, 256])
    assert power_law_exponent(x, 3.0 * x**2) == pytest.approx(2.0, abs=1e-12)
    assert power_law_exponent(x, np.full(5, 7.0)) == pytest.approx(0.0, abs=1e-12)
    assert power_law_exponent(x.tolist(), (x**-0.5).tolist()) == pytest.approx(-0.5, abs=1e-12)
    # a sum of powers: between them, the slope of least squares on the logs (np.polyfit)
    y = 64 * x + x**2
    slope = power_law_exponent(x, y)
    expected = np.polyfit(np.log(x), np.log(y), 1)[0]
    assert 1 < slope < 2 and math.isclose(slope, expected, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([1.0], [1.0], "same length >= 2"),
        ([1.0, 2.0], [1.0], "same length >= 2"),
        ([1.0, 2.0], [0.0, 1.0], "positive"),
        ([2.0, 2.0], [1.0, 3.0], "two distinct"),
    ],
)
def test_power_law_exponent_rejects_bad_input(x: list, y: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        power_law_exponent(x, y)
