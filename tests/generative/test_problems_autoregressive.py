"""The notes' problem 1 (PixelCNN vs. PixelRNN), answered by the library's models: the exact
counts behind the run-time answer, and timings that are at least well-formed."""

from __future__ import annotations

import math

import deepnotes.generative.problems_autoregressive as pa
from deepnotes.core.catalog import Problem, problems


def entries() -> list[Problem]:
    return [p for p in problems(["generative"]) if p.fn.__module__ == pa.__name__]


def test_problem_1_is_registered_with_its_source() -> None:
    (entry,) = entries()
    assert entry.source == "discussion 10, section 2, problem 1"
    assert "PixelCNN vs. PixelRNN" in entry.name


def test_problem_1_counts_and_timings() -> None:
    (entry,) = entries()
    got = dict(entry.fn().quantities)
    pixels = pa.SHAPE[1] * pa.SHAPE[2]
    assert got["models"] == ["PixelCNN", "PixelRNN"]
    # the Row LSTM walks the 8 rows: 1 + (1 + 8) + 2 layer steps against 1 + 4 + 2
    assert got["training: sequential depth of one pass (layer steps, all pixels at once)"] == [
        7,
        12,
    ]
    cnn_flops, rnn_flops = got["training: forward FLOPs per image"]
    assert 0.5 < rnn_flops / cnn_flops < 2  # similar work, different depth
    assert got[f"test: network calls to sample a batch (D = {pixels})"] == [pixels, pixels]
    steps = got[f"training: median seconds per step (batch {pa.TRAIN_BATCH})"]
    ratios = got["test: sampling time / one forward pass"]
    assert all(math.isfinite(t) and t > 0 for t in [*steps, *ratios])
    assert "PixelRNN step took" in got["training, answer"]
