"""Procedural characters in the spirit of Omniglot, and a loader for the real Omniglot files.

Omniglot (Lake et al. 2015) has 1,623 handwritten characters from 50 alphabets, 20 drawings each:
the standard benchmark of few-shot classification (notes, discussion 12). It cannot be downloaded
here, so :func:`glyphs` draws a stand-in with the same structure: many classes, few examples per
class, classes that differ in their strokes and examples of one class that differ only in the
hand that drew them.

How a class is made (``seed`` fixes everything):

- a character is 1-4 pen strokes, each a cubic Bezier curve in the unit square: a straight line
  (collinear control points), a circular arc (the standard cubic approximation of an arc of
  60-200 degrees) or a free curve (random control points); half of the strokes after the first
  start on a point of an earlier stroke, as pen strokes of real characters do;
- a rendering of the character applies a small random affine map to all strokes (rotation
  ~N(0, 0.12 rad), scale ~1 + N(0, 0.07), shear ~N(0, 0.1), shift ~N(0, 0.035) of the side),
  jitters every control point by ~N(0, 0.025) and picks a pen radius in [0.03, 0.055] of the
  side;
- rasterisation: each stroke is sampled at 48 points whose arc-length shares are splatted on
  the grid and blurred by a Gaussian; ink is solid within the pen radius with a one-pixel
  anti-aliased ramp outside (see :func:`_rasterise`), so images are float32 in [0, 1] with
  strokes at 1 like inverted Omniglot.

:func:`glyph_splits` splits the classes into meta-train / meta-validation / meta-test, never
sharing a class. :func:`load_omniglot` reads the real files for users who bring them
(``images_background`` for meta-training, ``images_evaluation`` split into validation and test).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from deepnotes.core.errors import ConfigError, DataFormatError
from deepnotes.data.bounded import read_file

__all__ = ["ClassSplits", "glyph_splits", "glyphs", "load_omniglot"]

MAX_STROKES = 4
"""Most strokes of one character (each class draws 1..MAX_STROKES)."""

CURVE_POINTS = 48
"""Points sampled along one Bezier stroke (less than half a pixel apart at side 28)."""

_CHUNK = 4096
"""Renderings rasterised at once."""

_BLUR = 0.7
"""Standard deviation, in pixels, of the Gaussian that turns stroke points into ink."""


@dataclass(frozen=True)
class ClassSplits:
    """Disjoint classes for meta-training, meta-validation and meta-test.

    Each field is a float32 tensor ``(C_i, per_class, 1, H, W)``: ``C_i`` classes of that split,
    ``per_class`` renderings (or drawings) of each.
    """

    train: Tensor
    val: Tensor
    test: Tensor


def _class_strokes(seed: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Control points ``(classes, MAX_STROKES, 4, 2)`` and stroke mask ``(classes, MAX_STROKES)``.

    Class ``c`` draws from its own generator (``seed``, ``c``): it does not depend on ``classes``.
    """
    ctrl = np.zeros((classes, MAX_STROKES, 4, 2))
    counts = np.zeros(classes, dtype=np.int64)
    basis = _bernstein(np.linspace(0.0, 1.0, CURVE_POINTS))
    for c in range(classes):
        rng = np.random.default_rng([seed, 0, c])
        counts[c] = rng.integers(1, MAX_STROKES + 1)
        kinds = rng.integers(0, 3, size=MAX_STROKES)
        for s in range(MAX_STROKES):
            start = rng.uniform(0.2, 0.8, size=2)
            if s > 0 and rng.random() < 0.5:
                # begin on a point of an earlier stroke
                earlier = basis @ ctrl[c, rng.integers(0, s)]
                start = earlier[rng.integers(0, CURVE_POINTS)]
            if kinds[s] == 0:  # straight line
                angle = rng.uniform(0, 2 * math.pi)
                length = rng.uniform(0.25, 0.6)
                end = start + length * np.array([math.cos(angle), math.sin(angle)])
                ctrl[c, s] = np.stack(
                    [start, start + (end - start) / 3, start + 2 * (end - start) / 3, end]
                )
            elif kinds[s] == 1:  # circular arc
                radius = rng.uniform(0.12, 0.3)
                sweep = math.radians(rng.uniform(60, 200)) * rng.choice([-1.0, 1.0])
                a0 = rng.uniform(0, 2 * math.pi)
                centre = start - radius * np.array([math.cos(a0), math.sin(a0)])
                k = 4.0 / 3.0 * math.tan(sweep / 4)
                p0 = centre + radius * np.array([math.cos(a0), math.sin(a0)])
                p3 = centre + radius * np.array([math.cos(a0 + sweep), math.sin(a0 + sweep)])
                d0 = radius * k * np.array([-math.sin(a0), math.cos(a0)])
                d3 = radius * k * np.array([-math.sin(a0 + sweep), math.cos(a0 + sweep)])
                ctrl[c, s] = np.stack([p0, p0 + d0, p3 - d3, p3])
            else:  # free curve
                rest = start + rng.normal(0, 0.22, size=(3, 2))
                ctrl[c, s] = np.concatenate([start[None], rest])
            ctrl[c, s] = np.clip(ctrl[c, s], 0.08, 0.92)
    mask = np.arange(MAX_STROKES)[None, :] < counts[:, None]
    return ctrl, mask


