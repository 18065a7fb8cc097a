"""The sequence derivations: the PyTorch modules against closed forms, and wrong forms failing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import deepnotes.sequence.attention as attention
from deepnotes.core.catalog import Derivation, derivations, run_derivations
from deepnotes.mechanics.recurrent import lstm_backward
from deepnotes.sequence.derivations import (
    CELL_PATH_TOLERANCE,
    lstm_module_cell_path_check,
    lstm_module_weight_gradient_check,
    multihead_matrix_form_check,
    sdpa_matrix_form_check,
)

EXPECTED = {
    "LSTM module dJ/dW^g: autograd = NumPy BPTT",
    "LSTM module cell path: dC_T/dC_t = prod_{s>t} f_s",
    "attention matrix form = one query at a time (masks, gradients)",
    "multi-head attention module = per-query, per-head loop (hand-written and SDPA paths)",
}


def _ours() -> list[Derivation]:
    return derivations(["sequence"])


def test_the_sequence_derivations_are_registered() -> None:
    assert {d.name for d in _ours()} == EXPECTED
    assert all(d.closed_form and d.topic == "sequence" for d in _ours())


def test_every_row_passes_at_float64_round_off() -> None:
    rows = run_derivations(["sequence"])
    assert {r.name for r in rows} == EXPECTED
    for row in rows:
        assert row.passed and not row.error, (row.name, row.error)
        assert row.max_abs_error < 1e-12, (row.name, row.max_abs_error)
        assert row.detail
    (cell,) = [r for r in rows if "cell path" in r.name]
    assert cell.tolerance == CELL_PATH_TOLERANCE == 1e-10


def test_lstm_weight_gradient_fails_with_a_wrong_backward() -> None:
    def transposed(*args, **kwargs):  # the classic slip: dW^g = sum da^T h instead of h^T da
        dx, dh0, dc0, grads = lstm_backward(*args, **kwargs)
        return dx, dh0, dc0, {**grads, "W_g": grads["W_g"].T}

    def no_cell_path(dhs: np.ndarray, cache, dcT: np.ndarray):  # loses dJ/dC_T
        return lstm_backward(dhs, cache, np.zeros_like(dcT))

    for wrong in (transposed, no_cell_path):
        check = lstm_module_weight_gradient_check(wrong)
        assert not check.passed and check.max_abs_error > 1e-3


def test_cell_path_fails_when_the_product_includes_f_t() -> None:
    def off_by_one(f: torch.Tensor) -> torch.Tensor:  # prod_{s >= t} f_s instead of s > t
        return f.flip(1).cumprod(1).flip(1)

    check = lstm_module_cell_path_check(off_by_one)
    assert not check.passed and check.max_abs_error > 0.1


def test_matrix_form_fails_without_the_scale_or_the_mask() -> None:
    def unscaled(q, k, v, mask):
        return attention.scaled_dot_product_attention(q, k, v, mask, scale=1.0)

    def unmasked(q, k, v, mask):
        return attention.scaled_dot_product_attention(q, k, v)

    for wrong in (unscaled, unmasked):
        check = sdpa_matrix_form_check(wrong)
        assert not check.passed and check.max_abs_error > 1e-3


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_multihead_check_fails_when_the_module_attends_wrongly(
    monkeypatch: pytest.MonkeyPatch, use_sdpa: bool
) -> None:
    assert multihead_matrix_form_check(use_sdpa).passed
    hand_written, fused = attention.scaled_dot_product_attention, F.scaled_dot_product_attention
    monkeypatch.setattr(
        attention,
        "scaled_dot_product_attention",
        lambda q, k, v, mask, dropout_p=0.0: hand_written(q, k, v, mask, dropout_p, scale=0.5),
    )
    monkeypatch.setattr(  # drops the mask: padded and future keys leak in
        F, "scaled_dot_product_attention", lambda q, k, v, attn_mask, dropout_p: fused(q, k, v)
    )
    check = multihead_matrix_form_check(use_sdpa)
    assert not check.passed and check.max_abs_error > 1e-3
