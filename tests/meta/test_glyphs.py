"""Procedural glyphs, their class splits, and the Omniglot loader on tiny files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepnotes.core.errors import ConfigError, DataFormatError
from deepnotes.data.glyphs import _class_strokes, glyph_splits, glyphs, load_omniglot


def test_shape_range_and_determinism() -> None:
    g = glyphs(6, 4, side=14, seed=3)
    assert g.shape == (6, 4, 1, 14, 14) and g.dtype == torch.float32
    assert float(g.min()) >= 0.0 and float(g.max()) <= 1.0
    assert float(g.amax(dim=(2, 3, 4)).min()) > 0.5  # every rendering has ink
    assert torch.equal(g, glyphs(6, 4, side=14, seed=3))
    assert not torch.equal(g, glyphs(6, 4, side=14, seed=4))
    assert glyphs(2, 3).shape == (2, 3, 1, 28, 28)


def test_a_class_does_not_depend_on_how_many_are_drawn() -> None:
    few, many = _class_strokes(0, 3), _class_strokes(0, 7)
    assert np.array_equal(few[0], many[0][:3]) and np.array_equal(few[1], many[1][:3])


def test_renderings_of_a_class_are_closer_than_other_classes() -> None:
    flat = glyphs(20, 6, side=28, seed=0).reshape(120, -1)
    label = torch.arange(20).repeat_interleave(6)
    d = torch.cdist(flat, flat)
    same, eye = label[:, None] == label[None, :], torch.eye(120, dtype=torch.bool)
    assert d[same & ~eye].mean() < 0.8 * d[~same].mean()  # renderings vary less than characters
    nearest = d.masked_fill(eye, float("inf")).argmin(dim=1)
    assert (label[nearest] == label).float().mean() >= 0.8  # pixel 1-NN finds the class


def test_splits_are_disjoint_and_sized() -> None:
    s = glyph_splits(20, 3, side=14, seed=1)
    assert (s.train.shape[0], s.val.shape[0], s.test.shape[0]) == (14, 2, 4)
    everything = glyphs(20, 3, side=14, seed=1)
    ids = []
    for split in (s.train, s.val, s.test):
        for c in split:
            (match,) = [i for i in range(20) if torch.equal(everything[i], c)]
            ids.append(match)
    assert sorted(ids) == list(range(20))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ConfigError, match="side >= 8"):
        glyphs(2, side=4)
    with pytest.raises(ConfigError, match="classes >= 1"):
        glyphs(0)
    with pytest.raises(ConfigError, match="summing to 1"):
        glyph_splits(10, 2, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="at least 3"):
        glyph_splits(2, 2)


def _png(path: Path, dot: tuple[int, int] | None = None, side: int = 10) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((side, side), 255, dtype=np.uint8)  # white paper
    if dot is not None:
        pixels[dot] = 0  # a black stroke pixel
    Image.fromarray(pixels).save(path)


def _omniglot(root: Path, drawings: int = 3) -> None:
    for part, alphabets in (("images_background", 2), ("images_evaluation", 2)):
        for a in range(alphabets):
            for c in range(2):
                for d in range(drawings):
                    _png(root / part / f"alpha{a}" / f"char{c}" / f"{d}.png", dot=(d, c))


def test_load_omniglot_reads_inverts_and_splits(tmp_path: Path) -> None:
    _omniglot(tmp_path)
    s = load_omniglot(tmp_path, side=10)
    assert s.train.shape == (4, 3, 1, 10, 10)
    assert s.val.shape == (2, 3, 1, 10, 10) and s.test.shape == (2, 3, 1, 10, 10)
    # strokes are 1, paper 0: drawing d of character c has its ink at row d, column c
    assert float(s.train[1, 2, 0, 2, 1]) == pytest.approx(1.0)
    assert float(s.train[1, 2, 0, 5, 5]) == pytest.approx(0.0)


def test_load_omniglot_refuses_bad_layouts(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="root not found"):
        load_omniglot(tmp_path / "nope")
    _omniglot(tmp_path)
    bad = tmp_path / "images_background" / "alpha0" / "char0" / "0.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataFormatError, match="expected a PNG"):
        load_omniglot(tmp_path, side=10)
    _png(bad, dot=(0, 0))
    (bad.parent / "notes.txt").write_text("x")
    with pytest.raises(DataFormatError, match=r"only \.png"):
        load_omniglot(tmp_path, side=10)
    (bad.parent / "notes.txt").unlink()
    (bad.parent / "1.png").unlink()
    with pytest.raises(DataFormatError, match="same number of drawings"):
        load_omniglot(tmp_path, side=10)


def test_load_omniglot_needs_both_folders(tmp_path: Path) -> None:
    _png(tmp_path / "images_background" / "a" / "c" / "0.png")
    with pytest.raises(DataFormatError, match="images_evaluation"):
        load_omniglot(tmp_path, side=10)