def _bernstein(t: np.ndarray) -> np.ndarray:
    """Cubic Bernstein basis ``(len(t), 4)``."""
    return np.stack([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t**2 * (1 - t), t**3], axis=1)


def _distort(
    rng: np.random.Generator, ctrl: np.ndarray, per_class: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-rendering control points ``(C, per_class, S, 4, 2)`` and pen radii ``(C, per_class)``."""
    classes = ctrl.shape[0]
    shape = (classes, per_class)
    angle = rng.normal(0, 0.12, size=shape)
    scale = 1 + rng.normal(0, 0.07, size=shape)
    shear = rng.normal(0, 0.1, size=shape)
    shift = rng.normal(0, 0.035, size=(*shape, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    # A = scale * R(angle) @ [[1, shear], [0, 1]]
    a = np.empty((*shape, 2, 2))
    a[..., 0, 0] = scale * cos
    a[..., 0, 1] = scale * (cos * shear - sin)
    a[..., 1, 0] = scale * sin
    a[..., 1, 1] = scale * (sin * shear + cos)
    points = ctrl[:, None] + rng.normal(0, 0.025, size=shape + ctrl.shape[1:])
    centred = points - 0.5
    moved = np.einsum("cmij,cmskj->cmski", a, centred) + 0.5 + shift[:, :, None, None, :]
    radius = rng.uniform(0.03, 0.055, size=shape)
    return moved, radius


def _rasterise(points: Tensor, mask: Tensor, radius: Tensor, side: int) -> Tensor:
    """Ink of densely sampled strokes on a ``side x side`` grid.

    Each curve point deposits its share of arc length (in pixels) on its four nearest pixels
    (bilinear splatting); a Gaussian blur of width :data:`_BLUR` pixels turns the deposits into
    the line density ``D(d) = exp(-d^2 / 2 s^2) / (sqrt(2 pi) s)`` at distance ``d`` from a
    stroke; the ink is ``clip(D / D(radius), 0, 1)``: solid within the pen radius, a one-pixel
    anti-aliased ramp outside it.

    Args:
        points: ``(B, S, P, 2)`` curve points in the unit square (x, y).
        mask: ``(B, S)`` bool, strokes that exist.
        radius: ``(B,)`` pen radius in units of the side.
        side: pixels per side.

    Returns:
        ``(B, 1, side, side)`` float32 in [0, 1].
    """
    batch = points.shape[0]
    u = points * side - 0.5  # pixel-centre coordinates
    seg = (u[:, :, 1:] - u[:, :, :-1]).norm(dim=-1)  # (B, S, P-1) arc length in pixels
    weight = torch.zeros(u.shape[:3], dtype=u.dtype)
    weight[:, :, 1:] += seg / 2
    weight[:, :, :-1] += seg / 2
    weight = (weight * mask[:, :, None]).reshape(batch, -1)
    u = u.reshape(batch, -1, 2)
    base = u.floor()
    frac = u - base
    base = base.long()
    out = torch.zeros(batch * side * side, dtype=u.dtype)
    image = (torch.arange(batch) * side * side)[:, None]
    for dx in (0, 1):
        for dy in (0, 1):
            col = base[..., 0] + dx
            row = base[..., 1] + dy
            share = (frac[..., 0] if dx else 1 - frac[..., 0]) * (
                frac[..., 1] if dy else 1 - frac[..., 1]
            )
            inside = (col >= 0) & (col < side) & (row >= 0) & (row < side)
            flat = image + row.clamp(0, side - 1) * side + col.clamp(0, side - 1)
            out.index_add_(0, flat.reshape(-1), (weight * share * inside).reshape(-1))
    grid = torch.arange(side, dtype=u.dtype)
    blur = torch.exp(-((grid[:, None] - grid[None, :]) ** 2) / (2 * _BLUR**2))
    blur = blur / (math.sqrt(2 * math.pi) * _BLUR)  # (side, side) Gaussian, one axis
    density = blur @ out.reshape(batch, side, side) @ blur  # separable blur as two matmuls
    r = radius * side
    at_radius = torch.exp(-(r**2) / (2 * _BLUR**2)) / (math.sqrt(2 * math.pi) * _BLUR)
    ink = (density / at_radius[:, None, None]).clamp(0.0, 1.0)
    return ink.reshape(batch, 1, side, side).float()


def glyphs(classes: int, per_class: int = 20, *, side: int = 28, seed: int = 0) -> Tensor:
    """Procedural characters: ``classes`` classes of ``per_class`` renderings each.

    Args:
        classes: number of character classes (>= 1).
        per_class: renderings per class (>= 1).
        side: image side in pixels (>= 8; 28 like resized Omniglot, 14 for quick runs).
        seed: the same seed gives the same tensor; class ``c`` of ``glyphs(n, ...)`` is the same
            character for every ``n > c``, its renderings are not.

    Returns:
        ``(classes, per_class, 1, side, side)`` float32 in [0, 1], strokes near 1.

    Raises:
        ConfigError: a count below 1 or ``side`` below 8.
    """
    if classes < 1 or per_class < 1:
        raise ConfigError(
            f"glyphs needs classes >= 1 and per_class >= 1, got {classes} and {per_class}"
        )
    if side < 8:
        raise ConfigError(f"glyphs needs side >= 8 pixels, got {side}")
    ctrl, mask = _class_strokes(seed, classes)
    moved, radius = _distort(np.random.default_rng([seed, 1, classes, per_class]), ctrl, per_class)
    basis = torch.from_numpy(_bernstein(np.linspace(0.0, 1.0, CURVE_POINTS))).float()
    pts = torch.einsum(
        "pk,bskd->bspd", basis, torch.from_numpy(moved).float().reshape(-1, MAX_STROKES, 4, 2)
    )
    masks = torch.from_numpy(np.repeat(mask, per_class, axis=0))
    radii = torch.from_numpy(radius.reshape(-1)).float()
    out = torch.empty(classes * per_class, 1, side, side)
    for i in range(0, out.shape[0], _CHUNK):
        out[i : i + _CHUNK] = _rasterise(
            pts[i : i + _CHUNK], masks[i : i + _CHUNK], radii[i : i + _CHUNK], side
        )
    return out.reshape(classes, per_class, 1, side, side)


def _split_sizes(total: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Class counts of the three splits (each >= 1), summing to ``total``."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ConfigError(f"fractions must be three positive shares summing to 1, got {fractions}")
    if total < 3:
        raise ConfigError(f"splitting needs at least 3 classes, got {total}")
    n_val = max(1, round(total * fractions[1]))
    n_test = max(1, round(total * fractions[2]))
    n_train = total - n_val - n_test
    if n_train < 1:
        raise ConfigError(
            f"{total} classes leave no meta-training class with fractions {fractions}"
        )
    return n_train, n_val, n_test


def glyph_splits(
    classes: int = 1200,
    per_class: int = 20,
    *,
    side: int = 28,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
) -> ClassSplits:
    """Procedural glyph classes split into meta-train / meta-validation / meta-test.

    The classes of :func:`glyphs` are shuffled (seeded) and cut by ``fractions``; no class is in
    two splits. Each split is ``(C_i, per_class, 1, side, side)``.

    Raises:
        ConfigError: fractions that are not three positive shares summing to 1, or too few
            classes for three non-empty splits.
    """
    n_train, n_val, _ = _split_sizes(classes, fractions)
    data = glyphs(classes, per_class, side=side, seed=seed)
    order = torch.from_numpy(np.random.default_rng([seed, 2]).permutation(classes))
    data = data[order]
    return ClassSplits(
        train=data[:n_train], val=data[n_train : n_train + n_val], test=data[n_train + n_val :]
    )


def _read_png(path: Path, side: int) -> np.ndarray:
    """One Omniglot drawing as ``(side, side)`` float32 in [0, 1], strokes at 1."""
    from PIL import Image, UnidentifiedImageError

    raw = read_file(path, "Omniglot PNG image")
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DataFormatError(
            f"{path}: expected a PNG image (signature 89 50 4E 47), found other bytes"
        )
    try:
        with Image.open(io.BytesIO(raw)) as image:
            grey = image.convert("L").resize((side, side), Image.Resampling.BILINEAR)
            pixels = np.asarray(grey, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: cannot decode the PNG image: {exc}") from None
    return 1.0 - pixels


def _read_characters(folder: Path, side: int) -> list[tuple[str, Tensor]]:
    """Every ``<alphabet>/<character>/*.png`` under ``folder`` as (name, (M, 1, side, side))."""
    if not folder.is_dir():
        raise DataFormatError(
            f"Omniglot folder not found: {folder} "
            f"(expected <root>/{folder.name}/<alphabet>/<character>/*.png)"
        )
    out = []
    for alphabet in sorted(p for p in folder.iterdir() if p.is_dir()):
        for character in sorted(p for p in alphabet.iterdir() if p.is_dir()):
            files = sorted(p for p in character.iterdir() if p.is_file())
            if not files:
                raise DataFormatError(f"{character}: expected PNG drawings, found an empty folder")
            for f in files:
                if f.suffix.lower() != ".png":
                    raise DataFormatError(f"{f}: expected only .png drawings in a character folder")
            images = np.stack([_read_png(f, side) for f in files])
            out.append((f"{alphabet.name}/{character.name}", torch.from_numpy(images)[:, None]))
    if not out:
        raise DataFormatError(
            f"{folder}: expected <alphabet>/<character>/*.png folders, found none"
        )
    return out


def _stack(characters: list[tuple[str, Tensor]], folder: Path) -> Tensor:
    """Stack characters that all have the same number of drawings."""
    counts = {t.shape[0] for _, t in characters}
    if len(counts) != 1:
        name, t = min(characters, key=lambda item: item[1].shape[0])
        raise DataFormatError(
            f"{folder}: every character needs the same number of drawings, found {sorted(counts)} "
            f"(e.g. {name} has {t.shape[0]})"
        )
    return torch.stack([t for _, t in characters])


def load_omniglot(
    root: str | os.PathLike[str], *, side: int = 28, val_fraction: float = 0.5
) -> ClassSplits:
    """The real Omniglot drawings, read from the folders of the official release.

    Layout: ``root/images_background/<alphabet>/<character>/*.png`` (meta-train, 964 characters in
    the release) and ``root/images_evaluation/<alphabet>/<character>/*.png`` (659 characters),
    the latter split in sorted order into validation (the first ``val_fraction``) and test.
    Images are read with Pillow, converted to grey, resized to ``side`` and inverted so strokes
    are 1.

    Returns:
        :class:`ClassSplits` of ``(C_i, 20, 1, side, side)`` float32 tensors.

    Raises:
        DataFormatError: a missing folder, a file that is not a PNG image, an empty character
            folder, characters with different numbers of drawings, or too few evaluation
            characters for two splits.
        ConfigError: ``side < 8`` or ``val_fraction`` outside (0, 1).
    """
    if side < 8:
        raise ConfigError(f"load_omniglot needs side >= 8 pixels, got {side}")
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    base = Path(root)
    if not base.is_dir():
        raise DataFormatError(
            f"Omniglot root not found: {base} (expected images_background/ and images_evaluation/)"
        )
    train = _stack(_read_characters(base / "images_background", side), base / "images_background")
    evaluation = _read_characters(base / "images_evaluation", side)
    if len(evaluation) < 2:
        raise DataFormatError(
            f"{base / 'images_evaluation'}: needs >= 2 characters to split into validation "
            f"and test, found {len(evaluation)}"
        )
    n_val = min(max(1, round(len(evaluation) * val_fraction)), len(evaluation) - 1)
    evaluation_t = _stack(evaluation, base / "images_evaluation")
    return ClassSplits(train=train, val=evaluation_t[:n_val], test=evaluation_t[n_val:])
