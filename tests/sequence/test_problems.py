"""The sequence problems: every answer against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnotes.core.catalog import problems, run_problems
from deepnotes.mechanics.recurrent import VanillaRNN
from deepnotes.sequence import problems as seq

NAMES = {
    "Coding RNNs Up!",
    "Gradients in Vanilla RNN",
    "Backpropagation Through LSTM",
    "Machine Translation",
}


@pytest.fixture(scope="module")
def answers() -> dict[str, dict]:
    """Every sequence problem answered once (the FLOP counter's first use is slow)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # module scope: runs before the per-test _one_thread fixture
    try:
        rows = run_problems(["sequence"])
    finally:
        torch.set_num_threads(previous)
    assert all(not row.error for row in rows), [(row.name, row.error) for row in rows]
    return {row.name: dict(row.quantities) for row in rows}


def _find(got: dict, prefix: str):
    (value,) = [v for k, v in got.items() if k.startswith(prefix)]
    return value


def test_problems_are_registered_with_their_source() -> None:
    ours = problems(["sequence"])
    assert {p.name for p in ours} == NAMES
    assert all(p.source.startswith(("discussion 6", "discussion 7")) for p in ours)


def test_coding_rnns_up_follows_the_notes_equations(answers: dict) -> None:
    got = answers["Coding RNNs Up!"]
    assert got["D, H, M"] == [3, 3, 3]
    rnn = VanillaRNN(rng=seq.SEED)
    h = np.zeros(3)
    hs, ys = [], []
    for x_t in np.asarray(got["inputs x_1..x_T (T, D)"]):  # the notes' equations, written out
        h = np.tanh(rnn.W_hh @ h + rnn.W_xh @ x_t + rnn.Bh)
        hs.append(h)
        ys.append(rnn.W_hy @ h + rnn.By)
    assert len(hs) == seq.RNN_STEPS
    np.testing.assert_allclose(got["hidden states h_1..h_T (T, H)"], hs, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got["outputs y_1..y_T (T, M)"], ys, rtol=0, atol=1e-14)
    for key in (
        "max |step loop",
        "max |VanillaRNN - sequence",
        "max |VanillaRNN - torch",
        "max |y_t",
    ):
        assert _find(got, key) < 1e-14


def test_rnn_gradients_scale_like_the_spectral_radius_to_the_lag(answers: dict) -> None:
    got = answers["Gradients in Vanilla RNN"]
    rows = _find(got, "x = 0")
    assert [r[0] for r in rows] == list(seq.GRADIENT_RADII)
    # independent: with x = 0 the state stays 0, so dh_T/dh_(T-lag) = W_hh^lag exactly
    g = torch.Generator().manual_seed(seq.SEED)
    w0 = torch.randn(seq.GRADIENT_HIDDEN, seq.GRADIENT_HIDDEN, generator=g, dtype=torch.float64)
    w0 = w0.numpy() / np.max(np.abs(np.linalg.eigvals(w0.numpy())))
    for rho, rate, *norms in rows:
        assert rate == pytest.approx(rho, rel=0.01)
        for lag, norm in zip(seq.GRADIENT_LAGS_SHOWN, norms, strict=True):
            power = np.linalg.matrix_power(rho * w0, lag)
            assert norm == pytest.approx(np.linalg.norm(power, 2), rel=1e-10)
    small, _, large = rows
    assert small[-1] < 1e-5 and large[-1] > 1e5  # 20 steps: vanishing and exploding
    driven = _find(got, "inputs ~ N(0")
    assert driven[0][-1] < 1e-5  # still vanishing at rho = 0.5
    assert got["max relative |closed-form product - autograd|"] < 1e-12
    assert "diag(1 - h_s^2) W_hh" in got["why"]


def test_lstm_backprop_reruns_the_mechanics_derivation(answers: dict) -> None:
    got = answers["Backpropagation Through LSTM"]
    assert _find(got, "mechanics derivation 'LSTM dJ/dW^g through time (all gates)'") < 1e-12
    assert _find(got, "sequence.recurrent.LSTM: max |autograd") < 1e-12
    assert _find(got, "sequence.recurrent.LSTM: max |prod f_s") < 1e-12
    assert got["dC_t/dC_{t-1} (h_{t-1} held fixed)"] == "diag(f_t)"


def _encoder_flops(m: int, k: int) -> int:
    """One post-LN encoder layer, FFN width 4k: QKV + output projections 8 M k^2, scores
    4 M^2 k, FFN 16 M k^2 (FlopCounterMode: 2 FLOPs per multiply-add)."""
    return 24 * m * k * k + 4 * m * m * k


def _decoder_flops(m: int, n: int, k: int, vocab: int) -> int:
    """One decoder layer plus the output projection: self-attention 8 N k^2 + 4 N^2 k,
    cross-attention 4 N k^2 + 4 M k^2 + 4 N M k, FFN 16 N k^2, logits 2 N k V."""
    return 28 * n * k * k + 4 * n * n * k + 4 * m * k * k + 4 * n * m * k + 2 * n * k * vocab


def test_machine_translation_complexities(answers: dict) -> None:
    got = answers["Machine Translation"]
    exponents = {row[0]: row[1:] for row in _find(got, "3. fitted exponents")}
    assert exponents == {
        "encoder self-attention": [2.0, 0.0, 1.0, 2.0],
        "decoder self-attention": [0.0, 2.0, 1.0, 2.0],
        "decoder-encoder attention": [1.0, 1.0, 1.0, 2.0],
    }
    for name, measured, formula in _find(got, "3. [sublayer, score FLOPs"):
        assert measured == formula, name
    k = seq.FIXED_WIDTH
    assert [row[1] for row in _find(got, "3. [sublayer, score FLOPs")] == [
        4 * 12 * 12 * k,
        4 * 7 * 7 * k,
        4 * 7 * 12 * k,
    ]
    whole, summed = got["3. whole Transformer's score FLOPs = sum of the three sublayers'"]
    assert whole == summed
    assert "O(M^2 k)" in got["3. complexities"] and "O(M N k)" in got["3. complexities"]


def test_machine_translation_encoder_does_not_depend_on_the_decoder(answers: dict) -> None:
    got = answers["Machine Translation"]
    assert _find(got, "4. encoder output bitwise unchanged") is True
    assert got["4. decoder parameters the encoder output depends on"] == 0
    full, encoder, decoder = _find(got, "4. FLOPs:")
    k, v = seq.FIXED_WIDTH, seq.VOCAB
    assert encoder == _encoder_flops(12, k)
    assert decoder == _decoder_flops(12, 7, k, v)
    assert full == encoder + decoder
    assert got["4. second translation = full - encoder"] is True
    decoder_diff, encoder_diff = _find(got, "4. second differences")
    step = seq.SECOND_DIFFERENCE_LENGTHS[1] - seq.SECOND_DIFFERENCE_LENGTHS[0]
    assert decoder_diff == [0, 0]  # linear in M
    assert encoder_diff == [2 * 4 * k * step**2] * 2  # 4 M^2 k: second difference 8 k h^2


def test_machine_translation_positions_and_heads(answers: dict) -> None:
    got = answers["Machine Translation"]
    assert _find(got, "1. max |enc(P x) - P enc(x)|") < 1e-12
    assert got["1. the same with sinusoidal positional encoding"] > 1e-2
    previous, first = _find(got, "2. hand-set heads")
    assert previous == [0, *range(seq.STRUCTURE_LENGTH - 1)]  # query 0 has no previous
    assert first == [0] * seq.STRUCTURE_LENGTH
