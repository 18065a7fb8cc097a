"""The robustness problems (discussion 11, part 2, problems 3 and 4), answered by the library."""

from __future__ import annotations

import pytest

import deepnotes.robustness.problems as rp
from deepnotes.core.catalog import Problem, problems


def entries() -> dict[str, Problem]:
    return {p.name: p for p in problems(["robustness"]) if p.fn.__module__ == rp.__name__}


def answer(fragment: str) -> dict:
    (entry,) = [p for name, p in entries().items() if fragment in name]
    return dict(entry.fn().quantities)


def test_registered_with_their_sources() -> None:
    sources = sorted(p.source for p in entries().values())
    assert len(sources) == 2
    assert "problem 3" in sources[0] and "problem 4" in sources[1]


def test_problem_3_fgsm_attains_the_maximum() -> None:
    got = answer("FGSM's optimal")
    (linf,) = [v for k, v in got.items() if k.startswith("L-inf")]
    (l2,) = [v for k, v in got.items() if k.startswith("L2")]
    fgsm, brute, closed = linf
    assert fgsm == pytest.approx(brute, abs=1e-12) and fgsm == pytest.approx(closed, abs=1e-12)
    fgsm, sampled, closed = l2
    assert fgsm == pytest.approx(closed, abs=1e-12)
    assert closed * 0.9 < sampled <= closed  # samples approach the bound from below


def test_problem_4_answers_the_notes_options() -> None:
    got = answer("other perturbation sets")
    (rows,) = [v for k, v in got.items() if k.startswith("set")]
    inside = {row[0]: row[1] for row in rows}
    assert inside == {"linf <= 0.1": True, "linf <= 1": False, "l2 <= 0.5": True, "l2 <= 1": False}
    (night,) = [v for k, v in got.items() if k.startswith("stop signs")]
    assert night > rp.TRAIN_EPS  # a dimmed image is outside the training ball
