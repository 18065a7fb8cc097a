"""The notes' U-Net problem (discussion 5, section 3, problem 3), answered by the library."""

from __future__ import annotations

import deepnotes.vision.problems_unet as mod
from deepnotes.core.catalog import problems

NAME = "U-Net potpourri"


def test_listed_with_the_topics_problems_and_its_source() -> None:
    (entry,) = [p for p in problems(["vision"]) if p.name == NAME]
    assert entry.fn is mod.unet_potpourri
    assert entry.source == "discussion 5, section 3, problem 3"


def test_answers_name_the_operations_and_count_their_parameters() -> None:
    got = dict(mod.unet_potpourri().quantities)
    assert "transposed convolution of stride 2" in got["upward arrows"]
    assert "1024x2x2 -> 512x4x4" in got["upward arrows"]  # 32 / 16 = 2 at the bottom
    assert "512x4x4 + 512x4x4 -> 1024x4x4" in got["rightward arrows"]
    counts = dict(got["learned parameters per operation type"])
    assert set(got["operations with learned parameters"]) == {"conv 3x3", "up-conv 2x2", "conv 1x1"}
    assert set(got["operations without learned parameters"]) == {
        "ReLU",
        "max-pool 2x2",
        "copy and concatenate",
    }
    assert got["total learned parameters"] == sum(counts.values()) > 30_000_000
