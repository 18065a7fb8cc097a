"""Probability from data: empirical frequencies, conditionals and Bayes' theorem (notes,
discussion 1, "Probability review")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _events(name: str, values: Sequence[bool] | np.ndarray) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of booleans, got shape {array.shape}"
        )
    if array.dtype != bool:
        raise ValueError(f"{name} must hold booleans, got dtype {array.dtype}")
    return array


def probability(a: Sequence[bool] | np.ndarray) -> float:
    """P(A) estimated as the fraction of observations in which A happened."""
    return float(_events("a", a).mean())


def conditional_probability(
    a: Sequence[bool] | np.ndarray, given: Sequence[bool] | np.ndarray
) -> float:
    """P(A | B) = #(A and B) / #B, from paired observations of A and B."""
    a, b = _events("a", a), _events("given", given)
    if a.shape != b.shape:
        raise ValueError(f"a and given must pair up: shapes {a.shape} and {b.shape}")
    if not b.any():
        raise ValueError("P(A | B) is undefined: B never happened in the data")
    return float((a & b).sum() / b.sum())


def bayes(p_b_given_a: float, p_a: float, p_b: float) -> float:
    """Bayes' theorem: P(A | B) = P(B | A) P(A) / P(B)."""
    for name, p in (("p_b_given_a", p_b_given_a), ("p_a", p_a), ("p_b", p_b)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    if p_b == 0.0:
        raise ValueError("P(B) = 0: P(A | B) is undefined")
    return p_b_given_a * p_a / p_b
