"""Probability helpers and the foundations problems."""

from __future__ import annotations

from fractions import Fraction

import pytest

from deepnotes.core.catalog import run_problems
from deepnotes.foundations.probability import bayes, conditional_probability, probability
from deepnotes.foundations.problems import HEADACHE_FLU


def test_bayes_table_matches_exact_fractions() -> None:
    (row,) = run_problems(["foundations"], ["Do I have a flu? (Bayes from a table)"])
    answers = dict(row.quantities)
    # exact counts: 3 of 6 have flu, 3 of 6 a headache, 2 of the 3 with flu a headache
    flu = sum(f == "Y" for _, f in HEADACHE_FLU)
    both = sum(h == f == "Y" for h, f in HEADACHE_FLU)
    assert answers["P(F)"] == pytest.approx(float(Fraction(flu, len(HEADACHE_FLU))))
    assert answers["P(H|F)"] == pytest.approx(float(Fraction(both, flu)))
    assert answers["P(F|H) by Bayes = P(H|F) P(F) / P(H)"] == pytest.approx(2 / 3)
    assert answers["P(F|H) counted directly (check)"] == pytest.approx(2 / 3)


def test_probability_helpers_and_errors() -> None:
    a = [True, False, True, True]
    b = [True, True, False, True]
    assert probability(a) == 0.75
    assert conditional_probability(a, given=b) == pytest.approx(2 / 3)
    assert bayes(conditional_probability(b, given=a), probability(a), probability(b)) == (
        pytest.approx(conditional_probability(a, given=b))
    )
    with pytest.raises(ValueError, match="B never happened"):
        conditional_probability(a, given=[False] * 4)
    with pytest.raises(ValueError, match="shapes"):
        conditional_probability(a, given=[True])
    with pytest.raises(ValueError, match="booleans"):
        probability([1, 0])
    with pytest.raises(ValueError, match=r"p_a must be a probability in \[0, 1\]"):
        bayes(0.5, 1.5, 0.5)
