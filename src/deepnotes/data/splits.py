"""Deterministic, seeded, stratified splits of a labelled data set."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def stratified_split(
    labels: np.ndarray | Sequence[int], fractions: Sequence[float], seed: int
) -> list[np.ndarray]:
    """Split example indices into parts with the given fractions, class by class.

    Within each class the indices are shuffled with ``numpy.random.default_rng(seed)`` and cut at
    the rounded cumulative fractions, so every part has (up to rounding) the class proportions of
    the whole set and the same seed always gives the same split.

    Arguments:
        labels: integer class label of every example, shape (N,).
        fractions: one fraction per part, each in (0, 1], summing to 1 (within 1e-9); ``nan``
            and infinities are refused.
        seed: the split's seed.

    Returns:
        One sorted index array per part; together they partition ``range(N)``.

    Raises:
        ValueError: ``labels`` not of shape (N,), or ``fractions`` empty, outside (0, 1] or not
            summing to 1.

    Example:
        >>> train, val, test = stratified_split(y, (0.6, 0.2, 0.2), seed=0)
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {labels.shape}")
    fractions = [float(f) for f in fractions]
    # written so that nan fails: every comparison with nan is false
    if not (fractions and all(0 < f <= 1 for f in fractions)) or not (
        abs(math.fsum(fractions) - 1.0) <= 1e-9
    ):
        raise ValueError(f"fractions must each be in (0, 1] and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    bounds = np.cumsum([0.0, *fractions])
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        cuts = np.rint(bounds * len(members)).astype(int)
        for i in range(len(fractions)):
            parts[i].append(members[cuts[i] : cuts[i + 1]])
    return [np.sort(np.concatenate(p)) for p in parts]
